//! The happy path and its duplicates: order.paid → the reservation committed (the units sold),
//! one shipment with a tracking number, the order SHIPPED then FINISHED once, and the buyer told
//! three times (confirmed, shipped, delivered) — however often and however concurrently
//! order.paid arrives.

use mercato_proto::mercato::common::v1::{OrderStatus, ShipmentStatus};
use mercato_proto::mercato::process::v1 as pb;
use uuid::Uuid;

use crate::shop::{Shop, as_admin, eventually, order_paid};

const S_PAID: i32 = OrderStatus::Paid as i32;
const S_SHIPPED: i32 = OrderStatus::Shipped as i32;
const S_FINISHED: i32 = OrderStatus::Finished as i32;

/// The order's history ends PENDING → PAID → SHIPPED → FINISHED, each step exactly once.
fn assert_one_set_of_transitions(history: &[(i32, i32)]) {
    let pending = OrderStatus::Pending as i32;
    assert_eq!(
        history,
        [
            (OrderStatus::Unspecified as i32, pending),
            (pending, S_PAID),
            (S_PAID, S_SHIPPED),
            (S_SHIPPED, S_FINISHED),
        ],
        "one set of transitions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_is_committed_shipped_finished_and_notified() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_200, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &mug, 3).await;
    assert_eq!(shop.stock(&mug).await, (10, 3), "reserved at checkout");

    shop.publish(&order_paid(&order)).await;
    let done = shop
        .wait_for_order(buyer, &order.order_id, OrderStatus::Finished)
        .await;
    assert_one_set_of_transitions(&shop.history(buyer, &order.order_id).await);
    assert_eq!(
        shop.stock(&mug).await,
        (7, 0),
        "the reservation was committed: three units left on hand, none reserved"
    );
    assert_eq!(shop.reservation_status(&order.order_id).await, "COMMITTED");

    let shipment_id = shop.wait_for_shipment(&order.order_id, "DELIVERED").await;
    let shipment = shop
        .shipments
        .clone()
        .get_shipment(as_admin(pb::GetShipmentRequest {
            shipment_id: shipment_id.clone(),
        }))
        .await
        .expect("shipment readable")
        .into_inner()
        .shipment
        .expect("a shipment");
    assert_eq!(shipment.status, ShipmentStatus::Delivered as i32);
    assert_eq!(shipment.order_id, order.order_id);
    assert_eq!(shipment.user_id, buyer.to_string());
    assert_eq!(shipment.carrier, "simulated");
    assert!(shipment.tracking_number.starts_with("SIM-"), "{shipment:?}");
    assert!(shipment.ship_time.is_some() && shipment.deliver_time.is_some());
    assert_eq!(shipment.lines.len(), 1);
    assert_eq!(shipment.lines[0].sku_id, mug);
    assert_eq!(shipment.lines[0].quantity, 3);
    assert_eq!(shipment.shipping_address, order.shipping_address);

    // The order carries the same parcel facts.
    let parcel = done.shipment.expect("the order's shipment facts");
    assert_eq!(parcel.shipment_id, shipment_id);
    assert_eq!(parcel.tracking_number, shipment.tracking_number);

    shop.wait_for_notifications(&order.order_id).await;
    assert_eq!(
        shop.notifications_of(&order.order_id).await,
        [
            ("ORDER_CONFIRMED".to_owned(), "SENT".to_owned(), 1),
            ("ORDER_DELIVERED".to_owned(), "SENT".to_owned(), 1),
            ("ORDER_SHIPPED".to_owned(), "SENT".to_owned(), 1),
        ]
    );
    let listed = shop
        .notifications
        .clone()
        .list_notifications(as_admin(pb::ListNotificationsRequest {
            order_id: order.order_id.clone(),
            ..Default::default()
        }))
        .await
        .expect("notifications listed")
        .into_inner()
        .notifications;
    assert_eq!(listed.len(), 3);
    let shipped = listed
        .iter()
        .find(|n| n.dedupe_key == format!("order_shipped:{}", order.order_id))
        .expect("the shipped notification");
    assert_eq!(
        shipped.parameters.get("tracking_number"),
        Some(&shipment.tracking_number)
    );
    assert_eq!(shipped.recipient, format!("user:{buyer}"));
    assert_eq!(shipped.status, pb::NotificationStatus::Sent as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_paid_delivered_again_and_concurrently_ships_once() {
    let shop = Shop::start().await;
    let mug = shop.sku(800, 5).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &mug, 1).await;
    let paid = order_paid(&order);

    // The same event (a redelivery) and ten copies with new event ids (a republish), at once.
    let mut copies = vec![paid.clone(), paid.clone()];
    for _ in 0..10 {
        let mut copy = paid.clone();
        copy.event_id = Uuid::now_v7().to_string();
        copies.push(copy);
    }
    futures::future::join_all(copies.iter().map(|envelope| shop.publish(envelope))).await;

    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Finished)
        .await;
    shop.wait_for_notifications(&order.order_id).await;
    // Every copy was consumed (each new event id is its own inbox entry).
    eventually("every copy reached the inbox", || async {
        let seen: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox WHERE consumer LIKE '%process.order-paid'",
        )
        .fetch_one(shop.pool())
        .await
        .expect("inbox count");
        seen == 11
    })
    .await;

    let shipments = shop.shipments_of(&order.order_id).await;
    assert_eq!(shipments.len(), 1, "one shipment: {shipments:?}");
    assert_eq!(shipments[0].0, "DELIVERED");
    assert_one_set_of_transitions(&shop.history(buyer, &order.order_id).await);
    assert_eq!(shop.order_events(&order.order_id, "order.shipped").await, 1);
    assert_eq!(
        shop.order_events(&order.order_id, "order.finished").await,
        1
    );
    assert_eq!(shop.stock(&mug).await, (4, 0), "committed once");
    let notifications = shop.notifications_of(&order.order_id).await;
    assert_eq!(notifications.len(), 3, "{notifications:?}");
    assert!(
        notifications
            .iter()
            .all(|(_, s, attempts)| s == "SENT" && *attempts == 1),
        "each notification delivered once: {notifications:?}"
    );
    let requested: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE event_type = 'notification.requested'",
    )
    .fetch_one(shop.pool())
    .await
    .expect("outbox count");
    assert_eq!(requested, 3, "one request per step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cancelled_before_its_payment_landed_is_withdrawn_not_shipped() {
    let shop = Shop::start().await;
    let mug = shop.sku(500, 4).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &mug, 2).await;
    shop.orders
        .clone()
        .cancel_order(crate::shop::as_buyer(
            mercato_proto::mercato::order::v1::CancelOrderRequest {
                order_id: order.order_id.clone(),
            },
            buyer,
        ))
        .await
        .expect("cancelled");
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Cancelled)
        .await;
    eventually("the reservation is released", || async {
        shop.reservation_status(&order.order_id).await == "RELEASED"
    })
    .await;

    // A late order.paid (the payment service then refunds it): the reservation is gone, the
    // order ended, so the shipment is withdrawn and the order is never moved.
    shop.publish(&order_paid(&order)).await;
    shop.wait_for_shipment(&order.order_id, "CANCELLED").await;
    let after = shop.order_of(buyer, &order.order_id).await;
    assert_eq!(after.status, OrderStatus::Cancelled as i32);
    assert_eq!(shop.order_events(&order.order_id, "order.shipped").await, 0);
    assert_eq!(shop.stock(&mug).await, (4, 0), "nothing was committed");
}
