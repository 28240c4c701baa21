//! Typed settings read from environment variables, validated at start-up with messages that name
//! the offending variable.
//!
//! # The variable scheme
//!
//! Every setting has a KEY in `UPPER_SNAKE_CASE` (`GRPC_ADDR`, `DATABASE_URL`). A service named
//! `order` looks a key up in this order and takes the first non-empty value:
//!
//! 1. `MERCATO_ORDER__DATABASE_URL`: the service's own variable (service name upper-cased,
//!    `-` becomes `_`, then a double underscore);
//! 2. `MERCATO__DATABASE_URL`: the shared fallback, so a compose file or a Kubernetes ConfigMap
//!    can set what every service has in common once;
//! 3. the default given in code, if the setting has one.
//!
//! An empty value counts as unset, because `VAR=` is how compose files and shells "unset" things.
//! A few settings follow a standard instead of the scheme and are read unprefixed
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `RUST_LOG` as the last fallback for the log
//! filter); see [`Reader::standard`].
//!
//! # Collecting every problem
//!
//! A [`Reader`] never stops at the first bad variable: each accessor records what is wrong and
//! returns `None`, and [`Reader::finish`] reports every problem in one [`ConfigError`], e.g.
//! `invalid configuration: MERCATO_ORDER__GRPC_ADDR="abc": invalid socket address syntax; missing
//! MERCATO_ORDER__DATABASE_URL (or MERCATO__DATABASE_URL)`. An operator fixes the whole
//! deployment in one round instead of one variable per restart.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use mercato_platform::settings::{DatabaseSettings, EnvSource};
//!
//! let source = EnvSource::from_pairs([
//!     ("MERCATO_ORDER__GRPC_ADDR", "127.0.0.1:50053"),
//!     ("MERCATO__DATABASE_URL", "postgres://postgres@127.0.0.1/order"),
//! ]);
//! let reader = source.service("order");
//! let grpc_addr = reader.required::<SocketAddr>("GRPC_ADDR");
//! let ttl = reader.with_default("RESERVATION_TTL", Duration::from_secs(900));
//! let database = DatabaseSettings::read(&reader);
//! let (grpc_addr, ttl, database) = reader
//!     .finish(|| Some((grpc_addr?, ttl?, database?)))
//!     .expect("valid configuration");
//! assert_eq!(grpc_addr.port(), 50053);
//! assert_eq!(ttl, Duration::from_secs(900));
//! assert_eq!(database.max_connections.get(), 10);
//! ```
//!
//! Tests build an [`EnvSource`] from pairs; nothing here reads or writes the process environment
//! except [`EnvSource::from_env`], which `main` calls once.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use secrecy::SecretString;

/// Prefix shared by every Mercato variable.
const PREFIX: &str = "MERCATO_";

/// A snapshot of environment variables to read settings from.
///
/// Built from the process environment in `main` ([`EnvSource::from_env`]) and from explicit
/// pairs in tests ([`EnvSource::from_pairs`]), so tests never mutate the process environment.
#[derive(Clone, Default)]
pub struct EnvSource {
    vars: BTreeMap<String, String>,
    /// Names whose values are not valid UTF-8; reported as problems only if a setting asks for them.
    not_unicode: BTreeSet<String>,
}

impl fmt::Debug for EnvSource {
    // Values may be secrets, so only the names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSource")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EnvSource {
    /// Snapshots the process environment.
    pub fn from_env() -> Self {
        let mut source = Self::default();
        for (name, value) in std::env::vars_os() {
            // A variable whose *name* is not Unicode can never be one of ours; skip it.
            let Ok(name) = name.into_string() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => {
                    source.vars.insert(name, value);
                }
                Err(_) => {
                    source.not_unicode.insert(name);
                }
            }
        }
        source
    }

    /// Builds a source from explicit name/value pairs (tests, tools).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            not_unicode: BTreeSet::new(),
        }
    }

    /// Returns a copy with one more variable set (handy for tests that vary one setting).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Starts reading the settings of `service` (e.g. `"order"`).
    pub fn service(&self, service: &str) -> Reader<'_> {
        let upper = service.to_ascii_uppercase().replace('-', "_");
        Reader {
            source: self,
            service: service.to_owned(),
            service_prefix: format!("{PREFIX}{upper}__"),
            problems: RefCell::new(Vec::new()),
        }
    }

    /// The raw value of `name`, treating empty as unset.
    fn lookup(&self, name: &str) -> Lookup<'_> {
        if self.not_unicode.contains(name) {
            return Lookup::NotUnicode;
        }
        match self.vars.get(name) {
            Some(value) if !value.is_empty() => Lookup::Found(value),
            Some(_) | None => Lookup::Unset,
        }
    }
}

enum Lookup<'a> {
    Found(&'a str),
    Unset,
    NotUnicode,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A required variable is unset (neither the service's own nor the shared one).
    Missing {
        /// The service's own variable name.
        variable: String,
        /// The shared fallback name, when the setting has one.
        fallback: Option<String>,
    },
    /// A variable is set to something that does not parse or validate.
    Invalid {
        /// The variable that supplied the value.
        variable: String,
        /// The offending value, or `None` for secrets (never echoed).
        value: Option<String>,
        /// What is wrong, in lowercase.
        reason: String,
    },
    /// A variable's value is not valid UTF-8.
    NotUnicode {
        /// The variable name.
        variable: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing {
                variable,
                fallback: Some(fallback),
            } => write!(f, "missing {variable} (or {fallback})"),
            Self::Missing {
                variable,
                fallback: None,
            } => write!(f, "missing {variable}"),
            Self::Invalid {
                variable,
                value: Some(value),
                reason,
            } => write!(f, "{variable}={value:?}: {reason}"),
            Self::Invalid {
                variable,
                value: None,
                reason,
            } => write!(f, "{variable}=<hidden>: {reason}"),
            Self::NotUnicode { variable } => write!(f, "{variable}: value is not valid utf-8"),
        }
    }
}

/// Every problem found while reading a service's settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", join(.problems))]
pub struct ConfigError {
    /// The problems, in the order the settings were read.
    pub problems: Vec<Problem>,
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A value that can be parsed from one environment variable.
///
/// The error is a short lowercase reason; the reader adds the variable name and value.
pub trait FromSetting: Sized {
    /// Parses the raw (non-empty) value.
    fn from_setting(raw: &str) -> Result<Self, String>;
}

macro_rules! from_str_setting {
    ($($ty:ty => $what:literal),* $(,)?) => {$(
        impl FromSetting for $ty {
            fn from_setting(raw: &str) -> Result<Self, String> {
                raw.trim().parse().map_err(|_| concat!("expected ", $what).to_owned())
            }
        }
    )*};
}

from_str_setting! {
    u16 => "an integer between 0 and 65535",
    u32 => "a non-negative integer",
    u64 => "a non-negative integer",
    usize => "a non-negative integer",
    i64 => "an integer",
    NonZeroU16 => "an integer between 1 and 65535",
    NonZeroU32 => "a positive integer",
    NonZeroUsize => "a positive integer",
    IpAddr => "an ip address",
}

impl FromSetting for String {
    fn from_setting(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
}

impl FromSetting for SocketAddr {
    fn from_setting(raw: &str) -> Result<Self, String> {
        raw.trim()
            .parse()
            .map_err(|_| "invalid socket address syntax (expected host-ip:port)".to_owned())
    }
}

impl FromSetting for bool {
    fn from_setting(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        }
    }
}

impl FromSetting for Duration {
    /// Accepts one number and a unit: `250ms`, `30s`, `5m`, `1h`.
    fn from_setting(raw: &str) -> Result<Self, String> {
        parse_duration(raw)
    }
}

/// Parses `250ms`, `30s`, `5m` or `1h` (one integer, one unit).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration such as 250ms, 30s, 5m or 1h";
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{EXPECTED} (missing unit)"))?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(EXPECTED.to_owned()),
    };
    number
        .checked_mul(per_unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| "duration is too large".to_owned())
}

/// Reads the settings of one service and collects every problem (see the module docs).
///
/// Each accessor returns `None` when the setting is missing or invalid, after recording why;
/// [`Reader::finish`] turns the collected problems into one [`ConfigError`].
pub struct Reader<'a> {
    source: &'a EnvSource,
    service: String,
    service_prefix: String,
    problems: RefCell<Vec<Problem>>,
}

impl fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("service", &self.service)
            .field("problems", &self.problems.borrow().len())
            .finish_non_exhaustive()
    }
}

/// Where a value came from: the variable name and the raw text.
struct Raw<'a> {
    variable: String,
    value: &'a str,
}

impl<'a> Reader<'a> {
    /// The service name this reader was created for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The service's own variable for `key` (`MERCATO_ORDER__GRPC_ADDR`).
    pub fn variable(&self, key: &str) -> String {
        format!("{}{key}", self.service_prefix)
    }

    /// The shared fallback variable for `key` (`MERCATO__GRPC_ADDR`).
    pub fn shared_variable(key: &str) -> String {
        format!("{PREFIX}_{key}")
    }

    /// A required setting; records "missing" when neither variable is set.
    pub fn required<T: FromSetting>(&self, key: &str) -> Option<T> {
        match self.raw(key)? {
            Some(raw) => self.parse(&raw, T::from_setting),
            None => {
                self.missing(key);
                None
            }
        }
    }

    /// An optional setting: `Some(None)` when unset, `None` when set but invalid.
    pub fn optional<T: FromSetting>(&self, key: &str) -> Option<Option<T>> {
        match self.raw(key)? {
            Some(raw) => self.parse(&raw, T::from_setting).map(Some),
            None => Some(None),
        }
    }

    /// A setting with a default used when unset; `None` only when set but invalid.
    pub fn with_default<T: FromSetting>(&self, key: &str, default: T) -> Option<T> {
        match self.raw(key)? {
            Some(raw) => self.parse(&raw, T::from_setting),
            None => Some(default),
        }
    }

    /// A required secret (URL with password, key). Its value never appears in errors or `Debug`.
    pub fn secret(&self, key: &str) -> Option<SecretString> {
        self.secret_with(key, |_| Ok(()))
    }

    /// A required secret checked by `validate`, whose error must not quote the value.
    pub fn secret_with(
        &self,
        key: &str,
        validate: impl FnOnce(&str) -> Result<(), String>,
    ) -> Option<SecretString> {
        let Some(raw) = self.raw(key)? else {
            self.missing(key);
            return None;
        };
        match validate(raw.value) {
            Ok(()) => Some(SecretString::from(raw.value)),
            Err(reason) => {
                self.record(Problem::Invalid {
                    variable: raw.variable,
                    value: None,
                    reason,
                });
                None
            }
        }
    }

    /// An optional secret: `Some(None)` when unset.
    pub fn optional_secret(&self, key: &str) -> Option<Option<SecretString>> {
        Some(self.raw(key)?.map(|raw| SecretString::from(raw.value)))
    }

    /// A variable named by an external standard, read without the Mercato prefix
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`). `Some(None)` when unset, `None` when invalid.
    pub fn standard<T: FromSetting>(&self, name: &str) -> Option<Option<T>> {
        match self.source.lookup(name) {
            Lookup::Found(value) => {
                let raw = Raw {
                    variable: name.to_owned(),
                    value,
                };
                self.parse(&raw, T::from_setting).map(Some)
            }
            Lookup::Unset => Some(None),
            Lookup::NotUnicode => {
                self.record(Problem::NotUnicode {
                    variable: name.to_owned(),
                });
                None
            }
        }
    }

    /// Records a problem found by validation beyond parsing (a zero timeout, two settings that
    /// contradict each other). Names the variable that supplied `key`'s value (the service's own or the shared one).
    pub fn invalid(&self, key: &str, reason: impl Into<String>) {
        let (variable, value) = match self.raw(key) {
            Some(Some(raw)) => (raw.variable, Some(raw.value.to_owned())),
            Some(None) | None => (self.variable(key), None),
        };
        self.record(Problem::Invalid {
            variable,
            value,
            reason: reason.into(),
        });
    }

    /// Finishes reading: every recorded problem becomes one [`ConfigError`]; otherwise `build`
    /// assembles the settings from the values read (each `?` unwraps one of them).
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ConfigError> {
        let problems = self.problems.into_inner();
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        // Every accessor that returns `None` records a problem first, so with no problems
        // `build` only fails if it reads a value from a different reader.
        build().ok_or_else(|| ConfigError {
            problems: vec![Problem::Invalid {
                variable: format!("{}*", self.service_prefix),
                value: None,
                reason: "settings were assembled from values read by another reader".to_owned(),
            }],
        })
    }

    /// The problems recorded so far (for tools that want to print them their own way).
    pub fn problems(&self) -> Vec<Problem> {
        self.problems.borrow().clone()
    }

    /// Finds the raw value for `key`: `Some(Some(raw))` found, `Some(None)` unset,
    /// `None` unreadable (already recorded).
    fn raw(&self, key: &str) -> Option<Option<Raw<'a>>> {
        for variable in [self.variable(key), Self::shared_variable(key)] {
            match self.source.lookup(&variable) {
                Lookup::Found(value) => return Some(Some(Raw { variable, value })),
                Lookup::Unset => {}
                Lookup::NotUnicode => {
                    self.record(Problem::NotUnicode { variable });
                    return None;
                }
            }
        }
        Some(None)
    }

    fn parse<T>(&self, raw: &Raw<'_>, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        match parse(raw.value) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.record(Problem::Invalid {
                    variable: raw.variable.clone(),
                    value: Some(raw.value.to_owned()),
                    reason,
                });
                None
            }
        }
    }

    fn missing(&self, key: &str) {
        self.record(Problem::Missing {
            variable: self.variable(key),
            fallback: Some(Self::shared_variable(key)),
        });
    }

    fn record(&self, problem: Problem) {
        self.problems.borrow_mut().push(problem);
    }
}

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
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            concurrency_limit: NonZeroUsize::new(512).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

impl ServerLimits {
    /// Reads `REQUEST_TIMEOUT` and `CONCURRENCY_LIMIT`.
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let request_timeout = reader.with_default("REQUEST_TIMEOUT", defaults.request_timeout);
        let concurrency_limit =
            reader.with_default("CONCURRENCY_LIMIT", defaults.concurrency_limit);
        if request_timeout == Some(Duration::ZERO) {
            reader.invalid("REQUEST_TIMEOUT", "must be greater than zero");
            return None;
        }
        Some(Self {
            request_timeout: request_timeout?,
            concurrency_limit: concurrency_limit?,
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
}

impl CommonSettings {
    /// Reads every common block.
    pub fn read(reader: &Reader<'_>, listen_defaults: ListenSettings) -> Option<Self> {
        let listen = ListenSettings::read(reader, listen_defaults);
        let telemetry = TelemetrySettings::read(reader);
        let limits = ServerLimits::read(reader);
        let shutdown_grace = reader.with_default("SHUTDOWN_GRACE_PERIOD", Duration::from_secs(25));
        Some(Self {
            service: reader.service().to_owned(),
            listen: listen?,
            telemetry: telemetry?,
            limits: limits?,
            shutdown_grace: shutdown_grace?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_number_and_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("30").is_err(), "a bare number is ambiguous");
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn the_service_variable_wins_over_the_shared_one() {
        let source = EnvSource::from_pairs([
            ("MERCATO_ORDER__HTTP_ADDR", "127.0.0.1:1"),
            ("MERCATO__HTTP_ADDR", "127.0.0.1:2"),
            ("MERCATO__GRPC_ADDR", "127.0.0.1:3"),
        ]);
        let reader = source.service("order");
        let http: Option<SocketAddr> = reader.required("HTTP_ADDR");
        let grpc: Option<SocketAddr> = reader.required("GRPC_ADDR");
        assert_eq!(http.map(|a| a.port()), Some(1));
        assert_eq!(
            grpc.map(|a| a.port()),
            Some(3),
            "the shared fallback applies"
        );
    }

    #[test]
    fn hyphenated_service_names_become_underscores() {
        let source = EnvSource::from_pairs([("MERCATO_LOAD_GEN__RATE", "5")]);
        let reader = source.service("load-gen");
        assert_eq!(reader.required::<u32>("RATE"), Some(5));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let source = EnvSource::from_pairs([("MERCATO_ORDER__REQUEST_TIMEOUT", "")]);
        let reader = source.service("order");
        assert_eq!(
            reader.with_default("REQUEST_TIMEOUT", Duration::from_secs(7)),
            Some(Duration::from_secs(7))
        );
    }
}
