//! Consumer loop: retries with a persisted count, DLQ, inbox deduplication, shutdown, broker-side delivery limit.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use lapin::{
    BasicProperties, Channel,
    options::{BasicGetOptions, BasicPublishOptions},
};
use mercato_messaging::{
    Backoff, Consumer, ConsumerConfig, ConsumerTopology, DeadLetterReason, Handler, HandlerError,
    IncomingEvent, Outcome, OutcomeKind, Publisher, dead_letters, dead_letters::DeadLetter,
};
use mercato_testkit::{TcpProxy, env};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::support::{Fixture, PATIENCE, connector_to, event, eventually, ready_messages};

const GOODS: usize = 20;

/// What the test handler saw, shared with the test body.
#[derive(Default)]
struct Probe {
    /// Attempts seen per event id, in order.
    calls: Mutex<HashMap<String, Vec<u32>>>,
    started: watch::Sender<usize>,
    goods_handled: watch::Sender<usize>,
    flowed_during_retry: Mutex<Option<bool>>,
    proxy: Mutex<Option<Arc<TcpProxy>>>,
    gate: Notify,
}

impl Probe {
    fn attempts(&self, event_id: &str) -> Vec<u32> {
        self.calls
            .lock()
            .expect("probe lock")
            .get(event_id)
            .cloned()
            .unwrap_or_default()
    }
}

/// Behaves according to the event type, so one consumer covers every scenario.
struct ScriptedHandler(Arc<Probe>);

impl Handler for ScriptedHandler {
    async fn handle(
        &self,
        event: &IncomingEvent,
        conn: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let probe = &self.0;
        probe
            .calls
            .lock()
            .expect("probe lock")
            .entry(event.envelope.event_id.clone())
            .or_default()
            .push(event.attempt);
        probe.started.send_modify(|n| *n += 1);
        match event.envelope.event_type.as_str() {
            "test.poison" => {
                if event.attempt == 2 {
                    // Between attempts 1 and 2 the message sat in a retry
                    // queue; every other message must have been handled meanwhile.
                    let mut goods = probe.goods_handled.subscribe();
                    let flowed = tokio::time::timeout(PATIENCE, goods.wait_for(|n| *n >= GOODS))
                        .await
                        .is_ok();
                    *probe.flowed_during_retry.lock().expect("probe lock") = Some(flowed);
                }
                Err(HandlerError::retryable(format!(
                    "boom on attempt {}",
                    event.attempt
                )))
            }
            "test.invalid" => Err(HandlerError::permanent("the payload violates an invariant")),
            "test.fixed-later" => {
                // Fails until an operator has fixed the cause and replayed it.
                if probe.attempts(&event.envelope.event_id).len() == 1 {
                    Err(HandlerError::permanent("missing reference data"))
                } else {
                    record_effect(conn, event).await
                }
            }
            "test.slow" => {
                probe.gate.notified().await;
                record_effect(conn, event).await
            }
            "test.stuck" => std::future::pending().await,
            "test.cut" => {
                record_effect(conn, event).await?;
                // The connection dies after the effect but before the ack.
                let proxy = probe.proxy.lock().expect("probe lock").clone();
                if let Some(proxy) = proxy {
                    proxy.cut().await;
                }
                Ok(())
            }
            _ => {
                record_effect(conn, event).await?;
                probe.goods_handled.send_modify(|n| *n += 1);
                Ok(())
            }
        }
    }
}

async fn record_effect(conn: &mut PgConnection, event: &IncomingEvent) -> Result<(), HandlerError> {
    sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
        .bind(&event.envelope.event_id)
        .execute(conn)
        .await?;
    Ok(())
}

async fn effects(pool: &PgPool, event_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM effects WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(pool)
        .await
        .expect("count effects")
}

struct Setup {
    /// Stops the consumer; cancelled on drop too, so that a failing test's
    /// consumer stops before the broker guard deletes its queues (a running
    /// consumer would declare them again).
    cancel: CancellationToken,
    fixture: Fixture,
    admin: Channel,
    topology: ConsumerTopology,
    probe: Arc<Probe>,
    publisher: Publisher,
}

async fn setup(consumer: &str) -> Setup {
    let fixture = Fixture::new().await;
    sqlx::query("CREATE TABLE effects (id BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL)")
        .execute(fixture.db.pool())
        .await
        .expect("create the effects table");
    let topology = ConsumerTopology::new(&fixture.namespace, "svc", consumer, ["test.#"])
        .expect("valid names")
        .with_max_attempts(3)
        .with_retry_backoff(Backoff::new(
            Duration::from_millis(30),
            Duration::from_millis(200),
        ));
    fixture.track(&topology);
    let admin = fixture
        .broker
        .connect()
        .await
        .expect("broker connection")
        .create_channel()
        .await
        .expect("channel");
    // Declared up front so nothing published before the consumer starts is unroutable.
    topology
        .declare(&admin)
        .await
        .expect("declare the consumer topology");
    let publisher = Publisher::new(fixture.connector("publisher"), fixture.namespace.clone());
    Setup {
        cancel: CancellationToken::new(),
        fixture,
        admin,
        topology,
        probe: Arc::default(),
        publisher,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Setup {
    fn start(
        &self,
        amqp_url: &str,
        config: ConsumerConfig,
    ) -> (broadcast::Receiver<Outcome>, tokio::task::JoinHandle<()>) {
        let consumer = Consumer::new(
            connector_to(amqp_url, "consumer"),
            self.topology.clone(),
            self.fixture.db.pool().clone(),
            ScriptedHandler(Arc::clone(&self.probe)),
            config,
        );
        let outcomes = consumer.subscribe();
        (outcomes, tokio::spawn(consumer.run(self.cancel.clone())))
    }
}

fn config() -> ConsumerConfig {
    ConsumerConfig {
        prefetch: 8,
        shutdown_grace: Duration::from_secs(5),
        confirm_timeout: Duration::from_secs(5),
    }
}

/// The next outcome for `message_id` matching `wanted`, failing after [`PATIENCE`].
async fn outcome_for(
    outcomes: &mut broadcast::Receiver<Outcome>,
    message_id: &str,
    wanted: impl Fn(&OutcomeKind) -> bool,
) -> Outcome {
    let wait = async {
        loop {
            match outcomes.recv().await {
                Ok(outcome) if outcome.message_id == message_id && wanted(&outcome.kind) => {
                    return outcome;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("consumer stopped early"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("no matching outcome for {message_id} within {PATIENCE:?}"))
}

/// `step` awaited for at most [`PATIENCE`]; past it the test fails naming the step.
async fn bounded<T>(step: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{step} took longer than {PATIENCE:?}"))
}

async fn dead_letters(admin: &Channel, topology: &ConsumerTopology) -> Vec<DeadLetter> {
    let mut found = Vec::new();
    while let Some(message) = admin
        .basic_get(
            topology.dead_letter_queue().as_str().into(),
            BasicGetOptions::default(),
        )
        .await
        .expect("basic.get on the dlq")
    {
        found.push(DeadLetter::from_delivery(&message.delivery));
        message
            .delivery
            .acker
            .ack(Default::default())
            .await
            .expect("ack");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_is_retried_with_a_persisted_count_then_dead_lettered_while_others_flow()
{
    let setup = setup("flaky").await;
    let (mut outcomes, consumer) = setup.start(setup.fixture.broker.url(), config());

    let poison = event("test.poison");
    setup
        .publisher
        .publish(&poison)
        .await
        .expect("publish poison");
    let mut goods = Vec::new();
    for _ in 0..GOODS {
        let good = event("test.good");
        setup.publisher.publish(&good).await.expect("publish good");
        goods.push(good.event_id);
    }

    let first_retry = outcome_for(&mut outcomes, &poison.event_id, |k| {
        matches!(k, OutcomeKind::RetryScheduled { .. })
    })
    .await;
    assert_eq!(
        first_retry.kind,
        OutcomeKind::RetryScheduled {
            next_attempt: 2,
            delay: Duration::from_millis(30)
        }
    );
    let dead = outcome_for(&mut outcomes, &poison.event_id, |k| {
        matches!(k, OutcomeKind::DeadLettered(_))
    })
    .await;
    assert_eq!(
        dead.kind,
        OutcomeKind::DeadLettered(DeadLetterReason::RetriesExhausted)
    );
    assert_eq!(dead.attempt, 3);

    assert_eq!(
        setup.probe.attempts(&poison.event_id),
        [1, 2, 3],
        "one call per attempt, counted in the message"
    );
    assert_eq!(
        *setup.probe.flowed_during_retry.lock().expect("probe lock"),
        Some(true),
        "the other messages were handled while the failing one waited to be retried"
    );
    for good in &goods {
        assert_eq!(effects(setup.fixture.db.pool(), good).await, 1);
    }
    assert_eq!(
        effects(setup.fixture.db.pool(), &poison.event_id).await,
        0,
        "failed attempts roll back"
    );

    let dlq = dead_letters(&setup.admin, &setup.topology).await;
    assert_eq!(dlq.len(), 1);
    let letter = &dlq[0];
    assert_eq!(letter.message_id, poison.event_id);
    assert_eq!(letter.event_type, "test.poison");
    assert_eq!(
        letter.consumer, setup.topology.queue,
        "names the consumer that gave up"
    );
    assert_eq!(letter.reason, "retries_exhausted");
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.last_error, "boom on attempt 3");

    setup.cancel.cancel();
    consumer.await.expect("consumer task");
    assert_eq!(ready_messages(&setup.admin, &setup.topology.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_and_undecodable_bodies_go_straight_to_the_dead_letter_queue() {
    let setup = setup("strict").await;
    let (mut outcomes, consumer) = setup.start(setup.fixture.broker.url(), config());

    let invalid = event("test.invalid");
    setup.publisher.publish(&invalid).await.expect("publish");
    setup
        .admin
        .basic_publish(
            setup.fixture.namespace.events_exchange().as_str().into(),
            "test.garbage".into(),
            BasicPublishOptions::default(),
            b"not protobuf",
            BasicProperties::default().with_message_id("garbage-1".into()),
        )
        .await
        .expect("publish garbage");

    // The two may settle in either order; collect both.
    let mut settled = HashMap::new();
    tokio::time::timeout(PATIENCE, async {
        while settled.len() < 2 {
            if let Ok(outcome) = outcomes.recv().await {
                settled.insert(outcome.message_id.clone(), outcome.kind);
            }
        }
    })
    .await
    .expect("both messages settle in time");
    assert_eq!(
        settled.get(&invalid.event_id),
        Some(&OutcomeKind::DeadLettered(DeadLetterReason::Permanent))
    );
    assert_eq!(
        settled.get("garbage-1"),
        Some(&OutcomeKind::DeadLettered(DeadLetterReason::Undecodable))
    );
    assert_eq!(
        setup.probe.attempts(&invalid.event_id),
        [1],
        "no retry for a permanent error"
    );

    let mut dlq = dead_letters(&setup.admin, &setup.topology).await;
    dlq.sort_by(|a, b| a.reason.cmp(&b.reason));
    let reasons: Vec<_> = dlq
        .iter()
        .map(|l| (l.reason.as_str(), l.attempts))
        .collect();
    assert_eq!(reasons, [("permanent_failure", 1), ("undecodable", 1)]);
    assert!(dlq[1].last_error.contains("undecodable event envelope"));

    setup.cancel.cancel();
    consumer.await.expect("consumer task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_ack_was_lost_is_redelivered_and_deduplicated_by_the_inbox() {
    let setup = setup("dedup").await;
    let upstream = env::authority(setup.fixture.broker.url()).expect("broker url has host:port");
    let proxy = Arc::new(TcpProxy::start(upstream).await.expect("proxy"));
    *setup.probe.proxy.lock().expect("probe lock") = Some(Arc::clone(&proxy));
    let proxied_url = env::with_authority(setup.fixture.broker.url(), &proxy.addr().to_string())
        .expect("rewritable broker url");
    let (mut outcomes, consumer) = setup.start(&proxied_url, config());

    let message = event("test.cut");
    setup.publisher.publish(&message).await.expect("publish");
    // The handler commits its effect but the connection is cut before the ack.
    let first = outcome_for(&mut outcomes, &message.event_id, |_| true).await;
    assert_eq!(first.kind, OutcomeKind::Processed);
    *setup.probe.proxy.lock().expect("probe lock") = None;
    proxy.restore();

    let second = outcome_for(&mut outcomes, &message.event_id, |_| true).await;
    assert_eq!(
        second.kind,
        OutcomeKind::Duplicate,
        "the redelivery is recognised by the inbox"
    );
    assert_eq!(
        setup.probe.attempts(&message.event_id),
        [1],
        "the handler ran once"
    );
    assert_eq!(
        effects(setup.fixture.db.pool(), &message.event_id).await,
        1,
        "the effect was applied once"
    );
    let mut conn = setup.fixture.db.pool().acquire().await.expect("connection");
    assert!(
        mercato_messaging::inbox::contains(&mut conn, &setup.topology.queue, &message.event_id)
            .await
            .expect("inbox lookup")
    );

    setup.cancel.cancel();
    consumer.await.expect("consumer task");
    assert_eq!(
        ready_messages(&setup.admin, &setup.topology.queue).await,
        0,
        "the redelivery was acked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_handlers_finish_and_requeues_the_rest() {
    let setup = setup("draining").await;
    let config = ConsumerConfig {
        shutdown_grace: Duration::from_millis(500),
        ..config()
    };
    let (_outcomes, consumer) = setup.start(setup.fixture.broker.url(), config);

    let slow = event("test.slow");
    let stuck = event("test.stuck");
    setup.publisher.publish(&slow).await.expect("publish");
    setup.publisher.publish(&stuck).await.expect("publish");
    let mut started = setup.probe.started.subscribe();
    tokio::time::timeout(PATIENCE, started.wait_for(|n| *n >= 2))
        .await
        .expect("both handlers start")
        .expect("probe alive");

    setup.cancel.cancel();
    // The slow handler may finish during the grace period; the stuck one cannot.
    setup.probe.gate.notify_one();
    consumer.await.expect("consumer task");

    assert_eq!(
        effects(setup.fixture.db.pool(), &slow.event_id).await,
        1,
        "the running handler finished"
    );
    assert_eq!(effects(setup.fixture.db.pool(), &stuck.event_id).await, 0);
    // The broker applies the requeue asynchronously after the channel closes.
    eventually("the unfinished message goes back to the queue", || async {
        ready_messages(&setup.admin, &setup.topology.queue).await == 1
    })
    .await;
    let message = setup
        .admin
        .basic_get(
            setup.topology.queue.as_str().into(),
            BasicGetOptions::default(),
        )
        .await
        .expect("basic.get")
        .expect("the requeued message");
    assert_eq!(
        message
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string()),
        Some(stuck.event_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_killing_its_consumer_is_dead_lettered_by_the_delivery_limit() {
    let mut setup = setup("crashy").await;
    setup.topology = setup.topology.clone().with_delivery_limit(2);
    // A fresh queue name: the limit is a declaration argument.
    setup.topology.queue = format!("{}-limited", setup.topology.queue);
    setup.fixture.track(&setup.topology);
    setup.topology.declare(&setup.admin).await.expect("declare");
    let message = event("test.good");
    setup.publisher.publish(&message).await.expect("publish");

    // Each round takes the message and dies without settling it, as a SIGKILLed consumer
    // would: its TCP connection is cut under it (no AMQP close, no header can count this).
    // Every broker step is bounded, so a hang names its step instead of running out the clock.
    let upstream = env::authority(setup.fixture.broker.url()).expect("broker url has host:port");
    let proxy = TcpProxy::start(upstream).await.expect("proxy");
    let proxied_url = env::with_authority(setup.fixture.broker.url(), &proxy.addr().to_string())
        .expect("rewritable broker url");
    // Until the message shows up in the dead-letter queue: take it and crash, or, when the
    // queue is empty (the broker may not have taken the last crash's message back yet), look
    // in the dead-letter queue.
    let mut rounds = 0;
    let mut dlq = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while dlq.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "neither delivered again nor dead-lettered within {PATIENCE:?} ({rounds} rounds)"
        );
        let connection = bounded(
            "connect",
            lapin::Connection::connect(&proxied_url, lapin::ConnectionProperties::default()),
        )
        .await
        .expect("connection");
        let channel = bounded("channel", connection.create_channel())
            .await
            .expect("channel");
        let got = bounded(
            "basic.get",
            channel.basic_get(
                setup.topology.queue.as_str().into(),
                BasicGetOptions::default(),
            ),
        )
        .await
        .expect("basic.get");
        proxy.cut().await;
        proxy.restore();
        drop((channel, connection));
        if got.is_some() {
            rounds += 1;
            assert!(rounds <= 10, "the delivery limit never took effect");
        } else {
            dlq = bounded("the dlq", dead_letters(&setup.admin, &setup.topology)).await;
            if dlq.is_empty() {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
    assert_eq!(dlq.len(), 1, "the message reached the dlq");
    assert_eq!(dlq[0].message_id, message.event_id);
    assert_eq!(dlq[0].reason, "delivery_limit");
    assert!(
        rounds > 2,
        "delivered up to the limit first ({rounds} rounds)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_returns_to_its_consumer_with_a_fresh_attempt_count() {
    let setup = setup("replayed").await;
    let (mut outcomes, consumer) = setup.start(setup.fixture.broker.url(), config());

    let message = event("test.fixed-later");
    setup.publisher.publish(&message).await.expect("publish");
    let dead = outcome_for(&mut outcomes, &message.event_id, |_| true).await;
    assert_eq!(
        dead.kind,
        OutcomeKind::DeadLettered(DeadLetterReason::Permanent)
    );

    let replayed = dead_letters::replay(&setup.admin, &setup.topology, 10)
        .await
        .expect("replay");
    assert_eq!(replayed, 1);
    let processed = outcome_for(&mut outcomes, &message.event_id, |_| true).await;
    assert_eq!(processed.kind, OutcomeKind::Processed);
    assert_eq!(processed.attempt, 1, "a replay starts counting afresh");
    assert_eq!(effects(setup.fixture.db.pool(), &message.event_id).await, 1);
    assert_eq!(
        ready_messages(&setup.admin, &setup.topology.dead_letter_queue()).await,
        0
    );

    setup.cancel.cancel();
    consumer.await.expect("consumer task");
}
