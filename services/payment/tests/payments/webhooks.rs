//! The webhook endpoint: duplicates, reordering, the signature matrix and the body cap. Events are
//! signed as a provider signs them; the intent's state lives on the (sandbox) provider's side and
//! is what the service re-fetches.

use mercato_payment::provider::sandbox::Outcome;
use mercato_payment::signature;
use mercato_payment::testing::TEST_WEBHOOK_SECRET;
use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod, PaymentStatus};
use mercato_proto::mercato::payment::v1 as pb;
use uuid::Uuid;

use crate::shop::{Shop, intent_event, signed};

/// A shop with one SANDBOX order awaiting payment: `(shop, buyer, order id, payment)`.
async fn awaiting() -> (Shop, Uuid, String, pb::Payment) {
    let shop = Shop::start().await;
    let sku = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &sku, 1, PaymentMethod::Sandbox).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::AwaitingPayment)
        .await;
    let payment = shop.intent_of(buyer, &order.order_id).await;
    (shop, buyer, order.order_id, payment)
}

async fn event_rows(shop: &Shop) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(shop.pool())
        .await
        .expect("count")
}

async fn set_provider_status(shop: &Shop, intent_id: &str, status: &str) {
    sqlx::query("UPDATE sandbox_intents SET status = $2 WHERE intent_id = $1")
        .bind(intent_id)
        .bind(status)
        .execute(shop.pool())
        .await
        .expect("provider state set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signed_event_ten_times_at_once_makes_one_transition() {
    let (shop, buyer, order_id, payment) = awaiting().await;
    shop.payment()
        .context
        .sandbox
        .complete(&payment.provider_payment_id, Outcome::Succeed)
        .await
        .expect("paid at the provider");
    let body = intent_event(
        "evt_same_ten",
        "payment_intent.succeeded",
        &payment.provider_payment_id,
    );
    let signature = signed(&body);
    let answers = futures::future::join_all(
        (0..10).map(|_| shop.post_webhook(body.clone(), Some(signature.clone()))),
    )
    .await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");

    let after = shop.payment_of(buyer, &order_id).await;
    assert_eq!(after.status, PaymentStatus::Succeeded as i32);
    assert_eq!(after.version, payment.version + 1, "one transition");
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 1);
    assert_eq!(event_rows(&shop).await, 1);
    shop.wait_for_order(buyer, &order_id, OrderStatus::Paid)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_processing_and_failed_events_never_regress_a_succeeded_payment() {
    let (shop, buyer, order_id, payment) = awaiting().await;
    let intent = payment.provider_payment_id.clone();

    // `succeeded` arrives first.
    set_provider_status(&shop, &intent, "succeeded").await;
    let body = intent_event("evt_1_succeeded", "payment_intent.succeeded", &intent);
    assert_eq!(
        shop.post_webhook(body.clone(), Some(signed(&body))).await,
        200
    );
    let succeeded = shop.payment_of(buyer, &order_id).await;
    assert_eq!(succeeded.status, PaymentStatus::Succeeded as i32);

    // Then a `processing`, even while the provider itself still (stalely) says processing.
    set_provider_status(&shop, &intent, "processing").await;
    let body = intent_event("evt_2_processing", "payment_intent.processing", &intent);
    assert_eq!(
        shop.post_webhook(body.clone(), Some(signed(&body))).await,
        200
    );

    // Then a `payment_failed` after the success.
    set_provider_status(&shop, &intent, "failed").await;
    let body = intent_event("evt_3_failed", "payment_intent.payment_failed", &intent);
    assert_eq!(
        shop.post_webhook(body.clone(), Some(signed(&body))).await,
        200
    );

    let after = shop.payment_of(buyer, &order_id).await;
    assert_eq!(after.status, PaymentStatus::Succeeded as i32);
    assert_eq!(after.version, succeeded.version, "no further transition");
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 1);
    assert_eq!(shop.outbox(&payment.payment_id, "payment.failed").await, 0);
    assert_eq!(event_rows(&shop).await, 3, "each event was recorded once");
    shop.wait_for_order(buyer, &order_id, OrderStatus::Paid)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused_with_no_effect_and_a_rotated_secret_is_accepted() {
    let (shop, buyer, order_id, payment) = awaiting().await;
    let intent = payment.provider_payment_id.clone();
    set_provider_status(&shop, &intent, "succeeded").await;
    let body = intent_event("evt_matrix", "payment_intent.succeeded", &intent);
    let now = chrono::Utc::now().timestamp();

    let reserialized = serde_json::to_vec_pretty(
        &serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
    )
    .expect("json");
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("missing header", body.clone(), None),
        (
            "wrong secret",
            body.clone(),
            Some(signature::header(&["whsec_wrong"], now, &body)),
        ),
        (
            "body re-serialized after signing",
            reserialized,
            Some(signature::header(&[TEST_WEBHOOK_SECRET], now, &body)),
        ),
        (
            "timestamp 301 s old",
            body.clone(),
            Some(signature::header(&[TEST_WEBHOOK_SECRET], now - 301, &body)),
        ),
        ("garbage header", body.clone(), Some("t=,v1=".to_owned())),
    ];
    for (name, case_body, header) in cases {
        assert_eq!(shop.post_webhook(case_body, header).await, 400, "{name}");
    }
    assert_eq!(
        event_rows(&shop).await,
        0,
        "refused events are not recorded"
    );
    let unchanged = shop.payment_of(buyer, &order_id).await;
    assert_eq!(unchanged.status, PaymentStatus::RequiresAction as i32);
    assert_eq!(unchanged.version, payment.version);
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 0);

    // Two v1 values, one from a secret we do not hold and one valid: accepted (rotation).
    let rotated = signature::header(&["whsec_retired", TEST_WEBHOOK_SECRET], now, &body);
    assert_eq!(shop.post_webhook(body, Some(rotated)).await, 200);
    let paid = shop.payment_of(buyer, &order_id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded as i32);
    assert_eq!(shop.outbox(&payment.payment_id, "order.paid").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_list_accepts_events_signed_with_any_of_its_secrets() {
    let shop = Shop::start_with(|settings| {
        settings.payments.webhook_secrets = vec![
            secrecy::SecretString::from("whsec_new"),
            secrecy::SecretString::from(TEST_WEBHOOK_SECRET),
        ];
    })
    .await;
    let body = intent_event("evt_unknown", "payment_intent.succeeded", "pi_unknown");
    let now = chrono::Utc::now().timestamp();
    let old = signature::header(&[TEST_WEBHOOK_SECRET], now, &body);
    assert_eq!(shop.post_webhook(body.clone(), Some(old)).await, 200);
    let new = signature::header(&["whsec_new"], now, &body);
    assert_eq!(shop.post_webhook(body.clone(), Some(new)).await, 200);
    let other = signature::header(&["whsec_other"], now, &body);
    assert_eq!(shop.post_webhook(body, Some(other)).await, 400);
    assert_eq!(
        shop.payment_count().await,
        0,
        "an unknown intent changes no payment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_64_kib_is_refused_with_413() {
    let shop = Shop::start().await;
    let mut body = intent_event("evt_big", "payment_intent.succeeded", "pi_big");
    body.truncate(body.len() - 1);
    body.extend_from_slice(b",\"pad\":\"");
    body.extend(std::iter::repeat_n(b'x', 64 * 1024));
    body.extend_from_slice(b"\"}");
    let header = signed(&body);
    assert_eq!(shop.post_webhook(body, Some(header)).await, 413);
    assert_eq!(event_rows(&shop).await, 0);
}
