//! Each payment method, from registration to FINISHED.

use crate::support::{FullStack, STRIPE_PUBLISHABLE_KEY, Services, press};
use mercato_proto::mercato::common::v1 as common;
use mercato_stripe::testing::TestCard;

use crate::shop::{CHARGE, ON_HAND, Shop, UNITS, assert_fulfilled, jpy, total};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_points_order_is_paid_from_the_wallet_shipped_with_a_tracking_number_and_finished() {
    let services = Services::start_full().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    shop.charge(CHARGE).await;
    let coupon = shop.claimed_coupon().await;

    let placed = shop.checkout(common::PaymentMethod::Points, &coupon).await;
    let (finished, watched) = shop
        .watch_until(&placed.order_id, common::OrderStatus::Finished)
        .await;

    assert_fulfilled(&mut shop, &finished, &watched, &coupon).await;
    assert_eq!(shop.balance().await, CHARGE - total());
    assert_eq!(
        shop.entries(common::LedgerEntryKind::Spend, &placed.order_id)
            .await,
        vec![-total()]
    );

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_order_paid_on_its_page_is_shipped_with_a_tracking_number_and_finished() {
    let services = Services::start_full().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    let coupon = shop.claimed_coupon().await;

    let placed = shop.checkout(common::PaymentMethod::Sandbox, &coupon).await;
    let payment = shop.attached_payment(&placed.order_id).await;
    assert_eq!(
        payment.status,
        i32::from(common::PaymentStatus::RequiresAction)
    );
    assert!(!payment.payment_url.is_empty());
    // Nothing ships before it is paid.
    assert_eq!(shop.stock_level().await, (ON_HAND, UNITS));
    assert!(shop.shipments(&placed.order_id).await.is_empty());

    assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    let (finished, watched) = shop
        .watch_until(&placed.order_id, common::OrderStatus::Finished)
        .await;

    assert_fulfilled(&mut shop, &finished, &watched, &coupon).await;
    assert_eq!(shop.balance().await, 0, "the wallet was never involved");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_order_confirmed_at_localstripe_is_shipped_with_a_tracking_number_and_finished() {
    let services = Services::start_full_with(FullStack {
        stripe: true,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    let coupon = shop.claimed_coupon().await;

    let placed = shop.checkout(common::PaymentMethod::Stripe, &coupon).await;
    let payment = shop.attached_payment(&placed.order_id).await;
    // What Stripe.js needs, for the payer only: the intent's client secret and the key.
    assert_eq!(payment.method, i32::from(common::PaymentMethod::Stripe));
    assert_eq!(
        payment.status,
        i32::from(common::PaymentStatus::RequiresAction)
    );
    assert_eq!(payment.amount, jpy(total()));
    assert!(payment.payment_url.is_empty(), "{payment:?}");
    assert_eq!(payment.publishable_key, STRIPE_PUBLISHABLE_KEY);
    // A client secret is `{intent id}_secret_{random}` (Stripe.js reads the id from it too).
    let (intent_id, _) = payment
        .client_secret
        .split_once("_secret_")
        .unwrap_or_else(|| panic!("a client secret: {:?}", payment.client_secret));
    assert!(intent_id.starts_with("pi_"), "{intent_id}");
    let intent = services
        .stripe()
        .client()
        .retrieve_payment_intent(intent_id)
        .await
        .expect("the intent exists at localstripe");
    assert_eq!(intent.amount, total());
    assert_eq!(intent.order_id.as_deref(), Some(placed.order_id.as_str()));

    let confirmed = services
        .stripe()
        .confirm_payment_intent(intent_id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let (finished, watched) = shop
        .watch_until(&placed.order_id, common::OrderStatus::Finished)
        .await;

    assert_fulfilled(&mut shop, &finished, &watched, &coupon).await;
    let settled = shop.payment(&placed.order_id).await.expect("the payment");
    assert!(settled.settle_time.is_some());

    drop(bff);
    services.stop().await;
}
