//! Sold-out markers: a short-lived Redis key per SKU whose available units reached 0, checked by
//! ReserveStock before it opens a transaction, so the losers of a flash sale are refused without
//! queueing on the hot row's lock.
//!
//! A marker is only ever a hint that lets a request skip the database. Correctness never depends
//! on it: a missing marker sends the request to the database, which decides; a stale marker can
//! refuse for at most its TTL (a few seconds), because it is deleted after every commit that makes
//! units available and expires on its own otherwise. Every Redis failure is logged and skipped.

use std::time::Duration;

use redis::AsyncCommands as _;
use uuid::Uuid;

use super::store::HistoryRow;
use crate::context::ProductContext;

/// Longest a marker lookup may take before the fast path is skipped.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The marker key of `sku_id`.
pub fn key(context: &ProductContext, sku_id: Uuid) -> String {
    context.keys.key("sold-out", sku_id)
}

/// The requested SKUs that carry a sold-out marker. Any Redis trouble yields none (the request
/// then goes to the database).
pub async fn sold_out(context: &ProductContext, sku_ids: &[Uuid]) -> Vec<Uuid> {
    if sku_ids.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = sku_ids.iter().map(|id| key(context, *id)).collect();
    let mut redis = context.redis.clone();
    let lookup = tokio::time::timeout(REDIS_TIMEOUT, async {
        let values: redis::RedisResult<Vec<Option<String>>> = redis.mget(&keys).await;
        values
    });
    match lookup.await {
        Ok(Ok(values)) => sku_ids
            .iter()
            .zip(values)
            .filter_map(|(id, value)| value.map(|_| *id))
            .collect(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "sold-out marker lookup failed, skipping the fast path");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("sold-out marker lookup timed out, skipping the fast path");
            Vec::new()
        }
    }
}

/// Sets the markers of `sku_ids` (seen with 0 available) for the configured TTL.
pub async fn mark(context: &ProductContext, sku_ids: &[Uuid]) {
    let ttl = context.settings.stock.sold_out_marker_ttl;
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    for sku_id in sku_ids {
        let mut redis = context.redis.clone();
        let options = redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(millis));
        let set = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis.set_options::<_, _, ()>(key(context, *sku_id), "1", options),
        );
        match set.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, %sku_id, "setting a sold-out marker failed"),
            Err(_) => tracing::warn!(%sku_id, "setting a sold-out marker timed out"),
        }
    }
}

/// Deletes the markers of `sku_ids`.
pub async fn clear(context: &ProductContext, sku_ids: &[Uuid]) {
    if sku_ids.is_empty() {
        return;
    }
    let keys: Vec<String> = sku_ids.iter().map(|id| key(context, *id)).collect();
    let mut redis = context.redis.clone();
    match tokio::time::timeout(REDIS_TIMEOUT, redis.del::<_, ()>(&keys)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "clearing sold-out markers failed"),
        Err(_) => tracing::warn!("clearing sold-out markers timed out"),
    }
}

/// Brings the markers in line with committed changes: cleared where units became available,
/// set where none are left.
pub async fn sync(context: &ProductContext, changes: &[HistoryRow]) {
    let freed: Vec<Uuid> = changes
        .iter()
        .filter(|c| c.available_increased())
        .map(|c| c.sku_id)
        .collect();
    let sold_out: Vec<Uuid> = changes
        .iter()
        .filter(|c| c.available_after() <= 0)
        .map(|c| c.sku_id)
        .collect();
    clear(context, &freed).await;
    mark(context, &sold_out).await;
}
