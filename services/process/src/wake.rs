//! Waking background workers: a `LISTEN` on a channel that writers `pg_notify` in the
//! transaction that makes work (so the wake-up arrives after the commit, on every replica), with
//! a periodic sweep as the fallback for anything missed while no connection listened.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

/// Waits for the next reason to look for work.
#[derive(Debug)]
pub struct Wakeup {
    pool: PgPool,
    channel: &'static str,
    interval: Duration,
    listener: Option<PgListener>,
}

impl Wakeup {
    /// Wakes on `pg_notify(channel)` or every `interval`.
    pub fn new(pool: PgPool, channel: &'static str, interval: Duration) -> Self {
        Self {
            pool,
            channel,
            interval,
            listener: None,
        }
    }

    async fn connect(&mut self) {
        if self.listener.is_some() {
            return;
        }
        match PgListener::connect_with(&self.pool).await {
            Ok(mut listener) => match listener.listen(self.channel).await {
                Ok(()) => self.listener = Some(listener),
                Err(error) => tracing::warn!(%error, channel = self.channel, "listen failed"),
            },
            Err(error) => tracing::warn!(%error, channel = self.channel, "listener connect failed"),
        }
    }

    /// Returns `true` when it is time to look for work, `false` once `cancel` fired.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        self.connect().await;
        let listener = &mut self.listener;
        let notified = async {
            match listener.as_mut() {
                Some(l) => l.recv().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let failed = tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(self.interval) => false,
            ok = notified => !ok,
        };
        if failed {
            // The connection failed: reconnect on the next wait; sweep now meanwhile.
            self.listener = None;
        }
        true
    }
}

/// Queues a wake-up of `channel`'s workers for when the current transaction commits.
pub async fn notify(conn: &mut sqlx::PgConnection, channel: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(conn)
        .await
        .map(|_| ())
}
