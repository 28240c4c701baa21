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

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use futures::{FutureExt as _, StreamExt as _};
use lapin::{
    Acker, BasicProperties, Channel, Confirmation,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    },
    types::{AMQPValue, FieldTable},
};
use mercato_proto::mercato::events::v1::EventEnvelope;
use prost::Message as _;
use sqlx::{PgConnection, PgPool};
use tokio::{sync::broadcast, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{
    Connector, ConsumerTopology, Error, envelope::validate, headers, inbox, topology::short,
};

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

/// Tuning of a consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Deliveries in flight at once (AMQP `basic.qos`).
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

enum SessionEnd {
    /// Cancellation was requested and the session drained.
    Shutdown,
    /// The channel or connection failed; reconnect.
    Interrupted,
}

type Pending = Arc<Mutex<HashMap<u64, Acker>>>;

impl<H: Handler> Consumer<H> {
    /// A consumer of `topology`'s queue; nothing happens until [`Consumer::run`].
    pub fn new(
        connector: Connector,
        topology: ConsumerTopology,
        pool: PgPool,
        handler: H,
        config: ConsumerConfig,
    ) -> Self {
        let (outcomes, _) = broadcast::channel(4_096);
        Self {
            shared: Arc::new(Shared {
                connector,
                topology,
                pool,
                handler,
                config,
                outcomes,
            }),
        }
    }

    /// Outcomes of deliveries from now on (a slow receiver misses old ones).
    pub fn subscribe(&self) -> broadcast::Receiver<Outcome> {
        self.shared.outcomes.subscribe()
    }

    /// Consumes until `cancel` fires, then stops taking deliveries, lets
    /// in-flight handlers finish (up to `shutdown_grace`), requeues whatever
    /// is left, and closes its channels.
    pub async fn run(self, cancel: CancellationToken) {
        let queue = self.shared.topology.queue.clone();
        let mut failures: u32 = 0;
        loop {
            let channel = match self.shared.connector.channel(&cancel).await {
                Ok(channel) => channel,
                Err(Error::Cancelled) => break,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%queue, %error, "consumer cannot open a channel");
                    if sleep_or_cancel(self.backoff(failures), &cancel).await {
                        break;
                    }
                    continue;
                }
            };
            match self.session(&channel, &cancel).await {
                Ok(SessionEnd::Shutdown) => break,
                Ok(SessionEnd::Interrupted) => {
                    failures = 0;
                    tracing::warn!(%queue, "consumer interrupted, reconnecting");
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%queue, %error, failures, "consumer setup failed");
                    if sleep_or_cancel(self.backoff(failures), &cancel).await {
                        break;
                    }
                }
            }
        }
        tracing::debug!(%queue, "consumer stopped");
    }

    fn backoff(&self, failures: u32) -> Duration {
        self.shared
            .connector
            .config()
            .reconnect_backoff
            .jittered(failures)
    }

    async fn session(
        &self,
        channel: &Channel,
        cancel: &CancellationToken,
    ) -> Result<SessionEnd, Error> {
        let shared = &self.shared;
        shared.topology.declare(channel).await?;
        // Retries and dead letters are republished on a separate confirm-mode
        // channel so that waiting for their confirms never blocks deliveries.
        let publish_channel = shared.connector.try_channel().await?;
        publish_channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .basic_qos(shared.config.prefetch, BasicQosOptions::default())
            .await?;
        let mut stream = channel
            .basic_consume(
                short(&shared.topology.queue)?,
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %shared.topology.queue, "consumer started");

        let pending: Pending = Arc::default();
        let mut in_flight = JoinSet::new();
        let end = loop {
            tokio::select! {
                () = cancel.cancelled() => break SessionEnd::Shutdown,
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    log_join(joined);
                }
                next = stream.next() => match next {
                    Some(Ok(delivery)) => {
                        lock(&pending).insert(delivery.delivery_tag, delivery.acker.clone());
                        in_flight.spawn(process(
                            Arc::clone(shared),
                            publish_channel.clone(),
                            delivery,
                            Arc::clone(&pending),
                        ));
                    }
                    Some(Err(error)) => {
                        tracing::warn!(queue = %shared.topology.queue, %error, "consumer stream failed");
                        break SessionEnd::Interrupted;
                    }
                    None => {
                        tracing::warn!(queue = %shared.topology.queue, "consumer cancelled by the broker");
                        break SessionEnd::Interrupted;
                    }
                }
            }
        };

        if matches!(end, SessionEnd::Shutdown) {
            // Stop new deliveries first; the stream ends once the broker
            // confirms the cancel. Anything it pushed before that is handed
            // straight back.
            let tag = stream.tag();
            if let Err(error) = channel
                .basic_cancel(tag, BasicCancelOptions::default())
                .await
            {
                tracing::debug!(%error, "basic.cancel failed");
            }
            let drain = async {
                while let Some(Ok(delivery)) = stream.next().await {
                    let _ = delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        }

        // Let running handlers finish: on shutdown they settle normally; after
        // an interruption their acks fail and the broker redelivers, which the
        // inbox turns into no-ops for effects that did commit.
        let finished = tokio::time::timeout(shared.config.shutdown_grace, async {
            while let Some(joined) = in_flight.join_next().await {
                log_join(joined);
            }
        })
        .await
        .is_ok();
        if !finished {
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
            let leftovers: Vec<Acker> = lock(&pending).drain().map(|(_, a)| a).collect();
            tracing::warn!(
                queue = %shared.topology.queue,
                requeued = leftovers.len(),
                "handlers did not finish in time, requeueing their messages"
            );
            for acker in leftovers {
                let _ = acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
            }
        }
        drop(stream);
        for ch in [&publish_channel, channel] {
            if ch.status().connected() {
                let _ = ch.close(200, "consumer stopped".into()).await;
            }
        }
        Ok(end)
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "delivery task panicked");
    }
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, Acker>> {
    // A poisoned map only means a task panicked while holding it; the data is still valid.
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sleeps for `delay`; true if cancelled first.
async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

async fn process<H: Handler>(
    shared: Arc<Shared<H>>,
    publish_channel: Channel,
    delivery: Delivery,
    pending: Pending,
) {
    let tag = delivery.delivery_tag;
    let amqp_headers = delivery.properties.headers().clone().unwrap_or_default();
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let attempt = headers::get_u64(&amqp_headers, headers::ATTEMPT)
        .and_then(|a| u32::try_from(a).ok())
        .unwrap_or(1)
        .max(1);
    let exchange = headers::get_str(&amqp_headers, headers::ORIGINAL_EXCHANGE)
        .unwrap_or(delivery.exchange.as_str())
        .to_owned();
    let routing_key = headers::get_str(&amqp_headers, headers::ORIGINAL_ROUTING_KEY)
        .unwrap_or(delivery.routing_key.as_str())
        .to_owned();

    let span = tracing::info_span!(
        "process",
        otel.name = %format!("{} process", shared.topology.queue),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %exchange,
        messaging.rabbitmq.destination.routing_key = %routing_key,
        messaging.consumer.group.name = %shared.topology.queue,
        messaging.message.id = %message_id,
        messaging.rabbitmq.message.delivery_tag = tag,
        mercato.attempt = attempt,
        mercato.outcome = tracing::field::Empty,
    );
    // Continue the producer's trace; without trace headers this is a new root.
    let _ = span.set_parent(headers::extract_context(&amqp_headers));

    let context = DeliveryContext {
        shared: &shared,
        publish_channel: &publish_channel,
        delivery: &delivery,
        headers: amqp_headers,
        message_id,
        attempt,
        exchange,
        routing_key,
    };
    let outcome = context.settle().instrument(span.clone()).await;
    span.record("mercato.outcome", tracing::field::debug(&outcome.kind));
    lock(&pending).remove(&tag);
    // No receiver is fine: outcomes are an optional observation point.
    let _ = shared.outcomes.send(outcome);
}

struct DeliveryContext<'a, H> {
    shared: &'a Shared<H>,
    publish_channel: &'a Channel,
    delivery: &'a Delivery,
    headers: FieldTable,
    message_id: String,
    attempt: u32,
    exchange: String,
    routing_key: String,
}

impl<H: Handler> DeliveryContext<'_, H> {
    async fn settle(&self) -> Outcome {
        let kind = self.settle_kind().await;
        Outcome {
            message_id: self.message_id.clone(),
            attempt: self.attempt,
            kind,
        }
    }

    async fn settle_kind(&self) -> OutcomeKind {
        let envelope = match EventEnvelope::decode(self.delivery.data.as_slice()) {
            Ok(envelope) => envelope,
            Err(error) => {
                let error = format!("undecodable event envelope: {error}");
                return self
                    .dead_letter(DeadLetterReason::Undecodable, &error)
                    .await;
            }
        };
        if let Err(error) = validate(&envelope) {
            return self
                .dead_letter(DeadLetterReason::Undecodable, &error.to_string())
                .await;
        }
        let event = IncomingEvent {
            envelope,
            attempt: self.attempt,
            delivery_count: headers::get_u64(&self.headers, headers::DELIVERY_COUNT).unwrap_or(0),
            queue: self.shared.topology.queue.clone(),
        };
        match self.apply(&event).await {
            Ok(applied) => {
                if !self.ack().await {
                    // The effect is committed; the redelivery will find the
                    // inbox record and be acked without running again.
                    tracing::warn!("ack failed after commit, the redelivery will be deduplicated");
                }
                if applied {
                    OutcomeKind::Processed
                } else {
                    tracing::debug!("duplicate delivery acknowledged without effect");
                    OutcomeKind::Duplicate
                }
            }
            Err(HandlerError::Permanent(error)) => {
                tracing::warn!(%error, "handler failed permanently");
                self.dead_letter(DeadLetterReason::Permanent, &error.to_string())
                    .await
            }
            Err(HandlerError::Retryable(error)) => {
                let max = self.shared.topology.max_attempts;
                if self.attempt >= max {
                    tracing::warn!(%error, attempts = self.attempt, "handler failed on its last attempt");
                    self.dead_letter(DeadLetterReason::RetriesExhausted, &error.to_string())
                        .await
                } else {
                    tracing::info!(%error, attempt = self.attempt, max, "handler failed, will retry");
                    self.retry(&error.to_string()).await
                }
            }
        }
    }

    /// Runs the handler in a transaction guarded by the inbox. `Ok(false)`:
    /// already processed, nothing was run.
    async fn apply(&self, event: &IncomingEvent) -> Result<bool, HandlerError> {
        let consumer = &self.shared.topology.queue;
        let mut tx = self.shared.pool.begin().await?;
        let fresh = inbox::record(&mut tx, consumer, &event.envelope.event_id)
            .await
            .map_err(HandlerError::retryable)?;
        if !fresh {
            tx.rollback().await?;
            return Ok(false);
        }
        // A panicking handler is a failed attempt, not a lost delivery.
        AssertUnwindSafe(self.shared.handler.handle(event, &mut tx))
            .catch_unwind()
            .await
            .map_err(|panic| HandlerError::retryable(panic_message(panic.as_ref())))??;
        tx.commit().await?;
        Ok(true)
    }

    async fn retry(&self, error: &str) -> OutcomeKind {
        let topology = &self.shared.topology;
        let next_attempt = self.attempt + 1;
        let delay = topology.retry_delay(next_attempt);
        let mut headers = self.carried_headers();
        headers::set_u64(&mut headers, headers::ATTEMPT, u64::from(next_attempt));
        headers::set_str(&mut headers, headers::LAST_ERROR, &truncate(error));
        let target = topology.retry_queue(delay);
        if self.republish("", &target, headers).await {
            OutcomeKind::RetryScheduled {
                next_attempt,
                delay,
            }
        } else {
            OutcomeKind::Requeued
        }
    }

    async fn dead_letter(&self, reason: DeadLetterReason, error: &str) -> OutcomeKind {
        let topology = &self.shared.topology;
        let mut headers = self.carried_headers();
        headers::set_u64(&mut headers, headers::ATTEMPT, u64::from(self.attempt));
        headers::set_str(&mut headers, headers::LAST_ERROR, &truncate(error));
        headers::set_str(&mut headers, headers::DEAD_LETTER_REASON, reason.as_str());
        headers::set_str(&mut headers, headers::DEAD_LETTER_CONSUMER, &topology.queue);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        headers.insert(headers::DEAD_LETTERED_AT.into(), AMQPValue::Timestamp(now));
        let dlx = topology.namespace.dead_letter_exchange();
        if self.republish(&dlx, &topology.queue, headers).await {
            tracing::warn!(
                reason = reason.as_str(),
                attempts = self.attempt,
                "message dead-lettered"
            );
            OutcomeKind::DeadLettered(reason)
        } else {
            OutcomeKind::Requeued
        }
    }

    /// The original headers plus where the message was first published, so
    /// that retries (which travel through the default exchange) and DLQ
    /// entries still say which event they are.
    fn carried_headers(&self) -> FieldTable {
        let mut headers = self.headers.clone();
        if !headers.contains_key(headers::ORIGINAL_EXCHANGE) {
            headers::set_str(&mut headers, headers::ORIGINAL_EXCHANGE, &self.exchange);
        }
        if !headers.contains_key(headers::ORIGINAL_ROUTING_KEY) {
            headers::set_str(
                &mut headers,
                headers::ORIGINAL_ROUTING_KEY,
                &self.routing_key,
            );
        }
        headers
    }

    /// Publishes a copy with new headers, waits for the confirm, then acks
    /// the original. On any failure the original is requeued instead.
    async fn republish(&self, exchange: &str, routing_key: &str, headers: FieldTable) -> bool {
        let properties: BasicProperties = self.delivery.properties.clone().with_headers(headers);
        let published = async {
            let confirm = self
                .publish_channel
                .basic_publish(
                    short(exchange)?,
                    short(routing_key)?,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &self.delivery.data,
                    properties,
                )
                .await?;
            let timeout = self.shared.config.confirm_timeout;
            match tokio::time::timeout(timeout, confirm)
                .await
                .map_err(|_| Error::ConfirmTimeout(timeout))??
            {
                Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
                Confirmation::Ack(Some(_)) => Err(Error::Unroutable {
                    message_id: self.message_id.clone(),
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                }),
                Confirmation::Nack(_) => Err(Error::Nacked {
                    message_id: self.message_id.clone(),
                }),
            }
        }
        .await;
        match published {
            Ok(()) => {
                if !self.ack().await {
                    tracing::warn!("ack failed after republish, the original will be redelivered");
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, exchange, routing_key, "republish failed, requeueing");
                self.requeue().await;
                false
            }
        }
    }

    async fn ack(&self) -> bool {
        matches!(
            self.delivery.acker.ack(BasicAckOptions::default()).await,
            Ok(true)
        )
    }

    async fn requeue(&self) {
        let _ = self
            .delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await;
    }
}

/// Error texts go into headers; keep them bounded.
fn truncate(error: &str) -> String {
    const MAX: usize = 2_000;
    if error.len() <= MAX {
        return error.to_owned();
    }
    let mut end = MAX;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &error[..end])
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_truncated_on_a_char_boundary() {
        let error = "é".repeat(2_000);
        let truncated = truncate(&error);
        assert!(truncated.len() <= 2_000 + '…'.len_utf8());
        assert!(truncated.ends_with('…'));
    }

    #[test]
    fn short_errors_are_kept_whole() {
        assert_eq!(truncate("boom"), "boom");
    }

    #[test]
    fn dead_letter_reasons_have_stable_header_values() {
        assert_eq!(
            DeadLetterReason::RetriesExhausted.as_str(),
            "retries_exhausted"
        );
        assert_eq!(DeadLetterReason::Permanent.as_str(), "permanent_failure");
        assert_eq!(DeadLetterReason::Undecodable.as_str(), "undecodable");
    }

    #[test]
    fn panic_payloads_become_error_text() {
        let payload: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(panic_message(payload.as_ref()), "handler panicked: boom");
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_message(payload.as_ref()), "handler panicked: bang");
    }
}
