//! SANDBOX end to end: the order waits for payment with the sandbox page's URL; Pay goes through
//! the signed webhook to PAID, Fail to CANCELLED with the stock released; a missed webhook is
//! settled by reconciliation.

use mercato_payment::provider::sandbox::Outcome;
use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod, PaymentStatus};
use mercato_proto::mercato::payment::v1 as pb;
use uuid::Uuid;

use crate::shop::{Shop, as_admin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_pay_goes_through_the_signed_webhook_and_pays_the_order() {
    let shop = Shop::start().await;
    let sku = shop.sku(1_200, 5).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &sku, 2, PaymentMethod::Sandbox).await;

    let awaiting = shop
        .wait_for_order(buyer, &order.order_id, OrderStatus::AwaitingPayment)
        .await;
    let payment = shop.intent_of(buyer, &order.order_id).await;
    assert_eq!(payment.status, PaymentStatus::RequiresAction as i32);
    assert_eq!(payment.method, PaymentMethod::Sandbox as i32);
    assert_eq!(payment.amount.as_ref().map(|m| m.amount_minor), Some(2_400));
    assert!(payment.provider_payment_id.starts_with("sbx_"));
    let attached = awaiting.payment.expect("the payment is attached");
    assert_eq!(attached.payment_id, payment.payment_id);
    assert_eq!(attached.payment_url, payment.payment_url);
    assert!(
        payment.payment_url.starts_with(&shop.payment().http_uri()),
        "the page is served by the payment service: {}",
        payment.payment_url
    );

    let page = shop
        .http
        .get(&payment.payment_url)
        .send()
        .await
        .expect("page answered");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("page body");
    assert!(html.contains(">Pay<") && html.contains(">Fail<"), "{html}");
    assert!(html.contains("2400"), "the page shows the amount: {html}");

    assert_eq!(shop.press(&payment.payment_url, "pay").await, 200);
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    let paid = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded as i32);
    assert!(paid.settle_time.is_some());
    assert_eq!(shop.outbox(&paid.payment_id, "order.paid").await, 1);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(shop.pool())
        .await
        .expect("count");
    assert_eq!(
        events, 1,
        "the button's event went through the webhook path"
    );

    // The page no longer offers the buttons, and pressing again changes nothing.
    assert_eq!(shop.press(&payment.payment_url, "pay").await, 409);
    assert_eq!(shop.press(&payment.payment_url, "fail").await, 409);
    assert_eq!(shop.outbox(&paid.payment_id, "order.paid").await, 1);
    assert_eq!(shop.outbox(&paid.payment_id, "payment.failed").await, 0);
    assert_eq!(
        shop.order_outbox(&order.order_id, "order.awaiting_payment")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_fail_cancels_the_order_and_releases_the_stock() {
    let shop = Shop::start().await;
    let sku = shop.sku(800, 5).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &sku, 3, PaymentMethod::Sandbox).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::AwaitingPayment)
        .await;
    assert_eq!(shop.stock(&sku).await, (5, 3));
    let payment = shop.intent_of(buyer, &order.order_id).await;

    assert_eq!(shop.press(&payment.payment_url, "fail").await, 200);
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Cancelled)
        .await;
    let failed = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(failed.status, PaymentStatus::Failed as i32);
    assert_eq!(failed.failure_code, "card_declined");
    assert_eq!(shop.outbox(&failed.payment_id, "payment.failed").await, 1);
    assert_eq!(shop.outbox(&failed.payment_id, "order.paid").await, 0);
    shop.wait_for_stock(&sku, (5, 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_webhook_is_settled_by_reconciliation() {
    let shop = Shop::start().await;
    let sku = shop.sku(500, 5).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &sku, 1, PaymentMethod::Sandbox).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::AwaitingPayment)
        .await;
    let payment = shop.intent_of(buyer, &order.order_id).await;

    // The buyer paid at the provider, but its webhook never arrived.
    shop.payment()
        .context
        .sandbox
        .complete(&payment.provider_payment_id, Outcome::Succeed)
        .await
        .expect("sandbox intent settled");
    assert_eq!(
        shop.payment_of(buyer, &order.order_id).await.status,
        PaymentStatus::RequiresAction as i32
    );

    let report = shop
        .payments
        .clone()
        .reconcile_payments(as_admin(pb::ReconcilePaymentsRequest {
            older_than: Some(prost_types::Duration {
                seconds: 0,
                nanos: 0,
            }),
            limit: 0,
        }))
        .await
        .expect("reconciliation ran")
        .into_inner();
    assert_eq!(report.examined_count, 1);
    assert_eq!(report.succeeded_count, 1);
    assert_eq!(report.pending_count, 0);
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 1);

    // A second run finds nothing left to settle.
    let again = shop
        .payments
        .clone()
        .reconcile_payments(as_admin(pb::ReconcilePaymentsRequest {
            older_than: Some(prost_types::Duration {
                seconds: 0,
                nanos: 0,
            }),
            limit: 0,
        }))
        .await
        .expect("reconciliation ran")
        .into_inner();
    assert_eq!(again.examined_count, 0);
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_cancelled_abandons_its_sandbox_payment() {
    let shop = Shop::start().await;
    let sku = shop.sku(500, 5).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &sku, 1, PaymentMethod::Sandbox).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::AwaitingPayment)
        .await;
    let payment = shop.intent_of(buyer, &order.order_id).await;

    shop.orders
        .clone()
        .cancel_order(crate::shop::as_buyer(
            mercato_proto::mercato::order::v1::CancelOrderRequest {
                order_id: order.order_id.clone(),
            },
            buyer,
        ))
        .await
        .expect("order cancelled");
    crate::shop::eventually("the payment is abandoned", || async {
        shop.payment_of(buyer, &order.order_id).await.status == PaymentStatus::Cancelled as i32
    })
    .await;
    // The sandbox intent is cancelled too: the page refuses to take the money any more.
    assert_eq!(shop.press(&payment.payment_url, "pay").await, 409);
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 0);
}
