//! `dlq list` and `dlq replay`: a consumer's dead-letter queue, read and sent back to that
//! consumer.
//!
//! Names follow the services' topology ([`mercato_messaging::topology`]): the work queue of
//! consumer `<consumer>` of service `<service>` is `<namespace>.<service>.<consumer>` (no prefix
//! in the root namespace) and its DLQ is that name plus `.dlq`; e.g. the payment service's
//! `order-events` consumer dead-letters into `payment.order-events.dlq`.
//!
//! - **list** takes up to `--limit` messages with `basic.get`, reads them with
//!   [`DeadLetter::from_delivery`] and hands every one back with one `basic.nack` (requeue) at the
//!   end, so listing changes nothing but the broker's delivery counter. RabbitMQ 4.3 and later
//!   do not count a nack against a quorum queue's delivery limit, and 3.x has no default limit;
//!   4.0 to 4.2 count every return against the default limit of 20, and a DLQ has no dead-letter
//!   target of its own, so there a message listed 20 times would be dropped: keep listings
//!   few, or lift the limit on the DLQs with a policy (`delivery-limit` on `.*\.dlq$`).
//! - **replay --all** moves every message that was in the DLQ when the command started back to
//!   the work queue with [`dead_letters::replay`] (fresh attempt count, acked in the DLQ only
//!   after the broker confirmed the republish), in batches with a progress line each.
//! - **replay --message-id** does the same for one message: the messages before it are held
//!   unacknowledged while it is looked for and handed back afterwards, so only that message
//!   moves. The republished copy is stripped of the dead-letter headers exactly as
//!   [`dead_letters::replay`] strips them.

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use mercato_messaging::dead_letters::{self, DeadLetter};
use mercato_messaging::{ConnectionConfig, Connector, ConsumerTopology, Namespace, headers};
use serde_json::{Value, json};

use crate::connect::BrokerArgs;
use crate::error::CliError;
use crate::progress::Progress;
use crate::render::{self, Table};

/// Messages replayed per `dead_letters::replay` call of `--all` (one progress line each).
pub const REPLAY_BATCH: usize = 100;

/// Which consumer's DLQ.
#[derive(Debug, Clone, clap::Args)]
pub struct DlqTarget {
    /// The service owning the consumer, e.g. `payment`.
    #[arg(long)]
    pub service: String,
    /// The consumer, e.g. `order-events`.
    #[arg(long)]
    pub consumer: String,
    #[command(flatten)]
    pub broker: BrokerArgs,
}

impl DlqTarget {
    /// The consumer's topology (only its names are used here).
    pub fn topology(&self) -> Result<ConsumerTopology, CliError> {
        let namespace = Namespace::from_setting(&self.broker.namespace)
            .map_err(|error| CliError::Usage(format!("--namespace: {error}")))?;
        ConsumerTopology::new(
            &namespace,
            &self.service,
            &self.consumer,
            Vec::<String>::new(),
        )
        .map_err(|error| CliError::Usage(format!("--service/--consumer: {error}")))
    }
}

/// What a DLQ holds.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The DLQ's name.
    pub queue: String,
    /// Messages in it when it was read.
    pub total: u32,
    /// The first messages (up to the limit), oldest first.
    pub messages: Vec<DeadLetter>,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The message with this id.
    Message(String),
    /// Every message in the DLQ when the replay starts.
    All,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// The DLQ read from.
    pub queue: String,
    /// The work queue the messages went back to.
    pub work_queue: String,
    /// Messages replayed.
    pub replayed: usize,
    /// Messages left in the DLQ afterwards.
    pub remaining: u32,
}

/// A channel on a fresh connection to the broker, with the connector to close it.
async fn open(broker: &BrokerArgs) -> Result<(Connector, Channel), CliError> {
    let connector = Connector::new(ConnectionConfig::new(
        broker.amqp_url.clone(),
        crate::connect::CALLER,
    ));
    let channel = connector
        .try_channel()
        .await
        .map_err(|error| CliError::broker("connecting to the broker (--amqp-url)", error))?;
    Ok((connector, channel))
}

/// How many messages `queue` holds; a missing queue is a clear error (a passive declare fails).
async fn depth(channel: &Channel, queue: &str) -> Result<u32, CliError> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|error| {
            CliError::broker(
                format!("opening {queue} (check --namespace, --service and --consumer)"),
                error,
            )
        })?;
    Ok(declared.message_count())
}

/// Up to `limit` dead letters of `target`, without removing any.
pub async fn list(target: &DlqTarget, limit: usize) -> Result<Listing, CliError> {
    let topology = target.topology()?;
    let queue = topology.dead_letter_queue();
    let (connector, channel) = open(&target.broker).await?;
    let result = list_on(&channel, &queue, limit).await;
    connector.close().await;
    result
}

async fn list_on(channel: &Channel, queue: &str, limit: usize) -> Result<Listing, CliError> {
    let total = depth(channel, queue).await?;
    let want = limit.min(usize::try_from(total).unwrap_or(usize::MAX));
    let mut messages = Vec::with_capacity(want);
    let mut last_tag = None;
    while messages.len() < want {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .map_err(|error| CliError::broker(format!("reading {queue}"), error))?;
        let Some(message) = got else { break };
        messages.push(DeadLetter::from_delivery(&message.delivery));
        last_tag = Some(message.delivery.delivery_tag);
    }
    if let Some(tag) = last_tag {
        hand_back(channel, tag, queue).await?;
    }
    Ok(Listing {
        queue: queue.to_owned(),
        total,
        messages,
    })
}

/// Returns every unsettled delivery up to `tag` to the queue (one nack, requeue).
async fn hand_back(channel: &Channel, tag: u64, queue: &str) -> Result<(), CliError> {
    channel
        .basic_nack(
            tag,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .map_err(|error| CliError::broker(format!("handing messages back to {queue}"), error))
}

/// Replays the `selection` of `target`'s dead letters to its work queue.
pub async fn replay(
    target: &DlqTarget,
    selection: &Selection,
    progress: &mut Progress,
) -> Result<ReplayReport, CliError> {
    let topology = target.topology()?;
    let (connector, channel) = open(&target.broker).await?;
    let result = replay_on(&channel, &topology, selection, progress).await;
    connector.close().await;
    result
}

async fn replay_on(
    channel: &Channel,
    topology: &ConsumerTopology,
    selection: &Selection,
    progress: &mut Progress,
) -> Result<ReplayReport, CliError> {
    let queue = topology.dead_letter_queue();
    let total = usize::try_from(depth(channel, &queue).await?).unwrap_or(usize::MAX);
    let replayed = match selection {
        Selection::All => replay_all(channel, topology, total, progress).await?,
        Selection::Message(id) => {
            replay_one(channel, topology, id, total).await?;
            progress.say(format_args!("replayed message {id} to {}", topology.queue));
            1
        }
    };
    Ok(ReplayReport {
        remaining: depth(channel, &queue).await?,
        queue,
        work_queue: topology.queue.clone(),
        replayed,
    })
}

/// Replays at most `total` messages (those there at the start: a message that fails again and
/// comes back is not replayed twice in one run).
async fn replay_all(
    channel: &Channel,
    topology: &ConsumerTopology,
    total: usize,
    progress: &mut Progress,
) -> Result<usize, CliError> {
    let mut done = 0;
    while done < total {
        let batch = REPLAY_BATCH.min(total - done);
        let moved = dead_letters::replay(channel, topology, batch)
            .await
            .map_err(|error| {
                CliError::broker(format!("replaying {}", topology.dead_letter_queue()), error)
            })?;
        done += moved;
        progress.step("replayed", done, total, "messages");
        if moved < batch {
            // The DLQ ran dry early (someone else replayed or purged it).
            break;
        }
    }
    Ok(done)
}

/// Finds message `id` among the first `total` dead letters and replays it alone.
async fn replay_one(
    channel: &Channel,
    topology: &ConsumerTopology,
    id: &str,
    total: usize,
) -> Result<(), CliError> {
    let queue = topology.dead_letter_queue();
    let broker = |what: &str| {
        let context = format!("{what} {queue}");
        move |error: lapin::Error| CliError::broker(context, error)
    };
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker("enabling confirms for"))?;
    let mut held = None;
    let mut found = None;
    for _ in 0..total {
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .map_err(broker("reading"))?;
        let Some(message) = got else { break };
        if DeadLetter::from_delivery(&message.delivery).message_id == id {
            found = Some(message.delivery);
            break;
        }
        held = Some(message.delivery.delivery_tag);
    }
    let outcome = match found {
        Some(delivery) => republish(channel, topology, &delivery).await,
        None => Err(CliError::Failed(format!(
            "message {id} is not in {queue} (looked at {total} messages)"
        ))),
    };
    if let Some(tag) = held {
        hand_back(channel, tag, &queue).await?;
    }
    outcome
}

/// Publishes `delivery` to the work queue with a fresh attempt count and acks it in the DLQ
/// once the broker confirmed; otherwise hands it back.
async fn republish(
    channel: &Channel,
    topology: &ConsumerTopology,
    delivery: &lapin::message::Delivery,
) -> Result<(), CliError> {
    let message_id = DeadLetter::from_delivery(delivery).message_id;
    let headers = replay_headers(delivery.properties.headers().as_ref());
    let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
    let broker = |error: lapin::Error| {
        CliError::broker(
            format!("republishing {message_id} to {}", topology.queue),
            error,
        )
    };
    let confirmation = channel
        .basic_publish(
            "".into(),
            topology.queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &delivery.data,
            properties,
        )
        .await
        .map_err(broker)?
        .await
        .map_err(broker)?;
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => {
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(broker)?;
            Ok(())
        }
        Confirmation::Ack(Some(_)) | Confirmation::Nack(_) => {
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
                .map_err(broker)?;
            Err(CliError::broker(
                format!(
                    "replaying to {} (does the work queue exist?)",
                    topology.queue
                ),
                mercato_messaging::Error::Nacked { message_id },
            ))
        }
    }
}

/// The headers a replayed copy carries: the dead letter's, without the dead-letter and broker
/// death headers, with attempt 1 (the same rules as [`dead_letters::replay`]).
pub fn replay_headers(original: Option<&FieldTable>) -> FieldTable {
    const DROPPED: [&str; 12] = [
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
    let mut kept = FieldTable::default();
    if let Some(original) = original {
        for (key, value) in original.inner() {
            if !DROPPED.contains(&key.as_str()) {
                kept.insert(key.clone(), value.clone());
            }
        }
    }
    headers::set_u64(&mut kept, headers::ATTEMPT, 1);
    kept
}

impl Listing {
    /// The listing as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "queue": self.queue,
            "total": self.total,
            "messages": self.messages.iter().map(|message| json!({
                "message_id": message.message_id,
                "event_type": message.event_type,
                "consumer": message.consumer,
                "reason": message.reason,
                "attempts": message.attempts,
                "last_error": message.last_error,
            })).collect::<Vec<_>>(),
        })
    }

    /// The listing as a table under a one-line summary.
    pub fn to_table(&self) -> String {
        let mut table = Table::with_header([
            "message id",
            "event type",
            "reason",
            "attempts",
            "last error",
        ]);
        for message in &self.messages {
            table.row([
                message.message_id.clone(),
                render::or_dash(&message.event_type),
                render::or_dash(&message.reason),
                message.attempts.to_string(),
                render::or_dash(&message.last_error),
            ]);
        }
        format!(
            "{}: {} message(s), showing {}\n{}",
            self.queue,
            self.total,
            self.messages.len(),
            table.render()
        )
    }
}

impl ReplayReport {
    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "queue": self.queue,
            "work_queue": self.work_queue,
            "replayed": self.replayed,
            "remaining": self.remaining,
        })
    }

    /// The report as one line.
    pub fn to_line(&self) -> String {
        format!(
            "replayed {} message(s) from {} to {}; {} left in the DLQ\n",
            self.replayed, self.queue, self.work_queue, self.remaining
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::AMQPValue;

    #[test]
    fn a_replayed_copy_keeps_its_own_headers_and_starts_counting_afresh() {
        let mut original = FieldTable::default();
        headers::set_str(
            &mut original,
            headers::DEAD_LETTER_REASON,
            "permanent_failure",
        );
        headers::set_str(&mut original, headers::LAST_ERROR, "boom");
        headers::set_u64(&mut original, headers::ATTEMPT, 5);
        headers::set_str(&mut original, headers::TRACEPARENT, "00-abc-def-01");
        original.insert("x-death".into(), AMQPValue::FieldArray(Vec::new().into()));
        let copy = replay_headers(Some(&original));
        assert_eq!(headers::get_u64(&copy, headers::ATTEMPT), Some(1));
        assert_eq!(
            headers::get_str(&copy, headers::TRACEPARENT),
            Some("00-abc-def-01")
        );
        assert_eq!(headers::get_str(&copy, headers::DEAD_LETTER_REASON), None);
        assert_eq!(headers::get_str(&copy, headers::LAST_ERROR), None);
        assert!(!copy.inner().contains_key("x-death"));
    }

    #[test]
    fn queue_names_follow_the_services_topology() {
        let target = DlqTarget {
            service: "payment".to_owned(),
            consumer: "order-events".to_owned(),
            broker: BrokerArgs {
                amqp_url: String::new(),
                namespace: "staging".to_owned(),
            },
        };
        let topology = target.topology().expect("valid names");
        assert_eq!(topology.queue, "staging.payment.order-events");
        assert_eq!(
            topology.dead_letter_queue(),
            "staging.payment.order-events.dlq"
        );
        let bad = DlqTarget {
            consumer: "a.b".to_owned(),
            ..target
        };
        assert!(matches!(bad.topology(), Err(CliError::Usage(_))));
    }
}
