//! Checkout and the buyer's orders through the BFF, against the real user, product and order
//! services: explicit and cart checkouts with request-bound idempotency keys, the saved shipping
//! address as the default, history, detail, cancellation, and `WatchOrder` over gRPC and gRPC-Web — including how a stream relates to the
//! unary request timeout, its maximum duration, the BFF's shutdown, the order service going
//! away and the browser leaving. Refused calls never reach the order service.

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use mercato_platform::principal::PrincipalLayer;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::order::v1 as order;
use prost::Message as _;
use support::{
    FakeUsers, JwksServer, RedisPrefix, SKU_PRICE, Services, TestKey, claims, counting_listener,
    reason, seed_sku, settings, shipping_address, sign_up, violated_fields, with_token,
};
use tokio::net::TcpListener;
use tonic::codec::Streaming;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

type Orders = bff::order_service_client::OrderServiceClient<Channel>;

/// How long a test waits for a stream message that must come.
const PATIENCE: Duration = Duration::from_secs(10);

fn jpy(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

/// A sandbox-paid checkout of explicit `(sku, quantity)` lines under `key`.
fn explicit(key: &str, lines: &[(&str, i64)]) -> bff::CreateOrderRequest {
    bff::CreateOrderRequest {
        idempotency_key: key.to_owned(),
        source: Some(bff::create_order_request::Source::ExplicitLines(
            bff::ExplicitLines {
                lines: lines
                    .iter()
                    .map(|(sku_id, quantity)| bff::OrderLineInput {
                        sku_id: (*sku_id).to_owned(),
                        quantity: *quantity,
                    })
                    .collect(),
            },
        )),
        shipping_address: Some(shipping_address("Buyer")),
        payment_method: common::PaymentMethod::Sandbox.into(),
        user_coupon_id: String::new(),
        expected_total: None,
    }
}

/// A sandbox-paid checkout of the caller's cart under `key`.
fn from_cart(key: &str) -> bff::CreateOrderRequest {
    bff::CreateOrderRequest {
        source: Some(bff::create_order_request::Source::Cart(
            bff::CartCheckout {},
        )),
        ..explicit(key, &[])
    }
}

async fn place(orders: &mut Orders, token: &str, sku: &str) -> bff::Order {
    orders
        .create_order(with_token(
            explicit(&Uuid::new_v4().to_string(), &[(sku, 1)]),
            token,
        ))
        .await
        .expect("checkout")
        .into_inner()
        .order
        .expect("order")
}

async fn cancel(orders: &mut Orders, token: &str, order_id: &str) -> bff::Order {
    orders
        .cancel_order(with_token(
            bff::CancelOrderRequest {
                order_id: order_id.to_owned(),
            },
            token,
        ))
        .await
        .expect("cancelled")
        .into_inner()
        .order
        .expect("order")
}

async fn watch(
    orders: &mut Orders,
    token: &str,
    order_id: &str,
) -> Streaming<bff::WatchOrderResponse> {
    orders
        .watch_order(with_token(
            bff::WatchOrderRequest {
                order_id: order_id.to_owned(),
            },
            token,
        ))
        .await
        .expect("watch starts")
        .into_inner()
}

/// The next message of a watch (`Ok(None)` when it ended with OK).
async fn next(
    stream: &mut Streaming<bff::WatchOrderResponse>,
) -> Result<Option<bff::Order>, Status> {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("the watch answers in time")
        .map(|message| message.map(|message| message.order.expect("every message has the order")))
}

fn status_of(order: &bff::Order) -> common::OrderStatus {
    common::OrderStatus::try_from(order.status).expect("a known status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_checks_out_and_reaches_only_their_own_orders() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut carts = bff::cart_service_client::CartServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;

    // Explicit lines: a PENDING order with the snapshot prices.
    let key = Uuid::new_v4().to_string();
    let created = orders
        .create_order(with_token(explicit(&key, &[(&sku, 2)]), &buyer))
        .await
        .expect("explicit checkout")
        .into_inner();
    assert!(!created.replayed);
    let placed = created.order.expect("order");
    assert_eq!(status_of(&placed), common::OrderStatus::Pending);
    assert_eq!(placed.lines.len(), 1);
    let line = &placed.lines[0];
    assert_eq!((line.sku_id.as_str(), line.quantity), (sku.as_str(), 2));
    assert_eq!(line.product_name, "Test mug");
    assert_eq!(line.unit_price, jpy(SKU_PRICE));
    assert_eq!(line.line_total, jpy(2 * SKU_PRICE));
    assert_eq!(placed.subtotal, jpy(2 * SKU_PRICE));
    assert_eq!(placed.discount, jpy(0));
    assert_eq!(placed.shipping_fee, jpy(0));
    assert_eq!(placed.total, jpy(2 * SKU_PRICE));
    assert_eq!(
        placed.payment_method,
        i32::from(common::PaymentMethod::Sandbox)
    );
    assert_eq!(placed.shipping_address, Some(shipping_address("Buyer")));
    assert!(placed.payment_id.is_empty() && placed.coupon.is_none());
    assert!(
        placed.buyer_user_id.is_empty(),
        "the buyer's view names no user"
    );
    assert_eq!(placed.history.len(), 1);
    assert_eq!(
        placed.history[0].to_status,
        i32::from(common::OrderStatus::Pending)
    );
    let seconds = |time: &Option<prost_types::Timestamp>| time.as_ref().expect("a time").seconds;
    assert!(seconds(&placed.payment_due_time) > seconds(&placed.create_time));

    // The same key and body replay the order; the same key with another body is refused.
    let replay = orders
        .create_order(with_token(explicit(&key, &[(&sku, 2)]), &buyer))
        .await
        .expect("replayed checkout")
        .into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.order.as_ref(), Some(&placed));
    let reused = orders
        .create_order(with_token(explicit(&key, &[(&sku, 3)]), &buyer))
        .await
        .expect_err("a key is bound to its request");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");

    // The cart: checked out whole, then empty.
    carts
        .add_cart_item(with_token(
            bff::AddCartItemRequest {
                sku_id: sku.clone(),
                quantity: 1,
                idempotency_key: Uuid::new_v4().to_string(),
            },
            &buyer,
        ))
        .await
        .expect("added to the cart");
    let from_cart = orders
        .create_order(with_token(from_cart(&Uuid::new_v4().to_string()), &buyer))
        .await
        .expect("cart checkout")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        from_cart
            .lines
            .iter()
            .map(|line| (line.sku_id.as_str(), line.quantity))
            .collect::<Vec<_>>(),
        vec![(sku.as_str(), 1)]
    );
    assert_eq!(from_cart.total, jpy(SKU_PRICE));
    let cart = carts
        .get_cart(with_token(bff::GetCartRequest {}, &buyer))
        .await
        .expect("cart")
        .into_inner()
        .cart
        .unwrap_or_default();
    assert!(cart.lines.is_empty(), "the checkout emptied the cart");

    // History newest first, and the detail.
    let listed = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &buyer))
        .await
        .expect("history")
        .into_inner();
    assert_eq!(listed.orders, vec![from_cart.clone(), placed.clone()]);
    assert!(listed.next_page_token.is_empty());
    let got = orders
        .get_order(with_token(
            bff::GetOrderRequest {
                order_id: placed.order_id.clone(),
            },
            &buyer,
        ))
        .await
        .expect("detail")
        .into_inner()
        .order;
    assert_eq!(got.as_ref(), Some(&placed));

    // Cancelling, then filtering the history by state.
    let cancelled = cancel(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(status_of(&cancelled), common::OrderStatus::Cancelled);
    assert_eq!(
        cancelled.cancellation_reason,
        i32::from(common::OrderCancellationReason::UserRequested)
    );
    assert_eq!(
        cancelled.history.last().map(|change| change.to_status),
        Some(i32::from(common::OrderStatus::Cancelled))
    );
    let only_cancelled = orders
        .list_orders(with_token(
            bff::ListOrdersRequest {
                statuses: vec![common::OrderStatus::Cancelled.into()],
                ..bff::ListOrdersRequest::default()
            },
            &buyer,
        ))
        .await
        .expect("filtered history")
        .into_inner()
        .orders;
    assert_eq!(only_cancelled, vec![cancelled]);

    // Another buyer sees none of it.
    let other = sign_up(&mut auth).await;
    let theirs = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &other))
        .await
        .expect("the other buyer's history")
        .into_inner()
        .orders;
    assert!(theirs.is_empty());
    let hidden = orders
        .get_order(with_token(
            bff::GetOrderRequest {
                order_id: from_cart.order_id.clone(),
            },
            &other,
        ))
        .await
        .expect_err("someone else's order");
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(reason(&hidden), "RESOURCE_NOT_FOUND");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checkouts_are_refused_naming_the_field() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;

    let no_lines = orders
        .create_order(with_token(
            explicit(&Uuid::new_v4().to_string(), &[]),
            &buyer,
        ))
        .await
        .expect_err("no lines");
    assert_eq!(no_lines.code(), Code::InvalidArgument);
    assert_eq!(reason(&no_lines), "VALIDATION_FAILED");
    assert_eq!(violated_fields(&no_lines), vec!["explicit_lines.lines"]);

    let no_key = orders
        .create_order(with_token(explicit("", &[(&sku, 1)]), &buyer))
        .await
        .expect_err("no idempotency key");
    assert_eq!(no_key.code(), Code::InvalidArgument);
    assert_eq!(reason(&no_key), "VALIDATION_FAILED");
    assert_eq!(violated_fields(&no_key), vec!["idempotency_key"]);

    let no_source = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                source: None,
                ..explicit(&Uuid::new_v4().to_string(), &[])
            },
            &buyer,
        ))
        .await
        .expect_err("nothing to order");
    assert_eq!(no_source.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&no_source), vec!["source"]);

    let wrong_total = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                expected_total: jpy(SKU_PRICE - 1),
                ..explicit(&Uuid::new_v4().to_string(), &[(&sku, 1)])
            },
            &buyer,
        ))
        .await
        .expect_err("the buyer saw another total");
    assert_eq!(wrong_total.code(), Code::FailedPrecondition);
    assert_eq!(reason(&wrong_total), "PRICE_CHANGED");

    let history = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &buyer))
        .await
        .expect("history")
        .into_inner()
        .orders;
    assert!(history.is_empty(), "no refused checkout created an order");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_without_an_address_ships_to_the_saved_one_or_is_refused_precisely() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut accounts = bff::account_service_client::AccountServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let without_address = |key: &str| bff::CreateOrderRequest {
        shipping_address: None,
        ..explicit(key, &[(&sku, 1)])
    };

    // Nothing saved: the order service's own refusal, and no order.
    let key = Uuid::new_v4().to_string();
    let refused = orders
        .create_order(with_token(without_address(&key), &buyer))
        .await
        .expect_err("no address given and none saved");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "SHIPPING_ADDRESS_REQUIRED");
    assert_eq!(
        refused
            .get_error_details()
            .precondition_failure()
            .map(|failure| failure.violations[0].subject.clone()),
        Some("shipping_address".to_owned())
    );
    let history = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &buyer))
        .await
        .expect("history")
        .into_inner()
        .orders;
    assert!(history.is_empty(), "the refused checkout wrote nothing");

    // Saved: the order ships there, and the same key and body replay it.
    let saved = shipping_address("Saved recipient");
    accounts
        .update_shipping_address(with_token(
            bff::UpdateShippingAddressRequest {
                shipping_address: Some(saved.clone()),
                update_mask: None,
            },
            &buyer,
        ))
        .await
        .expect("address saved");
    let created = orders
        .create_order(with_token(without_address(&key), &buyer))
        .await
        .expect("checkout to the saved address")
        .into_inner();
    assert!(!created.replayed, "the refusal left the key unbound");
    let placed = created.order.expect("order");
    assert_eq!(placed.shipping_address.as_ref(), Some(&saved));
    let replay = orders
        .create_order(with_token(without_address(&key), &buyer))
        .await
        .expect("replay")
        .into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.order.as_ref(), Some(&placed));
    // Sending the saved address explicitly is the same request.
    let explicit_replay = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                shipping_address: Some(saved.clone()),
                ..without_address(&key)
            },
            &buyer,
        ))
        .await
        .expect("replay with the address spelled out")
        .into_inner();
    assert!(explicit_replay.replayed);

    // An address in the request wins over the saved one.
    let given = shipping_address("Given recipient");
    let elsewhere = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                shipping_address: Some(given.clone()),
                ..without_address(&Uuid::new_v4().to_string())
            },
            &buyer,
        ))
        .await
        .expect("checkout to a given address")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(elsewhere.shipping_address, Some(given));

    // The saved address changed: replaying the first key is another request now.
    accounts
        .update_shipping_address(with_token(
            bff::UpdateShippingAddressRequest {
                shipping_address: Some(shipping_address("Moved recipient")),
                update_mask: None,
            },
            &buyer,
        ))
        .await
        .expect("address changed");
    let reused = orders
        .create_order(with_token(without_address(&key), &buyer))
        .await
        .expect_err("the filled address is part of the request");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");
    let history = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &buyer))
        .await
        .expect("history")
        .into_inner()
        .orders;
    assert_eq!(history, vec![elsewhere, placed]);

    drop(bff);
    services.stop().await;
}

/// The BFF's `REQUEST_TIMEOUT` is set to 1 s here: the stream must live on past it, since the
/// unary deadline bounds only the time to the response headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_streams_the_order_then_its_cancellation_then_ends_ok_and_outlives_the_request_timeout()
 {
    let services = Services::start().await;
    let bff = services.bff(&[("REQUEST_TIMEOUT", "1s")]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    let first = next(&mut stream)
        .await
        .expect("first message")
        .expect("an order");
    assert_eq!(first, placed, "the watch starts with the current order");
    // The one sleep here is the point of the test: time must pass beyond the request deadline.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let cancelled = cancel(&mut orders, &buyer, &placed.order_id).await;
    let change = next(&mut stream)
        .await
        .expect("the stream outlived the request timeout")
        .expect("the change");
    assert_eq!(change, cancelled);
    assert_eq!(status_of(&change), common::OrderStatus::Cancelled);
    assert_eq!(
        next(&mut stream).await.expect("ends with OK"),
        None,
        "a terminal state ends the stream"
    );

    drop(bff);
    services.stop().await;
}

/// One gRPC-Web data frame around `message`.
fn frame(message: &impl prost::Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&payload);
    framed
}

/// The first complete gRPC-Web frame at the start of `buffer`: (flag, payload, length used).
fn first_frame(buffer: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buffer.len() < 5 {
        return None;
    }
    let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    (buffer.len() >= 5 + length).then(|| (buffer[0], buffer[5..5 + length].to_vec(), 5 + length))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_streams_over_grpc_web_message_by_message() {
    let services = Services::start().await;
    let bff = services.bff(&[("REQUEST_TIMEOUT", "1s")]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    mercato_bff::app::install_crypto_provider();
    let http1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("http client");
    let mut response = http1
        .post(format!(
            "{}/mercato.bff.v1.OrderService/WatchOrder",
            bff.url()
        ))
        .header("origin", "https://shop.example")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {buyer}"))
        .body(frame(&bff::WatchOrderRequest {
            order_id: placed.order_id.clone(),
        }))
        .send()
        .await
        .expect("grpc-web watch");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert!(response.status().is_success());

    // Read frames as they arrive: the first one must come while the stream is still open.
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    let mut read_frame = async || loop {
        if let Some((flag, payload, used)) = first_frame(&buffer) {
            buffer.drain(..used);
            return Some((flag, payload));
        }
        let chunk = tokio::time::timeout(PATIENCE, response.chunk())
            .await
            .expect("the body moves in time")
            .expect("body chunk");
        match chunk {
            Some(bytes) => buffer.extend_from_slice(&bytes),
            None => return None,
        }
    };
    let (flag, payload) = read_frame().await.expect("a first frame");
    assert_eq!(flag, 0, "a data frame first");
    let first = bff::WatchOrderResponse::decode(payload.as_slice()).expect("message decodes");
    assert_eq!(first.order.as_ref(), Some(&placed));

    // Past the 1 s request timeout, the cancellation still arrives on the same response.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let cancelled = cancel(&mut orders, &buyer, &placed.order_id).await;
    while let Some(frame) = read_frame().await {
        frames.push(frame);
    }
    let (data, trailers): (Vec<_>, Vec<_>) = frames.into_iter().partition(|(flag, _)| *flag == 0);
    let changes: Vec<bff::Order> = data
        .iter()
        .map(|(_, payload)| {
            bff::WatchOrderResponse::decode(payload.as_slice())
                .expect("message decodes")
                .order
                .expect("order")
        })
        .collect();
    assert_eq!(changes, vec![cancelled]);
    let trailers: String = trailers
        .iter()
        .map(|(_, payload)| String::from_utf8_lossy(payload).into_owned())
        .collect();
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_unavailable_at_its_maximum_duration_and_a_new_watch_starts_from_the_latest_state()
 {
    let services = Services::start().await;
    let bff = services.bff(&[("WATCH_MAX_DURATION", "1s")]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(
        next(&mut stream).await.expect("first"),
        Some(placed.clone())
    );
    let ended = next(&mut stream).await.expect_err("the watch is bounded");
    assert_eq!(ended.code(), Code::Unavailable);
    assert_eq!(reason(&ended), "UNAVAILABLE");
    assert!(
        ended.message().contains("maximum duration"),
        "{}",
        ended.message()
    );
    assert_eq!(
        ended
            .get_error_details()
            .retry_info()
            .map(|retry| retry.retry_delay),
        Some(Some(Duration::ZERO)),
        "watch again at once"
    );

    let cancelled = cancel(&mut orders, &buyer, &placed.order_id).await;
    let mut again = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(next(&mut again).await.expect("first"), Some(cancelled));
    assert_eq!(next(&mut again).await.expect("ends with OK"), None);

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_unavailable_as_soon_as_the_bff_shuts_down() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(next(&mut stream).await.expect("first"), Some(placed));
    // Without the shutdown ending it, this stream would hold the drain until the order is
    // terminal (up to its 30-minute payment deadline); `next` waits only PATIENCE.
    drop(bff);
    let ended = next(&mut stream)
        .await
        .expect_err("the shutdown ends the watch");
    assert_eq!(ended.code(), Code::Unavailable);
    assert!(
        ended.message().contains("shutting down"),
        "{}",
        ended.message()
    );

    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_the_order_service_ends_before_a_terminal_state_ends_unavailable_not_ok() {
    let mut services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(next(&mut stream).await.expect("first"), Some(placed));
    services
        .orders
        .take()
        .expect("the order service runs")
        .stop()
        .await
        .expect("order service stops cleanly");
    let ended = next(&mut stream)
        .await
        .expect_err("a PENDING order's watch does not end with OK");
    assert_eq!(ended.code(), Code::Unavailable);
    // The order service ends its streams with OK when it stops; the BFF knows PENDING is not
    // the end the contract promises.
    assert!(
        ended.message().contains("order service ended the watch"),
        "{}",
        ended.message()
    );

    drop(bff);
    services.stop().await;
}

/// A stream that counts itself open until it is dropped.
struct Counted<S> {
    inner: S,
    open: Arc<AtomicUsize>,
}

impl<S: Stream + Unpin> Stream for Counted<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The real order service's handlers, served by the test so it can count open watch streams.
#[derive(Clone)]
struct Observed {
    inner: mercato_order::order::grpc::OrderGrpc,
    open_watches: Arc<AtomicUsize>,
}

type GrpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl order::order_service_server::OrderService for Observed {
    type WatchOrderStream =
        Pin<Box<dyn Stream<Item = Result<order::WatchOrderResponse, Status>> + Send + 'static>>;

    async fn create_order(
        &self,
        request: Request<order::CreateOrderRequest>,
    ) -> GrpcResult<order::CreateOrderResponse> {
        self.inner.create_order(request).await
    }

    async fn get_order(
        &self,
        request: Request<order::GetOrderRequest>,
    ) -> GrpcResult<order::GetOrderResponse> {
        self.inner.get_order(request).await
    }

    async fn list_orders(
        &self,
        request: Request<order::ListOrdersRequest>,
    ) -> GrpcResult<order::ListOrdersResponse> {
        self.inner.list_orders(request).await
    }

    async fn cancel_order(
        &self,
        request: Request<order::CancelOrderRequest>,
    ) -> GrpcResult<order::CancelOrderResponse> {
        self.inner.cancel_order(request).await
    }

    async fn watch_order(
        &self,
        request: Request<order::WatchOrderRequest>,
    ) -> GrpcResult<Self::WatchOrderStream> {
        let stream = self.inner.watch_order(request).await?.into_inner();
        self.open_watches.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(Box::pin(Counted {
            inner: stream,
            open: Arc::clone(&self.open_watches),
        })))
    }

    async fn lookup_order(
        &self,
        request: Request<order::LookupOrderRequest>,
    ) -> GrpcResult<order::LookupOrderResponse> {
        self.inner.lookup_order(request).await
    }

    async fn search_orders(
        &self,
        request: Request<order::SearchOrdersRequest>,
    ) -> GrpcResult<order::SearchOrdersResponse> {
        self.inner.search_orders(request).await
    }

    async fn attach_payment(
        &self,
        request: Request<order::AttachPaymentRequest>,
    ) -> GrpcResult<order::AttachPaymentResponse> {
        self.inner.attach_payment(request).await
    }

    async fn mark_order_shipped(
        &self,
        request: Request<order::MarkOrderShippedRequest>,
    ) -> GrpcResult<order::MarkOrderShippedResponse> {
        self.inner.mark_order_shipped(request).await
    }

    async fn mark_order_finished(
        &self,
        request: Request<order::MarkOrderFinishedRequest>,
    ) -> GrpcResult<order::MarkOrderFinishedResponse> {
        self.inner.mark_order_finished(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_leaving_a_watch_ends_the_order_services_stream() {
    let services = Services::start().await;
    let context = services
        .orders
        .as_ref()
        .expect("the order service runs")
        .context
        .clone();
    let open_watches = Arc::new(AtomicUsize::new(0));
    let observed = Observed {
        inner: mercato_order::order::grpc::OrderGrpc::new(context),
        open_watches: Arc::clone(&open_watches),
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind observed orders");
    let observed_uri = format!("http://{}", listener.local_addr().expect("observed addr"));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(PrincipalLayer)
            .add_service(order::order_service_server::OrderServiceServer::new(
                observed,
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let bff = services.bff_with_order_service(&observed_uri, &[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(next(&mut stream).await.expect("first"), Some(placed));
    assert_eq!(open_watches.load(Ordering::SeqCst), 1);
    drop(stream);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while open_watches.load(Ordering::SeqCst) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order service's stream outlived the browser's"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    drop(bff);
    server.abort();
    services.stop().await;
}

#[tokio::test]
async fn refused_calls_never_reach_the_order_service() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let (order_uri, accepted) = counting_listener().await;
    let prefix = RedisPrefix::new();
    let bff = support::TestBff::start(settings(
        &jwks,
        &users_url,
        &prefix,
        &[("ORDER_SERVICE_URL", &order_uri)],
    ))
    .await;
    let channel = bff.channel().await;
    let mut orders = Orders::new(channel.clone());
    let mut admin = bff::admin_service_client::AdminServiceClient::new(channel);
    let buyer = key.sign(&claims(
        &jwks.issuer(),
        &Uuid::new_v4().to_string(),
        &["buyer"],
    ));
    let order_id = Uuid::new_v4().to_string();

    let anonymous = [
        orders
            .create_order(explicit(&Uuid::new_v4().to_string(), &[(&order_id, 1)]))
            .await
            .map(drop),
        orders
            .get_order(bff::GetOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .map(drop),
        orders
            .list_orders(bff::ListOrdersRequest::default())
            .await
            .map(drop),
        orders
            .cancel_order(bff::CancelOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .map(drop),
        orders
            .watch_order(bff::WatchOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .map(drop),
        orders
            .get_order_payment(bff::GetOrderPaymentRequest {
                order_id: order_id.clone(),
            })
            .await
            .map(drop),
    ];
    for (i, outcome) in anonymous.into_iter().enumerate() {
        let status = outcome.expect_err("no token, no order call");
        assert_eq!(status.code(), Code::Unauthenticated, "call {i}: {status:?}");
        assert_eq!(reason(&status), "TOKEN_MISSING", "call {i}");
    }

    let not_admin = [
        admin
            .search_orders(with_token(bff::SearchOrdersRequest::default(), &buyer))
            .await
            .map(drop),
        admin
            .lookup_order(with_token(
                bff::LookupOrderRequest {
                    order_id: order_id.clone(),
                },
                &buyer,
            ))
            .await
            .map(drop),
        admin
            .cancel_any_order(with_token(
                bff::CancelAnyOrderRequest {
                    order_id: order_id.clone(),
                },
                &buyer,
            ))
            .await
            .map(drop),
    ];
    for (i, outcome) in not_admin.into_iter().enumerate() {
        let status = outcome.expect_err("a buyer is no admin");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "call {i}: {status:?}"
        );
        assert_eq!(reason(&status), "ROLE_REQUIRED", "call {i}");
    }

    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no refused call reached the order service"
    );

    // The control: an admitted call does reach it (and, since the stand-in speaks no gRPC,
    // fails UNAVAILABLE without internal detail).
    let reached = orders
        .get_order(with_token(bff::GetOrderRequest { order_id }, &buyer))
        .await
        .expect_err("the stand-in answers nothing");
    assert_eq!(reached.code(), Code::Unavailable, "{reached:?}");
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the stand-in was called"
    );
}
