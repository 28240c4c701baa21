//! Mercato's event bus: RabbitMQ topology, a confirming publisher, a consumer
//! loop with retries and dead-lettering, and the transactional outbox and inbox.
//!
//! # Guarantees
//!
//! - **An event exists iff its change committed**: producers write the event
//!   with [`outbox::enqueue`] in the transaction that makes the change; an
//!   [`OutboxRelay`] publishes it afterwards.
//! - **At-least-once delivery**: the relay marks a row published only after
//!   the broker confirmed it; consumers ack only after their effect committed
//!   (or after a retry/DLQ copy was confirmed). A confirm or an ack lost with
//!   a connection causes a duplicate, never a loss.
//! - **Effectively-once effects**: the [`Consumer`] records every event id in
//!   the `inbox` table in the same transaction as the handler's effect, so a
//!   duplicate is acknowledged without running the handler again.
//! - **Bounded retries**: a failing message is retried with backoff, its
//!   attempt number persisted in the `x-mercato-attempt` header, then lands
//!   in its consumer's DLQ with headers naming the consumer, the attempt
//!   count and the last error. A consumer that crashes on a message (so it
//!   cannot count) is stopped by the quorum queue's `x-delivery-limit`.
//!
//! # Names
//!
//! See [`topology`]: a topic exchange `mercato.events`, a direct exchange
//! `mercato.events.dlx`, and per consumer a quorum work queue
//! `<service>.<consumer>`, retry queues `<service>.<consumer>.retry.<ms>ms`
//! and a DLQ `<service>.<consumer>.dlq`. Everything can be prefixed by a
//! [`Namespace`] (tests use one per test).
//!
//! # Migrations
//!
//! The `outbox` and `inbox` tables live in each service's own database. This
//! crate ships their migrations (`crates/messaging/migrations`) as
//! [`MIGRATOR`], which records its history in its own table,
//! `_mercato_messaging_migrations`, instead of sqlx's default
//! `_sqlx_migrations`. A service therefore runs two independent migrators at
//! start-up, in either order:
//!
//! ```no_run
//! # async fn start(pool: sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
//! mercato_messaging::MIGRATOR.run(&pool).await?;
//! // sqlx::migrate!().run(&pool).await?; // the service's own migrations
//! # Ok(()) }
//! ```
//!
//! Separate tables keep the two version sequences from colliding (both may
//! have a version 1) and let either side add migrations without the other
//! reporting them as missing or unknown. (sqlx's `migrate!` reads a
//! different table name only from a `sqlx.toml` behind an extra feature; a
//! lazily built migrator with `dangerous_set_table_name` needs neither.)

pub mod backoff;
pub mod connection;
pub mod consumer;
pub mod dead_letters;
pub mod envelope;
pub mod error;
pub mod headers;
pub mod inbox;
pub mod metrics;
pub mod outbox;
pub mod publisher;
pub mod topology;

use std::sync::LazyLock;

use sqlx::migrate::Migrator;

pub use backoff::Backoff;
pub use connection::{ConnectionConfig, Connector};
pub use consumer::{
    Consumer, ConsumerConfig, DeadLetterReason, Handler, HandlerError, IncomingEvent, Outcome,
    OutcomeKind,
};
pub use error::Error;
pub use mercato_proto::mercato::events::v1::EventEnvelope;
pub use outbox::{OutboxRelay, RelayConfig};
pub use publisher::{OutgoingMessage, Publisher};
pub use topology::{ConsumerTopology, Namespace, QueueKind};

/// The table recording which messaging migrations a database has applied.
pub const MIGRATIONS_TABLE: &str = "_mercato_messaging_migrations";

/// The outbox and inbox migrations, tracked in [`MIGRATIONS_TABLE`].
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
});
