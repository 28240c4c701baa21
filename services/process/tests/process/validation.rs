//! The RPCs: who may call them, precise errors for bad input (nothing written), and the
//! operator steps of the manual carrier, each idempotent.

use mercato_platform::principal::Role;
use mercato_process::settings::CarrierMode;
use mercato_proto::mercato::common::v1::{NotificationKind, OrderStatus, ShipmentStatus};
use mercato_proto::mercato::process::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::shop::{Shop, as_admin, as_service, as_user, eventually, fields, order_paid, reason};

fn ts(time: chrono::DateTime<chrono::Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: 0,
    })
}

fn shipped(id: &str, tracking: &str) -> pb::MarkShipmentShippedRequest {
    pb::MarkShipmentShippedRequest {
        shipment_id: id.to_owned(),
        carrier: "yamato".to_owned(),
        tracking_number: tracking.to_owned(),
        tracking_url: format!("https://track.example/{tracking}"),
        ship_time: None,
    }
}

async fn shipment_count(shop: &Shop) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM shipments")
        .fetch_one(shop.pool())
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipment_rpcs_refuse_bad_input_naming_the_field_and_write_nothing() {
    let shop = Shop::start().await;
    let mut shipments = shop.shipments.clone();

    for (raw, what) in [("", "empty"), ("not-a-uuid", "malformed")] {
        let error = shipments
            .get_shipment(as_admin(pb::GetShipmentRequest {
                shipment_id: raw.to_owned(),
            }))
            .await
            .expect_err(what);
        assert_eq!(
            reason(&error),
            (Code::InvalidArgument, "VALIDATION_FAILED".to_owned())
        );
        assert_eq!(fields(&error), ["shipment_id"]);
    }
    let unknown = Uuid::now_v7().to_string();
    let error = shipments
        .get_shipment(as_admin(pb::GetShipmentRequest {
            shipment_id: unknown.clone(),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(
        reason(&error),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );

    let error = shipments
        .list_shipments(as_admin(pb::ListShipmentsRequest {
            page_size: -1,
            order_id: "x".to_owned(),
            statuses: vec![ShipmentStatus::Shipped as i32, 0, 99],
            ..Default::default()
        }))
        .await
        .expect_err("bad filters");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&error),
        ["page_size", "order_id", "statuses[1]", "statuses[2]"]
    );
    let error = shipments
        .list_shipments(as_admin(pb::ListShipmentsRequest {
            page_token: "garbage".to_owned(),
            ..Default::default()
        }))
        .await
        .expect_err("foreign token");
    assert_eq!(
        reason(&error),
        (Code::InvalidArgument, "INVALID_PAGE_TOKEN".to_owned())
    );

    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let error = shipments
        .mark_shipment_shipped(as_admin(pb::MarkShipmentShippedRequest {
            shipment_id: "nope".to_owned(),
            carrier: " ".to_owned(),
            tracking_number: "has spaces!".to_owned(),
            tracking_url: "http://insecure.example/1".to_owned(),
            ship_time: ts(future),
        }))
        .await
        .expect_err("everything wrong");
    assert_eq!(
        reason(&error),
        (Code::InvalidArgument, "VALIDATION_FAILED".to_owned())
    );
    assert_eq!(
        fields(&error),
        [
            "shipment_id",
            "carrier",
            "tracking_number",
            "tracking_url",
            "ship_time"
        ]
    );
    let error = shipments
        .mark_shipment_shipped(as_admin(pb::MarkShipmentShippedRequest {
            tracking_number: "9".repeat(65),
            ..shipped(&unknown, "x")
        }))
        .await
        .expect_err("tracking number too long");
    assert_eq!(fields(&error), ["tracking_number"]);
    let error = shipments
        .mark_shipment_shipped(as_admin(shipped(&unknown, "1234-5678")))
        .await
        .expect_err("unknown shipment");
    assert_eq!(
        reason(&error),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );

    let error = shipments
        .mark_shipment_delivered(as_admin(pb::MarkShipmentDeliveredRequest {
            shipment_id: String::new(),
            deliver_time: ts(future),
        }))
        .await
        .expect_err("bad delivery");
    assert_eq!(fields(&error), ["shipment_id", "deliver_time"]);
    let error = shipments
        .mark_shipment_delivered(as_admin(pb::MarkShipmentDeliveredRequest {
            shipment_id: unknown,
            deliver_time: None,
        }))
        .await
        .expect_err("unknown shipment");
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(shipment_count(&shop).await, 0, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_and_internal_callers_reach_shipments_and_only_admins_notifications() {
    let shop = Shop::start().await;
    let mut shipments = shop.shipments.clone();
    let mut notifications = shop.notifications.clone();
    let get = || pb::GetShipmentRequest {
        shipment_id: Uuid::now_v7().to_string(),
    };

    let error = shipments
        .get_shipment(tonic::Request::new(get()))
        .await
        .expect_err("anonymous");
    assert_eq!(error.code(), Code::Unauthenticated);
    let buyer = Uuid::now_v7();
    let error = shipments
        .get_shipment(as_user(get(), buyer, &[Role::Buyer, Role::Seller]))
        .await
        .expect_err("a buyer");
    assert_eq!(
        reason(&error),
        (Code::PermissionDenied, "ROLE_REQUIRED".to_owned())
    );
    // The BFF relays browsers: naming itself does not make a buyer internal.
    let mut relayed = as_user(get(), buyer, &[Role::Buyer]);
    relayed
        .metadata_mut()
        .insert("x-mercato-caller", "bff".parse().expect("ascii"));
    let error = shipments.get_shipment(relayed).await.expect_err("relayed");
    assert_eq!(error.code(), Code::PermissionDenied);
    let error = shipments
        .get_shipment(as_service(get(), "order"))
        .await
        .expect_err("an internal caller reaches the lookup");
    assert_eq!(error.code(), Code::NotFound);

    let error = notifications
        .list_notifications(as_service(pb::ListNotificationsRequest::default(), "order"))
        .await
        .expect_err("notifications are for admins");
    assert_eq!(error.code(), Code::Unauthenticated);
    let error = notifications
        .retry_notification(as_user(
            pb::RetryNotificationRequest {
                notification_id: Uuid::now_v7().to_string(),
            },
            buyer,
            &[Role::Buyer],
        ))
        .await
        .expect_err("a buyer");
    assert_eq!(
        reason(&error),
        (Code::PermissionDenied, "ROLE_REQUIRED".to_owned())
    );
    notifications
        .list_notifications(as_admin(pb::ListNotificationsRequest::default()))
        .await
        .expect("an admin lists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_ships_and_delivers_a_manual_shipment_once() {
    let shop = Shop::start_with(|s| s.fulfilment.carrier = CarrierMode::Manual).await;
    let mug = shop.sku(900, 6).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &mug, 2).await;
    let other = shop.place(buyer, &mug, 1).await;
    shop.publish(&order_paid(&order)).await;
    shop.publish(&order_paid(&other)).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    let id = shop.wait_for_shipment(&order.order_id, "PREPARING").await;
    shop.wait_for_shipment(&other.order_id, "PREPARING").await;
    eventually("both reservations are committed", || async {
        shop.stock(&mug).await == (3, 0)
    })
    .await;
    let mut shipments = shop.shipments.clone();

    // PREPARING: no tracking number shown yet, and delivery is refused.
    let preparing = shipments
        .get_shipment(as_admin(pb::GetShipmentRequest {
            shipment_id: id.clone(),
        }))
        .await
        .expect("readable")
        .into_inner()
        .shipment
        .expect("a shipment");
    assert_eq!(preparing.status, ShipmentStatus::Preparing as i32);
    assert!(preparing.tracking_number.is_empty());
    let error = shipments
        .mark_shipment_delivered(as_admin(pb::MarkShipmentDeliveredRequest {
            shipment_id: id.clone(),
            deliver_time: None,
        }))
        .await
        .expect_err("not shipped yet");
    assert_eq!(
        reason(&error),
        (
            Code::FailedPrecondition,
            "ILLEGAL_STATE_TRANSITION".to_owned()
        )
    );

    let ship_time = chrono::Utc::now() - chrono::Duration::hours(1);
    let request = pb::MarkShipmentShippedRequest {
        ship_time: ts(ship_time),
        ..shipped(&id, "1234-5678-9012")
    };
    for _ in 0..2 {
        let shipment = shipments
            .mark_shipment_shipped(as_admin(request.clone()))
            .await
            .expect("shipped (and the repeat is a no-op)")
            .into_inner()
            .shipment
            .expect("a shipment");
        assert_eq!(shipment.status, ShipmentStatus::Shipped as i32);
        assert_eq!(shipment.carrier, "yamato");
        assert_eq!(shipment.tracking_number, "1234-5678-9012");
        assert_eq!(shipment.ship_time, ts(ship_time));
    }
    let error = shipments
        .mark_shipment_shipped(as_admin(shipped(&id, "OTHER-1")))
        .await
        .expect_err("another tracking number");
    assert_eq!(error.code(), Code::FailedPrecondition);
    let order_now = shop.order_of(buyer, &order.order_id).await;
    assert_eq!(order_now.status, OrderStatus::Shipped as i32);
    assert_eq!(
        order_now.shipment.map(|s| s.tracking_number),
        Some("1234-5678-9012".to_owned())
    );

    let error = shipments
        .mark_shipment_delivered(as_admin(pb::MarkShipmentDeliveredRequest {
            shipment_id: id.clone(),
            deliver_time: ts(ship_time - chrono::Duration::minutes(1)),
        }))
        .await
        .expect_err("delivered before it shipped");
    assert_eq!(fields(&error), ["deliver_time"]);
    for _ in 0..2 {
        let shipment = shipments
            .mark_shipment_delivered(as_admin(pb::MarkShipmentDeliveredRequest {
                shipment_id: id.clone(),
                deliver_time: None,
            }))
            .await
            .expect("delivered (and the repeat is a no-op)")
            .into_inner()
            .shipment
            .expect("a shipment");
        assert_eq!(shipment.status, ShipmentStatus::Delivered as i32);
    }
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Finished)
        .await;
    assert_eq!(shop.order_events(&order.order_id, "order.shipped").await, 1);
    assert_eq!(
        shop.order_events(&order.order_id, "order.finished").await,
        1
    );
    let error = shipments
        .mark_shipment_shipped(as_admin(request))
        .await
        .expect_err("a delivered shipment does not ship again");
    assert_eq!(error.code(), Code::FailedPrecondition);
    shop.wait_for_notifications(&order.order_id).await;

    // Listing: filters and pages.
    let page = shipments
        .list_shipments(as_admin(pb::ListShipmentsRequest {
            page_size: 1,
            ..Default::default()
        }))
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(page.shipments.len(), 1);
    assert_eq!(page.shipments[0].order_id, other.order_id, "newest first");
    let second = shipments
        .list_shipments(as_admin(pb::ListShipmentsRequest {
            page_size: 1,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        }))
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(second.shipments.len(), 1);
    assert_eq!(second.shipments[0].shipment_id, id);
    assert!(second.next_page_token.is_empty());
    let error = shipments
        .list_shipments(as_admin(pb::ListShipmentsRequest {
            page_size: 1,
            page_token: page.next_page_token,
            statuses: vec![ShipmentStatus::Delivered as i32],
            ..Default::default()
        }))
        .await
        .expect_err("a token of other filters");
    assert_eq!(reason(&error).1, "INVALID_PAGE_TOKEN");
    let preparing = shipments
        .list_shipments(as_admin(pb::ListShipmentsRequest {
            statuses: vec![ShipmentStatus::Preparing as i32],
            ..Default::default()
        }))
        .await
        .expect("by status")
        .into_inner()
        .shipments;
    assert_eq!(
        preparing
            .iter()
            .map(|s| s.order_id.clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&other.order_id)
    );
    let by_order = shipments
        .list_shipments(as_admin(pb::ListShipmentsRequest {
            order_id: order.order_id.clone(),
            ..Default::default()
        }))
        .await
        .expect("by order")
        .into_inner()
        .shipments;
    assert_eq!(by_order.len(), 1);
    assert_eq!(by_order[0].shipment_id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_rpcs_refuse_bad_input_and_retry_only_what_failed() {
    let shop = Shop::start().await;
    let mug = shop.sku(900, 6).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &mug, 1).await;
    shop.publish(&order_paid(&order)).await;
    shop.wait_for_notifications(&order.order_id).await;
    let mut notifications = shop.notifications.clone();

    let error = notifications
        .list_notifications(as_admin(pb::ListNotificationsRequest {
            page_size: -5,
            user_id: "u".to_owned(),
            order_id: "o".to_owned(),
            kinds: vec![NotificationKind::OrderShipped as i32, 0],
            statuses: vec![42],
            ..Default::default()
        }))
        .await
        .expect_err("bad filters");
    assert_eq!(
        reason(&error),
        (Code::InvalidArgument, "VALIDATION_FAILED".to_owned())
    );
    assert_eq!(
        fields(&error),
        [
            "page_size",
            "user_id",
            "order_id",
            "kinds[1]",
            "statuses[0]"
        ]
    );
    let error = notifications
        .list_notifications(as_admin(pb::ListNotificationsRequest {
            page_token: "!!".to_owned(),
            ..Default::default()
        }))
        .await
        .expect_err("bad token");
    assert_eq!(reason(&error).1, "INVALID_PAGE_TOKEN");

    for raw in ["", "nope"] {
        let error = notifications
            .retry_notification(as_admin(pb::RetryNotificationRequest {
                notification_id: raw.to_owned(),
            }))
            .await
            .expect_err("bad id");
        assert_eq!(fields(&error), ["notification_id"]);
    }
    let error = notifications
        .retry_notification(as_admin(pb::RetryNotificationRequest {
            notification_id: Uuid::now_v7().to_string(),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(
        reason(&error),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );

    let listed = notifications
        .list_notifications(as_admin(pb::ListNotificationsRequest {
            user_id: buyer.to_string(),
            kinds: vec![NotificationKind::OrderDelivered as i32],
            ..Default::default()
        }))
        .await
        .expect("listed")
        .into_inner()
        .notifications;
    assert_eq!(listed.len(), 1);
    let delivered = listed[0].clone();
    let error = notifications
        .retry_notification(as_admin(pb::RetryNotificationRequest {
            notification_id: delivered.notification_id.clone(),
        }))
        .await
        .expect_err("already sent");
    assert_eq!(
        reason(&error),
        (
            Code::FailedPrecondition,
            "ILLEGAL_STATE_TRANSITION".to_owned()
        )
    );

    // A notification that gave up (as the sender leaves one after its last attempt) is queued
    // again with its attempts reset, and the sender delivers it.
    sqlx::query(
        "UPDATE notifications SET status = 'FAILED', send_time = NULL, next_attempt_time = NULL, \
             attempt_count = 5, last_error = 'mail server said no' WHERE notification_id = $1",
    )
    .bind(Uuid::parse_str(&delivered.notification_id).expect("uuid"))
    .execute(shop.pool())
    .await
    .expect("failed notification");
    let retried = notifications
        .retry_notification(as_admin(pb::RetryNotificationRequest {
            notification_id: delivered.notification_id.clone(),
        }))
        .await
        .expect("retried")
        .into_inner()
        .notification
        .expect("a notification");
    assert_eq!(retried.status, pb::NotificationStatus::Pending as i32);
    assert_eq!(retried.attempt_count, 0);
    eventually("the retried notification is sent", || async {
        let (status, attempts): (String, i32) = sqlx::query_as(
            "SELECT status, attempt_count FROM notifications WHERE notification_id = $1",
        )
        .bind(Uuid::parse_str(&delivered.notification_id).expect("uuid"))
        .fetch_one(shop.pool())
        .await
        .expect("row");
        status == "SENT" && attempts == 1
    })
    .await;
}
