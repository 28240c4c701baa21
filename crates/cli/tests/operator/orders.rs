//! `order show` for an order placed, paid and delivered in the test: the order with its status
//! history, its payment and its shipment, as a table and as JSON; an unknown order is NOT_FOUND.

use mercato_cli::orders;
use mercato_e2e::stack::{Stack, StackOptions, press, seed_sku};
use mercato_proto::mercato::common::v1 as common;
use tonic::Code;
use uuid::Uuid;

use crate::support::{endpoints, run_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_show_joins_the_order_its_history_payment_and_shipment() {
    let stack = Stack::start(StackOptions::default()).await;
    let endpoints = endpoints(&stack);
    let operator = mercato_cli::Operator::new(endpoints.clone());
    let mut shop = stack.shop().await;
    let sku = seed_sku(&stack.products.grpc_uri(), 5).await;
    let shopper = shop.sign_up().await;
    let (placed, _) = shop
        .checkout(&shopper, &sku, 2, common::PaymentMethod::Sandbox)
        .await;
    shop.watch_until(
        &shopper,
        &placed.order_id,
        common::OrderStatus::AwaitingPayment,
    )
    .await;
    let payment = shop.payment(&shopper, &placed.order_id).await;

    // Before payment: the payment is pending, no shipment yet.
    let early = orders::show(&operator, &placed.order_id)
        .await
        .expect("the order shows");
    let unpaid = early
        .payment
        .as_ref()
        .expect("the payment exists before it is paid");
    assert_eq!(unpaid.payment_id, payment.payment_id);
    assert_ne!(unpaid.status, common::PaymentStatus::Succeeded as i32);
    assert!(early.shipment.is_none());
    assert!(early.to_table().contains("shipment  none yet"));

    assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    shop.watch_until(&shopper, &placed.order_id, common::OrderStatus::Finished)
        .await;

    // The process service records the delivery only once the order service has the order
    // FINISHED (each local step follows its remote one), so the shipment may still say SHIPPED
    // for a moment after the watch saw FINISHED.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let details = loop {
        let details = orders::show(&operator, &placed.order_id)
            .await
            .expect("the order shows");
        let delivered = details
            .shipment
            .as_ref()
            .is_some_and(|shipment| shipment.status == common::ShipmentStatus::Delivered as i32);
        if delivered || tokio::time::Instant::now() >= deadline {
            break details;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let order = &details.order;
    assert_eq!(order.order_id, placed.order_id);
    assert_eq!(order.status, common::OrderStatus::Finished as i32);
    assert_eq!(order.lines.len(), 1);
    assert_eq!(order.lines[0].sku_id, sku);
    assert_eq!(order.lines[0].quantity, 2);
    let steps: Vec<i32> = order
        .history
        .iter()
        .map(|change| change.to_status)
        .collect();
    assert_eq!(steps.first(), Some(&(common::OrderStatus::Pending as i32)));
    assert_eq!(steps.last(), Some(&(common::OrderStatus::Finished as i32)));
    for status in [common::OrderStatus::Paid, common::OrderStatus::Shipped] {
        assert!(steps.contains(&(status as i32)), "{status:?} in {steps:?}");
    }
    assert!(
        order
            .history
            .windows(2)
            .all(|pair| pair[0].version < pair[1].version),
        "versions increase"
    );

    let paid = details.payment.as_ref().expect("the payment");
    assert_eq!(paid.order_id, placed.order_id);
    assert_eq!(paid.payment_id, payment.payment_id);
    assert_eq!(paid.status, common::PaymentStatus::Succeeded as i32);
    assert_eq!(paid.amount, order.total);
    let shipment = details.shipment.as_ref().expect("the shipment");
    assert_eq!(shipment.order_id, placed.order_id);
    assert_eq!(shipment.status, common::ShipmentStatus::Delivered as i32);
    assert!(!shipment.tracking_number.is_empty());

    let table = details.to_table();
    for needle in [
        placed.order_id.as_str(),
        "FINISHED",
        "AWAITING_PAYMENT",
        "SUCCEEDED",
        "DELIVERED",
        shipment.tracking_number.as_str(),
    ] {
        assert!(table.contains(needle), "{needle} in\n{table}");
    }

    let json = run_json(&endpoints, &["order", "show", &placed.order_id]).await;
    assert_eq!(json["order"]["status"], "FINISHED");
    assert_eq!(json["order"]["lines"][0]["quantity"], 2);
    assert_eq!(
        json["order"]["history"].as_array().map(Vec::len),
        Some(order.history.len())
    );
    assert_eq!(json["payment"]["status"], "SUCCEEDED");
    assert_eq!(json["shipment"]["status"], "DELIVERED");

    let missing = orders::show(&operator, &Uuid::now_v7().to_string())
        .await
        .expect_err("an unknown order");
    assert_eq!(missing.rpc().map(|rpc| rpc.code), Some(Code::NotFound));
    assert_eq!(missing.exit_code(), 1);

    stack.stop().await;
}
