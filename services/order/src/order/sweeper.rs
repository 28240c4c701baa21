//! The expiry sweeper: every unpaid order past its payment deadline becomes EXPIRED, with its
//! coupon restored and `order.expired` written in the same transaction (the product service
//! releases the reservation on that event). Several replicas may sweep at once: each batch claims
//! its rows with `FOR UPDATE SKIP LOCKED`, so no order is expired twice and no sweeper waits.

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::OrderContext;
use crate::order::error::OrderError;
use crate::order::state::Command;
use crate::order::store;
use crate::order::transition::{self, Request};

/// Orders expired per transaction.
pub const BATCH: i64 = 100;

/// Expires one batch of overdue orders; returns their ids.
pub async fn expire_batch(context: &OrderContext) -> Result<Vec<Uuid>, OrderError> {
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let due = store::due_unpaid(&mut *tx, now, BATCH).await?;
    for order_id in &due {
        transition::apply(&mut tx, *order_id, Request::new(Command::Expire), now).await?;
    }
    tx.commit().await?;
    Ok(due)
}

/// Sweeps until `cancel` fires: a full batch is followed at once by the next; a partial or
/// failed one waits for the configured interval.
pub async fn run(context: OrderContext, cancel: CancellationToken) {
    let interval = context.settings.orders.sweep_interval;
    let batch = usize::try_from(BATCH).unwrap_or(usize::MAX);
    loop {
        let full = match expire_batch(&context).await {
            Ok(expired) => {
                if !expired.is_empty() {
                    tracing::info!(count = expired.len(), "expired unpaid orders");
                }
                expired.len() >= batch
            }
            Err(error) => {
                tracing::warn!(%error, "order expiry sweep failed");
                false
            }
        };
        if full && !cancel.is_cancelled() {
            continue;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
