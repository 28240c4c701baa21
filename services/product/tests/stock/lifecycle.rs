//! The reservation lifecycle on a manual clock: expiry by the sweeper, commits refused after
//! expiry, replays that change nothing, restocks, and AdjustStock with its history.

use mercato_platform::principal::Role;
use mercato_product::stock::StockApp;
use mercato_product::testing::TestEnv;
use mercato_proto::mercato::product::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

fn commit(order_id: Uuid) -> tonic::Request<pb::CommitReservationRequest> {
    internal(pb::CommitReservationRequest {
        order_id: order_id.to_string(),
    })
}

fn release(order_id: Uuid) -> tonic::Request<pb::ReleaseReservationRequest> {
    internal(pb::ReleaseReservationRequest {
        order_id: order_id.to_string(),
        reason: "checkout failed".to_owned(),
    })
}

#[tokio::test]
async fn expiry_releases_stock_and_replays_change_nothing() {
    let env = TestEnv::new().await.expect("test resources");
    let (service, hand) = start_manual(&env).await;
    let pool = env.database().pool();
    let product = published(pool, &[3]).await;
    let sku = product.skus[0];
    let mut client = client(&service);
    let app = StockApp::new(service.context.clone());

    let order_id = Uuid::now_v7();
    let mut request = reserve_request(order_id, &[(sku, 2)]);
    request.ttl = Some(prost_types::Duration {
        seconds: 120,
        nanos: 0,
    });
    client
        .reserve_stock(internal(request.clone()))
        .await
        .expect("reserve");
    assert!(
        app.expire_batch().await.expect("sweep").is_empty(),
        "nothing is due yet"
    );

    hand.advance(chrono::Duration::seconds(121));
    // Past its expiry the reservation cannot be committed, even before the sweeper ran.
    let refused = client
        .commit_reservation(commit(order_id))
        .await
        .expect_err("expired");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "RESERVATION_EXPIRED");
    assert_eq!(stock(&mut client, sku).await.reserved, 2);

    let expired = app.expire_batch().await.expect("sweep");
    assert_eq!(expired.len(), 1);
    let level = stock(&mut client, sku).await;
    assert_eq!((level.on_hand, level.reserved, level.available), (3, 0, 3));
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE event_type = 'stock.reservation_expired'",
    )
    .fetch_one(pool)
    .await
    .expect("outbox");
    assert_eq!(events, 1);
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM stock_history WHERE sku_id = $1 ORDER BY created_at, id",
    )
    .bind(sku)
    .fetch_all(pool)
    .await
    .expect("history");
    assert_eq!(kinds, ["RESERVATION", "EXPIRY"]);
    let before = counts(pool).await;

    // Replays: the same reservation comes back EXPIRED; release is a no-op; commit stays refused.
    let replay = client
        .reserve_stock(internal(request))
        .await
        .expect("replay")
        .into_inner();
    assert!(replay.replayed);
    let replayed = replay.reservation.expect("reservation");
    assert_eq!(replayed.status, pb::ReservationStatus::Expired as i32);
    let released = client
        .release_reservation(release(order_id))
        .await
        .expect("release of an expired reservation is a no-op")
        .into_inner()
        .reservation
        .expect("reservation");
    assert_eq!(released.status, pb::ReservationStatus::Expired as i32);
    let again = client
        .commit_reservation(commit(order_id))
        .await
        .expect_err("still expired");
    assert_eq!(reason(&again), "RESERVATION_EXPIRED");
    assert!(app.expire_batch().await.expect("sweep").is_empty());
    assert_eq!(counts(pool).await, before);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn commit_release_and_restock_follow_the_state_machine() {
    let env = TestEnv::new().await.expect("test resources");
    let (service, _hand) = start_manual(&env).await;
    let pool = env.database().pool();
    let product = published(pool, &[10]).await;
    let sku = product.skus[0];
    let mut client = client(&service);

    let paid = Uuid::now_v7();
    reserve_ok(&mut client, paid, &[(sku, 4)]).await;
    let committed = client
        .commit_reservation(commit(paid))
        .await
        .expect("commit");
    let committed = committed.into_inner().reservation.expect("reservation");
    assert_eq!(committed.status, pb::ReservationStatus::Committed as i32);
    assert!(committed.settle_time.is_some());
    let level = stock(&mut client, sku).await;
    assert_eq!((level.on_hand, level.reserved), (6, 0));

    let before = counts(pool).await;
    client
        .commit_reservation(commit(paid))
        .await
        .expect("a commit replay succeeds");
    assert_eq!(counts(pool).await, before, "a commit replay writes nothing");
    let illegal = client
        .release_reservation(release(paid))
        .await
        .expect_err("committed");
    assert_eq!(reason(&illegal), "ILLEGAL_STATE_TRANSITION");

    let restock = |order_id: Uuid| {
        internal(pb::RestockReservationRequest {
            order_id: order_id.to_string(),
            reason: String::new(),
        })
    };
    let returned = client
        .restock_reservation(restock(paid))
        .await
        .expect("restock");
    let returned = returned.into_inner().reservation.expect("reservation");
    assert_eq!(returned.status, pb::ReservationStatus::Returned as i32);
    assert_eq!(stock(&mut client, sku).await.on_hand, 10);
    let before = counts(pool).await;
    client
        .restock_reservation(restock(paid))
        .await
        .expect("a restock replay succeeds");
    assert_eq!(counts(pool).await, before);

    let cancelled = Uuid::now_v7();
    reserve_ok(&mut client, cancelled, &[(sku, 1)]).await;
    client
        .release_reservation(release(cancelled))
        .await
        .expect("release");
    let before = counts(pool).await;
    client
        .release_reservation(release(cancelled))
        .await
        .expect("a release replay succeeds");
    assert_eq!(counts(pool).await, before);
    let refused = client
        .commit_reservation(commit(cancelled))
        .await
        .expect_err("released");
    assert_eq!(reason(&refused), "ILLEGAL_STATE_TRANSITION");
    let not_restockable = client
        .restock_reservation(restock(cancelled))
        .await
        .expect_err("released");
    assert_eq!(reason(&not_restockable), "ILLEGAL_STATE_TRANSITION");

    let unknown = client
        .commit_reservation(commit(Uuid::now_v7()))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let level = stock(&mut client, sku).await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (10, 0, 10)
    );
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn adjustments_are_versioned_idempotent_and_listed_in_the_history() {
    let env = TestEnv::new().await.expect("test resources");
    let (service, _hand) = start_manual(&env).await;
    let pool = env.database().pool();
    let product = published(pool, &[0]).await;
    let sku = product.skus[0];
    let seller = product.seller_id;
    let mut client = client(&service);
    let adjust = |on_hand: i64, expected_version: i64, key: &str| pb::AdjustStockRequest {
        sku_id: sku.to_string(),
        on_hand,
        expected_version,
        reason: "received goods".to_owned(),
        idempotency_key: key.to_owned(),
    };

    let first = client
        .adjust_stock(as_user(adjust(20, 0, "k1"), seller, &[Role::Seller]))
        .await
        .expect("first stocking")
        .into_inner();
    let level = first.stock.expect("stock");
    assert_eq!((level.on_hand, level.version), (20, 2));
    let entry = first.history_entry.expect("entry");
    assert_eq!((entry.on_hand_before, entry.on_hand_after), (0, 20));
    assert_eq!(entry.actor_id, seller.to_string());

    let replay = client
        .adjust_stock(as_user(adjust(20, 0, "k1"), seller, &[Role::Seller]))
        .await
        .expect("a replay returns the first result")
        .into_inner();
    assert_eq!(
        replay.history_entry.expect("entry").entry_id,
        entry.entry_id
    );
    let reused = client
        .adjust_stock(as_user(adjust(25, 2, "k1"), seller, &[Role::Seller]))
        .await
        .expect_err("the key was used for another request");
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");

    let stale = client
        .adjust_stock(as_user(adjust(30, 1, "k2"), seller, &[Role::Seller]))
        .await
        .expect_err("stale version");
    assert_eq!(stale.code(), Code::Aborted);
    assert_eq!(reason(&stale), "VERSION_MISMATCH");

    reserve_ok(&mut client, Uuid::now_v7(), &[(sku, 8)]).await;
    let below = client
        .adjust_stock(as_user(adjust(7, 3, "k3"), seller, &[Role::Seller]))
        .await
        .expect_err("below reserved");
    assert_eq!(reason(&below), "STOCK_BELOW_RESERVED");

    let stranger = client
        .adjust_stock(as_user(
            adjust(30, 3, "k4"),
            Uuid::now_v7(),
            &[Role::Seller],
        ))
        .await
        .expect_err("another seller");
    assert_eq!(reason(&stranger), "NOT_RESOURCE_OWNER");
    client
        .adjust_stock(as_user(adjust(30, 3, "k5"), Uuid::now_v7(), &[Role::Admin]))
        .await
        .expect("an admin adjusts any sku");

    // History: newest first, paged, filterable by kind.
    let list = |page_token: String, kinds: Vec<i32>| pb::ListStockHistoryRequest {
        sku_id: sku.to_string(),
        page_size: 2,
        page_token,
        kinds,
    };
    let page = client
        .list_stock_history(as_user(
            list(String::new(), vec![]),
            seller,
            &[Role::Seller],
        ))
        .await
        .expect("history")
        .into_inner();
    let kinds: Vec<i32> = page.entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            pb::StockChangeKind::Adjustment as i32,
            pb::StockChangeKind::Reservation as i32
        ]
    );
    assert!(!page.next_page_token.is_empty());
    let next = client
        .list_stock_history(as_user(
            list(page.next_page_token.clone(), vec![]),
            seller,
            &[Role::Seller],
        ))
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(next.entries.len(), 1);
    assert!(next.next_page_token.is_empty());
    let mismatched = client
        .list_stock_history(as_user(
            list(
                page.next_page_token,
                vec![pb::StockChangeKind::Commit as i32],
            ),
            seller,
            &[Role::Seller],
        ))
        .await
        .expect_err("a token for other filters");
    assert_eq!(reason(&mismatched), "INVALID_PAGE_TOKEN");
    let reservations = client
        .list_stock_history(as_user(
            list(String::new(), vec![pb::StockChangeKind::Reservation as i32]),
            seller,
            &[Role::Seller],
        ))
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(reservations.entries.len(), 1);
    service.stop().await.expect("the service stops cleanly");
}
