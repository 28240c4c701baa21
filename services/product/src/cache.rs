//! Redis keys and invalidation shared by the catalog and the stock parts.
//!
//! The catalog caches product details under [`product_key`]; anything that changes what a
//! product detail shows (price, lifecycle, SKUs, stock) calls [`invalidate_product`] after its
//! transaction commits. A failed invalidation is logged, not returned: the cache entries carry a
//! short TTL, so the worst case is a stale read for that long.
//!
//! Reads and writes of cached values fail open as well ([`get`], [`put`]): Redis being down
//! makes reads slower (straight from PostgreSQL), never wrong or unavailable.

use std::time::Duration;

use redis::AsyncCommands as _;
use uuid::Uuid;

use crate::context::ProductContext;

/// The key of a product's cached detail.
pub fn product_key(context: &ProductContext, product_id: Uuid) -> String {
    context.keys.key("product", product_id)
}

/// Drops a product's cached detail.
pub async fn invalidate_product(context: &ProductContext, product_id: Uuid) {
    let mut redis = context.redis.clone();
    let key = product_key(context, product_id);
    if let Err(error) = redis.del::<_, ()>(&key).await {
        tracing::warn!(%error, %product_id, "product cache invalidation failed");
    }
}

/// The cached value under `key`, or `None` on a miss or a Redis failure (logged).
pub async fn get(context: &ProductContext, key: &str) -> Option<String> {
    let mut redis = context.redis.clone();
    match redis.get::<_, Option<String>>(key).await {
        Ok(value) => value,
        Err(error) => {
            tracing::warn!(%error, key, "cache read failed");
            None
        }
    }
}

/// Caches `value` under `key` for `ttl` (at least one millisecond); a failure is logged.
pub async fn put(context: &ProductContext, key: &str, value: &str, ttl: Duration) {
    let mut redis = context.redis.clone();
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let result: redis::RedisResult<()> = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(millis)
        .query_async(&mut redis)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, key, "cache write failed");
    }
}
