//! Settings read from an explicit variable map: missing and invalid variables are named, every
//! problem is reported at once, secrets stay hidden and defaults apply.

use std::net::SocketAddr;
use std::time::Duration;

use mercato_platform::settings::{
    AmqpSettings, CommonSettings, DatabaseSettings, EnvSource, ListenSettings, LogFormat, Problem,
    RedisSettings, ServerLimits,
};
use secrecy::ExposeSecret as _;

fn listen_defaults() -> ListenSettings {
    ListenSettings {
        grpc_addr: "0.0.0.0:50053".parse().expect("valid default"),
        http_addr: "0.0.0.0:8083".parse().expect("valid default"),
    }
}

#[test]
fn a_missing_variable_is_named_in_the_error() {
    let source = EnvSource::from_pairs([("MERCATO_ORDER__GRPC_ADDR", "127.0.0.1:1")]);
    let reader = source.service("order");
    let database = DatabaseSettings::read(&reader);
    let err = reader
        .finish(|| database)
        .expect_err("DATABASE_URL is required");
    assert_eq!(
        err.to_string(),
        "invalid configuration: missing MERCATO_ORDER__DATABASE_URL (or MERCATO__DATABASE_URL)"
    );
}

#[test]
fn an_invalid_variable_is_named_with_its_value_and_reason() {
    let source = EnvSource::from_pairs([("MERCATO_ORDER__GRPC_ADDR", "abc")]);
    let reader = source.service("order");
    let listen = ListenSettings::read(&reader, listen_defaults());
    let err = reader
        .finish(|| listen)
        .expect_err("abc is no socket address");
    let message = err.to_string();
    assert!(
        message.starts_with(
            "invalid configuration: MERCATO_ORDER__GRPC_ADDR=\"abc\": invalid socket address"
        ),
        "unexpected message: {message}"
    );
}

#[test]
fn every_problem_is_reported_together() {
    let source = EnvSource::from_pairs([
        ("MERCATO_ORDER__GRPC_ADDR", "abc"),
        ("MERCATO_ORDER__REQUEST_TIMEOUT", "30"),
        ("MERCATO__CONCURRENCY_LIMIT", "0"),
        ("MERCATO_ORDER__LOG_FORMAT", "xml"),
    ]);
    let reader = source.service("order");
    let common = CommonSettings::read(&reader, listen_defaults());
    let database = DatabaseSettings::read(&reader);
    let amqp = AmqpSettings::read(&reader);
    let err = reader
        .finish(|| Some((common?, database?, amqp?)))
        .expect_err("five problems");
    let named: Vec<String> = err
        .problems
        .iter()
        .map(|problem| match problem {
            Problem::Missing { variable, .. }
            | Problem::Invalid { variable, .. }
            | Problem::NotUnicode { variable } => variable.clone(),
        })
        .collect();
    assert_eq!(
        named,
        [
            "MERCATO_ORDER__GRPC_ADDR",
            "MERCATO_ORDER__LOG_FORMAT",
            "MERCATO_ORDER__REQUEST_TIMEOUT",
            "MERCATO__CONCURRENCY_LIMIT",
            "MERCATO_ORDER__DATABASE_URL",
            "MERCATO_ORDER__AMQP_URL",
        ]
    );
    let message = err.to_string();
    assert_eq!(
        message.matches("; ").count(),
        5,
        "one line lists all: {message}"
    );
}

#[test]
fn a_shutdown_delay_must_leave_time_to_drain() {
    let source = EnvSource::from_pairs([
        ("MERCATO__SHUTDOWN_GRACE_PERIOD", "10s"),
        ("MERCATO_ORDER__SHUTDOWN_DELAY", "10s"),
    ]);
    let reader = source.service("order");
    let common = CommonSettings::read(&reader, listen_defaults());
    let message = reader
        .finish(|| common)
        .expect_err("a delay as long as the grace period leaves no time to drain")
        .to_string();
    assert!(
        message.starts_with(
            "invalid configuration: MERCATO_ORDER__SHUTDOWN_DELAY=\"10s\": must be shorter than SHUTDOWN_GRACE_PERIOD"
        ),
        "unexpected message: {message}"
    );

    let source = EnvSource::from_pairs([
        ("MERCATO__SHUTDOWN_GRACE_PERIOD", "10s"),
        ("MERCATO_ORDER__SHUTDOWN_DELAY", "3s"),
    ]);
    let reader = source.service("order");
    let common = CommonSettings::read(&reader, listen_defaults());
    let common = reader.finish(|| common).expect("3s leaves 7s to drain");
    assert_eq!(common.shutdown_delay, Duration::from_secs(3));
}

#[test]
fn a_max_connection_age_is_unset_by_default_and_never_zero() {
    let reader_of = |pairs: &[(&str, &str)]| EnvSource::from_pairs(pairs.iter().copied());
    let source = reader_of(&[]);
    let reader = source.service("order");
    let limits = ServerLimits::read(&reader);
    let limits = reader.finish(|| limits).expect("defaults");
    assert_eq!(limits.max_connection_age, None);

    let source = reader_of(&[("MERCATO__MAX_CONNECTION_AGE", "30s")]);
    let reader = source.service("order");
    let limits = ServerLimits::read(&reader);
    let limits = reader.finish(|| limits).expect("30s is a valid age");
    assert_eq!(limits.max_connection_age, Some(Duration::from_secs(30)));

    let source = reader_of(&[("MERCATO_ORDER__MAX_CONNECTION_AGE", "0s")]);
    let reader = source.service("order");
    let limits = ServerLimits::read(&reader);
    let message = reader
        .finish(|| limits)
        .expect_err("a zero age would end every connection at once")
        .to_string();
    assert!(
        message.contains("MERCATO_ORDER__MAX_CONNECTION_AGE=\"0s\": must be greater than zero"),
        "unexpected message: {message}"
    );
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let password = "s3cr3t-Pa55";
    let source = EnvSource::from_pairs([
        (
            "MERCATO__DATABASE_URL",
            format!("postgres://app:{password}@db/order"),
        ),
        ("MERCATO__AMQP_URL", format!("http://guest:{password}@mq")),
        ("MERCATO__REDIS_URL", format!("redis://:{password}@cache")),
    ]);
    let reader = source.service("order");
    let database = DatabaseSettings::read(&reader);
    let redis = RedisSettings::read(&reader);
    let amqp = AmqpSettings::read(&reader);
    assert!(!format!("{database:?} {redis:?} {source:?}").contains(password));
    assert_eq!(
        database
            .as_ref()
            .map(|db| db.url.expose_secret().contains(password)),
        Some(true),
        "the secret itself is intact"
    );
    assert!(amqp.is_none(), "http:// is not an amqp url");
    let err = reader
        .finish(|| Some(()))
        .expect_err("the amqp url is invalid");
    let message = err.to_string();
    assert!(
        !message.contains(password),
        "error leaks the secret: {message}"
    );
    assert!(
        message.contains(
            "MERCATO__AMQP_URL=<hidden>: expected a url starting with amqp:// or amqps://"
        ),
        "{message}"
    );
}

#[test]
fn defaults_apply_when_variables_are_unset() {
    let source = EnvSource::from_pairs([
        (
            "MERCATO__DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/order",
        ),
        ("MERCATO__REDIS_URL", "redis://127.0.0.1:6379"),
    ]);
    let reader = source.service("order");
    let common = CommonSettings::read(&reader, listen_defaults());
    let database = DatabaseSettings::read(&reader);
    let redis = RedisSettings::read(&reader);
    let (common, database, redis) = reader
        .finish(|| Some((common?, database?, redis?)))
        .expect("only defaults needed");
    assert_eq!(common.service, "order");
    assert_eq!(common.listen, listen_defaults());
    assert_eq!(common.limits.request_timeout, Duration::from_secs(30));
    assert_eq!(common.limits.concurrency_limit.get(), 512);
    assert_eq!(common.shutdown_grace, Duration::from_secs(25));
    assert_eq!(common.shutdown_delay, Duration::ZERO);
    assert_eq!(common.telemetry.log_format, LogFormat::Auto);
    assert_eq!(common.telemetry.log_filter.as_str(), "info");
    assert_eq!(common.telemetry.otlp_endpoint, None);
    assert_eq!(common.telemetry.service_name, "mercato-order");
    assert_eq!(database.max_connections.get(), 10);
    assert_eq!(database.acquire_timeout, Duration::from_secs(5));
    assert_eq!(database.statement_timeout, Duration::from_secs(30));
    assert_eq!(redis.key_prefix, "mercato:order:");
}

#[test]
fn telemetry_follows_the_standard_opentelemetry_variables() {
    let source = EnvSource::from_pairs([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_SERVICE_NAME", "order-canary"),
        ("RUST_LOG", "warn,mercato=debug"),
        ("MERCATO_ORDER__LOG_FORMAT", "pretty"),
        ("MERCATO_ORDER__REQUEST_TIMEOUT", "250ms"),
    ]);
    let reader = source.service("order");
    let common = CommonSettings::read(&reader, listen_defaults());
    let common = reader.finish(|| common).expect("valid");
    assert_eq!(
        common.telemetry.otlp_endpoint.as_ref().map(|e| e.as_str()),
        Some("http://collector:4317")
    );
    assert_eq!(common.telemetry.service_name, "order-canary");
    assert_eq!(common.telemetry.log_filter.as_str(), "warn,mercato=debug");
    assert_eq!(common.telemetry.log_format, LogFormat::Pretty);
    assert_eq!(common.limits.request_timeout, Duration::from_millis(250));
}

#[test]
fn a_service_composes_its_own_keys_with_the_same_reader() {
    let source = EnvSource::from_pairs([
        ("MERCATO_PRODUCT__RESERVATION_TTL", "15m"),
        ("MERCATO_PRODUCT__TOP_PRODUCTS_CACHE", "true"),
        ("MERCATO_PRODUCT__ADMIN_ADDR", "nope"),
    ]);
    let reader = source.service("product");
    let ttl = reader.required::<Duration>("RESERVATION_TTL");
    let cache = reader.with_default("TOP_PRODUCTS_CACHE", false);
    let sweeper = reader.optional::<Duration>("SWEEP_INTERVAL");
    let admin = reader.optional::<SocketAddr>("ADMIN_ADDR");
    assert_eq!(ttl, Some(Duration::from_secs(900)));
    assert_eq!(cache, Some(true));
    assert_eq!(sweeper, Some(None), "unset optional is Some(None)");
    assert_eq!(admin, None, "invalid optional is None");
    let err = reader
        .finish(|| Some((ttl?, cache?, sweeper?, admin?)))
        .expect_err("ADMIN_ADDR is invalid");
    assert_eq!(err.problems.len(), 1);
}
