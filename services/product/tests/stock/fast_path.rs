//! The sold-out fast path: a SKU with a marker is refused without touching its row lock, and the
//! marker goes away when units come back.

use std::time::Duration;

use mercato_product::clock::Clock;
use mercato_product::stock::markers;
use mercato_product::testing::TestEnv;
use mercato_proto::mercato::product::v1 as pb;
use redis::AsyncCommands as _;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn a_sold_out_sku_is_refused_without_waiting_for_its_row_lock() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[1]).await;
    let sku = product.skus[0];
    let mut client = client(&service);
    let mut redis = service.context.redis.clone();
    let marker = markers::key(&service.context, sku);

    let winner = Uuid::now_v7();
    reserve_ok(&mut client, winner, &[(sku, 1)]).await;
    let exists: bool = redis.exists(&marker).await.expect("redis");
    assert!(exists, "taking the last unit marks the sku sold out");

    // Another transaction holds the hot row.
    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("SELECT on_hand FROM stock_levels WHERE sku_id = $1 FOR UPDATE")
        .bind(sku)
        .fetch_one(&mut *holder)
        .await
        .expect("lock the row");

    let refused = tokio::time::timeout(
        PATIENCE,
        client.reserve_stock(internal(reserve_request(Uuid::now_v7(), &[(sku, 1)]))),
    )
    .await
    .expect("answered without waiting for the lock")
    .expect_err("sold out");
    assert_eq!(reason(&refused), "INSUFFICIENT_STOCK");
    let details = shortage(&refused).expect("a StockShortage detail");
    assert_eq!(details.lines.len(), 1);
    assert_eq!(details.lines[0].available_quantity, 0);

    // Without the marker the same request queues behind the lock.
    let _: () = redis.del(&marker).await.expect("redis");
    let mut blocked_client = client.clone();
    let blocked = tokio::time::timeout(
        Duration::from_secs(2),
        blocked_client.reserve_stock(internal(reserve_request(Uuid::now_v7(), &[(sku, 1)]))),
    )
    .await;
    assert!(
        blocked.is_err(),
        "without the marker the request waits for the row lock"
    );
    holder.rollback().await.expect("rollback");

    // A refusal from the database marks the sku again; releasing the unit clears the marker, so
    // the next buyer gets it at once.
    let again = client
        .reserve_stock(internal(reserve_request(Uuid::now_v7(), &[(sku, 1)])))
        .await
        .expect_err("still sold out");
    assert_eq!(reason(&again), "INSUFFICIENT_STOCK");
    let exists: bool = redis.exists(&marker).await.expect("redis");
    assert!(exists, "a refusal at 0 available marks the sku");
    client
        .release_reservation(internal(pb::ReleaseReservationRequest {
            order_id: winner.to_string(),
            reason: String::new(),
        }))
        .await
        .expect("release");
    let exists: bool = redis.exists(&marker).await.expect("redis");
    assert!(!exists, "a release clears the marker");
    reserve_ok(&mut client, Uuid::now_v7(), &[(sku, 1)]).await;
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn a_replay_of_the_order_that_sold_out_the_sku_is_not_refused() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let product = published(env.database().pool(), &[2]).await;
    let sku = product.skus[0];
    let mut client = client(&service);
    let order_id = Uuid::now_v7();

    reserve_ok(&mut client, order_id, &[(sku, 2)]).await;
    let replay = client
        .reserve_stock(internal(reserve_request(order_id, &[(sku, 2)])))
        .await
        .expect("the replay answers from the reservation, not the marker")
        .into_inner();
    assert!(replay.replayed);
    service.stop().await.expect("the service stops cleanly");
}
