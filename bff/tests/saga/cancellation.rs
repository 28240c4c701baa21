//! A paid order cancelled before it ships gives everything back.

use std::time::Duration;

use crate::support::{FullStack, Services, press, reason, with_token};
use mercato_process::settings::CarrierMode;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as product;
use tonic::Code;

use crate::shop::{CHARGE, ON_HAND, PATIENCE, Shop, UNITS, jpy, status_of, total};

/// Who cancels the paid order.
#[derive(Debug, Clone, Copy)]
enum Canceller {
    Buyer,
    Admin,
}

/// Pays an order (points, or on the sandbox page), waits for the process service to commit its
/// stock (the manual carrier never ships it), cancels it as `canceller` and checks that it is
/// refunded once and gives back the stock and the coupon, and that it can no longer ship.
async fn cancel_after_payment(method: common::PaymentMethod, canceller: Canceller) {
    let services = Services::start_full_with(FullStack {
        carrier: CarrierMode::Manual,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    let points = method == common::PaymentMethod::Points;
    if points {
        shop.charge(CHARGE).await;
    }
    let coupon = shop.claimed_coupon().await;
    let placed = shop.checkout(method, &coupon).await;
    if !points {
        let payment = shop.attached_payment(&placed.order_id).await;
        assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    }
    shop.watch_until(&placed.order_id, common::OrderStatus::Paid)
        .await;
    // The process service took the order: its shipment waits for the carrier and the stock is
    // committed, so the cancellation has to give committed units back.
    let preparing = shop
        .shipment_until(&placed.order_id, common::ShipmentStatus::Preparing)
        .await;
    assert!(preparing.tracking_number.is_empty(), "{preparing:?}");
    shop.stock_until((ON_HAND - UNITS, 0)).await;
    assert_eq!(
        shop.reservation(&placed.order_id).await,
        product::ReservationStatus::Committed
    );

    let cancel = || bff::CancelOrderRequest {
        order_id: placed.order_id.clone(),
    };
    let (cancelled, expected_reason) = match canceller {
        Canceller::Buyer => (
            shop.orders
                .cancel_order(with_token(cancel(), &shop.shopper))
                .await
                .expect("the buyer cancels the paid order")
                .into_inner()
                .order
                .expect("order"),
            common::OrderCancellationReason::UserRequested,
        ),
        Canceller::Admin => (
            shop.admin
                .cancel_any_order(with_token(
                    bff::CancelAnyOrderRequest {
                        order_id: placed.order_id.clone(),
                    },
                    &shop.operator,
                ))
                .await
                .expect("the admin cancels the paid order")
                .into_inner()
                .order
                .expect("order"),
            common::OrderCancellationReason::AdminRequested,
        ),
    };
    assert_eq!(status_of(&cancelled), common::OrderStatus::Cancelled);
    assert_eq!(cancelled.cancellation_reason, i32::from(expected_reason));
    // Cancelling again changes nothing.
    let again = shop
        .orders
        .cancel_order(with_token(cancel(), &shop.shopper))
        .await
        .expect("a cancelled order cancels as a no-op")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(again.cancellation_reason, i32::from(expected_reason));

    // Refunded in full, once; the committed units are back on hand; the coupon is back; the
    // parcel can no longer be shipped.
    let refunded = shop
        .payment_until(&placed.order_id, common::PaymentStatus::Refunded)
        .await;
    assert_eq!(refunded.refunded_amount, jpy(total()));
    shop.stock_until((ON_HAND, 0)).await;
    assert_eq!(
        shop.reservation(&placed.order_id).await,
        product::ReservationStatus::Returned
    );
    // The manual carrier has no step due after the commit, so nothing withdraws the shipment
    // on its own (the process service learns of the cancellation only when a step is refused);
    // an operator's handover is refused by the order service, and nothing ships.
    let late = shop
        .admin
        .mark_shipment_shipped(with_token(
            bff::MarkShipmentShippedRequest {
                shipment_id: preparing.shipment_id.clone(),
                carrier: "yamato".to_owned(),
                tracking_number: "YMT-0001".to_owned(),
                tracking_url: String::new(),
            },
            &shop.operator,
        ))
        .await
        .expect_err("a cancelled order's shipment does not ship");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert_eq!(reason(&late), "ILLEGAL_STATE_TRANSITION");
    assert_eq!(reason(&late), "ILLEGAL_STATE_TRANSITION");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while shop.coupon_status(&coupon.user_coupon_id).await.0 != common::UserCouponStatus::Available
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the coupon never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if points {
        assert_eq!(
            shop.balance().await,
            CHARGE,
            "the wallet got the total back"
        );
        assert_eq!(
            shop.entries(common::LedgerEntryKind::Refund, &placed.order_id)
                .await,
            vec![total()],
            "one refund entry"
        );
    }
    let order = shop.order(&placed.order_id).await;
    assert_eq!(status_of(&order), common::OrderStatus::Cancelled);
    assert!(order.shipment.is_none(), "it never shipped: {order:?}");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_points_order_the_buyer_cancels_is_refunded_once_and_gives_everything_back() {
    cancel_after_payment(common::PaymentMethod::Points, Canceller::Buyer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_sandbox_order_an_admin_cancels_is_refunded_once_and_gives_everything_back() {
    cancel_after_payment(common::PaymentMethod::Sandbox, Canceller::Admin).await;
}
