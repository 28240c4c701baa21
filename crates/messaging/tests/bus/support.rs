//! Shared fixtures: a migrated database, a broker namespace, connectors and an event sink.

use std::{collections::HashMap, future::Future, time::Duration};

use lapin::{
    Channel,
    options::{BasicAckOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use mercato_messaging::{
    Backoff, ConnectionConfig, Connector, ConsumerTopology, EventEnvelope, MIGRATOR, Namespace,
    OutboxRelay, Publisher, RelayConfig, envelope::new_envelope, outbox,
};
use mercato_testkit::{TestBroker, TestDatabase};
use prost::Message as _;
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any awaited effect may take before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A migrated database and a broker namespace for one test.
pub(crate) struct Fixture {
    pub(crate) db: TestDatabase,
    pub(crate) broker: TestBroker,
    pub(crate) namespace: Namespace,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        let db = TestDatabase::new(&[&MIGRATOR])
            .await
            .expect("a fresh database with the outbox and inbox tables");
        let broker = TestBroker::new();
        let namespace = Namespace::new(broker.namespace()).expect("testkit namespaces are valid");
        broker.track_exchange(namespace.events_exchange());
        broker.track_exchange(namespace.dead_letter_exchange());
        Self {
            db,
            broker,
            namespace,
        }
    }

    /// A connector to the real broker (or `url`), with millisecond backoff so tests stay fast.
    pub(crate) fn connector(&self, name: &str) -> Connector {
        connector_to(self.broker.url(), name)
    }

    /// Registers every queue of `topology` for deletion at the end of the test.
    pub(crate) fn track(&self, topology: &ConsumerTopology) {
        for queue in topology.queue_names() {
            self.broker.track_queue(queue);
        }
    }

    /// A separate small pool, so relays never wait behind writers for connections.
    pub(crate) async fn relay_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .connect_with(self.db.connect_options().expect("test database options"))
            .await
            .expect("relay pool")
    }

    /// A durable classic queue bound to every event of the namespace, where
    /// tests count what was published.
    pub(crate) async fn sink(&self, channel: &Channel) -> String {
        let queue = self.broker.name("sink");
        self.broker.track_queue(queue.clone());
        mercato_messaging::topology::declare_exchanges(channel, &self.namespace)
            .await
            .expect("declare exchanges");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the sink queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                self.namespace.events_exchange().as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the sink queue");
        queue
    }

    /// Starts a relay with its own connection (through `amqp_url`).
    pub(crate) fn spawn_relay(
        &self,
        pool: PgPool,
        amqp_url: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> JoinHandle<()> {
        let publisher = Publisher::with_confirm_timeout(
            connector_to(amqp_url, name),
            self.namespace.clone(),
            Duration::from_secs(5),
        );
        let relay = OutboxRelay::new(pool, publisher, fast_relay_config());
        tokio::spawn(relay.run(cancel.clone()))
    }
}

pub(crate) fn connector_to(url: &str, name: &str) -> Connector {
    Connector::new(
        ConnectionConfig::new(url, name).with_reconnect_backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(500),
        )),
    )
}

pub(crate) fn fast_relay_config() -> RelayConfig {
    RelayConfig {
        batch_size: 50,
        poll_interval: Duration::from_millis(200),
        failure_backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(500)),
        row_backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(1)),
        ..RelayConfig::default()
    }
}

/// A test event of `event_type`.
pub(crate) fn event(event_type: &str) -> EventEnvelope {
    new_envelope(
        event_type,
        "test",
        "aggregate-1",
        1,
        "messaging-tests",
        None,
    )
}

/// Writes one event in its own transaction, committing or rolling back.
pub(crate) async fn write_event(pool: &PgPool, commit: bool) -> String {
    let envelope = event("test.created");
    let mut tx = pool.begin().await.expect("begin");
    outbox::enqueue(&mut tx, &envelope).await.expect("enqueue");
    if commit {
        tx.commit().await.expect("commit");
    } else {
        tx.rollback().await.expect("rollback");
    }
    envelope.event_id
}

/// Polls `condition` until it holds, failing with `what` after [`PATIENCE`].
pub(crate) async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) async fn unpublished_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .expect("count unpublished rows")
}

/// The number of ready messages in `queue`.
pub(crate) async fn ready_messages(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare")
        .message_count()
}

/// Takes every ready message from `queue`, returning how often each event id was seen.
pub(crate) async fn drain_event_ids(channel: &Channel, queue: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
    {
        let envelope =
            EventEnvelope::decode(message.delivery.data.as_slice()).expect("a valid envelope");
        *seen.entry(envelope.event_id).or_insert(0) += 1;
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    seen
}
