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

mod blocks;
mod source;

pub use blocks::{
    AmqpSettings, CommonSettings, DatabaseSettings, ListenSettings, LogFilter, LogFormat,
    OtlpEndpoint, RedisSettings, ServerLimits, TelemetrySettings,
};
pub use source::{ConfigError, EnvSource, FromSetting, Problem, Reader, parse_duration};
