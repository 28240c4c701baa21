//! Who may read stock and reservations, the background sweeper, and `stock.low`.

use mercato_platform::principal::Role;
use mercato_product::clock::Clock;
use mercato_product::testing::TestEnv;
use mercato_proto::mercato::product::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn stock_is_visible_to_internal_callers_its_seller_and_admins_only() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let mine = published(pool, &[4]).await;
    let theirs = published(pool, &[6]).await;
    let mut client = client(&service);
    let get = |sku: Uuid| pb::GetStockRequest {
        sku_id: sku.to_string(),
    };

    let own = client
        .get_stock(as_user(get(mine.skus[0]), mine.seller_id, &[Role::Seller]))
        .await
        .expect("the owner reads its stock")
        .into_inner()
        .stock
        .expect("stock");
    assert_eq!((own.on_hand, own.available, own.version), (4, 4, 1));
    let foreign = client
        .get_stock(as_user(
            get(theirs.skus[0]),
            mine.seller_id,
            &[Role::Seller],
        ))
        .await
        .expect_err("another seller's sku");
    assert_eq!(foreign.code(), Code::PermissionDenied);
    assert_eq!(reason(&foreign), "NOT_RESOURCE_OWNER");
    let buyer = client
        .get_stock(as_user(get(mine.skus[0]), Uuid::now_v7(), &[Role::Buyer]))
        .await
        .expect_err("a buyer");
    assert_eq!(buyer.code(), Code::PermissionDenied);
    client
        .get_stock(as_user(get(theirs.skus[0]), Uuid::now_v7(), &[Role::Admin]))
        .await
        .expect("an admin reads any stock");
    let unknown = client
        .get_stock(internal(get(Uuid::now_v7())))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);

    let missing = Uuid::now_v7();
    let batch = client
        .batch_get_stock(internal(pb::BatchGetStockRequest {
            sku_ids: vec![
                theirs.skus[0].to_string(),
                missing.to_string(),
                mine.skus[0].to_string(),
                theirs.skus[0].to_string(),
            ],
        }))
        .await
        .expect("batch")
        .into_inner();
    let found: Vec<_> = batch.stocks.iter().map(|s| s.sku_id.clone()).collect();
    assert_eq!(
        found,
        [theirs.skus[0].to_string(), mine.skus[0].to_string()]
    );
    assert_eq!(batch.missing_sku_ids, [missing.to_string()]);
    let mixed = client
        .batch_get_stock(as_user(
            pb::BatchGetStockRequest {
                sku_ids: vec![mine.skus[0].to_string(), theirs.skus[0].to_string()],
            },
            mine.seller_id,
            &[Role::Seller],
        ))
        .await
        .expect_err("one sku is another seller's");
    assert_eq!(reason(&mixed), "NOT_RESOURCE_OWNER");
    let empty = client
        .batch_get_stock(internal(pb::BatchGetStockRequest { sku_ids: vec![] }))
        .await
        .expect_err("no ids");
    assert_eq!(bad_fields(&empty), ["sku_ids"]);

    let reservation = client
        .get_reservation(as_user(
            pb::GetReservationRequest {
                order_id: Uuid::now_v7().to_string(),
            },
            mine.seller_id,
            &[Role::Seller],
        ))
        .await
        .expect_err("reservations are internal");
    assert_eq!(reservation.code(), Code::PermissionDenied);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn the_background_sweeper_expires_reservations() {
    let env = TestEnv::new().await.expect("test resources");
    let (clock, hand) = Clock::manual(chrono::Utc::now());
    let service = env
        .start_with_clock(clock, |_| {})
        .await
        .expect("the service starts with its sweeper");
    let product = published(env.database().pool(), &[2]).await;
    let sku = product.skus[0];
    let mut client = client(&service);
    let order_id = Uuid::now_v7();
    reserve_ok(&mut client, order_id, &[(sku, 2)]).await;

    hand.advance(chrono::Duration::minutes(16));
    eventually("the sweeper to expire the reservation", || {
        let mut client = client.clone();
        async move {
            let reservation = client
                .get_reservation(internal(pb::GetReservationRequest {
                    order_id: order_id.to_string(),
                }))
                .await
                .expect("get")
                .into_inner()
                .reservation
                .expect("reservation");
            reservation.status == pb::ReservationStatus::Expired as i32
        }
    })
    .await;
    assert_eq!(stock(&mut client, sku).await.available, 2);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn stock_low_is_published_once_per_crossing() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[8]).await;
    let sku = product.skus[0];
    let mut client = client(&service);
    let lows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE event_type = 'stock.low'")
            .fetch_one(pool)
            .await
            .expect("outbox")
    };

    reserve_ok(&mut client, Uuid::now_v7(), &[(sku, 2)]).await;
    assert_eq!(lows().await, 0, "6 available is above the threshold of 5");
    let crossing = Uuid::now_v7();
    reserve_ok(&mut client, crossing, &[(sku, 2)]).await;
    assert_eq!(lows().await, 1);
    reserve_ok(&mut client, Uuid::now_v7(), &[(sku, 1)]).await;
    assert_eq!(lows().await, 1, "published once per crossing");

    client
        .release_reservation(internal(pb::ReleaseReservationRequest {
            order_id: crossing.to_string(),
            reason: String::new(),
        }))
        .await
        .expect("release");
    assert_eq!(stock(&mut client, sku).await.available, 5);
    reserve_ok(&mut client, Uuid::now_v7(), &[(sku, 1)]).await;
    assert_eq!(
        lows().await,
        1,
        "5 is not above the threshold, no new crossing"
    );

    let level = stock(&mut client, sku).await;
    client
        .adjust_stock(as_user(
            pb::AdjustStockRequest {
                sku_id: sku.to_string(),
                on_hand: 20,
                expected_version: level.version,
                reason: "received".to_owned(),
                idempotency_key: "restock-1".to_owned(),
            },
            product.seller_id,
            &[Role::Seller],
        ))
        .await
        .expect("restock");
    reserve_ok(&mut client, Uuid::now_v7(), &[(sku, 12)]).await;
    assert_eq!(
        lows().await,
        2,
        "back above, then below again: a new crossing"
    );
    service.stop().await.expect("the service stops cleanly");
}
