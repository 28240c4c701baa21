//! Live order changes for `WatchOrder`: one PostgreSQL `LISTEN order_changed` connection per
//! process fans the committed changes out over a broadcast channel, and each watch stream
//! re-reads its order whenever it hears of it.
//!
//! Nothing is missed: a stream sends the current order first, then re-reads on every
//! notification for its id, on a lagged receiver, after the listener reconnects (a "resync"
//! that every stream treats as a change), and at least every heartbeat interval.

use std::convert::Infallible;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::order::store::CHANNEL;

/// What watchers hear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This order changed.
    Order(Uuid),
    /// Changes may have been missed (the listener reconnected): re-read.
    Resync,
}

/// The fan-out of order changes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Watch {
    sender: broadcast::Sender<Change>,
    stopped: CancellationToken,
}

impl Default for Watch {
    fn default() -> Self {
        Self::new()
    }
}

impl Watch {
    /// A fan-out nobody feeds yet (see [`Watch::listen`]).
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1_024);
        Self {
            sender,
            stopped: CancellationToken::new(),
        }
    }

    /// Cancelled when the listener stops (the service shuts down): streams then end.
    pub fn stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// One listening connection, until it fails.
    async fn session(&self, pool: &PgPool) -> Result<Infallible, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        // Whatever happened while no one listened is re-read.
        let _ = self.sender.send(Change::Resync);
        loop {
            let notification = listener.recv().await?;
            if let Ok(id) = Uuid::parse_str(notification.payload()) {
                let _ = self.sender.send(Change::Order(id));
            }
        }
    }

    /// Listens on `pool`'s database until `token` is cancelled, reconnecting with backoff.
    pub async fn listen(self, pool: PgPool, token: CancellationToken) {
        let _stop = self.stopped.clone().drop_guard();
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                result = self.session(&pool) => {
                    let Err(error) = result;
                    tracing::warn!(%error, "order change listener failed; reconnecting");
                }
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
