//! CreateOrder's idempotency key: scoped to the caller, bound to the request. Concurrent
//! duplicates make one order and identical answers; a replay returns the first outcome, an
//! earlier refusal included; the same key with another request is refused.

use futures::future::join_all;
use tonic::Code;
use uuid::Uuid;

use crate::shop::{Shop, explicit, key};
use crate::support::reason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_duplicates_make_one_order_and_identical_answers() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 50).await;
    let buyer = Uuid::now_v7();
    let request = explicit(&key(), &[(&mug, 3)]);

    let answers = join_all((0..20).map(|_| shop.create(buyer, request.clone()))).await;
    let answers: Vec<_> = answers
        .into_iter()
        .map(|a| a.expect("every duplicate succeeds"))
        .collect();
    let first = answers[0].order.clone().expect("an order");
    for answer in &answers {
        assert_eq!(answer.order.as_ref(), Some(&first), "identical orders");
    }
    assert_eq!(
        answers.iter().filter(|a| !a.replayed).count(),
        1,
        "exactly one answer created the order, the others replayed it"
    );
    assert_eq!(shop.order_count().await, 1);
    assert_eq!(shop.reservation_count().await, 1);
    assert_eq!(shop.stock(&mug).await, (50, 3), "reserved once");
    assert_eq!(shop.events(&first.order_id, "order.created").await, 1);
}

#[tokio::test]
async fn a_replay_after_success_returns_the_same_order() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let request = explicit(&key(), &[(&mug, 1)]);

    let first = shop.create(buyer, request.clone()).await.expect("created");
    let again = shop.create(buyer, request).await.expect("replayed");
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(again.order, first.order);
    assert_eq!(shop.order_count().await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused_and_changes_nothing() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let key = key();
    shop.place(buyer, explicit(&key, &[(&mug, 1)])).await;

    let reused = shop
        .create(buyer, explicit(&key, &[(&mug, 2)]))
        .await
        .expect_err("a different body under the same key");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(shop.order_count().await, 1);
    assert_eq!(shop.stock(&mug).await, (10, 1));
}

#[tokio::test]
async fn a_replay_after_a_refusal_returns_the_same_refusal_even_once_it_would_succeed() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 1).await;
    let buyer = Uuid::now_v7();
    let request = explicit(&key(), &[(&mug, 2)]);

    let refused = shop
        .create(buyer, request.clone())
        .await
        .expect_err("only one unit");
    assert_eq!(reason(&refused), "INSUFFICIENT_STOCK");

    // Restocked: a new key would now succeed, but this key's outcome is settled.
    shop.seed.restock(&mug, 10).await;
    let replayed = shop
        .create(buyer, request)
        .await
        .expect_err("the first outcome is replayed");
    assert_eq!(replayed.code(), refused.code());
    assert_eq!(replayed.message(), refused.message());
    assert_eq!(replayed.details(), refused.details());
    assert_eq!(shop.order_count().await, 0);

    let fresh = shop.place(buyer, explicit(&key(), &[(&mug, 2)])).await;
    assert_eq!(fresh.lines[0].quantity, 2);
}

#[tokio::test]
async fn keys_are_scoped_to_the_caller() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let request = explicit("shared-key-1", &[(&mug, 1)]);
    let alice = shop.place(Uuid::now_v7(), request.clone()).await;
    let bob = shop.place(Uuid::now_v7(), request).await;
    assert_ne!(alice.order_id, bob.order_id, "each user's key is their own");
    assert_eq!(shop.order_count().await, 2);
}

#[tokio::test]
async fn a_checkout_refused_because_the_catalog_is_down_can_be_retried_with_the_same_key() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let request = explicit(&key(), &[(&mug, 1)]);
    shop.catalog.cut().await;

    let unavailable = shop
        .create(buyer, request.clone())
        .await
        .expect_err("the catalog is unreachable");
    assert_eq!(unavailable.code(), Code::Unavailable);
    assert_eq!(shop.order_count().await, 0);

    shop.catalog.restore();
    let order = shop.place(buyer, request).await;
    assert_eq!(
        order.lines.len(),
        1,
        "a transient failure does not settle the key"
    );
}
