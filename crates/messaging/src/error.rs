//! The error type of the messaging crate.

use std::time::Duration;

/// Errors from the broker, the database or invalid input. Broker and database
/// failures are values, never panics: callers retry or surface them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A RabbitMQ operation failed (connection or channel lost, refused, ...).
    #[error("amqp operation failed: {0}")]
    Amqp(#[from] lapin::Error),
    /// A PostgreSQL operation failed.
    #[error("database operation failed: {0}")]
    Database(#[from] sqlx::Error),
    /// Running the outbox/inbox migrations failed.
    #[error("messaging migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The broker negatively acknowledged a publish (it could not take responsibility for it).
    #[error("broker refused message {message_id} (nack)")]
    Nacked {
        /// The message id of the refused message.
        message_id: String,
    },
    /// A mandatory publish matched no queue: without this check the message would be silently dropped.
    #[error("message {message_id} is unroutable: no queue bound to {exchange} for {routing_key}")]
    Unroutable {
        /// The message id of the returned message.
        message_id: String,
        /// The exchange it was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
    },
    /// The broker did not complete the connection handshake in time.
    #[error("amqp connection not established within {0:?}")]
    ConnectTimeout(Duration),
    /// The broker did not confirm a publish in time; the outcome is unknown.
    #[error("no publisher confirm within {0:?}")]
    ConfirmTimeout(Duration),
    /// An envelope misses a required field or has an invalid one.
    #[error("invalid event envelope: {0}")]
    InvalidEnvelope(String),
    /// An exchange, queue or namespace name is not acceptable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The operation was abandoned because shutdown was requested.
    #[error("cancelled by shutdown")]
    Cancelled,
}

impl Error {
    /// True when only this message failed (the connection is healthy and the
    /// next message may well succeed); false for connection-level failures.
    pub fn is_message_level(&self) -> bool {
        match self {
            Self::Nacked { .. } | Self::Unroutable { .. } | Self::InvalidEnvelope(_) => true,
            Self::Amqp(_)
            | Self::Database(_)
            | Self::Migrate(_)
            | Self::ConfirmTimeout(_)
            | Self::ConnectTimeout(_)
            | Self::InvalidName { .. }
            | Self::Cancelled => false,
        }
    }
}
