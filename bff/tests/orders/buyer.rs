//! What the buyer does through the BFF's order service, shared by the tests.

use std::time::Duration;

use crate::support::{shipping_address, with_token};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use tonic::Status;
use tonic::codec::Streaming;
use tonic::transport::Channel;
use uuid::Uuid;

pub(crate) type Orders = bff::order_service_client::OrderServiceClient<Channel>;

/// How long a test waits for a stream message that must come.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) fn jpy(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

/// A sandbox-paid checkout of explicit `(sku, quantity)` lines under `key`.
pub(crate) fn explicit(key: &str, lines: &[(&str, i64)]) -> bff::CreateOrderRequest {
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
pub(crate) fn from_cart(key: &str) -> bff::CreateOrderRequest {
    bff::CreateOrderRequest {
        source: Some(bff::create_order_request::Source::Cart(
            bff::CartCheckout {},
        )),
        ..explicit(key, &[])
    }
}

pub(crate) async fn place(orders: &mut Orders, token: &str, sku: &str) -> bff::Order {
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

pub(crate) async fn cancel(orders: &mut Orders, token: &str, order_id: &str) -> bff::Order {
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

pub(crate) async fn watch(
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
pub(crate) async fn next(
    stream: &mut Streaming<bff::WatchOrderResponse>,
) -> Result<Option<bff::Order>, Status> {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("the watch answers in time")
        .map(|message| message.map(|message| message.order.expect("every message has the order")))
}

pub(crate) fn status_of(order: &bff::Order) -> common::OrderStatus {
    common::OrderStatus::try_from(order.status).expect("a known status")
}
