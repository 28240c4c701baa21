//! `dlq list` and `dlq replay` on a real consumer: a test consumer (on a broker namespace and a
//! database of its own) dead-letters two messages whose reference data is "missing"; the CLI lists
//! them without removing them, replays one by id and then the rest, and each ends processed on
//! its second attempt.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mercato_cli::dlq::{self, DlqTarget, Selection};
use mercato_cli::{BrokerArgs, CliError, Endpoints, Progress, execute};
use mercato_messaging::envelope::new_envelope;
use mercato_messaging::{
    Backoff, ConnectionConfig, Connector, Consumer, ConsumerConfig, ConsumerTopology,
    DeadLetterReason, Handler, HandlerError, IncomingEvent, Namespace, Outcome, OutcomeKind,
    Publisher,
};
use mercato_testkit::{TestBroker, TestDatabase};
use sqlx::PgConnection;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::support::{PATIENCE, command_line};

const SERVICE: &str = "clitest";
const CONSUMER: &str = "fixable";

/// Fails each event permanently the first time it sees it, succeeds afterwards: an operator
/// fixed the cause and replays.
#[derive(Default)]
struct FixedLater(Mutex<HashMap<String, u32>>);

impl Handler for FixedLater {
    async fn handle(
        &self,
        event: &IncomingEvent,
        _: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let seen = {
            let mut calls = self.0.lock().expect("calls lock");
            let seen = calls.entry(event.envelope.event_id.clone()).or_default();
            *seen += 1;
            *seen
        };
        if seen == 1 {
            Err(HandlerError::permanent("missing reference data"))
        } else {
            Ok(())
        }
    }
}

async fn outcome_for(outcomes: &mut broadcast::Receiver<Outcome>, message_id: &str) -> Outcome {
    let wait = async {
        loop {
            match outcomes.recv().await {
                Ok(outcome) if outcome.message_id == message_id => return outcome,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the consumer stopped"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("no outcome for {message_id}"))
}

fn connector(url: &str, name: &str) -> Connector {
    Connector::new(
        ConnectionConfig::new(url, name).with_reconnect_backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(500),
        )),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_then_replayed_one_by_id_and_then_all_and_end_processed() {
    let db = TestDatabase::new(&[&mercato_messaging::MIGRATOR])
        .await
        .expect("a database with the inbox");
    let broker = TestBroker::new();
    let namespace = Namespace::new(broker.namespace()).expect("testkit namespaces are valid");
    broker.track_exchange(namespace.events_exchange());
    broker.track_exchange(namespace.dead_letter_exchange());
    let topology = ConsumerTopology::new(&namespace, SERVICE, CONSUMER, ["test.#"])
        .expect("valid names")
        .with_max_attempts(1);
    for queue in topology.queue_names() {
        broker.track_queue(queue);
    }
    let admin = broker
        .connect()
        .await
        .expect("broker connection")
        .create_channel()
        .await
        .expect("channel");
    topology
        .declare(&admin)
        .await
        .expect("declare the topology");

    let cancel = CancellationToken::new();
    let consumer = Consumer::new(
        connector(broker.url(), "consumer"),
        topology.clone(),
        db.pool().clone(),
        FixedLater::default(),
        ConsumerConfig {
            prefetch: 8,
            shutdown_grace: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(5),
        },
    );
    let mut outcomes = consumer.subscribe();
    let running = tokio::spawn(consumer.run(cancel.clone()));
    let publisher = Publisher::new(connector(broker.url(), "publisher"), namespace.clone());
    let first = new_envelope("test.fixable", "test", "a-1", 1, "cli-tests", None);
    let second = new_envelope("test.fixable", "test", "a-2", 1, "cli-tests", None);
    for envelope in [&first, &second] {
        publisher.publish(envelope).await.expect("publish");
        let outcome = outcome_for(&mut outcomes, &envelope.event_id).await;
        assert_eq!(
            outcome.kind,
            OutcomeKind::DeadLettered(DeadLetterReason::Permanent)
        );
    }

    let target = DlqTarget {
        service: SERVICE.to_owned(),
        consumer: CONSUMER.to_owned(),
        broker: BrokerArgs {
            amqp_url: broker.url().to_owned(),
            namespace: broker.namespace().to_owned(),
        },
    };
    let listing = dlq::list(&target, 100).await.expect("the dlq lists");
    assert_eq!(listing.queue, topology.dead_letter_queue());
    assert_eq!(listing.total, 2);
    let ids: Vec<&str> = listing
        .messages
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    assert_eq!(ids, [first.event_id.as_str(), second.event_id.as_str()]);
    for message in &listing.messages {
        assert_eq!(message.event_type, "test.fixable");
        assert_eq!(message.consumer, topology.queue);
        assert_eq!(message.reason, DeadLetterReason::Permanent.as_str());
        assert_eq!(message.attempts, 1);
        assert!(
            message.last_error.contains("missing reference data"),
            "{message:?}"
        );
    }
    assert!(listing.to_table().contains(&first.event_id));
    let again = dlq::list(&target, 1).await.expect("the dlq lists again");
    assert_eq!(again.total, 2, "listing removes nothing");
    assert_eq!(again.messages.len(), 1, "the limit applies");

    // The command line: the second message by id, with the broker flags.
    let unused = "http://127.0.0.1:9";
    let endpoints = Endpoints::new(unused, unused, unused, unused, unused);
    let replay_line = |selection: &[&str]| {
        let mut args = vec![
            "dlq",
            "replay",
            "--service",
            SERVICE,
            "--consumer",
            CONSUMER,
            "--amqp-url",
            broker.url(),
            "--namespace",
            broker.namespace(),
            "--json",
        ];
        args.extend_from_slice(selection);
        command_line(&endpoints, &args)
    };
    let out = execute(
        replay_line(&["--message-id", &second.event_id]),
        &mut Progress::quiet(),
    )
    .await
    .expect("the second message replays");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["replayed"], 1);
    assert_eq!(report["remaining"], 1);
    assert_eq!(report["work_queue"], topology.queue.as_str());
    let processed = outcome_for(&mut outcomes, &second.event_id).await;
    assert_eq!(processed.kind, OutcomeKind::Processed);
    assert_eq!(processed.attempt, 1, "a replay counts afresh");
    let left = dlq::list(&target, 100).await.expect("lists");
    let ids: Vec<&str> = left
        .messages
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [first.event_id.as_str()],
        "only the chosen message moved"
    );

    // An id that is not there fails and leaves the DLQ as it was.
    let missing = execute(
        replay_line(&["--message-id", "not-a-dead-letter"]),
        &mut Progress::quiet(),
    )
    .await
    .expect_err("an unknown id");
    assert!(matches!(missing, CliError::Failed(_)), "{missing:?}");
    assert_eq!(missing.exit_code(), 1);
    assert!(missing.to_string().contains("not-a-dead-letter"));
    assert_eq!(dlq::list(&target, 100).await.expect("lists").total, 1);

    // Everything else.
    let mut progress = Progress::quiet();
    let all = dlq::replay(&target, &Selection::All, &mut progress)
        .await
        .expect("the rest replays");
    assert_eq!(all.replayed, 1);
    assert_eq!(all.remaining, 0);
    assert!(
        progress
            .lines()
            .contains(&"replayed 1/1 messages".to_owned())
    );
    let processed = outcome_for(&mut outcomes, &first.event_id).await;
    assert_eq!(processed.kind, OutcomeKind::Processed);
    let empty = dlq::list(&target, 100).await.expect("lists");
    assert_eq!(empty.total, 0);
    assert!(empty.messages.is_empty());

    cancel.cancel();
    running.await.expect("the consumer stops");
}
