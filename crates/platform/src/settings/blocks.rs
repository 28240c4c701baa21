//! The settings blocks services share: listeners, PostgreSQL, Redis, RabbitMQ, telemetry, server
//! limits, and [`CommonSettings`] that bundles what every service has.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use secrecy::SecretString;

use super::source::{FromSetting, Reader};

/// Checks that a URL secret starts with one of `schemes` without quoting it.
fn url_with_scheme(value: &str, schemes: &[&str]) -> Result<(), String> {
    if schemes
        .iter()
        .any(|scheme| value.starts_with(&format!("{scheme}://")))
    {
        Ok(())
    } else {
        let schemes: Vec<String> = schemes
            .iter()
            .map(|scheme| format!("{scheme}://"))
            .collect();
        Err(format!(
            "expected a url starting with {}",
            schemes.join(" or ")
        ))
    }
}

/// Listen addresses of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSettings {
    /// gRPC listener (`GRPC_ADDR`).
    pub grpc_addr: SocketAddr,
    /// HTTP listener for `/healthz`, `/readyz`, metrics and webhooks (`HTTP_ADDR`).
    pub http_addr: SocketAddr,
}

impl ListenSettings {
    /// Reads `GRPC_ADDR` and `HTTP_ADDR`, falling back to the service's own defaults.
    pub fn read(reader: &Reader<'_>, defaults: ListenSettings) -> Option<Self> {
        let grpc_addr = reader.with_default("GRPC_ADDR", defaults.grpc_addr);
        let http_addr = reader.with_default("HTTP_ADDR", defaults.http_addr);
        Some(Self {
            grpc_addr: grpc_addr?,
            http_addr: http_addr?,
        })
    }
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`, e.g. `postgres://user:password@host:5432/order` (secret).
    pub url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS`, default 10.
    pub max_connections: NonZeroU32,
    /// `DATABASE_ACQUIRE_TIMEOUT`: how long a query waits for a pooled connection, default 5s.
    pub acquire_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT`: server-side cap per statement, default 30s; `0s` disables.
    pub statement_timeout: Duration,
}

impl DatabaseSettings {
    /// Reads the `DATABASE_*` keys.
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let url = reader.secret_with("DATABASE_URL", |value| {
            url_with_scheme(value, &["postgres", "postgresql"])
        });
        let max_connections = reader.with_default(
            "DATABASE_MAX_CONNECTIONS",
            NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
        );
        let acquire_timeout =
            reader.with_default("DATABASE_ACQUIRE_TIMEOUT", Duration::from_secs(5));
        let statement_timeout =
            reader.with_default("DATABASE_STATEMENT_TIMEOUT", Duration::from_secs(30));
        Some(Self {
            url: url?,
            max_connections: max_connections?,
            acquire_timeout: acquire_timeout?,
            statement_timeout: statement_timeout?,
        })
    }

    /// Settings for `url` with the defaults (tests and tools).
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            max_connections: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// Redis settings.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_URL`, e.g. `redis://127.0.0.1:6379` (secret: may carry a password).
    pub url: SecretString,
    /// `REDIS_KEY_PREFIX`, default `mercato:<service>:`; every key this service writes starts
    /// with it, which is also how tests isolate themselves.
    pub key_prefix: String,
}

impl RedisSettings {
    /// Reads the `REDIS_*` keys.
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let url = reader.secret_with("REDIS_URL", |value| {
            url_with_scheme(value, &["redis", "rediss", "unix", "redis+unix"])
        });
        let key_prefix =
            reader.with_default("REDIS_KEY_PREFIX", format!("mercato:{}:", reader.service()));
        Some(Self {
            url: url?,
            key_prefix: key_prefix?,
        })
    }
}

/// RabbitMQ settings.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// `AMQP_URL`, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f` (secret).
    pub url: SecretString,
    /// `AMQP_PREFETCH`: unacknowledged deliveries per consumer, default 32.
    pub prefetch: NonZeroU16,
}

impl AmqpSettings {
    /// Reads the `AMQP_*` keys.
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let url = reader.secret_with("AMQP_URL", |value| {
            url_with_scheme(value, &["amqp", "amqps"])
        });
        let prefetch = reader.with_default(
            "AMQP_PREFETCH",
            NonZeroU16::new(32).unwrap_or(NonZeroU16::MIN),
        );
        Some(Self {
            url: url?,
            prefetch: prefetch?,
        })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal (containers, CI), pretty otherwise.
    #[default]
    Auto,
    /// One JSON object per line, with `trace_id`/`span_id` when a span is active.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

impl FromSetting for LogFormat {
    fn from_setting(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err("expected json, pretty or auto".to_owned()),
        }
    }
}

/// A validated `tracing_subscriber::EnvFilter` directive string (`info,sqlx=warn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(String);

impl LogFilter {
    /// The directives as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LogFilter {
    fn default() -> Self {
        Self("info".to_owned())
    }
}

impl FromSetting for LogFilter {
    fn from_setting(raw: &str) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::try_new(raw)
            .map(|_| Self(raw.to_owned()))
            .map_err(|err| format!("invalid log filter: {err}"))
    }
}

/// An OTLP collector endpoint (`http://jaeger:4317`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint(String);

impl OtlpEndpoint {
    /// The endpoint URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromSetting for OtlpEndpoint {
    fn from_setting(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let uri: http::Uri = raw
            .parse()
            .map_err(|_| "expected an http:// or https:// url".to_owned())?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http" | "https"), Some(_)) => Ok(Self(raw.to_owned())),
            _ => Err("expected an http:// or https:// url".to_owned()),
        }
    }
}

/// Logging and tracing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// `LOG_FORMAT`: `json`, `pretty` or `auto` (default).
    pub log_format: LogFormat,
    /// `LOG_FILTER`, else the standard `RUST_LOG`, else `info`.
    pub log_filter: LogFilter,
    /// The standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`;
    /// spans are exported only when set.
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// The standard `OTEL_SERVICE_NAME`, else `mercato-<service>`.
    pub service_name: String,
}

impl TelemetrySettings {
    /// Reads `LOG_FORMAT`, `LOG_FILTER` and the standard OpenTelemetry variables.
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let log_format = reader.with_default("LOG_FORMAT", LogFormat::Auto);
        let log_filter = match reader.optional::<LogFilter>("LOG_FILTER") {
            Some(Some(filter)) => Some(filter),
            Some(None) => reader
                .standard::<LogFilter>("RUST_LOG")
                .map(Option::unwrap_or_default),
            None => None,
        };
        let traces_endpoint = reader.standard::<OtlpEndpoint>("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let endpoint = reader.standard::<OtlpEndpoint>("OTEL_EXPORTER_OTLP_ENDPOINT");
        let service_name = reader.standard::<String>("OTEL_SERVICE_NAME");
        Some(Self {
            log_format: log_format?,
            log_filter: log_filter?,
            otlp_endpoint: traces_endpoint?.or(endpoint?),
            service_name: service_name?.unwrap_or_else(|| format!("mercato-{}", reader.service())),
        })
    }

    /// Settings for tests and tools: JSON-or-pretty auto, `info`, no export.
    pub fn local(service_name: impl Into<String>) -> Self {
        Self {
            log_format: LogFormat::Auto,
            log_filter: LogFilter::default(),
            otlp_endpoint: None,
            service_name: service_name.into(),
        }
    }
}

/// Limits applied by the gRPC server stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `REQUEST_TIMEOUT`: cap per RPC (a shorter client `grpc-timeout` wins), default 30s.
    pub request_timeout: Duration,
    /// `CONCURRENCY_LIMIT`: RPCs in flight before new ones are shed, default 512.
    pub concurrency_limit: NonZeroUsize,
    /// `MAX_CONNECTION_AGE`: after this long the server ends a client connection gracefully
    /// (`GOAWAY`; calls in flight finish) and the client reconnects — through a Service
    /// address, possibly to another pod, which is how pods added later get a share of
    /// long-standing callers. Unset (the default): connections live as long as their clients.
    pub max_connection_age: Option<Duration>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            concurrency_limit: NonZeroUsize::new(512).unwrap_or(NonZeroUsize::MIN),
            max_connection_age: None,
        }
    }
}

impl ServerLimits {
    /// Reads `REQUEST_TIMEOUT`, `CONCURRENCY_LIMIT` and `MAX_CONNECTION_AGE`.
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let request_timeout = reader.with_default("REQUEST_TIMEOUT", defaults.request_timeout);
        let concurrency_limit =
            reader.with_default("CONCURRENCY_LIMIT", defaults.concurrency_limit);
        let max_connection_age = reader.optional::<Duration>("MAX_CONNECTION_AGE");
        if request_timeout == Some(Duration::ZERO) {
            reader.invalid("REQUEST_TIMEOUT", "must be greater than zero");
            return None;
        }
        if max_connection_age == Some(Some(Duration::ZERO)) {
            reader.invalid(
                "MAX_CONNECTION_AGE",
                "must be greater than zero (leave it unset for no limit)",
            );
            return None;
        }
        Some(Self {
            request_timeout: request_timeout?,
            concurrency_limit: concurrency_limit?,
            max_connection_age: max_connection_age?,
        })
    }
}

/// The blocks every service has: name, listeners, telemetry, limits and the shutdown grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSettings {
    /// The service name given in code (`order`).
    pub service: String,
    /// gRPC and HTTP listen addresses.
    pub listen: ListenSettings,
    /// Logging and tracing.
    pub telemetry: TelemetrySettings,
    /// gRPC server limits.
    pub limits: ServerLimits,
    /// `SHUTDOWN_GRACE_PERIOD`: how long draining may take after SIGTERM, default 25s (inside
    /// Kubernetes' default 30s termination grace).
    pub shutdown_grace: Duration,
    /// `SHUTDOWN_DELAY`: how long the gRPC listener keeps accepting and serving after SIGTERM
    /// has turned readiness false, before it closes and drains; default 0s. Behind a Service or
    /// load balancer that learns of readiness with a lag (Kubernetes endpoints), this is the
    /// time for it to stop sending new connections here. Part of the grace period, so shorter
    /// than it.
    pub shutdown_delay: Duration,
}

impl CommonSettings {
    /// Reads every common block.
    pub fn read(reader: &Reader<'_>, listen_defaults: ListenSettings) -> Option<Self> {
        let listen = ListenSettings::read(reader, listen_defaults);
        let telemetry = TelemetrySettings::read(reader);
        let limits = ServerLimits::read(reader);
        let shutdown_grace = reader.with_default("SHUTDOWN_GRACE_PERIOD", Duration::from_secs(25));
        let shutdown_delay = reader.with_default("SHUTDOWN_DELAY", Duration::ZERO);
        if let (Some(grace), Some(delay)) = (shutdown_grace, shutdown_delay)
            && delay >= grace
        {
            reader.invalid(
                "SHUTDOWN_DELAY",
                format!(
                    "must be shorter than SHUTDOWN_GRACE_PERIOD ({grace:?}), which it is part of"
                ),
            );
        }
        Some(Self {
            service: reader.service().to_owned(),
            listen: listen?,
            telemetry: telemetry?,
            limits: limits?,
            shutdown_grace: shutdown_grace?,
            shutdown_delay: shutdown_delay?,
        })
    }
}
