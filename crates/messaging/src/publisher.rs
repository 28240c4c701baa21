//! Publishing event envelopes with publisher confirms, the mandatory flag and trace headers.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use lapin::{
    BasicProperties, Channel, Confirmation,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::FieldTable,
};
use mercato_proto::mercato::events::v1::EventEnvelope;
use prost::Message as _;
use tokio::sync::Mutex;
use tracing::Instrument as _;

use crate::{
    Connector, Error, Namespace, envelope::validate, headers, topology::declare_exchanges,
    topology::short,
};

/// The content type of every event body: a protobuf-encoded `EventEnvelope`.
pub const CONTENT_TYPE: &str = "application/protobuf";

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// One message ready to publish: where it goes, its body and its properties.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// The exchange (`""` is the default exchange, routing by queue name).
    pub exchange: String,
    /// The routing key.
    pub routing_key: String,
    /// The body.
    pub payload: Vec<u8>,
    /// AMQP properties, headers included.
    pub properties: BasicProperties,
}

impl OutgoingMessage {
    /// An event for the events exchange of `namespace`: routing key =
    /// `event_type`, properties mirroring the envelope, `headers` attached
    /// (trace context and any others).
    pub fn event(
        namespace: &Namespace,
        envelope: &EventEnvelope,
        headers: FieldTable,
    ) -> Result<Self, Error> {
        validate(envelope)?;
        let mut properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(PERSISTENT)
            .with_message_id(short(&envelope.event_id)?)
            .with_type(short(&envelope.event_type)?)
            .with_headers(headers);
        if !envelope.producer.is_empty() {
            properties = properties.with_app_id(short(&envelope.producer)?);
        }
        if let Some(seconds) = envelope
            .occurred_at
            .as_ref()
            .and_then(|ts| u64::try_from(ts.seconds).ok())
        {
            properties = properties.with_timestamp(seconds);
        }
        Ok(Self {
            exchange: namespace.events_exchange(),
            routing_key: envelope.event_type.clone(),
            payload: envelope.encode_to_vec(),
            properties,
        })
    }

    /// The message id property (empty when unset).
    pub fn message_id(&self) -> &str {
        self.properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str())
            .unwrap_or_default()
    }
}

/// Publishes with confirms on one shared channel, reopened after failures.
///
/// Every publish is `mandatory`: a message no queue is bound for comes back
/// as [`Error::Unroutable`] instead of vanishing, and a broker nack is
/// [`Error::Nacked`]. Success means the broker has taken responsibility
/// (persisted to its queues).
#[derive(Clone, Debug)]
pub struct Publisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: Connector,
    namespace: Namespace,
    confirm_timeout: Duration,
    channel: Mutex<Option<Channel>>,
}

impl Publisher {
    /// A publisher for the events exchange of `namespace` (confirm timeout 30 s).
    pub fn new(connector: Connector, namespace: Namespace) -> Self {
        Self::with_confirm_timeout(connector, namespace, Duration::from_secs(30))
    }

    /// A publisher that gives up waiting for confirms after `confirm_timeout`
    /// (the outcome is then unknown, so callers must treat it as a failure and
    /// may publish again: consumers deduplicate).
    pub fn with_confirm_timeout(
        connector: Connector,
        namespace: Namespace,
        confirm_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                connector,
                namespace,
                confirm_timeout,
                channel: Mutex::new(None),
            }),
        }
    }

    /// The namespace this publisher writes to.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.namespace
    }

    /// Publishes `envelope` on the events exchange inside a producer span,
    /// carrying the current trace context in its headers.
    pub async fn publish(&self, envelope: &EventEnvelope) -> Result<(), Error> {
        let span = producer_span(&self.inner.namespace, envelope);
        async {
            let mut headers = FieldTable::default();
            headers::inject_current_span(&mut headers);
            let message = OutgoingMessage::event(&self.inner.namespace, envelope, headers)?;
            self.publish_message(&message).await
        }
        .instrument(span)
        .await
    }

    /// Publishes one prepared message and waits for its confirm.
    pub async fn publish_message(&self, message: &OutgoingMessage) -> Result<(), Error> {
        let mut results = self.publish_batch(std::slice::from_ref(message)).await?;
        results.pop().unwrap_or(Ok(()))
    }

    /// Publishes every message, then waits for all confirms (pipelined, so a
    /// batch costs about one round trip). The outer error means the channel
    /// failed and the outcome of the whole batch is unknown; otherwise each
    /// message has its own result ([`Error::Nacked`] or [`Error::Unroutable`]).
    pub async fn publish_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let channel = self.channel().await?;
        let outcome = self.publish_on(&channel, messages).await;
        if outcome.is_err() {
            // The channel may be closed or in an unknown state; start afresh next time.
            self.invalidate(&channel).await;
        }
        outcome
    }

    async fn publish_on(
        &self,
        channel: &Channel,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let confirm = channel
                .basic_publish(
                    short(&message.exchange)?,
                    short(&message.routing_key)?,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.payload,
                    message.properties.clone(),
                )
                .await?;
            confirms.push(confirm);
        }
        let confirmations = tokio::time::timeout(self.inner.confirm_timeout, join_all(confirms))
            .await
            .map_err(|_| Error::ConfirmTimeout(self.inner.confirm_timeout))?;
        let mut results = Vec::with_capacity(messages.len());
        for (message, confirmation) in messages.iter().zip(confirmations) {
            let result = match confirmation? {
                Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
                Confirmation::Ack(Some(_returned)) => Err(Error::Unroutable {
                    message_id: message.message_id().to_owned(),
                    exchange: message.exchange.clone(),
                    routing_key: message.routing_key.clone(),
                }),
                Confirmation::Nack(_) => Err(Error::Nacked {
                    message_id: message.message_id().to_owned(),
                }),
            };
            results.push(result);
        }
        Ok(results)
    }

    async fn channel(&self) -> Result<Channel, Error> {
        let mut slot = self.inner.channel.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *slot = None;
        let channel = self.inner.connector.try_channel().await?;
        // Declaring is idempotent and cheap; it makes a fresh broker usable
        // without a separate provisioning step.
        declare_exchanges(&channel, &self.inner.namespace).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    async fn invalidate(&self, failed: &Channel) {
        let mut slot = self.inner.channel.lock().await;
        if slot.as_ref().is_some_and(|c| c.id() == failed.id()) {
            *slot = None;
        }
    }
}

/// The producer span of one event (OpenTelemetry messaging conventions).
pub(crate) fn producer_span(namespace: &Namespace, envelope: &EventEnvelope) -> tracing::Span {
    let exchange = namespace.events_exchange();
    tracing::info_span!(
        "publish",
        otel.name = %format!("publish {}", envelope.event_type),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = %exchange,
        messaging.rabbitmq.destination.routing_key = %envelope.event_type,
        messaging.message.id = %envelope.event_id,
    )
}
