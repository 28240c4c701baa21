//! The manual carrier: an operator ships, the buyer watches; the shipment RPCs' refusals.

use crate::support::{FullStack, Services, reason, violated_fields, with_token};
use mercato_process::settings::CarrierMode;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::process::v1 as process;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::shop::{
    CHARGE, ON_HAND, PATIENCE, Shop, UNITS, as_operator, shipment_status, status_of, watch_to,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_ships_through_the_admin_console_and_the_buyers_watch_sees_shipped_then_finished()
 {
    let services = Services::start_full_with(FullStack {
        carrier: CarrierMode::Manual,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    shop.charge(CHARGE).await;
    let coupon = shop.claimed_coupon().await;
    let placed = shop.checkout(common::PaymentMethod::Points, &coupon).await;

    // One watch, held from before the payment to the end.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut stream = shop.watch(&placed.order_id).await;
    let mut seen = Vec::new();
    let paid = watch_to(&mut stream, deadline, &mut seen, common::OrderStatus::Paid).await;
    assert!(paid.shipment.is_none());
    let preparing = shop
        .shipment_until(&placed.order_id, common::ShipmentStatus::Preparing)
        .await;

    // The operator's handover, with the carrier's tracking number.
    let handover = bff::MarkShipmentShippedRequest {
        shipment_id: preparing.shipment_id.clone(),
        carrier: "yamato".to_owned(),
        tracking_number: "YMT-4242-0001".to_owned(),
        tracking_url: "https://track.example/YMT-4242-0001".to_owned(),
    };
    let shipped = shop
        .admin
        .mark_shipment_shipped(with_token(handover.clone(), &shop.operator))
        .await
        .expect("the operator ships it")
        .into_inner()
        .shipment
        .expect("shipment");
    assert_eq!(shipment_status(&shipped), common::ShipmentStatus::Shipped);
    assert_eq!(shipped.shipment_id, preparing.shipment_id);
    assert_eq!(shipped.order_id, placed.order_id);
    assert_eq!(
        (shipped.carrier.as_str(), shipped.tracking_number.as_str()),
        ("yamato", "YMT-4242-0001")
    );
    assert!(shipped.ship_time.is_some() && shipped.deliver_time.is_none());
    // The same handover again is a no-op; another tracking number is refused.
    let replayed = shop
        .admin
        .mark_shipment_shipped(with_token(handover.clone(), &shop.operator))
        .await
        .expect("a repeated handover")
        .into_inner()
        .shipment
        .expect("shipment");
    assert_eq!(replayed, shipped);
    let other = shop
        .admin
        .mark_shipment_shipped(with_token(
            bff::MarkShipmentShippedRequest {
                tracking_number: "YMT-4242-0002".to_owned(),
                ..handover.clone()
            },
            &shop.operator,
        ))
        .await
        .expect_err("shipped with another tracking number");
    assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");
    assert_eq!(reason(&other), "ILLEGAL_STATE_TRANSITION");

    let on_the_way = watch_to(
        &mut stream,
        deadline,
        &mut seen,
        common::OrderStatus::Shipped,
    )
    .await;
    let parcel = on_the_way.shipment.clone().expect("the parcel is shown");
    assert_eq!(parcel.carrier, "yamato");
    assert_eq!(parcel.tracking_number, "YMT-4242-0001");
    assert_eq!(parcel.tracking_url, "https://track.example/YMT-4242-0001");
    assert_eq!(parcel.ship_time, shipped.ship_time);
    assert!(parcel.deliver_time.is_none());
    // Shipped is too late to cancel.
    let refused = shop
        .orders
        .cancel_order(with_token(
            bff::CancelOrderRequest {
                order_id: placed.order_id.clone(),
            },
            &shop.shopper,
        ))
        .await
        .expect_err("a shipped order cannot be cancelled");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "ILLEGAL_STATE_TRANSITION");

    // The carrier reports the delivery (a carrier integration calls the process service; the
    // public API has no such RPC).
    let process_channel = Channel::from_shared(services.process_uri())
        .expect("process uri")
        .connect_lazy();
    process::shipment_service_client::ShipmentServiceClient::new(process_channel)
        .mark_shipment_delivered(as_operator(process::MarkShipmentDeliveredRequest {
            shipment_id: preparing.shipment_id.clone(),
            deliver_time: None,
        }))
        .await
        .expect("delivered");
    let finished = watch_to(
        &mut stream,
        deadline,
        &mut seen,
        common::OrderStatus::Finished,
    )
    .await;
    // The watch may have started PENDING or AWAITING_PAYMENT; from the payment on it saw
    // every step.
    let after_payment: Vec<_> = seen
        .iter()
        .copied()
        .skip_while(|status| *status != common::OrderStatus::Paid)
        .collect();
    assert_eq!(
        after_payment,
        [
            common::OrderStatus::Paid,
            common::OrderStatus::Shipped,
            common::OrderStatus::Finished
        ],
        "{seen:?}"
    );
    let delivered = finished.shipment.clone().expect("the parcel");
    assert_eq!(delivered.tracking_number, "YMT-4242-0001");
    assert!(delivered.deliver_time.is_some());
    let end = tokio::time::timeout_at(deadline, stream.message())
        .await
        .expect("the watch ends");
    assert!(
        matches!(end, Ok(None)),
        "a watch ends OK at FINISHED: {end:?}"
    );
    assert_eq!(shop.stock_level().await, (ON_HAND - UNITS, 0));
    assert_eq!(
        shop.coupon_status(&coupon.user_coupon_id).await,
        (common::UserCouponStatus::Used, placed.order_id.clone())
    );
    // The delivery is recorded once the order is FINISHED, so it may lag a moment.
    shop.shipment_until(&placed.order_id, common::ShipmentStatus::Delivered)
        .await;

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipment_rpcs_refuse_bad_input_naming_the_public_field_and_non_admins() {
    let services = Services::start_full_with(FullStack {
        carrier: CarrierMode::Manual,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    shop.charge(CHARGE).await;
    let coupon = shop.claimed_coupon().await;
    let placed = shop.checkout(common::PaymentMethod::Points, &coupon).await;
    let preparing = shop
        .shipment_until(&placed.order_id, common::ShipmentStatus::Preparing)
        .await;
    let handover = |tracking_number: &str, tracking_url: &str| bff::MarkShipmentShippedRequest {
        shipment_id: preparing.shipment_id.clone(),
        carrier: "yamato".to_owned(),
        tracking_number: tracking_number.to_owned(),
        tracking_url: tracking_url.to_owned(),
    };

    let bad_handovers = [
        (
            bff::MarkShipmentShippedRequest {
                shipment_id: String::new(),
                ..handover("YMT-1", "")
            },
            "shipment_id",
        ),
        (
            bff::MarkShipmentShippedRequest {
                shipment_id: "parcel-1".to_owned(),
                ..handover("YMT-1", "")
            },
            "shipment_id",
        ),
        (
            bff::MarkShipmentShippedRequest {
                carrier: String::new(),
                ..handover("YMT-1", "")
            },
            "carrier",
        ),
        (
            bff::MarkShipmentShippedRequest {
                carrier: "c".repeat(51),
                ..handover("YMT-1", "")
            },
            "carrier",
        ),
        (handover("", ""), "tracking_number"),
        (handover("YMT 1", ""), "tracking_number"),
        (handover(&"9".repeat(65), ""), "tracking_number"),
        (
            handover("YMT-1", "http://track.example/YMT-1"),
            "tracking_url",
        ),
    ];
    for (request, field) in bad_handovers {
        let shown = format!("{request:?}");
        let status = shop
            .admin
            .mark_shipment_shipped(with_token(request, &shop.operator))
            .await
            .expect_err("a bad handover is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}: {status:?}");
        assert_eq!(reason(&status), "VALIDATION_FAILED", "{shown}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()], "{shown}");
    }
    let unknown = shop
        .admin
        .mark_shipment_shipped(with_token(
            bff::MarkShipmentShippedRequest {
                shipment_id: Uuid::new_v4().to_string(),
                ..handover("YMT-1", "")
            },
            &shop.operator,
        ))
        .await
        .expect_err("no such shipment");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert_eq!(reason(&unknown), "RESOURCE_NOT_FOUND");

    let list = |order_id: &str, statuses: Vec<i32>, page_size: i32, page_token: &str| {
        bff::ListShipmentsRequest {
            page_size,
            page_token: page_token.to_owned(),
            order_id: order_id.to_owned(),
            statuses,
        }
    };
    let bad_lists = [
        (list("order-1", vec![], 0, ""), "order_id"),
        (
            list("", vec![common::ShipmentStatus::Unspecified.into()], 0, ""),
            "statuses[0]",
        ),
        (list("", vec![], -1, ""), "page_size"),
    ];
    for (request, field) in bad_lists {
        let shown = format!("{request:?}");
        let status = shop
            .admin
            .list_shipments(with_token(request, &shop.operator))
            .await
            .expect_err("a bad listing is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}: {status:?}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()], "{shown}");
    }
    let token = shop
        .admin
        .list_shipments(with_token(
            list("", vec![], 0, "not a token"),
            &shop.operator,
        ))
        .await
        .expect_err("a made-up page token");
    assert_eq!(token.code(), Code::InvalidArgument, "{token:?}");
    assert_eq!(reason(&token), "INVALID_PAGE_TOKEN");

    // Filters: by state, and another order's shipment is not this one.
    let preparing_ones = shop
        .admin
        .list_shipments(with_token(
            list("", vec![common::ShipmentStatus::Preparing.into()], 0, ""),
            &shop.operator,
        ))
        .await
        .expect("listed")
        .into_inner()
        .shipments;
    assert_eq!(preparing_ones, vec![preparing.clone()]);
    let shipped_ones = shop
        .admin
        .list_shipments(with_token(
            list("", vec![common::ShipmentStatus::Shipped.into()], 0, ""),
            &shop.operator,
        ))
        .await
        .expect("listed")
        .into_inner()
        .shipments;
    assert!(shipped_ones.is_empty(), "{shipped_ones:?}");
    assert!(shop.shipments(&Uuid::new_v4().to_string()).await.is_empty());

    // A buyer's token and no token are refused before the process service is asked; the
    // shipment is still PREPARING after all of it.
    let refusals = [
        shop.admin
            .list_shipments(with_token(list("", vec![], 0, ""), &shop.shopper))
            .await
            .map(drop),
        shop.admin
            .mark_shipment_shipped(with_token(handover("YMT-1", ""), &shop.shopper))
            .await
            .map(drop),
    ];
    for (i, outcome) in refusals.into_iter().enumerate() {
        let status = outcome.expect_err("a buyer is no admin");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "call {i}: {status:?}"
        );
        assert_eq!(reason(&status), "ROLE_REQUIRED");
    }
    let anonymous = shop
        .admin
        .mark_shipment_shipped(handover("YMT-1", ""))
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    assert_eq!(
        shop.shipments(&placed.order_id).await,
        vec![preparing],
        "no refusal shipped anything"
    );
    assert_eq!(
        status_of(&shop.order(&placed.order_id).await),
        common::OrderStatus::Paid
    );

    drop(bff);
    services.stop().await;
}
