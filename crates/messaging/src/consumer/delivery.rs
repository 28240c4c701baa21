//! Settling one delivery: decode, apply the handler inside the inbox transaction, then ack,
//! schedule a retry, dead-letter, or requeue, always republishing before acking the original.

use std::{
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Instant, SystemTime},
};

use futures::FutureExt as _;
use lapin::{
    BasicProperties, Channel, Confirmation,
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions},
    types::{AMQPValue, FieldTable},
};
use mercato_proto::mercato::events::v1::EventEnvelope;
use prost::Message as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{
    DeadLetterReason, Handler, HandlerError, IncomingEvent, Outcome, OutcomeKind, Pending,
    SETTLE_TIMEOUT, Shared, lock,
};
use crate::{Error, envelope::validate, headers, inbox, metrics, topology::short};

pub(super) async fn process<H: Handler>(
    shared: Arc<Shared<H>>,
    publish_channel: Channel,
    delivery: Delivery,
    pending: Pending,
) {
    let received = Instant::now();
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
    metrics::record_delivery(
        &shared.topology.queue,
        &outcome.kind,
        received.elapsed().as_secs_f64(),
    );
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
        if let Some(lag) = lag_seconds(&envelope) {
            metrics::record_lag(&self.shared.topology.queue, lag);
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
        let ack = self.delivery.acker.ack(BasicAckOptions::default());
        matches!(
            tokio::time::timeout(SETTLE_TIMEOUT, ack).await,
            Ok(Ok(true))
        )
    }

    async fn requeue(&self) {
        let nack = self.delivery.acker.nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        });
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, nack).await;
    }
}

/// Seconds from the event's `occurred_at` to now (negative when the producer's clock is ahead).
fn lag_seconds(envelope: &EventEnvelope) -> Option<f64> {
    let occurred = envelope.occurred_at.as_ref()?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?;
    let occurred = occurred.seconds as f64 + f64::from(occurred.nanos) / 1e9;
    Some(now.as_secs_f64() - occurred)
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
    fn panic_payloads_become_error_text() {
        let payload: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(panic_message(payload.as_ref()), "handler panicked: boom");
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_message(payload.as_ref()), "handler panicked: bang");
    }
}
