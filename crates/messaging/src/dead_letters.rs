//! Operator tools for a consumer's DLQ: read what is there and why, replay messages to their consumer.

use lapin::{
    BasicProperties, Channel, Confirmation,
    message::Delivery,
    options::{
        BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
        ConfirmSelectOptions,
    },
    types::FieldTable,
};

use crate::{ConsumerTopology, Error, headers, topology::short};

/// One dead-lettered message as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The AMQP message id (the event id).
    pub message_id: String,
    /// The AMQP type property (the event type).
    pub event_type: String,
    /// The consumer queue that gave up.
    pub consumer: String,
    /// The `x-mercato-dead-letter-reason` header, or the broker's `x-death`
    /// reason (e.g. `delivery_limit` when consumers kept crashing).
    pub reason: String,
    /// Attempts made by the consumer.
    pub attempts: u64,
    /// The error of the last attempt.
    pub last_error: String,
}

impl DeadLetter {
    /// Reads the operator-facing fields of a DLQ delivery.
    pub fn from_delivery(delivery: &Delivery) -> Self {
        let empty = FieldTable::default();
        let table = delivery.properties.headers().as_ref().unwrap_or(&empty);
        let text = |key| headers::get_str(table, key).unwrap_or_default().to_owned();
        let reason = match headers::get_str(table, headers::DEAD_LETTER_REASON) {
            Some(reason) => reason.to_owned(),
            None => broker_death_reason(table).unwrap_or_default(),
        };
        Self {
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            event_type: delivery
                .properties
                .kind()
                .as_ref()
                .map(|kind| kind.to_string())
                .unwrap_or_default(),
            consumer: text(headers::DEAD_LETTER_CONSUMER),
            reason,
            attempts: headers::get_u64(table, headers::ATTEMPT).unwrap_or(0),
            last_error: text(headers::LAST_ERROR),
        }
    }
}

/// The reason of the most recent broker-side dead-lettering (`x-death[0].reason`).
fn broker_death_reason(table: &FieldTable) -> Option<String> {
    let lapin::types::AMQPValue::FieldArray(deaths) = table.inner().get("x-death")? else {
        return None;
    };
    let lapin::types::AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    headers::get_str(first, "reason").map(str::to_owned)
}

/// Moves up to `max` messages from the DLQ of `topology` back to its work
/// queue (that consumer only), with a fresh attempt count. Each message is
/// acked in the DLQ only after its republish is confirmed. Returns how many
/// were replayed.
pub async fn replay(
    channel: &Channel,
    topology: &ConsumerTopology,
    max: usize,
) -> Result<usize, Error> {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let dlq = short(&topology.dead_letter_queue())?;
    let mut replayed = 0;
    while replayed < max {
        let Some(message) = channel
            .basic_get(dlq.clone(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        let mut table = delivery.properties.headers().clone().unwrap_or_default();
        let mut kept = FieldTable::default();
        for (key, value) in table.inner() {
            let dropped = [
                headers::DEAD_LETTER_REASON,
                headers::DEAD_LETTER_CONSUMER,
                headers::DEAD_LETTERED_AT,
                headers::LAST_ERROR,
                headers::ATTEMPT,
                "x-death",
                "x-first-death-exchange",
                "x-first-death-queue",
                "x-first-death-reason",
                "x-last-death-exchange",
                "x-last-death-queue",
                "x-last-death-reason",
            ];
            if !dropped.contains(&key.as_str()) {
                kept.insert(key.clone(), value.clone());
            }
        }
        table = kept;
        headers::set_u64(&mut table, headers::ATTEMPT, 1);
        let properties: BasicProperties = delivery.properties.clone().with_headers(table);
        let confirmation = channel
            .basic_publish(
                "".into(),
                short(&topology.queue)?,
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => {
                delivery.acker.ack(BasicAckOptions::default()).await?;
                replayed += 1;
            }
            Confirmation::Ack(Some(_)) | Confirmation::Nack(_) => {
                let message_id = DeadLetter::from_delivery(&delivery).message_id;
                delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?;
                return Err(Error::Nacked { message_id });
            }
        }
    }
    Ok(replayed)
}
