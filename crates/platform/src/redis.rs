//! Redis plumbing: a reconnecting `ConnectionManager` from [`RedisSettings`] and [`Keys`], the
//! key-prefix helper every key goes through (which is also how tests isolate themselves).

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError};
use secrecy::ExposeSecret as _;

use crate::http::ReadinessCheck;
use crate::settings::RedisSettings;

/// Connects a `ConnectionManager`: one multiplexed connection, cheap to clone, that reconnects
/// by itself with backoff when Redis restarts.
///
/// Connection and response timeouts are bounded so a Redis outage turns into errors the caller
/// can degrade on (e.g. serve the top-products list uncached) instead of hung requests.
pub async fn connect(settings: &RedisSettings) -> Result<ConnectionManager, RedisError> {
    let client = Client::open(settings.url.expose_secret())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config).await
}

/// Builds every key a service writes from one prefix: `Keys::new("mercato:order")` gives
/// `mercato:order:cart:42` for `key("cart", 42)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (a trailing `:` is added when missing).
    pub fn new(prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with(':') {
            prefix.push(':');
        }
        Self { prefix }
    }

    /// Keys under the configured `REDIS_KEY_PREFIX`.
    pub fn from_settings(settings: &RedisSettings) -> Self {
        Self::new(settings.key_prefix.clone())
    }

    /// `<prefix><kind>:<id>`.
    pub fn key(&self, kind: &str, id: impl fmt::Display) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    /// `<prefix><name>` for singleton keys (`top-products`).
    pub fn singleton(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The prefix, ending in `:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A `SCAN MATCH` pattern for every key under the prefix (test clean-up, operator tools).
    pub fn pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 1);
        for c in self.prefix.chars() {
            // Glob metacharacters in a prefix must match literally.
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }
}

/// A readiness check that sends `PING` within `timeout`.
pub fn readiness_check(connection: ConnectionManager, timeout: Duration) -> ReadinessCheck {
    ReadinessCheck::new("redis", move || {
        let mut connection = connection.clone();
        async move {
            let command = ::redis::cmd("PING");
            let ping = command.query_async::<String>(&mut connection);
            match tokio::time::timeout(timeout, ping).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_prefix_kind_and_id() {
        let keys = Keys::new("mercato:order");
        assert_eq!(keys.key("cart", 42), "mercato:order:cart:42");
        assert_eq!(keys.singleton("top-products"), "mercato:order:top-products");
        assert_eq!(Keys::new("p:").prefix(), "p:", "no doubled separator");
    }

    #[test]
    fn patterns_escape_glob_characters_in_the_prefix() {
        assert_eq!(Keys::new("t[1]").pattern(), "t\\[1\\]:*");
    }
}
