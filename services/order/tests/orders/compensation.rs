//! Compensation: an order unpaid past its deadline expires, a failed payment or a cancellation
//! cancels it, and in each case the product service gives the reserved stock back (through the
//! order's event on the real bus), once, however often the cause is repeated. A payment that
//! succeeds for an order that already ended does not revive it.

use chrono::{Duration, Utc};
use mercato_order::clock::Clock;
use mercato_proto::mercato::common::v1::{OrderCancellationReason, OrderStatus};
use mercato_proto::mercato::order::v1 as pb;
use uuid::Uuid;

use crate::shop::{Shop, explicit, key, order_paid, payment_failed, status_of};
use crate::support::as_buyer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_unpaid_past_its_deadline_expires_and_its_stock_returns() {
    let (clock, hand) = Clock::manual(Utc::now());
    let shop = Shop::start_with(clock, |_| {}).await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 4)])).await;
    let id = order.order_id.clone();
    assert_eq!(shop.stock(&mug).await, (10, 4));

    // Just before the deadline nothing happens.
    hand.advance(Duration::minutes(29));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(shop.status(buyer, &id).await, OrderStatus::Pending);

    hand.advance(Duration::minutes(2));
    shop.wait_for(buyer, &id, OrderStatus::Expired).await;
    shop.wait_for_stock(&mug, (10, 0)).await;
    assert_eq!(shop.events(&id, "order.expired").await, 1);
    assert_ne!(shop.reservation(&id).await.as_deref(), Some("PENDING"));

    // A payment that arrives after the expiry does not revive the order.
    shop.publish(&order_paid(&order)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let read = shop.get(buyer, &id).await.expect("readable");
    assert_eq!(
        status_of(&read),
        OrderStatus::Expired,
        "terminal states absorb"
    );
    assert_eq!(read.version, 2);
    assert_eq!(shop.stock(&mug).await, (10, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_payment_cancels_the_order_and_returns_its_stock_once() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 3)])).await;
    let id = order.order_id.clone();

    let failed = payment_failed(&order);
    shop.publish(&failed).await;
    shop.wait_for(buyer, &id, OrderStatus::Cancelled).await;
    shop.publish(&failed).await;
    shop.wait_for_stock(&mug, (10, 0)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let read = shop.get(buyer, &id).await.expect("readable");
    assert_eq!(
        read.cancellation_reason,
        OrderCancellationReason::PaymentFailed as i32
    );
    assert_eq!(read.version, 2, "cancelled once");
    assert_eq!(shop.events(&id, "order.cancelled").await, 1);
    assert_eq!(shop.stock(&mug).await, (10, 0), "released once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_failure_reported_after_the_order_was_paid_changes_nothing() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 1)])).await;
    let id = order.order_id.clone();
    shop.publish(&order_paid(&order)).await;
    shop.wait_for(buyer, &id, OrderStatus::Paid).await;

    shop.publish(&payment_failed(&order)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(shop.status(buyer, &id).await, OrderStatus::Paid);
    assert_eq!(
        shop.stock(&mug).await,
        (10, 1),
        "the paid order keeps its units"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_returns_the_stock_and_repeating_it_changes_nothing() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 2)])).await;
    let id = order.order_id.clone();
    let cancel = || {
        let mut orders = shop.orders.clone();
        let request = as_buyer(
            pb::CancelOrderRequest {
                order_id: id.clone(),
            },
            buyer,
        );
        async move { orders.cancel_order(request).await }
    };
    let first = cancel()
        .await
        .expect("cancelled")
        .into_inner()
        .order
        .expect("an order");
    let second = cancel()
        .await
        .expect("a repeat succeeds")
        .into_inner()
        .order
        .expect("an order");
    assert_eq!(status_of(&first), OrderStatus::Cancelled);
    assert_eq!(second.version, first.version, "the repeat changes nothing");
    shop.wait_for_stock(&mug, (10, 0)).await;
    assert_eq!(shop.events(&id, "order.cancelled").await, 1);
}
