//! STRIPE end to end against a real localstripe (behind mercato-stripe's normalizing proxy): the
//! payment service creates the order's PaymentIntent, the test confirms it as Stripe.js would,
//! and localstripe's own signed webhook (registered on the service's `/webhooks/stripe`) settles
//! the payment and the order; a decline cancels the order; cancelling a paid order refunds it at
//! localstripe once; a missed webhook is settled by reconciliation re-fetching the intent.

use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod, PaymentStatus, RefundStatus};
use mercato_proto::mercato::order::v1 as order_pb;
use mercato_proto::mercato::payment::v1 as pb;
use mercato_stripe::PaymentIntentStatus;
use mercato_stripe::testing::{LocalStripe, TEST_SECRET_KEY, TestCard};
use secrecy::SecretString;
use uuid::Uuid;

use crate::shop::{Shop, as_admin, as_buyer, eventually};

/// The secret localstripe signs its webhooks with; the service accepts it beside the test one.
const LOCALSTRIPE_WEBHOOK_SECRET: &str = "whsec_localstripe_mercato";

/// The events the service is told about.
const EVENTS: &[&str] = &["payment_intent.succeeded", "payment_intent.payment_failed"];

/// The three services with the payment service's STRIPE method on `stripe`.
async fn shop_on(stripe: &LocalStripe) -> Shop {
    let base_url = stripe.base_url();
    Shop::start_with(move |settings| {
        settings.payments.stripe_secret_key = Some(SecretString::from(TEST_SECRET_KEY));
        settings.payments.stripe_api_base_url = base_url;
        settings
            .payments
            .webhook_secrets
            .push(SecretString::from(LOCALSTRIPE_WEBHOOK_SECRET));
    })
    .await
}

/// Points localstripe's webhooks at the service.
async fn register_webhook(stripe: &LocalStripe, shop: &Shop) {
    let url = format!(
        "{}{}",
        shop.payment().http_uri(),
        mercato_payment::webhook::PATH
    );
    stripe
        .register_webhook("mercato", &url, LOCALSTRIPE_WEBHOOK_SECRET, Some(EVENTS))
        .await;
}

/// Rows of `webhook_events` of `event_type` about `object_id`.
async fn webhook_events(shop: &Shop, event_type: &str, object_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events WHERE event_type = $1 AND object_id = $2",
    )
    .bind(event_type)
    .bind(object_id)
    .fetch_one(shop.pool())
    .await
    .expect("count")
}

/// Places a STRIPE order of one unit at `price` and waits for its PaymentIntent; the order, the
/// payment and the buyer.
async fn stripe_order(shop: &Shop, price: i64) -> (order_pb::Order, pb::Payment, Uuid) {
    let sku = shop.sku(price, 5).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &sku, 1, PaymentMethod::Stripe).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::AwaitingPayment)
        .await;
    let payment = shop.intent_of(buyer, &order.order_id).await;
    (order, payment, buyer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_payment_confirmed_in_the_browser_is_paid_by_localstripes_signed_webhook() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    register_webhook(&stripe, &shop).await;
    let (order, payment, buyer) = stripe_order(&shop, 1_200).await;

    // The payment has a PaymentIntent at Stripe, no page (the browser confirms with the client
    // secret), and the order waits for it.
    assert_eq!(payment.method, PaymentMethod::Stripe as i32);
    assert_eq!(payment.status, PaymentStatus::RequiresAction as i32);
    assert!(
        payment.provider_payment_id.starts_with("pi_"),
        "{}",
        payment.provider_payment_id
    );
    assert_eq!(payment.payment_url, "");
    assert!(
        !payment.client_secret.is_empty(),
        "the payer gets the client secret"
    );
    let awaiting = shop.order_of(buyer, &order.order_id).await;
    let attached = awaiting.payment.expect("the payment is attached");
    assert_eq!(attached.payment_id, payment.payment_id);
    assert_eq!(attached.payment_url, "");
    let provider: String =
        sqlx::query_scalar("SELECT provider FROM payments WHERE payment_id = $1")
            .bind(Uuid::parse_str(&payment.payment_id).expect("payment uuid"))
            .fetch_one(shop.pool())
            .await
            .expect("provider");
    assert_eq!(provider, "stripe");

    let intent = stripe
        .client()
        .retrieve_payment_intent(&payment.provider_payment_id)
        .await
        .expect("the intent exists at localstripe");
    assert_eq!(intent.amount, 1_200);
    assert_eq!(intent.currency, "jpy");
    assert_eq!(intent.order_id.as_deref(), Some(order.order_id.as_str()));
    assert_eq!(
        intent.payment_id.as_deref(),
        Some(payment.payment_id.as_str())
    );
    assert_eq!(intent.status, PaymentIntentStatus::RequiresPaymentMethod);

    let confirmed = stripe
        .confirm_payment_intent(&payment.provider_payment_id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);

    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    let paid = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded as i32);
    assert!(paid.settle_time.is_some());
    assert_eq!(shop.outbox(&paid.payment_id, "order.paid").await, 1);
    assert_eq!(shop.outbox(&paid.payment_id, "payment.failed").await, 0);
    assert_eq!(
        webhook_events(
            &shop,
            "payment_intent.succeeded",
            &payment.provider_payment_id
        )
        .await,
        1,
        "the payment was settled by localstripe's webhook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_fails_the_stripe_payment_and_cancels_the_order() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    register_webhook(&stripe, &shop).await;
    let (order, payment, buyer) = stripe_order(&shop, 800).await;

    let declined = stripe
        .confirm_payment_intent(&payment.provider_payment_id, TestCard::ChargeCustomerFail)
        .await;
    assert_eq!(declined.status, 402, "{}", declined.body);

    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Cancelled)
        .await;
    let failed = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(failed.status, PaymentStatus::Failed as i32);
    assert_eq!(failed.failure_code, "card_declined");
    assert!(!failed.failure_message.is_empty());
    assert_eq!(shop.outbox(&failed.payment_id, "payment.failed").await, 1);
    assert_eq!(shop.outbox(&failed.payment_id, "order.paid").await, 0);
    assert_eq!(
        webhook_events(
            &shop,
            "payment_intent.payment_failed",
            &payment.provider_payment_id
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_paid_stripe_order_refunds_it_once_at_localstripe() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    register_webhook(&stripe, &shop).await;
    let (order, payment, buyer) = stripe_order(&shop, 1_500).await;
    let confirmed = stripe
        .confirm_payment_intent(&payment.provider_payment_id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;

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
    eventually("the payment is refunded", || async {
        shop.payment_of(buyer, &order.order_id).await.status == PaymentStatus::Refunded as i32
    })
    .await;

    let refunded = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(refunded.refunds.len(), 1);
    let refund = &refunded.refunds[0];
    assert_eq!(refund.status, RefundStatus::Succeeded as i32);
    assert_eq!(refund.amount.as_ref().map(|m| m.amount_minor), Some(1_500));
    assert!(
        refund.provider_refund_id.starts_with("re_"),
        "{}",
        refund.provider_refund_id
    );
    assert_eq!(
        refunded.refunded_amount.as_ref().map(|m| m.amount_minor),
        Some(1_500)
    );
    assert_eq!(
        shop.outbox(&refunded.payment_id, "payment.refunded").await,
        1
    );

    // localstripe holds that one refund of the intent's charge.
    let (status, at_stripe) = stripe
        .get_raw(&format!("/v1/refunds/{}", refund.provider_refund_id))
        .await;
    assert_eq!(status, 200, "{at_stripe}");
    assert_eq!(at_stripe["amount"], 1_500);
    let (status, charge) = stripe
        .get_raw(&format!(
            "/v1/charges/{}",
            at_stripe["charge"].as_str().expect("the refund's charge")
        ))
        .await;
    assert_eq!(status, 200, "{charge}");
    assert_eq!(
        charge["payment_intent"],
        payment.provider_payment_id.as_str()
    );
    assert_eq!(charge["amount_refunded"], 1_500);
    assert_eq!(
        charge["refunds"]["data"].as_array().map(Vec::len),
        Some(1),
        "{charge}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_stripe_webhook_is_settled_by_reconciliation() {
    let stripe = LocalStripe::start().await;
    // No webhook registered: localstripe's events never reach the service.
    let shop = shop_on(&stripe).await;
    let (order, payment, buyer) = stripe_order(&shop, 500).await;
    let confirmed = stripe
        .confirm_payment_intent(&payment.provider_payment_id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
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
    let paid = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded as i32);
    assert_eq!(shop.outbox(&paid.payment_id, "order.paid").await, 1);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(shop.pool())
        .await
        .expect("count");
    assert_eq!(events, 0, "settled without any webhook");
}
