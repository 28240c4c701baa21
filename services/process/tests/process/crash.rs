//! Crash safety and restarts. The consumer's effect and its inbox row commit together, and the
//! shipment's progress lives on its row, so a process that stops anywhere — after the consumer's
//! commit but before its ack, before that commit, between a remote step and its local record,
//! or while a dependency is down — resumes on restart and the order still sees exactly one
//! shipment and one set of transitions.

use mercato_messaging::{EventEnvelope, Handler as _, IncomingEvent};
use mercato_process::shipments::consumers::{self, OrderPaidHandler};
use mercato_process::{Application, ProcessContext};
use mercato_proto::mercato::common::v1::OrderStatus;
use mercato_proto::mercato::order::v1 as order_pb;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::shop::{PATIENCE, Shop, as_service, eventually, order_paid};

/// A context of the process service on the shop's database and bus, built but never run (the
/// process that crashed).
async fn crashed_instance(shop: &Shop) -> ProcessContext {
    let application = Application::build(
        shop.process_settings(|_| {}),
        TcpListener::bind("127.0.0.1:0").await.expect("listener"),
        TcpListener::bind("127.0.0.1:0").await.expect("listener"),
    )
    .await
    .expect("a second instance builds");
    application.context().clone()
}

fn queue(shop: &Shop) -> String {
    let namespace =
        mercato_messaging::Namespace::from_setting(&shop.namespace()).expect("namespace");
    consumers::topology(&namespace).expect("topology").queue
}

/// Runs what the consumer runs for `envelope` — inbox record and handler in one transaction —
/// and commits it (`commit`) or drops it, without ever acking the delivery.
async fn consume_without_ack(shop: &Shop, envelope: &EventEnvelope, commit: bool) {
    let context = crashed_instance(shop).await;
    let handler = OrderPaidHandler::new(context.clone());
    let event = IncomingEvent {
        envelope: envelope.clone(),
        attempt: 1,
        delivery_count: 0,
        queue: queue(shop),
    };
    let mut tx = context.pool.begin().await.expect("transaction");
    assert!(
        mercato_messaging::inbox::record(&mut tx, &queue(shop), &envelope.event_id)
            .await
            .expect("inbox record"),
        "the event is new"
    );
    handler
        .handle(&event, &mut tx)
        .await
        .expect("the handler's work succeeds");
    if commit {
        tx.commit().await.expect("commit");
    } else {
        drop(tx);
    }
    context.pool.close().await;
}

/// Messages waiting in the process service's order.paid queue.
async fn waiting(shop: &Shop) -> u32 {
    let connection = shop.product_env.broker().connect().await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let declared = channel
        .queue_declare(
            queue(shop).as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("the queue exists");
    let _ = connection.close(200, "done".into()).await;
    declared.message_count()
}

async fn assert_shipped_once(shop: &Shop, buyer: Uuid, order_id: &str) {
    shop.wait_for_order(buyer, order_id, OrderStatus::Finished)
        .await;
    shop.wait_for_notifications(order_id).await;
    let shipments = shop.shipments_of(order_id).await;
    assert_eq!(shipments.len(), 1, "one shipment: {shipments:?}");
    assert_eq!(shipments[0].0, "DELIVERED");
    let to: Vec<i32> = shop
        .history(buyer, order_id)
        .await
        .into_iter()
        .map(|(_, to)| to)
        .collect();
    use OrderStatus as S;
    assert_eq!(
        to,
        [S::Pending, S::Paid, S::Shipped, S::Finished].map(|s| s as i32),
        "one set of transitions"
    );
    assert_eq!(shop.order_events(order_id, "order.shipped").await, 1);
    assert_eq!(shop.order_events(order_id, "order.finished").await, 1);
    let notifications = shop.notifications_of(order_id).await;
    assert!(
        notifications.iter().all(|(_, _, attempts)| *attempts == 1),
        "{notifications:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stopped_after_its_write_before_the_ack_is_redelivered_and_ships_once() {
    let mut shop = Shop::start().await;
    let mug = shop.sku(700, 5).await;
    let buyer = Uuid::now_v7();
    shop.stop_process().await;

    let order = shop.place(buyer, &mug, 2).await;
    let paid = order_paid(&order);
    shop.publish(&paid).await;
    // The consumer's transaction (shipment + inbox row) commits; then the process dies before
    // its ack, so the broker still holds the delivery.
    consume_without_ack(&shop, &paid, true).await;
    assert_eq!(shop.shipments_of(&order.order_id).await.len(), 1);
    assert_eq!(shop.shipments_of(&order.order_id).await[0].0, "PREPARING");
    assert_eq!(waiting(&shop).await, 1, "the delivery was never acked");

    shop.start_process(|_| {}).await;
    assert_shipped_once(&shop, buyer, &order.order_id).await;
    eventually("the redelivery was acked as a duplicate", || async {
        waiting(&shop).await == 0
    })
    .await;
    assert_eq!(shop.stock(&mug).await, (3, 0), "committed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stopped_before_its_commit_leaves_nothing_and_the_redelivery_ships() {
    let mut shop = Shop::start().await;
    let mug = shop.sku(700, 5).await;
    let buyer = Uuid::now_v7();
    shop.stop_process().await;

    let order = shop.place(buyer, &mug, 1).await;
    let paid = order_paid(&order);
    shop.publish(&paid).await;
    consume_without_ack(&shop, &paid, false).await;
    assert!(
        shop.shipments_of(&order.order_id).await.is_empty(),
        "the rolled-back write left nothing"
    );

    shop.start_process(|_| {}).await;
    assert_shipped_once(&shop, buyer, &order.order_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_the_order_service_accepted_but_the_process_never_recorded_happens_once() {
    // The manual carrier leaves the committed shipment waiting, so the test can play the process
    // that called MarkOrderShipped and died before recording it.
    let mut shop = Shop::start_with(|s| {
        s.fulfilment.carrier = mercato_process::settings::CarrierMode::Manual;
    })
    .await;
    let mug = shop.sku(700, 5).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, &mug, 1).await;
    shop.publish(&order_paid(&order)).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    let shipment_id = shop.wait_for_shipment(&order.order_id, "PREPARING").await;
    eventually("the stock is committed", || async {
        shop.shipments_of(&order.order_id).await[0].1
    })
    .await;
    shop.stop_process().await;

    // The dead process's call, with the tracking number it had chosen, reached the order service.
    let tracking = "SIM-00000000ABCD";
    sqlx::query(
        "UPDATE shipments SET carrier = 'simulated', tracking_number = $2, next_step_time = now() \
         WHERE shipment_id = $1",
    )
    .bind(Uuid::parse_str(&shipment_id).expect("uuid"))
    .bind(tracking)
    .execute(shop.pool())
    .await
    .expect("the row as the simulated carrier left it");
    shop.orders
        .clone()
        .mark_order_shipped(as_service(
            order_pb::MarkOrderShippedRequest {
                order_id: order.order_id.clone(),
                shipment_id: shipment_id.clone(),
                carrier: "simulated".to_owned(),
                tracking_number: tracking.to_owned(),
                tracking_url: String::new(),
                ship_time: None,
            },
            "process",
        ))
        .await
        .expect("the order service accepted the handover");

    // Restarted with the simulated carrier, the step is taken again: the order ignores the
    // repeated MarkOrderShipped, the shipment records it, and delivery follows.
    shop.start_process(|_| {}).await;
    assert_shipped_once(&shop, buyer, &order.order_id).await;
    assert_eq!(shop.shipments_of(&order.order_id).await[0].2, tracking);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_a_shipment_left_preparing_while_the_order_service_was_unreachable() {
    let mut shop = Shop::start().await;
    let mug = shop.sku(700, 5).await;
    let buyer = Uuid::now_v7();
    shop.order_link.cut().await;

    let order = shop.place(buyer, &mug, 1).await;
    shop.publish(&order_paid(&order)).await;
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    // The stock is committed (the product service is reachable), but the handover fails while
    // the order service is cut off: the shipment waits PREPARING with its error recorded.
    eventually("the handover failed at least once", || async {
        let row: Option<(bool, i32, Option<String>)> = sqlx::query_as(
            "SELECT stock_committed, attempts, last_error FROM shipments WHERE order_id = $1",
        )
        .bind(Uuid::parse_str(&order.order_id).expect("uuid"))
        .fetch_optional(shop.pool())
        .await
        .expect("shipment");
        row.is_some_and(|(committed, attempts, error)| {
            committed && attempts > 0 && error.is_some_and(|e| e.contains("unavailable"))
        })
    })
    .await;
    assert_eq!(shop.shipments_of(&order.order_id).await[0].0, "PREPARING");
    shop.stop_process().await;

    shop.order_link.restore();
    shop.start_process(|_| {}).await;
    tokio::time::timeout(PATIENCE, assert_shipped_once(&shop, buyer, &order.order_id))
        .await
        .expect("the restarted service finishes the shipment");
    assert_eq!(shop.stock(&mug).await, (4, 0));
}
