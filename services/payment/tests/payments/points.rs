//! POINTS: paying from the wallet in the payment's own transaction, refusing an insufficient
//! balance precisely, the ledger invariant under heavy concurrency, duplicate deliveries, and the
//! refund of a cancelled paid order.

use mercato_messaging::EventEnvelope;
use mercato_payment::error::PaymentError;
use mercato_payment::wallet;
use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod, PaymentStatus};
use mercato_proto::mercato::order::v1 as order_pb;
use prost::Message as _;
use uuid::Uuid;

use crate::shop::{Shop, as_buyer, eventually};

/// The order service's outbox envelope of `event_type` for `order_id`.
async fn order_event(shop: &Shop, order_id: &str, event_type: &str) -> EventEnvelope {
    let bytes: Vec<u8> = sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE event_type = $1 AND aggregate_id = $2",
    )
    .bind(event_type)
    .bind(order_id)
    .fetch_one(shop.order_pool())
    .await
    .expect("order event in the outbox");
    EventEnvelope::decode(bytes.as_slice()).expect("an envelope")
}

/// Publishes a copy of `envelope` under a fresh event id (a duplicate the inbox cannot catch).
async fn publish_copy(shop: &Shop, envelope: &EventEnvelope) -> String {
    let mut copy = envelope.clone();
    copy.event_id = Uuid::now_v7().to_string();
    shop.publish(&copy).await;
    copy.event_id
}

async fn inbox_has(shop: &Shop, message_id: &str) -> bool {
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
        .bind(message_id)
        .fetch_one(shop.pool())
        .await
        .expect("inbox read");
    found == 1
}

async fn ledger_rows(shop: &Shop, kind: &str, payment_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ledger_entries WHERE kind = $1 AND payment_id = $2")
        .bind(kind)
        .bind(Uuid::parse_str(payment_id).expect("payment uuid"))
        .fetch_one(shop.pool())
        .await
        .expect("ledger read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charged_wallet_pays_the_order_directly() {
    let shop = Shop::start().await;
    let sku = shop.sku(700, 5).await;
    let buyer = Uuid::now_v7();
    let charged = shop.charge(buyer, 5_000).await;
    assert_eq!(
        charged
            .wallet
            .and_then(|w| w.balance)
            .map(|m| m.amount_minor),
        Some(5_000)
    );

    let order = shop.place(buyer, &sku, 2, PaymentMethod::Points).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    let payment = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(payment.status, PaymentStatus::Succeeded as i32);
    assert_eq!(payment.payment_url, "");
    assert_eq!(shop.balance(buyer).await, 3_600);
    assert_eq!(ledger_rows(&shop, "SPEND", &payment.payment_id).await, 1);
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 1);
    shop.assert_ledgers_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insufficient_balance_fails_the_payment_with_a_precise_code() {
    let shop = Shop::start().await;
    let sku = shop.sku(700, 5).await;
    let buyer = Uuid::now_v7();
    shop.charge(buyer, 1_000).await;
    let order = shop.place(buyer, &sku, 2, PaymentMethod::Points).await;

    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Cancelled)
        .await;
    let payment = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(payment.status, PaymentStatus::Failed as i32);
    assert_eq!(payment.failure_code, "insufficient_points");
    assert!(
        payment.failure_message.contains("1000") && payment.failure_message.contains("1400"),
        "{}",
        payment.failure_message
    );
    assert_eq!(shop.outbox(&payment.payment_id, "payment.failed").await, 1);
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 0);
    assert_eq!(shop.balance(buyer).await, 1_000, "nothing was debited");
    assert_eq!(ledger_rows(&shop, "SPEND", &payment.payment_id).await, 0);
    shop.wait_for_stock(&sku, (5, 0)).await;
    shop.assert_ledgers_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_charges_and_spends_keep_the_balance_equal_to_the_ledger() {
    let shop = Shop::start().await;
    let user = Uuid::now_v7();
    let pool = shop.pool().clone();
    let charges = (0..100).map(|_| {
        let shop = &shop;
        async move {
            shop.charge(user, 10).await;
        }
    });
    let spends = (0..100).map(|_| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.expect("transaction");
            match wallet::spend(
                &mut tx,
                user,
                15,
                Uuid::now_v7(),
                Uuid::now_v7(),
                chrono::Utc::now(),
            )
            .await
            {
                Ok(_) => {
                    tx.commit().await.expect("spend committed");
                    true
                }
                Err(PaymentError::InsufficientBalance { .. }) => false,
                Err(other) => panic!("unexpected spend failure: {other}"),
            }
        }
    });
    let (_, spent) = tokio::join!(
        futures::future::join_all(charges),
        futures::future::join_all(spends)
    );
    let succeeded = i64::try_from(spent.iter().filter(|ok| **ok).count()).expect("count");
    let balance = shop.balance(user).await;
    assert_eq!(balance, 1_000 - 15 * succeeded);
    assert!(balance >= 0);
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_entries WHERE user_id = $1")
        .bind(user)
        .fetch_one(shop.pool())
        .await
        .expect("count");
    assert_eq!(entries, 100 + succeeded);
    shop.assert_ledgers_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_order_created_deliveries_make_exactly_one_payment() {
    let shop = Shop::start().await;
    let sku = shop.sku(1_000, 5).await;
    let buyer = Uuid::now_v7();
    shop.charge(buyer, 10_000).await;
    let order = shop.place(buyer, &sku, 1, PaymentMethod::Points).await;
    let created = order_event(&shop, &order.order_id, "order.created").await;
    // Copies race the original through the consumer.
    let copies = futures::future::join_all((0..3).map(|_| publish_copy(&shop, &created))).await;

    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    for id in &copies {
        eventually("each copy is consumed", || inbox_has(&shop, id)).await;
    }
    assert_eq!(shop.payment_count().await, 1);
    let payment = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(ledger_rows(&shop, "SPEND", &payment.payment_id).await, 1);
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 1);
    assert_eq!(shop.balance(buyer).await, 9_000);
    assert_eq!(
        shop.order_outbox(&order.order_id, "order.awaiting_payment")
            .await,
        1
    );
    shop.assert_ledgers_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_paid_points_order_refunds_it_once() {
    let shop = Shop::start().await;
    let sku = shop.sku(1_500, 5).await;
    let buyer = Uuid::now_v7();
    shop.charge(buyer, 2_000).await;
    let order = shop.place(buyer, &sku, 1, PaymentMethod::Points).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    assert_eq!(shop.balance(buyer).await, 500);

    shop.orders
        .clone()
        .cancel_order(as_buyer(
            order_pb::CancelOrderRequest {
                order_id: order.order_id.clone(),
            },
            buyer,
        ))
        .await
        .expect("paid order cancelled");
    let payment_id = shop.payment_of(buyer, &order.order_id).await.payment_id;
    eventually("the payment is refunded", || async {
        shop.payment_of(buyer, &order.order_id).await.status == PaymentStatus::Refunded as i32
    })
    .await;

    // A duplicate of the cancellation (fresh event id) refunds nothing more.
    let cancelled = order_event(&shop, &order.order_id, "order.cancelled").await;
    let copy = publish_copy(&shop, &cancelled).await;
    eventually("the copy is consumed", || inbox_has(&shop, &copy)).await;

    let payment = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(payment.refunds.len(), 1);
    assert_eq!(
        payment.refunded_amount.as_ref().map(|m| m.amount_minor),
        Some(1_500)
    );
    assert_eq!(ledger_rows(&shop, "REFUND", &payment_id).await, 1);
    assert_eq!(shop.outbox(&payment_id, "payment.refunded").await, 1);
    assert_eq!(shop.balance(buyer).await, 2_000);
    shop.assert_ledgers_consistent().await;
}
