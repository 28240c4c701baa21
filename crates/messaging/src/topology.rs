//! Exchange and queue names and their declaration, parameterised by a [`Namespace`].
//!
//! Layout (shown without a namespace prefix):
//!
//! | entity | kind | purpose |
//! |---|---|---|
//! | `mercato.events` | topic exchange, durable | every event, routing key = `event_type` |
//! | `mercato.events.dlx` | direct exchange, durable | dead letters, routing key = the consumer queue |
//! | `<service>.<consumer>` | quorum queue | one work queue per consumer, bound to its routing keys |
//! | `<service>.<consumer>.retry.<ms>ms` | classic queue, `x-message-ttl` | a waiting room that dead-letters back to the work queue |
//! | `<service>.<consumer>.dlq` | quorum queue | messages this consumer gave up on, with reason headers |
//!
//! One DLQ per consumer queue (rather than one shared DLQ) so that an operator
//! sees at a glance which consumer gave up, and so that replaying a message
//! sends it back to that consumer only: republishing on `mercato.events` would
//! hand it again to every other subscriber that already processed it.

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, ShortString},
};
use std::time::Duration;

use crate::{Backoff, Error};

/// A prefix for every exchange and queue name, so that tests (or several
/// environments sharing a vhost) never see each other's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    /// The production namespace: names are used as they are (`mercato.events`).
    pub fn root() -> Self {
        Self::default()
    }

    /// A namespace whose names all start with `<prefix>.`; the prefix must be
    /// non-empty, made of ASCII letters, digits, `-` or `_`.
    pub fn new(prefix: impl Into<String>) -> Result<Self, Error> {
        let prefix = prefix.into();
        let valid = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self { prefix })
        } else {
            Err(Error::InvalidName {
                name: prefix,
                reason: "a namespace is 1-64 ascii letters, digits, '-' or '_'",
            })
        }
    }

    /// The namespace a `BUS_NAMESPACE` setting names: the root when empty, else [`Namespace::new`].
    pub fn from_setting(prefix: &str) -> Result<Self, Error> {
        if prefix.is_empty() {
            Ok(Self::root())
        } else {
            Self::new(prefix)
        }
    }

    /// The prefix (empty for the root namespace).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `base` qualified by this namespace.
    pub fn qualify(&self, base: &str) -> String {
        if self.prefix.is_empty() {
            base.to_owned()
        } else {
            format!("{}.{base}", self.prefix)
        }
    }

    /// The topic exchange every event is published to.
    pub fn events_exchange(&self) -> String {
        self.qualify("mercato.events")
    }

    /// The direct exchange dead letters are routed through (routing key = consumer queue).
    pub fn dead_letter_exchange(&self) -> String {
        self.qualify("mercato.events.dlx")
    }
}

/// Which RabbitMQ queue type backs work queues and DLQs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// Replicated Raft queues with a broker-side delivery counter: the backstop
    /// for consumers that crash (SIGKILL) on a poison message, where a
    /// header-based attempt count can never be incremented.
    Quorum,
    /// Classic queues, for brokers where quorum queues are unavailable.
    Classic,
}

/// Everything a consumer queue needs: its name, bindings, retry tiers and DLQ.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerTopology {
    /// The namespace the names live in.
    pub namespace: Namespace,
    /// `<service>.<consumer>` (namespaced).
    pub queue: String,
    /// Routing keys (topic patterns allowed) bound on the events exchange.
    pub routing_keys: Vec<String>,
    /// Total handler attempts before a message is dead-lettered (>= 1).
    pub max_attempts: u32,
    /// Delay schedule between attempts.
    pub retry_backoff: Backoff,
    /// Broker-side redelivery limit (quorum queues only): a message whose
    /// consumer died this many times without settling it is dead-lettered.
    pub delivery_limit: u32,
    /// Queue type of the work queue and the DLQ.
    pub queue_kind: QueueKind,
}

impl ConsumerTopology {
    /// A consumer queue named `<service>.<consumer>` with defaults: 5 attempts,
    /// retries after 1 s, 2 s, 4 s, 8 s, a delivery limit of 20, quorum queues.
    pub fn new(
        namespace: &Namespace,
        service: &str,
        consumer: &str,
        routing_keys: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, Error> {
        for part in [service, consumer] {
            let valid = !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(Error::InvalidName {
                    name: part.to_owned(),
                    reason: "service and consumer names are ascii letters, digits, '-' or '_'",
                });
            }
        }
        Ok(Self {
            namespace: namespace.clone(),
            queue: namespace.qualify(&format!("{service}.{consumer}")),
            routing_keys: routing_keys.into_iter().map(Into::into).collect(),
            max_attempts: 5,
            retry_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            delivery_limit: 20,
            queue_kind: QueueKind::Quorum,
        })
    }

    /// Sets the total number of handler attempts (at least 1).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Sets the delay schedule between attempts.
    pub fn with_retry_backoff(mut self, backoff: Backoff) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Sets the broker-side redelivery limit (quorum queues).
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = limit.max(1);
        self
    }

    /// Sets the queue type of the work queue and DLQ.
    pub fn with_queue_kind(mut self, kind: QueueKind) -> Self {
        self.queue_kind = kind;
        self
    }

    /// The dead-letter queue of this consumer.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.queue)
    }

    /// The delay before attempt `next_attempt` (2-based: the first retry is attempt 2).
    pub fn retry_delay(&self, next_attempt: u32) -> Duration {
        self.retry_backoff.delay(next_attempt.saturating_sub(1))
    }

    /// The retry queue holding messages for `delay`. The delay is part of the
    /// name so that changing the schedule declares new queues instead of
    /// failing on a redeclaration with different arguments.
    pub fn retry_queue(&self, delay: Duration) -> String {
        format!("{}.retry.{}ms", self.queue, delay.as_millis())
    }

    /// Every distinct retry queue the schedule uses, shortest delay first.
    pub fn retry_queues(&self) -> Vec<(String, Duration)> {
        let mut delays: Vec<Duration> = (2..=self.max_attempts)
            .map(|attempt| self.retry_delay(attempt))
            .collect();
        delays.sort();
        delays.dedup();
        delays
            .into_iter()
            .map(|delay| (self.retry_queue(delay), delay))
            .collect()
    }

    /// Every queue this topology declares (work queue, retry queues, DLQ).
    pub fn queue_names(&self) -> Vec<String> {
        let mut names = vec![self.queue.clone(), self.dead_letter_queue()];
        names.extend(self.retry_queues().into_iter().map(|(name, _)| name));
        names
    }

    /// Declares the exchanges, the work queue with its bindings, the retry
    /// queues and the DLQ. Idempotent: safe on every (re)connect.
    pub async fn declare(&self, channel: &Channel) -> Result<(), Error> {
        // Recorded before declaring, so a declaration that half succeeds is still cleaned up.
        record_declared(&self.namespace, self.queue_names());
        declare_exchanges(channel, &self.namespace).await?;
        let dlx = self.namespace.dead_letter_exchange();

        let mut work_args = self.durable_args();
        // Broker-side dead-lettering (delivery limit exceeded, or a reject
        // without requeue) lands in this consumer's DLQ, like ours does.
        work_args.insert("x-dead-letter-exchange".into(), long_string(&dlx));
        work_args.insert("x-dead-letter-routing-key".into(), long_string(&self.queue));
        if self.queue_kind == QueueKind::Quorum {
            work_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
            );
        }
        channel
            .queue_declare(short(&self.queue)?, durable_queue(), work_args)
            .await?;
        for key in &self.routing_keys {
            channel
                .queue_bind(
                    short(&self.queue)?,
                    short(&self.namespace.events_exchange())?,
                    short(key)?,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }

        for (name, delay) in self.retry_queues() {
            // Classic queues with a queue-wide TTL: every message in a tier
            // waits the same time, so expiry order is FIFO order and no
            // message is stuck behind a longer one.
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
            );
            args.insert("x-dead-letter-exchange".into(), long_string(""));
            args.insert("x-dead-letter-routing-key".into(), long_string(&self.queue));
            channel
                .queue_declare(short(&name)?, durable_queue(), args)
                .await?;
        }

        let dlq = self.dead_letter_queue();
        channel
            .queue_declare(short(&dlq)?, durable_queue(), self.durable_args())
            .await?;
        channel
            .queue_bind(
                short(&dlq)?,
                short(&dlx)?,
                short(&self.queue)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    fn durable_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.queue_kind == QueueKind::Quorum {
            args.insert("x-queue-type".into(), long_string("quorum"));
        }
        args
    }
}

/// Queues declared by this process in each non-root namespace, by namespace prefix. Production
/// runs in the root namespace and records nothing; tests give every test its own namespace, and
/// the test harness deletes what the services it started in-process declared there
/// ([`take_declared_queues`]), so consumer queues do not pile up on the broker.
static DECLARED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, std::collections::BTreeSet<String>>>,
> = std::sync::LazyLock::new(Default::default);

fn declared() -> std::sync::MutexGuard<
    'static,
    std::collections::HashMap<String, std::collections::BTreeSet<String>>,
> {
    DECLARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn record_declared(namespace: &Namespace, queues: Vec<String>) {
    if namespace.prefix().is_empty() {
        return;
    }
    declared()
        .entry(namespace.prefix().to_owned())
        .or_default()
        .extend(queues);
}

/// Removes and returns the queues this process declared in the namespace `prefix`.
pub fn take_declared_queues(prefix: &str) -> Vec<String> {
    declared()
        .remove(prefix)
        .map(|queues| queues.into_iter().collect())
        .unwrap_or_default()
}

/// Declares the events exchange and the dead-letter exchange of `namespace`.
pub async fn declare_exchanges(channel: &Channel, namespace: &Namespace) -> Result<(), Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            short(&namespace.events_exchange())?,
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            short(&namespace.dead_letter_exchange())?,
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

/// An AMQP short string, refusing (instead of panicking on) names over 255 bytes.
pub(crate) fn short(value: &str) -> Result<ShortString, Error> {
    ShortString::try_new(value).map_err(|_| Error::InvalidName {
        name: value.to_owned(),
        reason: "amqp names are at most 255 bytes",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_namespace_uses_names_unchanged() {
        let ns = Namespace::root();
        assert_eq!(ns.events_exchange(), "mercato.events");
        assert_eq!(ns.dead_letter_exchange(), "mercato.events.dlx");
    }

    #[test]
    fn a_namespace_prefixes_every_name() {
        let ns = Namespace::new("t42").expect("valid prefix");
        assert_eq!(ns.events_exchange(), "t42.mercato.events");
        let topo = ConsumerTopology::new(&ns, "order", "payment-events", ["order.paid"])
            .expect("valid names");
        assert_eq!(topo.queue, "t42.order.payment-events");
        assert_eq!(topo.dead_letter_queue(), "t42.order.payment-events.dlq");
    }

    #[test]
    fn namespaces_and_queue_parts_reject_separators() {
        assert!(Namespace::new("").is_err());
        assert!(Namespace::new("a.b").is_err());
        assert!(ConsumerTopology::new(&Namespace::root(), "order", "a.b", ["x"]).is_err());
    }

    #[test]
    fn retry_tiers_follow_the_backoff_and_collapse_at_the_cap() {
        let topo = ConsumerTopology::new(&Namespace::root(), "svc", "c", ["e"])
            .expect("valid names")
            .with_max_attempts(6)
            .with_retry_backoff(Backoff::new(
                Duration::from_millis(100),
                Duration::from_millis(400),
            ));
        assert_eq!(topo.retry_delay(2), Duration::from_millis(100));
        assert_eq!(topo.retry_delay(3), Duration::from_millis(200));
        let tiers: Vec<_> = topo.retry_queues().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            tiers,
            [
                "svc.c.retry.100ms",
                "svc.c.retry.200ms",
                "svc.c.retry.400ms"
            ]
        );
    }

    #[test]
    fn a_single_attempt_needs_no_retry_queue() {
        let topo = ConsumerTopology::new(&Namespace::root(), "svc", "c", ["e"])
            .expect("valid names")
            .with_max_attempts(1);
        assert!(topo.retry_queues().is_empty());
    }
}
