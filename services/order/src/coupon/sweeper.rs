//! The coupon expiry sweeper: AVAILABLE user coupons past their expiry become EXPIRED with an
//! EXPIRED history entry, and idempotency keys past their lifetime are forgotten. Nothing depends
//! on its timing — ListMyCoupons already reports such coupons EXPIRED and checkout refuses them —
//! so it runs rarely. Several replicas may sweep at once: each batch claims its rows with
//! `FOR UPDATE SKIP LOCKED`, so no coupon expires twice and no sweeper waits.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::OrderContext;
use crate::coupon::error::CouponError;
use crate::coupon::store;

/// Coupons expired per statement.
pub const BATCH: i64 = 500;

/// How long the sweeper rests after a partial (or failed) batch.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Expires one batch of overdue coupons at the context's "now"; returns their ids.
pub async fn expire_batch(context: &OrderContext) -> Result<Vec<Uuid>, CouponError> {
    let mut conn = context.pool.acquire().await?;
    store::expire_due(&mut conn, context.clock.now(), BATCH).await
}

/// Forgets idempotency keys past their lifetime; returns how many.
pub async fn forget_keys(context: &OrderContext) -> Result<u64, CouponError> {
    let mut conn = context.pool.acquire().await?;
    store::forget_expired_keys(&mut conn, context.clock.now()).await
}

/// Sweeps until `cancel` fires: a full batch is followed at once by the next; otherwise it
/// forgets old keys and rests for [`INTERVAL`].
pub async fn run(context: OrderContext, cancel: CancellationToken) {
    let batch = usize::try_from(BATCH).unwrap_or(usize::MAX);
    loop {
        let full = match expire_batch(&context).await {
            Ok(expired) => {
                if !expired.is_empty() {
                    tracing::info!(count = expired.len(), "expired unused coupons");
                }
                expired.len() >= batch
            }
            Err(error) => {
                tracing::warn!(%error, "coupon expiry sweep failed");
                false
            }
        };
        if full && !cancel.is_cancelled() {
            continue;
        }
        if let Err(error) = forget_keys(&context).await {
            tracing::warn!(%error, "forgetting old coupon idempotency keys failed");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
