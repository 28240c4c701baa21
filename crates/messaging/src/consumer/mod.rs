//! The consumer loop: manual acks, bounded prefetch, inbox deduplication, retries with a persisted attempt count, DLQ.
//!
//! For each delivery, in its own task (up to `prefetch` at once):
//!
//! 1. decode the envelope; an undecodable body goes to the DLQ at once;
//! 2. begin a transaction, record the event id in the inbox (a duplicate is
//!    acknowledged without running the handler), run the handler, commit;
//! 3. settle: `Ok` → ack. A retryable error → republish to the retry queue
//!    of the next delay with `x-mercato-attempt` incremented, then ack; after
//!    `max_attempts` (or on a permanent error) → publish to this consumer's
//!    DLQ with reason headers, then ack.
//!
//! Every republish waits for its publisher confirm *before* the original is
//! acked, so a crash in between duplicates a message (deduplicated by the
//! inbox) but never loses one. The attempt count travels in the message, so
//! it survives restarts; a consumer killed while holding a poison message
//! cannot increment it, which is what the quorum queue's broker-side
//! delivery limit is for (see `topology`).
//!
//! The loop that owns a channel and spawns one task per delivery is in `session`; what such a
//! task does with its delivery, from decoding to the final ack, is in `delivery`.

mod delivery;
mod session;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use lapin::Acker;
use mercato_proto::mercato::events::v1::EventEnvelope;
use sqlx::{PgConnection, PgPool};
use tokio::sync::broadcast;

use crate::{Connector, ConsumerTopology};

/// Any error a handler wants to report.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler reports when it could not apply an event. Its transaction
/// is rolled back in both cases.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might succeed later (a dependency is down, a lock timed out): retried
    /// with backoff, then dead-lettered after the last attempt.
    #[error("retryable: {0}")]
    Retryable(#[source] BoxError),
    /// Will never succeed (invalid payload, violated invariant): dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(#[source] BoxError),
}

impl HandlerError {
    /// A retryable error from anything error-like (including `&str` and `String`).
    pub fn retryable(error: impl Into<BoxError>) -> Self {
        Self::Retryable(error.into())
    }

    /// A permanent error from anything error-like (including `&str` and `String`).
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }
}

impl From<sqlx::Error> for HandlerError {
    /// Database errors are usually transient (deadlock, failover, timeout).
    fn from(error: sqlx::Error) -> Self {
        Self::Retryable(Box::new(error))
    }
}

/// A decoded event and where it is in its delivery history.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    /// The decoded envelope.
    pub envelope: EventEnvelope,
    /// 1 for the first attempt, incremented by every retry (persisted in the message).
    pub attempt: u32,
    /// How many times the broker delivered this copy before without it being
    /// settled (quorum queues; 0 otherwise), e.g. after a consumer crash.
    pub delivery_count: u64,
    /// The consumer queue this came from.
    pub queue: String,
}

/// Applies events. Implementations write their effect through `conn`, which
/// is inside the transaction that also records the event in the inbox: the
/// effect and the "already processed" mark commit or roll back together.
pub trait Handler: Send + Sync + 'static {
    /// Applies one event.
    fn handle(
        &self,
        event: &IncomingEvent,
        conn: &mut PgConnection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// How long an ack or nack may take. Settling writes one frame and normally completes at once,
/// but on a connection that died before lapin noticed it may never complete: without a bound a
/// delivery task (and the session waiting for it) would hang instead of reconnecting. A settle
/// that times out is treated as failed; the broker redelivers and the inbox deduplicates.
pub(crate) const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Tuning of a consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Deliveries in flight at once (AMQP `basic.qos`), at most half the pool's connections.
    pub prefetch: u16,
    /// How long shutdown waits for running handlers before aborting them and
    /// requeueing their messages.
    pub shutdown_grace: Duration,
    /// How long a republish (retry, DLQ) waits for its confirm.
    pub confirm_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            prefetch: 16,
            shutdown_grace: Duration::from_secs(30),
            confirm_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a message was dead-lettered (the `x-mercato-dead-letter-reason` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// Every attempt failed with a retryable error.
    RetriesExhausted,
    /// The handler reported a permanent error.
    Permanent,
    /// The body is not a valid envelope.
    Undecodable,
}

impl DeadLetterReason {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetriesExhausted => "retries_exhausted",
            Self::Permanent => "permanent_failure",
            Self::Undecodable => "undecodable",
        }
    }
}

/// What happened to one delivery, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeKind {
    /// The handler's effect committed and the message was acked.
    Processed,
    /// The inbox already had the message: acked without running the handler.
    Duplicate,
    /// Republished to a retry queue; it comes back as `next_attempt`.
    RetryScheduled {
        /// The attempt number it will carry.
        next_attempt: u32,
        /// How long it waits first.
        delay: Duration,
    },
    /// Published to this consumer's DLQ and acked.
    DeadLettered(DeadLetterReason),
    /// Could not be settled (broker trouble) and returns to the queue.
    Requeued,
}

/// The outcome of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The AMQP message id (the event id for well-formed events).
    pub message_id: String,
    /// The attempt the delivery carried.
    pub attempt: u32,
    /// What happened.
    pub kind: OutcomeKind,
}

/// Consumes one queue until cancelled, reconnecting after broker failures.
#[derive(Debug)]
pub struct Consumer<H> {
    shared: Arc<Shared<H>>,
}

#[derive(Debug)]
struct Shared<H> {
    connector: Connector,
    topology: ConsumerTopology,
    pool: PgPool,
    handler: H,
    config: ConsumerConfig,
    outcomes: broadcast::Sender<Outcome>,
}

type Pending = Arc<Mutex<HashMap<u64, Acker>>>;

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, Acker>> {
    // A poisoned map only means a task panicked while holding it; the data is still valid.
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_reasons_have_stable_header_values() {
        assert_eq!(
            DeadLetterReason::RetriesExhausted.as_str(),
            "retries_exhausted"
        );
        assert_eq!(DeadLetterReason::Permanent.as_str(), "permanent_failure");
        assert_eq!(DeadLetterReason::Undecodable.as_str(), "undecodable");
    }
}
