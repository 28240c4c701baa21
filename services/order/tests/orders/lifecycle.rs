//! The saga's happy path through the internal RPCs and the bus (PENDING → AWAITING_PAYMENT →
//! PAID → SHIPPED → FINISHED), each transition once however often it is asked for; who may ask;
//! illegal transitions; the buyer's history and live watching.

use futures::StreamExt as _;
use mercato_proto::mercato::common::v1::{OrderCancellationReason, OrderStatus};
use mercato_proto::mercato::order::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::shop::{PATIENCE, Shop, as_service, explicit, key, order_paid, status_of};
use crate::support::{as_buyer, as_user, reason};

fn attach(order_id: &str) -> pb::AttachPaymentRequest {
    pb::AttachPaymentRequest {
        order_id: order_id.to_owned(),
        payment_id: format!("pay-{order_id}"),
        payment_url: format!("http://127.0.0.1:8085/pay/{order_id}"),
    }
}

fn shipped(order_id: &str) -> pb::MarkOrderShippedRequest {
    pb::MarkOrderShippedRequest {
        order_id: order_id.to_owned(),
        shipment_id: format!("ship-{order_id}"),
        carrier: "yamato".to_owned(),
        tracking_number: "1234-5678-9012".to_owned(),
        tracking_url: String::new(),
        ship_time: None,
    }
}

fn finished(order_id: &str) -> pb::MarkOrderFinishedRequest {
    pb::MarkOrderFinishedRequest {
        order_id: order_id.to_owned(),
        deliver_time: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_walks_the_saga_to_finished_and_every_replay_is_a_no_op() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 1)])).await;
    let id = order.order_id.clone();
    let mut orders = shop.orders.clone();

    let attached = orders
        .attach_payment(as_service(attach(&id), "payment"))
        .await
        .expect("payment attached")
        .into_inner()
        .order
        .expect("an order");
    assert_eq!(status_of(&attached), OrderStatus::AwaitingPayment);
    assert_eq!(attached.version, 2);
    let payment = attached.payment.clone().expect("payment facts");
    assert_eq!(payment.payment_id, format!("pay-{id}"));
    let again = orders
        .attach_payment(as_service(attach(&id), "payment"))
        .await
        .expect("a replayed attach succeeds")
        .into_inner()
        .order
        .expect("an order");
    assert_eq!(again.version, 2, "a replay changes nothing");
    assert_eq!(shop.events(&id, "order.awaiting_payment").await, 1);

    // order.paid arrives twice (at-least-once delivery): the order is paid once.
    let paid = order_paid(&order);
    shop.publish(&paid).await;
    shop.wait_for(buyer, &id, OrderStatus::Paid).await;
    shop.publish(&paid).await;
    let mut redelivered = paid.clone();
    redelivered.event_id = Uuid::now_v7().to_string();
    shop.publish(&redelivered).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let read = shop.get(buyer, &id).await.expect("readable");
    assert_eq!(status_of(&read), OrderStatus::Paid);
    assert_eq!(read.version, 3, "paid once");
    assert!(read.payment.as_ref().is_some_and(|p| p.paid_time.is_some()));

    let mut shipped_order = None;
    for _ in 0..2 {
        shipped_order = Some(
            orders
                .mark_order_shipped(as_service(shipped(&id), "process"))
                .await
                .expect("shipped")
                .into_inner()
                .order
                .expect("an order"),
        );
    }
    let shipped_order = shipped_order.expect("an order");
    assert_eq!(status_of(&shipped_order), OrderStatus::Shipped);
    assert_eq!(shipped_order.version, 4);
    let shipment = shipped_order.shipment.expect("shipment facts");
    assert_eq!(shipment.tracking_number, "1234-5678-9012");
    assert!(shipment.ship_time.is_some());

    for _ in 0..2 {
        orders
            .mark_order_finished(as_service(finished(&id), "process"))
            .await
            .expect("finished");
    }
    let done = shop.get(buyer, &id).await.expect("readable");
    assert_eq!(status_of(&done), OrderStatus::Finished);
    assert_eq!(done.version, 5);
    let steps: Vec<(i32, i32)> = done
        .history
        .iter()
        .map(|h| (h.from_status, h.to_status))
        .collect();
    use OrderStatus as S;
    assert_eq!(
        steps,
        [
            (S::Unspecified as i32, S::Pending as i32),
            (S::Pending as i32, S::AwaitingPayment as i32),
            (S::AwaitingPayment as i32, S::Paid as i32),
            (S::Paid as i32, S::Shipped as i32),
            (S::Shipped as i32, S::Finished as i32),
        ]
    );
    for event in [
        "order.created",
        "order.awaiting_payment",
        "order.shipped",
        "order.finished",
    ] {
        assert_eq!(shop.events(&id, event).await, 1, "{event} written once");
    }

    // FINISHED is terminal.
    let refused = orders
        .cancel_order(as_buyer(
            pb::CancelOrderRequest {
                order_id: id.clone(),
            },
            buyer,
        ))
        .await
        .expect_err("a finished order cannot be cancelled");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "ILLEGAL_STATE_TRANSITION");
}

#[tokio::test]
async fn illegal_transitions_are_refused_and_change_nothing() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 1)])).await;
    let id = order.order_id.clone();
    let mut orders = shop.orders.clone();

    let early_ship = orders
        .mark_order_shipped(as_service(shipped(&id), "process"))
        .await
        .expect_err("an unpaid order cannot ship");
    assert_eq!(early_ship.code(), Code::FailedPrecondition);
    assert_eq!(reason(&early_ship), "ILLEGAL_STATE_TRANSITION");
    let early_finish = orders
        .mark_order_finished(as_service(finished(&id), "process"))
        .await
        .expect_err("an unshipped order cannot finish");
    assert_eq!(early_finish.code(), Code::FailedPrecondition);

    orders
        .cancel_order(as_buyer(
            pb::CancelOrderRequest {
                order_id: id.clone(),
            },
            buyer,
        ))
        .await
        .expect("cancelled");
    let late_attach = orders
        .attach_payment(as_service(attach(&id), "payment"))
        .await
        .expect_err("a cancelled order takes no payment");
    assert_eq!(late_attach.code(), Code::FailedPrecondition);
    let read = shop.get(buyer, &id).await.expect("readable");
    assert_eq!(status_of(&read), OrderStatus::Cancelled);
    assert_eq!(read.version, 2);
    assert_eq!(
        read.cancellation_reason,
        OrderCancellationReason::UserRequested as i32
    );
}

#[tokio::test]
async fn only_internal_services_advance_the_saga() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 1)])).await;
    let id = order.order_id.clone();
    let mut orders = shop.orders.clone();

    let admin = Uuid::now_v7();
    let callers: Vec<(&str, tonic::Request<pb::AttachPaymentRequest>)> = vec![
        ("the buyer", as_buyer(attach(&id), buyer)),
        (
            "an admin",
            as_user(
                attach(&id),
                admin,
                &[
                    mercato_platform::principal::Role::Buyer,
                    mercato_platform::principal::Role::Admin,
                ],
            ),
        ),
        (
            "the edge relaying a browser",
            as_service(attach(&id), "bff"),
        ),
        ("nobody", tonic::Request::new(attach(&id))),
    ];
    for (who, request) in callers {
        let refused = orders
            .attach_payment(request)
            .await
            .expect_err(&format!("{who} may not attach a payment"));
        assert!(
            matches!(
                refused.code(),
                Code::PermissionDenied | Code::Unauthenticated
            ),
            "{who}: {refused:?}"
        );
    }
    assert_eq!(shop.status(buyer, &id).await, OrderStatus::Pending);
    assert_eq!(shop.events(&id, "order.awaiting_payment").await, 0);
}

#[tokio::test]
async fn a_buyer_reads_only_their_own_orders_newest_first_in_pages() {
    let shop = Shop::start().await;
    let mug = shop.sku(100, 100).await;
    let buyer = Uuid::now_v7();
    let other = Uuid::now_v7();
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(
            shop.place(buyer, explicit(&key(), &[(&mug, 1)]))
                .await
                .order_id,
        );
    }
    let theirs = shop.place(other, explicit(&key(), &[(&mug, 1)])).await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = shop
            .orders
            .clone()
            .list_orders(as_buyer(
                pb::ListOrdersRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
                buyer,
            ))
            .await
            .expect("listed")
            .into_inner();
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.into_iter().map(|o| o.order_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    placed.reverse();
    assert_eq!(seen, placed, "every own order once, newest first");

    let missing = shop
        .get(buyer, &theirs.order_id)
        .await
        .expect_err("another user's order is invisible");
    assert_eq!(missing.code(), Code::NotFound);
    let cancel = shop
        .orders
        .clone()
        .cancel_order(as_buyer(
            pb::CancelOrderRequest {
                order_id: theirs.order_id.clone(),
            },
            buyer,
        ))
        .await
        .expect_err("another user's order cannot be cancelled");
    assert_eq!(cancel.code(), Code::NotFound);
    assert_eq!(
        shop.status(other, &theirs.order_id).await,
        OrderStatus::Pending
    );

    let bad_token = shop
        .orders
        .clone()
        .list_orders(as_buyer(
            pb::ListOrdersRequest {
                page_token: "garbage".to_owned(),
                ..Default::default()
            },
            buyer,
        ))
        .await
        .expect_err("a forged token");
    assert_eq!(bad_token.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_an_order_streams_every_change_and_ends_at_a_terminal_state() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 1)])).await;
    let id = order.order_id.clone();

    let denied = shop
        .orders
        .clone()
        .watch_order(as_buyer(
            pb::WatchOrderRequest {
                order_id: id.clone(),
            },
            Uuid::now_v7(),
        ))
        .await
        .expect_err("another user cannot watch");
    assert_eq!(denied.code(), Code::NotFound);

    let mut stream = shop
        .orders
        .clone()
        .watch_order(as_buyer(
            pb::WatchOrderRequest {
                order_id: id.clone(),
            },
            buyer,
        ))
        .await
        .expect("watching")
        .into_inner();
    let first = next(&mut stream).await.expect("a message").expect("ok");
    assert_eq!(
        first.order.map(|o| status_of(&o)),
        Some(OrderStatus::Pending)
    );

    shop.orders
        .clone()
        .attach_payment(as_service(attach(&id), "payment"))
        .await
        .expect("attached");
    let second = next(&mut stream).await.expect("a message").expect("ok");
    assert_eq!(
        second.order.map(|o| status_of(&o)),
        Some(OrderStatus::AwaitingPayment)
    );

    shop.orders
        .clone()
        .cancel_order(as_buyer(
            pb::CancelOrderRequest {
                order_id: id.clone(),
            },
            buyer,
        ))
        .await
        .expect("cancelled");
    let third = next(&mut stream).await.expect("a message").expect("ok");
    assert_eq!(
        third.order.map(|o| status_of(&o)),
        Some(OrderStatus::Cancelled)
    );
    assert!(
        next(&mut stream).await.is_none(),
        "the stream ends with OK at a terminal state"
    );
}

/// The stream's next message, which must come within [`PATIENCE`].
async fn next(
    stream: &mut tonic::Streaming<pb::WatchOrderResponse>,
) -> Option<Result<pb::WatchOrderResponse, tonic::Status>> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a message in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_cut_by_the_service_stopping_ends_unavailable_not_ok() {
    let mut shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let order = shop.place(buyer, explicit(&key(), &[(&mug, 1)])).await;

    let mut stream = shop
        .orders
        .clone()
        .watch_order(as_buyer(
            pb::WatchOrderRequest {
                order_id: order.order_id.clone(),
            },
            buyer,
        ))
        .await
        .expect("watching")
        .into_inner();
    let first = next(&mut stream).await.expect("a message").expect("ok");
    assert_eq!(
        first.order.map(|o| status_of(&o)),
        Some(OrderStatus::Pending)
    );

    let service = shop.order.take().expect("order service running");
    let stopping = tokio::spawn(service.stop());
    let end = next(&mut stream)
        .await
        .expect("the stream ends with a status, not silently")
        .expect_err("a pending order's watch cannot end OK");
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    stopping
        .await
        .expect("stop task")
        .expect("the service stops cleanly");
}
