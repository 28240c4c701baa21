//! The error type of the test kit.

/// Why a test fixture could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL refused or failed an operation.
    #[error("postgres {action}: {source}")]
    Database {
        /// What the kit was doing.
        action: &'static str,
        /// The underlying error.
        source: sqlx::Error,
    },
    /// Migrating a template database failed.
    #[error("migrating the template database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// RabbitMQ refused or failed an operation.
    #[error("rabbitmq: {0}")]
    Amqp(#[from] lapin::Error),
    /// Redis refused or failed an operation.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A socket operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A server URL could not be used.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { action, source }
    }
}
