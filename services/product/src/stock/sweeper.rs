//! The expiry sweeper: releases PENDING reservations past their expiry, in batches, until
//! shutdown. Several replicas may run it at once: each batch claims its rows with
//! `FOR UPDATE SKIP LOCKED`, so two sweepers never expire the same reservation and never wait for
//! each other.

use tokio_util::sync::CancellationToken;

use super::StockApp;

/// Sweeps until `cancel` fires: a full batch is followed at once by the next one (a backlog is
/// drained quickly); a partial or failed one waits for the configured interval.
pub async fn run(app: StockApp, cancel: CancellationToken) {
    let settings = app.context().settings.stock.clone();
    let batch_size = usize::try_from(settings.sweeper_batch_size).unwrap_or(usize::MAX);
    loop {
        let full = match app.expire_batch().await {
            Ok(expired) => {
                if !expired.is_empty() {
                    tracing::info!(count = expired.len(), "expired reservations");
                }
                expired.len() >= batch_size
            }
            Err(error) => {
                tracing::warn!(%error, "expiry sweep failed");
                false
            }
        };
        if full {
            if cancel.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(settings.sweeper_interval) => {}
        }
    }
}
