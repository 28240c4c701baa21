//! Outbox relay through a proxy the test cuts: rows written during the outage are published after it.

use std::collections::HashSet;

use mercato_testkit::{TcpProxy, env};
use tokio_util::sync::CancellationToken;

use crate::support::{
    Fixture, drain_event_ids, eventually, fast_relay_config, unpublished_rows, write_event,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_while_the_broker_is_unreachable_are_published_after_it_returns() {
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
    let upstream = env::authority(fixture.broker.url()).expect("broker url has host:port");
    let proxy = TcpProxy::start(upstream).await.expect("proxy");
    let proxied_url = env::with_authority(fixture.broker.url(), &proxy.addr().to_string())
        .expect("rewritable broker url");

    let cancel = CancellationToken::new();
    let relay = fixture.spawn_relay(fixture.relay_pool().await, &proxied_url, "relay", &cancel);
    let pool = fixture.db.pool().clone();
    let mut committed = HashSet::new();

    // Writers run continuously; the cut lands while they are writing and the
    // relay is publishing.
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..200 {
                ids.push(write_event(&pool, true).await);
            }
            ids
        })
    };
    eventually("the relay publishes through the proxy", || {
        let pool = pool.clone();
        async move {
            let published: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                    .fetch_one(&pool)
                    .await
                    .expect("count published");
            published >= 20
        }
    })
    .await;
    proxy.cut().await;

    // Rows written during the outage cannot be published.
    for _ in 0..50 {
        committed.insert(write_event(&pool, true).await);
    }
    committed.extend(writer.await.expect("writer task"));
    assert!(
        unpublished_rows(&pool).await >= 50,
        "rows written during the outage must wait for the broker"
    );

    proxy.restore();
    for _ in 0..50 {
        committed.insert(write_event(&pool, true).await);
    }
    eventually("every row is published after the broker returns", || {
        let pool = pool.clone();
        async move { unpublished_rows(&pool).await == 0 }
    })
    .await;
    cancel.cancel();
    relay.await.expect("relay task");
    assert!(
        proxy.connections_accepted() >= 2,
        "the relay reconnected after the cut"
    );

    let seen = drain_event_ids(&admin, &sink).await;
    let published: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(committed.len(), 300);
    assert_eq!(published, committed, "every committed row was published");
    // A row is published again only when its confirm was lost with the
    // connection: at most the one batch in flight at the cut. Consumers'
    // inboxes absorb such duplicates; rows already marked published are
    // never sent again.
    let duplicates: usize = seen.values().map(|count| count - 1).sum();
    assert!(
        duplicates <= fast_relay_config().batch_size as usize,
        "{duplicates} duplicates exceed the one batch that can be in flight at a cut"
    );
}
