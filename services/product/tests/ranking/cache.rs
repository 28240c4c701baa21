//! The ranking cache: a computed ranking is served until its TTL passes, then recomputed; an
//! expiry under concurrent load recomputes once (single flight).

use std::time::Duration as StdDuration;

use chrono::Duration;
use mercato_product::catalog::ranking::{computations_key, snapshot_key};
use mercato_proto::mercato::product::v1::ListBestSellersRequest;
use redis::AsyncCommands as _;

use crate::support::*;

async fn record_sale(h: &Harness, product: &str, sku: &str, units: i64, hours_ago: i64) {
    sqlx::query(
        "INSERT INTO product_sales (order_id, sku_id, product_id, units, paid_at) \
         VALUES ($1, $2::uuid, $3::uuid, $4, $5)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(sku)
    .bind(product)
    .bind(units)
    .bind(start_time() - Duration::hours(hours_ago))
    .execute(&h.service.context.pool)
    .await
    .expect("record a sale");
}

#[tokio::test]
async fn a_cached_ranking_is_served_until_it_expires_then_recomputed() {
    let h = Harness::start(|s| s.catalog.ranking_cache_ttl = StdDuration::from_secs(600)).await;
    let (p0, s0) = h.product("Zero", "kitchen", 100).await;
    let (p1, s1) = h.product("One", "kitchen", 100).await;
    record_sale(&h, &p0, &s0, 5, 1).await;
    let ctx = &h.service.context;
    let mut redis = ctx.redis.clone();
    let mut ranking = h.ranking.clone();

    let first = ranking
        .list_best_sellers(ListBestSellersRequest::default())
        .await
        .expect("ranking")
        .into_inner();
    assert_eq!(units(&first), vec![(p0.clone(), 5)]);
    let ttl: i64 = redis.pttl(snapshot_key(ctx, None)).await.expect("pttl");
    assert!(
        ttl > 0 && ttl <= 600_000,
        "cached with the configured ttl: {ttl}"
    );

    record_sale(&h, &p1, &s1, 9, 1).await;
    h.clock.advance(Duration::minutes(1));
    let cached = ranking
        .list_best_sellers(ListBestSellersRequest::default())
        .await
        .expect("ranking")
        .into_inner();
    assert_eq!(
        units(&cached),
        vec![(p0.clone(), 5)],
        "the new sale is not visible yet"
    );
    assert_eq!(cached.compute_time, first.compute_time);

    // Let Redis expire the entry itself (as the ttl would), then wait for the recomputation.
    let _: bool = redis
        .pexpire(snapshot_key(ctx, None), 1)
        .await
        .expect("expire soon");
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(30);
    let recomputed = loop {
        let response = ranking
            .list_best_sellers(ListBestSellersRequest::default())
            .await
            .expect("ranking")
            .into_inner();
        if response.compute_time != first.compute_time {
            break response;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never expired"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    };
    assert_eq!(units(&recomputed), vec![(p1, 9), (p0, 5)]);
    assert_eq!(
        recomputed.window_end_time.map(|t| t.seconds),
        Some((start_time() + Duration::minutes(1)).timestamp())
    );
}

#[tokio::test]
async fn concurrent_callers_after_an_expiry_recompute_once() {
    let h = Harness::start(|s| {
        s.catalog.ranking_cache_ttl = StdDuration::from_secs(600);
        s.catalog.ranking_wait = StdDuration::from_secs(20);
    })
    .await;
    let (p0, s0) = h.product("Zero", "kitchen", 100).await;
    record_sale(&h, &p0, &s0, 5, 1).await;
    let ctx = &h.service.context;
    let mut redis = ctx.redis.clone();
    h.ranking
        .clone()
        .list_best_sellers(ListBestSellersRequest::default())
        .await
        .expect("warm the cache");
    let before: i64 = redis.get(computations_key(ctx)).await.expect("counter");
    assert_eq!(before, 1);

    // Expire the snapshot, then let 32 callers arrive at once.
    let _: () = redis.del(snapshot_key(ctx, None)).await.expect("expire");
    h.clock.advance(Duration::minutes(5));
    let calls = (0..32).map(|_| {
        let mut client = h.ranking.clone();
        async move {
            client
                .list_best_sellers(ListBestSellersRequest::default())
                .await
                .expect("ranking")
                .into_inner()
        }
    });
    let responses = futures::future::join_all(calls).await;
    let after: i64 = redis.get(computations_key(ctx)).await.expect("counter");
    assert_eq!(
        after,
        before + 1,
        "one recomputation for 32 concurrent callers"
    );
    let first = responses.first().expect("responses").compute_time;
    assert!(responses.iter().all(|r| r.compute_time == first));
    assert!(responses.iter().all(|r| units(r) == vec![(p0.clone(), 5)]));
}
