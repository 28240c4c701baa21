//! The outbox relay across a restart of the real broker (disturbs every broker user: run alone).

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;

use crate::support::{
    Fixture, drain_event_ids, eventually, fast_relay_config, unpublished_rows, write_event,
};

/// Overrides how the broker is restarted (e.g. `docker compose restart rabbitmq`).
const RESTART_CMD_VAR: &str = "MERCATO_TEST_BROKER_RESTART_CMD";
const DEFAULT_RESTART_CMD: &str = "rabbitmqctl stop_app && rabbitmqctl start_app";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_relay_publishes_every_row_across_a_real_broker_restart() {
    let fixture = Fixture::new().await;
    let sink = {
        let connection = fixture.broker.connect().await.expect("broker connection");
        let channel = connection.create_channel().await.expect("channel");
        fixture.sink(&channel).await
    };
    let cancel = CancellationToken::new();
    let relay = fixture.spawn_relay(
        fixture.relay_pool().await,
        fixture.broker.url(),
        "relay",
        &cancel,
    );
    let pool = fixture.db.pool().clone();

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
    eventually("the relay publishes before the restart", || {
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

    let command = std::env::var(RESTART_CMD_VAR)
        .ok()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_RESTART_CMD.to_owned());
    let restart = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .output()
            .map(|output| {
                (
                    output.status,
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                )
            })
    });
    // Rows keep coming while the broker goes down and up.
    let mut committed = HashSet::new();
    for _ in 0..50 {
        committed.insert(write_event(&pool, true).await);
    }
    let (status, stderr) = restart
        .await
        .expect("restart task")
        .expect("the broker restart command runs");
    assert!(
        status.success(),
        "broker restart failed ({status}): {stderr}"
    );
    for _ in 0..50 {
        committed.insert(write_event(&pool, true).await);
    }
    committed.extend(writer.await.expect("writer task"));

    eventually("every row is published after the restart", || {
        let pool = pool.clone();
        async move { unpublished_rows(&pool).await == 0 }
    })
    .await;
    cancel.cancel();
    relay.await.expect("relay task");

    let connection = fixture
        .broker
        .connect()
        .await
        .expect("broker connection after restart");
    let channel = connection.create_channel().await.expect("channel");
    let seen = drain_event_ids(&channel, &sink).await;
    let published: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(committed.len(), 300);
    assert_eq!(
        published, committed,
        "every committed row survived the restart"
    );
    let duplicates: usize = seen.values().map(|count| count - 1).sum();
    assert!(
        duplicates <= fast_relay_config().batch_size as usize,
        "{duplicates} duplicates exceed the one batch that can be in flight at the restart"
    );
}
