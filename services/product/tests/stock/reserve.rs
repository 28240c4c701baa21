//! ReserveStock under contention: the last unit, a flash sale, opposite lock orders, idempotency
//! per order, and what cannot be reserved.

use futures::StreamExt as _;
use mercato_product::clock::Clock;
use mercato_product::testing::TestEnv;
use mercato_proto::mercato::product::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn only_one_of_fifty_concurrent_reservations_gets_the_last_unit() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[1]).await;
    let sku = product.skus[0];
    let client = client(&service);

    let attempts = (0..50).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move {
            client
                .reserve_stock(internal(reserve_request(Uuid::now_v7(), &[(sku, 1)])))
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let mut won = 0;
    for result in results {
        match result.expect("the task ran") {
            Ok(_) => won += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(reason(&status), "INSUFFICIENT_STOCK");
            }
        }
    }
    assert_eq!(won, 1);
    let level = stock(&mut client.clone(), sku).await;
    assert_eq!((level.on_hand, level.reserved, level.available), (1, 1, 0));
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn a_flash_sale_sells_exactly_the_stock_and_commits_it() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[100]).await;
    let sku = product.skus[0];
    let client = client(&service);

    let outcomes: Vec<Result<Uuid, tonic::Status>> = futures::stream::iter(0..1_000)
        .map(|_| {
            let mut client = client.clone();
            async move {
                let order_id = Uuid::now_v7();
                client
                    .reserve_stock(internal(reserve_request(order_id, &[(sku, 1)])))
                    .await
                    .map(|_| order_id)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut winners = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(order_id) => winners.push(order_id),
            Err(status) => assert_eq!(reason(&status), "INSUFFICIENT_STOCK", "{status:?}"),
        }
    }
    assert_eq!(winners.len(), 100);
    let level = stock(&mut client.clone(), sku).await;
    assert_eq!(level.on_hand, level.available + level.reserved);
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (100, 100, 0)
    );

    let commits: Vec<_> = futures::stream::iter(winners)
        .map(|order_id| {
            let mut client = client.clone();
            async move {
                client
                    .commit_reservation(internal(pb::CommitReservationRequest {
                        order_id: order_id.to_string(),
                    }))
                    .await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(commits.iter().all(Result::is_ok), "every commit succeeds");
    let level = stock(&mut client.clone(), sku).await;
    assert_eq!((level.on_hand, level.reserved, level.available), (0, 0, 0));
    let sold: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(on_hand_before - on_hand_after), 0)::bigint FROM stock_history
          WHERE sku_id = $1 AND kind = 'COMMIT'",
    )
    .bind(sku)
    .fetch_one(pool)
    .await
    .expect("sold units");
    assert_eq!(sold, 100);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn opposite_line_orders_never_deadlock() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[10_000, 10_000]).await;
    let (a, b) = (product.skus[0], product.skus[1]);
    let client = client(&service);

    for round in 0..50 {
        let mut first = client.clone();
        let mut second = client.clone();
        let (x, y) = tokio::join!(
            first.reserve_stock(internal(reserve_request(Uuid::now_v7(), &[(a, 1), (b, 1)]))),
            second.reserve_stock(internal(reserve_request(Uuid::now_v7(), &[(b, 1), (a, 1)]))),
        );
        assert!(x.is_ok(), "round {round}: {x:?}");
        assert!(y.is_ok(), "round {round}: {y:?}");
    }
    let level = stock(&mut client.clone(), a).await;
    assert_eq!(level.reserved, 100);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn a_reservation_is_idempotent_per_order() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[5, 5]).await;
    let (a, b) = (product.skus[0], product.skus[1]);
    let mut client = client(&service);
    let order_id = Uuid::now_v7();

    // Duplicate lines are merged, lines come back sorted by sku.
    let first = client
        .reserve_stock(internal(reserve_request(
            order_id,
            &[(b, 1), (a, 2), (b, 2)],
        )))
        .await
        .expect("reserve")
        .into_inner();
    assert!(!first.replayed);
    let reservation = first.reservation.expect("a reservation");
    let lines: Vec<_> = reservation
        .lines
        .iter()
        .map(|l| (l.sku_id.clone(), l.quantity, l.available_after))
        .collect();
    assert_eq!(lines, vec![(a.to_string(), 2, 3), (b.to_string(), 3, 2)]);
    let before = counts(pool).await;

    let replay = client
        .reserve_stock(internal(reserve_request(order_id, &[(a, 2), (b, 3)])))
        .await
        .expect("a replay succeeds")
        .into_inner();
    assert!(replay.replayed);
    let replayed = replay.reservation.expect("a reservation");
    assert_eq!(replayed.reservation_id, reservation.reservation_id);
    assert!(replayed.lines.iter().all(|l| l.available_after == 0));

    let conflict = client
        .reserve_stock(internal(reserve_request(order_id, &[(a, 1)])))
        .await
        .expect_err("different lines conflict");
    assert_eq!(conflict.code(), Code::FailedPrecondition);
    assert_eq!(reason(&conflict), "RESERVATION_CONFLICT");
    assert_eq!(counts(pool).await, before);
    assert_eq!(stock(&mut client, a).await.reserved, 2);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn concurrent_duplicates_of_one_order_make_one_reservation() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[1]).await;
    let sku = product.skus[0];
    let client = client(&service);
    let order_id = Uuid::now_v7();

    let attempts = (0..20).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move {
            client
                .reserve_stock(internal(reserve_request(order_id, &[(sku, 1)])))
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let mut ids = std::collections::BTreeSet::new();
    for result in results {
        let response = result
            .expect("the task ran")
            .expect("every duplicate succeeds");
        ids.insert(
            response
                .into_inner()
                .reservation
                .expect("reservation")
                .reservation_id,
        );
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(counts(pool).await.reservations, 1);
    assert_eq!(stock(&mut client.clone(), sku).await.reserved, 1);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn shortages_unknown_skus_and_unpublished_products_reserve_nothing() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[3, 1]).await;
    let (a, b) = (product.skus[0], product.skus[1]);
    let draft = insert_product(pool, "DRAFT", &[10]).await;
    let mut client = client(&service);
    let before = counts(pool).await;

    let short = client
        .reserve_stock(internal(reserve_request(Uuid::now_v7(), &[(a, 4), (b, 2)])))
        .await
        .expect_err("not enough stock");
    assert_eq!(reason(&short), "INSUFFICIENT_STOCK");
    let details = shortage(&short).expect("a StockShortage detail");
    let lines: Vec<_> = details
        .lines
        .iter()
        .map(|l| (l.sku_id.clone(), l.requested_quantity, l.available_quantity))
        .collect();
    assert_eq!(lines, vec![(a.to_string(), 4, 3), (b.to_string(), 2, 1)]);

    let unknown = Uuid::now_v7();
    let missing = client
        .reserve_stock(internal(reserve_request(
            Uuid::now_v7(),
            &[(a, 1), (unknown, 1)],
        )))
        .await
        .expect_err("unknown sku");
    assert_eq!(missing.code(), Code::NotFound);
    let info = tonic_types::StatusExt::get_details_error_info(&missing).expect("error info");
    assert_eq!(info.metadata.get("resource_id"), Some(&unknown.to_string()));

    let unpublished = client
        .reserve_stock(internal(reserve_request(
            Uuid::now_v7(),
            &[(draft.skus[0], 1)],
        )))
        .await
        .expect_err("draft product");
    assert_eq!(unpublished.code(), Code::FailedPrecondition);
    assert_eq!(reason(&unpublished), "SKU_NOT_PURCHASABLE");

    sqlx::query("UPDATE skus SET active = FALSE WHERE id = $1")
        .bind(a)
        .execute(pool)
        .await
        .expect("deactivate");
    let inactive = client
        .reserve_stock(internal(reserve_request(Uuid::now_v7(), &[(a, 1)])))
        .await
        .expect_err("inactive sku");
    assert_eq!(reason(&inactive), "SKU_NOT_PURCHASABLE");

    assert_eq!(counts(pool).await, before);
    assert_eq!(stock(&mut client, b).await.reserved, 0);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn only_internal_services_reserve() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[3]).await;
    let mut client = client(&service);

    let anonymous = client
        .reserve_stock(tonic::Request::new(reserve_request(
            Uuid::now_v7(),
            &[(product.skus[0], 1)],
        )))
        .await
        .expect_err("anonymous");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let buyer = client
        .reserve_stock(as_user(
            reserve_request(Uuid::now_v7(), &[(product.skus[0], 1)]),
            Uuid::now_v7(),
            &[mercato_platform::principal::Role::Buyer],
        ))
        .await
        .expect_err("a buyer through the bff");
    assert_eq!(buyer.code(), Code::PermissionDenied);
    assert_eq!(counts(pool).await.reservations, 0);
    service.stop().await.expect("the service stops cleanly");
}
