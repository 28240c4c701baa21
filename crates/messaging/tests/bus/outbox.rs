//! Outbox relay: concurrent writers, two relays, rolled-back rows never published.

use std::collections::HashSet;

use futures::future::join_all;
use mercato_messaging::{OutboxRelay, Publisher, RelayConfig, inbox, outbox};
use tokio_util::sync::CancellationToken;

use crate::support::{
    Fixture, drain_event_ids, eventually, ready_messages, unpublished_rows, write_event,
};

const WRITERS: usize = 20;
const TRANSACTIONS_PER_WRITER: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_event_is_published_exactly_once_by_two_relays() {
    let fixture = Fixture::new().await;
    let admin = fixture
        .broker
        .connect()
        .await
        .expect("broker connection")
        .create_channel()
        .await
        .expect("channel");
    let sink = fixture.sink(&admin).await;

    let cancel = CancellationToken::new();
    let relays = [
        fixture.spawn_relay(
            fixture.relay_pool().await,
            fixture.broker.url(),
            "relay-a",
            &cancel,
        ),
        fixture.spawn_relay(
            fixture.relay_pool().await,
            fixture.broker.url(),
            "relay-b",
            &cancel,
        ),
    ];

    // 1,200 transactions from 20 concurrent writers; every sixth rolls back,
    // leaving exactly 1,000 committed events.
    let writers = (0..WRITERS).map(|writer| {
        let pool = fixture.db.pool().clone();
        tokio::spawn(async move {
            let mut committed = Vec::new();
            let mut rolled_back = Vec::new();
            for n in 0..TRANSACTIONS_PER_WRITER {
                let commit = (writer * TRANSACTIONS_PER_WRITER + n) % 6 != 5;
                let id = write_event(&pool, commit).await;
                if commit {
                    committed.push(id);
                } else {
                    rolled_back.push(id);
                }
            }
            (committed, rolled_back)
        })
    });
    let mut committed = HashSet::new();
    let mut rolled_back = HashSet::new();
    for result in join_all(writers).await {
        let (c, r) = result.expect("writer task");
        committed.extend(c);
        rolled_back.extend(r);
    }
    assert_eq!(committed.len(), 1_000);
    assert_eq!(rolled_back.len(), 200);

    let pool = fixture.db.pool().clone();
    eventually("every outbox row is published", || {
        let pool = pool.clone();
        async move { unpublished_rows(&pool).await == 0 }
    })
    .await;
    cancel.cancel();
    for relay in relays {
        relay.await.expect("relay task");
    }

    // Confirmed publishes are in the queue once the relays have stopped, so
    // the count is final: any duplicate would show here.
    assert_eq!(
        ready_messages(&admin, &sink).await,
        1_000,
        "one message per committed event"
    );
    let seen = drain_event_ids(&admin, &sink).await;
    let published: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(
        published, committed,
        "exactly the committed events were published"
    );
    assert!(
        seen.values().all(|&count| count == 1),
        "no event was published twice"
    );
    assert!(
        published.is_disjoint(&rolled_back),
        "rolled-back rows were published"
    );

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(fixture.db.pool())
        .await
        .expect("count outbox rows");
    assert_eq!(stored, 1_000, "rolled-back transactions left no rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_row_backs_off_without_blocking_the_others() {
    let fixture = Fixture::new().await;
    let admin = fixture
        .broker
        .connect()
        .await
        .expect("broker connection")
        .create_channel()
        .await
        .expect("channel");
    // The sink only takes `test.*`, so `other.thing` matches no queue.
    let sink = fixture.sink(&admin).await;
    admin
        .queue_unbind(
            sink.as_str().into(),
            fixture.namespace.events_exchange().as_str().into(),
            "#".into(),
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("unbind catch-all");
    admin
        .queue_bind(
            sink.as_str().into(),
            fixture.namespace.events_exchange().as_str().into(),
            "test.*".into(),
            lapin::options::QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("bind test events");

    let unroutable = crate::support::event("other.thing");
    let routable = crate::support::event("test.created");
    let mut tx = fixture.db.pool().begin().await.expect("begin");
    outbox::enqueue(&mut tx, &unroutable)
        .await
        .expect("enqueue");
    outbox::enqueue(&mut tx, &routable).await.expect("enqueue");
    tx.commit().await.expect("commit");

    let relay = OutboxRelay::new(
        fixture.db.pool().clone(),
        Publisher::new(fixture.connector("relay"), fixture.namespace.clone()),
        crate::support::fast_relay_config(),
    );
    let outcome = relay
        .publish_batch()
        .await
        .expect("a batch against a healthy broker");
    assert_eq!(
        (outcome.claimed, outcome.published, outcome.refused),
        (2, 1, 1)
    );

    let (attempts, last_error, published): (i32, Option<String>, bool) = sqlx::query_as(
        "SELECT attempts, last_error, published_at IS NOT NULL FROM outbox WHERE event_id = $1::uuid",
    )
    .bind(&unroutable.event_id)
    .fetch_one(fixture.db.pool())
    .await
    .expect("the unroutable row");
    assert_eq!(attempts, 1);
    assert!(!published);
    assert!(
        last_error
            .as_deref()
            .is_some_and(|e| e.contains("unroutable")),
        "last error names the cause: {last_error:?}"
    );
    let seen = drain_event_ids(&admin, &sink).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), [&routable.event_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_no_queue_is_bound_for_is_recorded_as_published() {
    let fixture = Fixture::new().await;
    // No queue is bound at all: every publish is unroutable.
    let announcement = crate::support::event("test.announced");
    let required = crate::support::event("test.required");
    let mut tx = fixture.db.pool().begin().await.expect("begin");
    outbox::enqueue(&mut tx, &announcement)
        .await
        .expect("enqueue");
    outbox::enqueue(&mut tx, &required).await.expect("enqueue");
    tx.commit().await.expect("commit");

    let relay = OutboxRelay::new(
        fixture.db.pool().clone(),
        Publisher::new(fixture.connector("relay"), fixture.namespace.clone()),
        RelayConfig {
            announcements: vec!["test.announced".to_owned()],
            ..crate::support::fast_relay_config()
        },
    );
    let outcome = relay
        .publish_batch()
        .await
        .expect("a batch against a healthy broker");
    assert_eq!(
        (outcome.claimed, outcome.published, outcome.refused),
        (2, 1, 1),
        "the announcement is done, the required event waits for its queue"
    );
    let pool = fixture.db.pool().clone();
    let state = |event_id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (bool, i32)>(
                "SELECT published_at IS NOT NULL, attempts FROM outbox WHERE event_id = $1::uuid",
            )
            .bind(event_id)
            .fetch_one(&pool)
            .await
            .expect("the row")
        }
    };
    assert_eq!(state(announcement.event_id.clone()).await, (true, 0));
    assert_eq!(state(required.event_id.clone()).await, (false, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_rows_older_than_the_retention_are_pruned() {
    let fixture = Fixture::new().await;
    let pool = fixture.db.pool();
    for _ in 0..3 {
        write_event(pool, true).await;
    }
    sqlx::query(
        "UPDATE outbox SET published_at = now() - interval '2 days' \
         WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 2)",
    )
    .execute(pool)
    .await
    .expect("age two rows");
    let deleted = outbox::prune(pool, std::time::Duration::from_secs(24 * 3600))
        .await
        .expect("prune");
    assert_eq!(deleted, 2);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(left, 1, "the unpublished row is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_records_are_unique_per_consumer_and_pruned_after_the_retention() {
    let fixture = Fixture::new().await;
    let pool = fixture.db.pool();
    let mut conn = pool.acquire().await.expect("connection");
    assert!(
        inbox::record(&mut conn, "svc.a", "m-1")
            .await
            .expect("record")
    );
    assert!(
        !inbox::record(&mut conn, "svc.a", "m-1")
            .await
            .expect("record"),
        "a duplicate is reported"
    );
    assert!(
        inbox::record(&mut conn, "svc.b", "m-1")
            .await
            .expect("record"),
        "each consumer has its own inbox"
    );
    sqlx::query(
        "UPDATE inbox SET processed_at = now() - interval '30 days' WHERE consumer = 'svc.a'",
    )
    .execute(&mut *conn)
    .await
    .expect("age a record");
    let pruned = inbox::prune(pool, std::time::Duration::from_secs(7 * 24 * 3600))
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    assert!(
        !inbox::contains(&mut conn, "svc.a", "m-1")
            .await
            .expect("lookup")
    );
    assert!(
        inbox::contains(&mut conn, "svc.b", "m-1")
            .await
            .expect("lookup")
    );
}
