//! The BFF's typed settings: the common blocks plus issuers, JWKS cache policy, CORS origins,
//! the trusted client-IP header and the rate-limit budgets, read from `MERCATO_BFF__*` (or the
//! shared `MERCATO__*`) variables.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use mercato_platform::settings::{
    CommonSettings, ConfigError, EnvSource, ListenSettings, Reader, RedisSettings,
};
use mercato_proto::mercato::bff::v1::AuthMode;
use secrecy::ExposeSecret as _;

use crate::grpc::AuthConfig;
use crate::jwt::{IssuerConfig, IssuerKind, JwksPolicy};
use crate::rate_limit::{Limit, Limits};

/// Everything the BFF reads at start-up.
#[derive(Debug, Clone)]
pub struct BffSettings {
    /// Listeners, telemetry, server limits, shutdown grace.
    pub common: CommonSettings,
    /// Where rate-limit state lives.
    pub redis: RedisSettings,
    /// `USER_SERVICE_URL`, default `http://127.0.0.1:50051`. Every `*_SERVICE_URL` may list
    /// several replicas of its service, comma-separated
    /// (`http://order-0:50053,http://order-1:50053`): calls take turns over them, and a read or
    /// keyed write a stopping replica refused goes once to another
    /// (`mercato_platform::grpc::Backend`).
    pub user_service_url: String,
    /// `PRODUCT_SERVICE_URL`, default `http://127.0.0.1:50052`: catalog, stock, ranking.
    pub product_service_url: String,
    /// `ORDER_SERVICE_URL`, default `http://127.0.0.1:50053`: carts, orders, coupons.
    pub order_service_url: String,
    /// `PAYMENT_SERVICE_URL`, default `http://127.0.0.1:50054`: payments and wallets.
    pub payment_service_url: String,
    /// `PROCESS_SERVICE_URL`, default `http://127.0.0.1:50055`: shipments (the admin console).
    pub process_service_url: String,
    /// `STRIPE_PUBLISHABLE_KEY`: the publishable key (`pk_…`) a STRIPE payment's browser
    /// initialises Stripe.js with; public by design. Unset, STRIPE payments carry none.
    pub stripe_publishable_key: String,
    /// `STRIPE_JS_URL`, default [`DEFAULT_STRIPE_JS_URL`]: where a STRIPE payment's browser loads
    /// Stripe.js from, sent with the publishable key (a local Stripe fake's copy in tests and
    /// development). An http(s) URL.
    pub stripe_js_url: String,
    /// `WEB_ROOT`: the built storefront (`bff/web/dist`) served on the gRPC port; unset, none.
    pub web_root: Option<std::path::PathBuf>,
    /// Trusted issuers (built-in first, then the external one if configured).
    pub issuers: Vec<IssuerConfig>,
    /// JWKS cache policy.
    pub jwks: JwksPolicy,
    /// What `GetAuthConfig` answers.
    pub auth: AuthConfig,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated exact origins; empty allows none.
    pub cors_origins: Vec<String>,
    /// `CLIENT_IP_HEADER`: header set by the trusted proxy (e.g. `x-forwarded-for`); unset means
    /// the peer address is the client.
    pub client_ip_header: Option<HeaderName>,
    /// Rate-limit budgets.
    pub rate_limits: Limits,
    /// `WATCH_MAX_DURATION`: longest a `WatchOrder` stream stays open before the BFF ends it
    /// with `UNAVAILABLE` (the client watches again), default 10m. The unary `REQUEST_TIMEOUT`
    /// bounds only a stream's start.
    pub watch_max_duration: Duration,
}

/// Default of `STRIPE_JS_URL`: Stripe's own host, from which Stripe requires Stripe.js be loaded.
pub const DEFAULT_STRIPE_JS_URL: &str = "https://js.stripe.com/v3/";

/// Default of `WATCH_MAX_DURATION`.
pub const DEFAULT_WATCH_MAX_DURATION: Duration = Duration::from_secs(600);

impl BffSettings {
    /// Reads and validates every setting, reporting all problems at once.
    pub fn from_source(source: &EnvSource) -> Result<Self, ConfigError> {
        let reader = source.service("bff");
        let settings = Self::read(&reader);
        reader.finish(|| settings)
    }

    /// Reads the settings (problems are recorded on `reader`).
    ///
    /// | key | default |
    /// |---|---|
    /// | `GRPC_ADDR` / `HTTP_ADDR` | `0.0.0.0:8080` / `0.0.0.0:8090` |
    /// | `REDIS_URL`, `REDIS_KEY_PREFIX` | required, `mercato:bff:` |
    /// | `USER_SERVICE_URL` | `http://127.0.0.1:50051` |
    /// | `PRODUCT_SERVICE_URL` | `http://127.0.0.1:50052` |
    /// | `ORDER_SERVICE_URL` | `http://127.0.0.1:50053` |
    /// | `PAYMENT_SERVICE_URL` | `http://127.0.0.1:50054` |
    /// | `PROCESS_SERVICE_URL` | `http://127.0.0.1:50055` |
    /// | `STRIPE_PUBLISHABLE_KEY` | empty |
    /// | `STRIPE_JS_URL` | `https://js.stripe.com/v3/` |
    /// | `WEB_ROOT` | unset (no storefront files served) |
    /// | `ISSUER`, `JWKS_URL`, `AUDIENCE` | `http://127.0.0.1:8081`, `{ISSUER}/.well-known/jwks.json`, `mercato` |
    /// | `EXTERNAL_ISSUER`, `EXTERNAL_JWKS_URL`, `EXTERNAL_AUDIENCE`, `EXTERNAL_CLIENT_ID` | unset (built-in mode) |
    /// | `JWKS_TTL`, `JWKS_REFRESH_COOLDOWN`, `JWKS_FETCH_TIMEOUT`, `TOKEN_LEEWAY` | `5m`, `30s`, `5s`, `30s` |
    /// | `CORS_ALLOWED_ORIGINS` | empty |
    /// | `CLIENT_IP_HEADER` | unset |
    /// | `RATE_LIMIT_{AUTH,READ,WRITE}_{REQUESTS,PERIOD,BURST}` | auth 20/1m burst 10, read 600/1m burst 100, write 120/1m burst 30 |
    /// | `WATCH_MAX_DURATION` | `10m` |
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let listen_defaults = ListenSettings {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8090)),
        };
        let common = CommonSettings::read(reader, listen_defaults);
        let redis = RedisSettings::read(reader);
        let user_service_url =
            reader.with_default("USER_SERVICE_URL", "http://127.0.0.1:50051".to_owned());
        let product_service_url =
            reader.with_default("PRODUCT_SERVICE_URL", "http://127.0.0.1:50052".to_owned());
        let order_service_url =
            reader.with_default("ORDER_SERVICE_URL", "http://127.0.0.1:50053".to_owned());
        let payment_service_url =
            reader.with_default("PAYMENT_SERVICE_URL", "http://127.0.0.1:50054".to_owned());
        let process_service_url =
            reader.with_default("PROCESS_SERVICE_URL", "http://127.0.0.1:50055".to_owned());
        let stripe_publishable_key = read_publishable_key(reader);
        let stripe_js_url = read_stripe_js_url(reader);
        let web_root = reader.optional::<String>("WEB_ROOT");

        let issuer = reader.with_default("ISSUER", "http://127.0.0.1:8081".to_owned());
        let jwks_url = reader.optional::<String>("JWKS_URL");
        let audience = reader.with_default("AUDIENCE", "mercato".to_owned());
        let external_issuer = reader.optional::<String>("EXTERNAL_ISSUER");
        let external_jwks_url = reader.optional::<String>("EXTERNAL_JWKS_URL");
        let external_audience = reader.optional::<String>("EXTERNAL_AUDIENCE");
        let external_client_id = reader.with_default("EXTERNAL_CLIENT_ID", String::new());

        let defaults = JwksPolicy::default();
        let ttl = reader.with_default("JWKS_TTL", defaults.ttl);
        let cooldown = reader.with_default("JWKS_REFRESH_COOLDOWN", defaults.refresh_cooldown);
        let fetch_timeout = reader.with_default("JWKS_FETCH_TIMEOUT", defaults.fetch_timeout);
        let leeway = reader.with_default("TOKEN_LEEWAY", defaults.leeway);

        let cors = reader.with_default("CORS_ALLOWED_ORIGINS", String::new());
        let client_ip_header = reader.optional::<String>("CLIENT_IP_HEADER");
        let rate_limits = read_limits(reader);
        let watch_max_duration =
            reader.with_default("WATCH_MAX_DURATION", DEFAULT_WATCH_MAX_DURATION);
        if watch_max_duration == Some(Duration::ZERO) {
            reader.invalid("WATCH_MAX_DURATION", "must be greater than zero");
        }

        let client_ip_header = match client_ip_header? {
            Some(name) => match HeaderName::try_from(name.trim().to_ascii_lowercase()) {
                Ok(name) => Some(name),
                Err(_) => {
                    reader.invalid("CLIENT_IP_HEADER", "not a valid header name");
                    return None;
                }
            },
            None => None,
        };
        let issuer = issuer?.trim_end_matches('/').to_owned();
        let audience = audience?;
        let mut issuers = vec![IssuerConfig {
            jwks_url: jwks_url?.unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json")),
            issuer: issuer.clone(),
            audience: audience.clone(),
            kind: IssuerKind::BuiltIn,
        }];
        let auth = match external_issuer? {
            Some(external) => {
                let Some(jwks_url) = external_jwks_url? else {
                    reader.invalid("EXTERNAL_JWKS_URL", "required with EXTERNAL_ISSUER");
                    return None;
                };
                let external_audience = external_audience?.unwrap_or_else(|| audience.clone());
                issuers.push(IssuerConfig {
                    issuer: external.clone(),
                    jwks_url,
                    audience: external_audience.clone(),
                    kind: IssuerKind::External,
                });
                AuthConfig {
                    mode: AuthMode::External,
                    issuer: external,
                    client_id: external_client_id?,
                    audience: external_audience,
                }
            }
            None => AuthConfig {
                mode: AuthMode::BuiltIn,
                issuer,
                client_id: String::new(),
                audience,
            },
        };
        Some(Self {
            common: common?,
            redis: redis?,
            user_service_url: user_service_url?,
            product_service_url: product_service_url?,
            order_service_url: order_service_url?,
            payment_service_url: payment_service_url?,
            process_service_url: process_service_url?,
            stripe_publishable_key: stripe_publishable_key?,
            stripe_js_url: stripe_js_url?,
            web_root: web_root?.filter(|root| !root.is_empty()).map(Into::into),
            issuers,
            jwks: JwksPolicy {
                ttl: ttl?,
                refresh_cooldown: cooldown?,
                fetch_timeout: fetch_timeout?,
                leeway: leeway?,
            },
            auth,
            cors_origins: cors?
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(str::to_owned)
                .collect(),
            client_ip_header,
            rate_limits: rate_limits?,
            watch_max_duration: watch_max_duration?,
        })
    }
}

/// `STRIPE_PUBLISHABLE_KEY`, empty when unset. Whatever is set is sent to every browser paying by
/// card, so anything but a publishable key (`pk_…`) — a secret or restricted key pasted by
/// mistake — stops start-up, and the error never quotes it.
fn read_publishable_key(reader: &Reader<'_>) -> Option<String> {
    const KEY: &str = "STRIPE_PUBLISHABLE_KEY";
    if reader.optional_secret(KEY)?.is_none() {
        return Some(String::new());
    }
    reader
        .secret_with(KEY, |value| {
            if value.trim().starts_with("pk_") {
                Ok(())
            } else {
                Err("must be a publishable key (pk_...): it is sent to browsers".to_owned())
            }
        })
        .map(|key| key.expose_secret().trim().to_owned())
}

/// `STRIPE_JS_URL`: browsers load a script from it, so only an absolute http(s) URL with a host
/// is accepted.
fn read_stripe_js_url(reader: &Reader<'_>) -> Option<String> {
    const KEY: &str = "STRIPE_JS_URL";
    let url = reader.with_default(KEY, DEFAULT_STRIPE_JS_URL.to_owned())?;
    let url = url.trim();
    match reqwest::Url::parse(url) {
        Ok(parsed)
            if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() =>
        {
            Some(url.to_owned())
        }
        Ok(_) | Err(_) => {
            reader.invalid(
                KEY,
                "must be an http(s) URL, e.g. https://js.stripe.com/v3/",
            );
            None
        }
    }
}

fn read_limits(reader: &Reader<'_>) -> Option<Limits> {
    let defaults = Limits::default();
    let auth = read_limit(reader, "AUTH", defaults.auth);
    let read = read_limit(reader, "READ", defaults.read);
    let write = read_limit(reader, "WRITE", defaults.write);
    Some(Limits {
        auth: auth?,
        read: read?,
        write: write?,
    })
}

fn read_limit(reader: &Reader<'_>, class: &str, default: Limit) -> Option<Limit> {
    let requests_key = format!("RATE_LIMIT_{class}_REQUESTS");
    let period_key = format!("RATE_LIMIT_{class}_PERIOD");
    let requests = reader.with_default(&requests_key, default.requests);
    let period = reader.with_default(&period_key, default.period);
    let burst = reader.with_default(&format!("RATE_LIMIT_{class}_BURST"), default.burst);
    if requests == Some(0) {
        reader.invalid(&requests_key, "must be greater than zero");
        return None;
    }
    if period == Some(Duration::ZERO) {
        reader.invalid(&period_key, "must be greater than zero");
        return None;
    }
    Some(Limit {
        requests: requests?,
        period: period?,
        burst: burst?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<BffSettings, ConfigError> {
        let mut all = vec![("MERCATO_BFF__REDIS_URL", "redis://127.0.0.1:6379")];
        all.extend_from_slice(pairs);
        BffSettings::from_source(&EnvSource::from_pairs(all))
    }

    #[test]
    fn defaults_trust_the_built_in_issuer_only() {
        let settings = read(&[]).expect("defaults are valid");
        assert_eq!(settings.issuers.len(), 1);
        assert_eq!(
            settings.issuers[0].jwks_url,
            "http://127.0.0.1:8081/.well-known/jwks.json"
        );
        assert_eq!(settings.auth.mode, AuthMode::BuiltIn);
        assert!(settings.cors_origins.is_empty());
        assert_eq!(settings.rate_limits, Limits::default());
    }

    #[test]
    fn each_service_has_its_default_port_and_can_be_pointed_elsewhere() {
        let settings = read(&[]).expect("defaults are valid");
        let urls = [
            settings.user_service_url,
            settings.product_service_url,
            settings.order_service_url,
            settings.payment_service_url,
            settings.process_service_url,
        ];
        assert_eq!(
            urls,
            [50051, 50052, 50053, 50054, 50055].map(|port| format!("http://127.0.0.1:{port}"))
        );
        let settings =
            read(&[("MERCATO_BFF__PROCESS_SERVICE_URL", "http://process:50055")]).expect("valid");
        assert_eq!(settings.process_service_url, "http://process:50055");
    }

    #[test]
    fn order_watches_last_ten_minutes_unless_configured_and_never_zero() {
        assert_eq!(
            read(&[]).expect("defaults").watch_max_duration,
            DEFAULT_WATCH_MAX_DURATION
        );
        let settings = read(&[("MERCATO_BFF__WATCH_MAX_DURATION", "90s")]).expect("valid");
        assert_eq!(settings.watch_max_duration, Duration::from_secs(90));
        let error = read(&[("MERCATO_BFF__WATCH_MAX_DURATION", "0s")]).expect_err("zero");
        assert!(error.to_string().contains("WATCH_MAX_DURATION"), "{error}");
    }

    #[test]
    fn an_external_issuer_needs_its_jwks_url_and_switches_the_mode() {
        let error = read(&[("MERCATO_BFF__EXTERNAL_ISSUER", "https://idp.example")])
            .expect_err("jwks url missing");
        assert!(error.to_string().contains("EXTERNAL_JWKS_URL"), "{error}");

        let settings = read(&[
            ("MERCATO_BFF__EXTERNAL_ISSUER", "https://idp.example"),
            ("MERCATO_BFF__EXTERNAL_JWKS_URL", "https://idp.example/jwks"),
            ("MERCATO_BFF__EXTERNAL_CLIENT_ID", "storefront"),
        ])
        .expect("valid");
        assert_eq!(settings.issuers.len(), 2);
        assert_eq!(settings.issuers[1].kind, IssuerKind::External);
        assert_eq!(settings.auth.mode, AuthMode::External);
        assert_eq!(settings.auth.client_id, "storefront");
    }

    #[test]
    fn only_a_publishable_stripe_key_is_accepted_since_browsers_receive_it() {
        assert_eq!(read(&[]).expect("defaults").stripe_publishable_key, "");
        let settings =
            read(&[("MERCATO_BFF__STRIPE_PUBLISHABLE_KEY", "pk_test_123")]).expect("valid");
        assert_eq!(settings.stripe_publishable_key, "pk_test_123");
        assert_eq!(settings.payment_service_url, "http://127.0.0.1:50054");
        let error = read(&[("MERCATO_BFF__STRIPE_PUBLISHABLE_KEY", "sk_test_123")])
            .expect_err("a secret key");
        let message = error.to_string();
        assert!(message.contains("STRIPE_PUBLISHABLE_KEY"), "{message}");
        assert!(!message.contains("sk_test_123"), "{message}");
    }

    #[test]
    fn stripe_js_loads_from_stripe_unless_another_http_url_is_set() {
        assert_eq!(
            read(&[]).expect("defaults").stripe_js_url,
            DEFAULT_STRIPE_JS_URL
        );
        let local = "http://127.0.0.1:8420/js.stripe.com/v3/";
        let settings = read(&[("MERCATO_BFF__STRIPE_JS_URL", local)]).expect("valid");
        assert_eq!(settings.stripe_js_url, local);
        for bad in [
            "js.stripe.com/v3/",
            "javascript:alert(1)",
            "ftp://example.com/v3/",
            "http://",
        ] {
            let error = read(&[("MERCATO_BFF__STRIPE_JS_URL", bad)]).expect_err(bad);
            assert!(
                error.to_string().contains("STRIPE_JS_URL"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn bad_limits_and_headers_name_their_variable() {
        let error = read(&[
            ("MERCATO_BFF__RATE_LIMIT_READ_REQUESTS", "0"),
            ("MERCATO_BFF__CLIENT_IP_HEADER", "not a header"),
        ])
        .expect_err("invalid");
        let message = error.to_string();
        assert!(message.contains("RATE_LIMIT_READ_REQUESTS"), "{message}");
        assert!(message.contains("CLIENT_IP_HEADER"), "{message}");
    }
}
