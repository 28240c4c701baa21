//! Crash safety: the order.created consumer dies after its database writes and its
//! AttachPayment call but before its transaction (with the inbox row) commits and the delivery is
//! acked. The broker redelivers; the retry finds the same payment, the same intent and an order
//! already AWAITING_PAYMENT, so nothing is made twice.

use mercato_messaging::{EventEnvelope, Handler as _, IncomingEvent};
use mercato_payment::Application;
use mercato_payment::payments::consumers::OrderEventHandler;
use mercato_payment::testing::test_settings;
use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod, PaymentStatus};
use prost::Message as _;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::shop::{Shop, eventually};

async fn created_event(shop: &Shop, order_id: &str) -> EventEnvelope {
    let bytes: Vec<u8> = sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE event_type = 'order.created' AND aggregate_id = $1",
    )
    .bind(order_id)
    .fetch_one(shop.order_pool())
    .await
    .expect("order.created in the outbox");
    EventEnvelope::decode(bytes.as_slice()).expect("an envelope")
}

/// Runs the consumer's handler on `envelope` in a transaction that is then dropped: the process
/// "dies" before committing and acking.
async fn crash_while_handling(shop: &mut Shop, envelope: EventEnvelope) {
    let mut resources = shop.payment_env.resources();
    resources.order_service_url = shop.order.grpc_uri();
    let mut settings = test_settings(&resources);
    settings.bus_namespace = shop.product_env.broker().namespace().to_owned();
    let application = Application::build(
        settings,
        TcpListener::bind("127.0.0.1:0").await.expect("listener"),
        TcpListener::bind("127.0.0.1:0").await.expect("listener"),
    )
    .await
    .expect("a second instance builds");
    let context = application.context().clone();
    let handler = OrderEventHandler::new(context.clone());
    let event = IncomingEvent {
        envelope,
        attempt: 1,
        delivery_count: 0,
        queue: "payment.order-events".to_owned(),
    };
    let mut tx = context.pool.begin().await.expect("transaction");
    handler
        .handle(&event, &mut tx)
        .await
        .expect("the handler's work succeeds");
    drop(tx);
}

async fn scenario(method: PaymentMethod) {
    let mut shop = Shop::start().await;
    let sku = shop.sku(900, 5).await;
    let buyer = Uuid::now_v7();
    shop.charge(buyer, 5_000).await;
    // The consumer is up (its queue is declared); then the service goes away.
    let warm = shop.place(buyer, &sku, 1, PaymentMethod::Sandbox).await;
    shop.wait_for_order(buyer, &warm.order_id, OrderStatus::AwaitingPayment)
        .await;
    shop.payment
        .take()
        .expect("running")
        .stop()
        .await
        .expect("payment service stops");

    let order = shop.place(buyer, &sku, 1, method).await;
    let envelope = created_event(&shop, &order.order_id).await;
    crash_while_handling(&mut shop, envelope.clone()).await;

    let before: (Uuid, i64) =
        sqlx::query_as("SELECT payment_id, version FROM payments WHERE order_id = $1")
            .bind(Uuid::parse_str(&order.order_id).expect("uuid"))
            .fetch_one(shop.payment_env.database().pool())
            .await
            .expect("the committed first step left the payment");
    let attached = shop.order_of(buyer, &order.order_id).await;
    assert_eq!(attached.status, OrderStatus::AwaitingPayment as i32);
    assert_eq!(
        attached.payment.map(|p| p.payment_id),
        Some(before.0.to_string())
    );

    // The service comes back; the broker redelivers the unacked order.created.
    let namespace = shop.product_env.broker().namespace().to_owned();
    let payment = shop
        .payment_env
        .start(|settings| settings.bus_namespace = namespace)
        .await
        .expect("payment service restarts");
    shop.payments =
        mercato_proto::mercato::payment::v1::payment_service_client::PaymentServiceClient::new(
            crate::support::channel(payment.grpc_uri()),
        );
    shop.wallets =
        mercato_proto::mercato::payment::v1::wallet_service_client::WalletServiceClient::new(
            crate::support::channel(payment.grpc_uri()),
        );
    shop.payment = Some(payment);
    let message_id = envelope.event_id.clone();
    eventually("the redelivery is processed", || async {
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
            .bind(&message_id)
            .fetch_one(shop.pool())
            .await
            .expect("inbox read");
        found == 1
    })
    .await;

    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
        .bind(Uuid::parse_str(&order.order_id).expect("uuid"))
        .fetch_one(shop.pool())
        .await
        .expect("count");
    assert_eq!(payments, 1, "one payment");
    let payment = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(payment.payment_id, before.0.to_string(), "the same payment");
    assert_eq!(
        shop.order_outbox(&order.order_id, "order.awaiting_payment")
            .await,
        1,
        "one AttachPayment effect"
    );
    let intents: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sandbox_intents WHERE order_id = $1")
            .bind(Uuid::parse_str(&order.order_id).expect("uuid"))
            .fetch_one(shop.pool())
            .await
            .expect("count");
    match method {
        PaymentMethod::Points => {
            shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
                .await;
            assert_eq!(payment.status, PaymentStatus::Succeeded as i32);
            assert_eq!(intents, 0);
            assert_eq!(shop.balance(buyer).await, 4_100, "debited once");
            assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 1);
        }
        PaymentMethod::Unspecified | PaymentMethod::Stripe | PaymentMethod::Sandbox => {
            assert_eq!(intents, 1, "one intent at the provider");
            assert_eq!(payment.status, PaymentStatus::RequiresAction as i32);
            // The page link names the instance that created the intent (here the one that
            // crashed, on a port of its own); the page is served by any instance.
            let page = format!(
                "{}/sandbox/payments/{}",
                shop.payment().http_uri(),
                payment.provider_payment_id
            );
            assert_eq!(shop.press(&page, "pay").await, 200);
            shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
                .await;
        }
    }
    shop.assert_ledgers_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_payment_consumer_killed_before_its_ack_makes_one_payment_and_one_attach() {
    scenario(PaymentMethod::Sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_points_payment_consumer_killed_before_its_ack_debits_once() {
    scenario(PaymentMethod::Points).await;
}
