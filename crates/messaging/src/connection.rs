//! A shared RabbitMQ connection that reconnects with capped, jittered backoff.
//!
//! lapin reports a lost connection as errors on every channel operation (and
//! on its event stream). Rather than relying on lapin's implicit recovery,
//! whose replay of in-flight confirms and delivery tags is hard to reason
//! about, every user here reacts the same explicit way: on an error it drops
//! its channel and asks the [`Connector`] for a new one. The connector notices
//! the old connection is no longer connected and opens a fresh one. Messages
//! are never lost in the gap because nothing is acknowledged before it is
//! safe: publishers wait for confirms, consumers ack after their effect commits,
//! and unacknowledged deliveries return to their queue when a channel dies.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{Backoff, Error};

/// How long [`Connector::close`] waits for the broker to confirm a close.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to connect.
#[derive(Clone)]
pub struct ConnectionConfig {
    /// `amqp://user:pass@host:port/vhost` (add `?heartbeat=N` to detect half-open links sooner).
    pub url: String,
    /// Shown in the RabbitMQ management UI, e.g. `order-service`.
    pub connection_name: String,
    /// Delay schedule between reconnect attempts.
    pub reconnect_backoff: Backoff,
    /// How long one connection attempt may take (a black-holed broker would
    /// otherwise stall every caller waiting for the connection).
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ConnectionConfig {
    // The URL carries the broker password; never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("url", &redact_url(&self.url))
            .field("connection_name", &self.connection_name)
            .field("reconnect_backoff", &self.reconnect_backoff)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl ConnectionConfig {
    /// A config with the default reconnect backoff (100 ms doubling to 30 s)
    /// and a 10 s connect timeout.
    pub fn new(url: impl Into<String>, connection_name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connection_name: connection_name.into(),
            reconnect_backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the reconnect backoff.
    pub fn with_reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.reconnect_backoff = backoff;
        self
    }
}

/// A cloneable handle to one AMQP connection, re-established on demand.
#[derive(Clone, Debug)]
pub struct Connector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ConnectionConfig,
    // Held across connect so that concurrent callers wait for one reconnect
    // instead of each opening its own connection.
    current: Mutex<Option<Connection>>,
}

impl Connector {
    /// A connector; nothing is opened until a channel is requested.
    pub fn new(config: ConnectionConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                current: Mutex::new(None),
            }),
        }
    }

    /// The configuration this connector was built with.
    pub fn config(&self) -> &ConnectionConfig {
        &self.inner.config
    }

    /// A new channel on a live connection, connecting once if needed. Fails
    /// fast when the broker is unreachable; callers own the retry policy.
    pub async fn try_channel(&self) -> Result<Channel, Error> {
        let mut current = self.inner.current.lock().await;
        if let Some(connection) = current.as_ref() {
            if connection.status().connected() {
                match connection.create_channel().await {
                    Ok(channel) => return Ok(channel),
                    Err(error) => {
                        tracing::warn!(%error, "amqp channel creation failed, reconnecting");
                    }
                }
            } else {
                tracing::warn!(
                    connection = %self.inner.config.connection_name,
                    "amqp connection lost, reconnecting"
                );
            }
        }
        *current = None;
        let connection = self.connect().await?;
        let channel = connection.create_channel().await?;
        *current = Some(connection);
        Ok(channel)
    }

    /// A new channel, retrying with backoff until the broker answers or
    /// `cancel` fires (then [`Error::Cancelled`]).
    pub async fn channel(&self, cancel: &CancellationToken) -> Result<Channel, Error> {
        let mut failures: u32 = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            match self.try_channel().await {
                Ok(channel) => {
                    if failures > 0 {
                        tracing::info!(
                            connection = %self.inner.config.connection_name,
                            failures,
                            "amqp connection re-established"
                        );
                    }
                    return Ok(channel);
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let delay = self.inner.config.reconnect_backoff.jittered(failures);
                    tracing::warn!(
                        connection = %self.inner.config.connection_name,
                        %error,
                        failures,
                        retry_in_ms = delay.as_millis() as u64,
                        "amqp connect failed"
                    );
                    tokio::select! {
                        () = cancel.cancelled() => return Err(Error::Cancelled),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Closes the current connection, if any (normal close code 200), waiting at most
    /// [`CLOSE_TIMEOUT`]: a broker that stopped answering, or a reconnect attempt holding the
    /// connection slot, must not hold up a service's shutdown. The socket goes with the
    /// connection either way; the broker requeues what was unacknowledged.
    pub async fn close(&self) {
        let close = async {
            if let Some(connection) = self.inner.current.lock().await.take()
                && connection.status().connected()
                && let Err(error) = connection.close(200, "shutdown".into()).await
            {
                tracing::debug!(%error, "amqp connection close failed");
            }
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
            tracing::warn!(
                connection = %self.inner.config.connection_name,
                timeout_ms = CLOSE_TIMEOUT.as_millis() as u64,
                "amqp connection close timed out; dropping the connection"
            );
        }
    }

    async fn connect(&self) -> Result<Connection, Error> {
        let config = &self.inner.config;
        let properties = ConnectionProperties::default()
            .with_connection_name(config.connection_name.as_str().into());
        let connection = tokio::time::timeout(
            config.connect_timeout,
            Connection::connect(&config.url, properties),
        )
        .await
        .map_err(|_| Error::ConnectTimeout(config.connect_timeout))??;
        // lapin surfaces asynchronous connection failures (socket reset,
        // broker-initiated close) as events; log them so an outage is visible
        // even while no channel operation is running.
        let mut events = connection.events_listener();
        let name = config.connection_name.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let lapin::Event::Error(error) = event {
                    tracing::warn!(connection = %name, %error, "amqp connection error");
                }
            }
        });
        tracing::debug!(connection = %config.connection_name, "amqp connected");
        Ok(connection)
    }
}

/// `amqp://user:secret@host` → `amqp://user:***@host`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:***@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_broker_password() {
        let config = ConnectionConfig::new("amqp://guest:s3cret@127.0.0.1:5672/%2f", "test");
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "password leaked: {printed}");
        assert!(printed.contains("amqp://guest:***@127.0.0.1:5672/%2f"));
    }

    #[test]
    fn urls_without_credentials_are_printed_as_they_are() {
        assert_eq!(redact_url("amqp://localhost"), "amqp://localhost");
    }
}
