//! The order events, written to the outbox in the transaction of the change they report
//! (routing keys and payloads as `proto/mercato/events/v1/envelope.proto` lists them), and the
//! routing keys of the payment events the order service consumes.

use chrono::{DateTime, Utc};
use mercato_messaging::envelope::new_envelope;
use mercato_messaging::outbox;
use mercato_proto::mercato::common::v1::{OrderCancellationReason, OrderStatus};
use mercato_proto::mercato::events::v1::{
    OrderAwaitingPayment, OrderCancelled, OrderCreated, OrderExpired, OrderFinished, OrderShipped,
};
use prost::Message;
use sqlx::PgConnection;

use crate::cart::view::timestamp;
use crate::order::error::OrderError;
use crate::order::model::StoredOrder;
use crate::settings::SERVICE;

/// `order.created`.
pub const ORDER_CREATED: &str = "order.created";
/// `order.awaiting_payment`.
pub const ORDER_AWAITING_PAYMENT: &str = "order.awaiting_payment";
/// `order.paid` (produced by the payment service, consumed here).
pub const ORDER_PAID: &str = "order.paid";
/// `order.cancelled`.
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// `order.expired`.
pub const ORDER_EXPIRED: &str = "order.expired";
/// `order.shipped`.
pub const ORDER_SHIPPED: &str = "order.shipped";
/// `order.finished`.
pub const ORDER_FINISHED: &str = "order.finished";
/// `payment.failed` (produced by the payment service, consumed here).
pub const PAYMENT_FAILED: &str = "payment.failed";

async fn enqueue<M: Message>(
    conn: &mut PgConnection,
    event_type: &str,
    order: &StoredOrder,
    type_name: &str,
    payload: &M,
) -> Result<(), OrderError> {
    let envelope = new_envelope(
        event_type,
        "order",
        order.order.order_id.to_string(),
        order.order.version,
        SERVICE,
        Some(prost_types::Any {
            type_url: format!("type.googleapis.com/mercato.events.v1.{type_name}"),
            value: payload.encode_to_vec(),
        }),
    );
    outbox::enqueue(conn, &envelope).await?;
    Ok(())
}

/// `order.created` for a new order.
pub async fn created(conn: &mut PgConnection, order: &StoredOrder) -> Result<(), OrderError> {
    let o = &order.order;
    let payload = OrderCreated {
        order_id: o.order_id.to_string(),
        user_id: o.user_id.to_string(),
        lines: order.snapshots(),
        subtotal: Some(o.money(o.subtotal)),
        discount: Some(o.money(o.discount)),
        shipping_fee: Some(o.money(o.shipping_fee)),
        total: Some(o.money(o.total)),
        payment_method: o.payment_method().into(),
        coupon: o.coupon_use(),
        shipping_address: Some(o.address()?),
        payment_due_time: Some(timestamp(o.payment_due_time)),
        create_time: Some(timestamp(o.create_time)),
    };
    enqueue(conn, ORDER_CREATED, order, "OrderCreated", &payload).await
}

/// `order.awaiting_payment` after AttachPayment.
pub async fn awaiting_payment(
    conn: &mut PgConnection,
    order: &StoredOrder,
) -> Result<(), OrderError> {
    let o = &order.order;
    let payload = OrderAwaitingPayment {
        order_id: o.order_id.to_string(),
        user_id: o.user_id.to_string(),
        payment_id: o.payment_id.clone().unwrap_or_default(),
        payment_url: o.payment_url.clone().unwrap_or_default(),
        payment_due_time: Some(timestamp(o.payment_due_time)),
    };
    enqueue(
        conn,
        ORDER_AWAITING_PAYMENT,
        order,
        "OrderAwaitingPayment",
        &payload,
    )
    .await
}

/// `order.cancelled`, cancelled from `previous`.
pub async fn cancelled(
    conn: &mut PgConnection,
    order: &StoredOrder,
    previous: OrderStatus,
    reason: OrderCancellationReason,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let o = &order.order;
    let payload = OrderCancelled {
        order_id: o.order_id.to_string(),
        user_id: o.user_id.to_string(),
        previous_status: previous.into(),
        reason: reason.into(),
        lines: order.snapshots(),
        coupon: o.coupon_use(),
        payment_id: o.payment_id.clone().unwrap_or_default(),
        refund_required: previous == OrderStatus::Paid,
        total: Some(o.money(o.total)),
        cancel_time: Some(timestamp(now)),
    };
    enqueue(conn, ORDER_CANCELLED, order, "OrderCancelled", &payload).await
}

/// `order.expired`, expired from `previous`.
pub async fn expired(
    conn: &mut PgConnection,
    order: &StoredOrder,
    previous: OrderStatus,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let o = &order.order;
    let payload = OrderExpired {
        order_id: o.order_id.to_string(),
        user_id: o.user_id.to_string(),
        previous_status: previous.into(),
        lines: order.snapshots(),
        coupon: o.coupon_use(),
        payment_id: o.payment_id.clone().unwrap_or_default(),
        expire_time: Some(timestamp(now)),
    };
    enqueue(conn, ORDER_EXPIRED, order, "OrderExpired", &payload).await
}

/// `order.shipped`.
pub async fn shipped(conn: &mut PgConnection, order: &StoredOrder) -> Result<(), OrderError> {
    let o = &order.order;
    let payload = OrderShipped {
        order_id: o.order_id.to_string(),
        user_id: o.user_id.to_string(),
        shipment_id: o.shipment_id.clone().unwrap_or_default(),
        carrier: o.carrier.clone().unwrap_or_default(),
        tracking_number: o.tracking_number.clone().unwrap_or_default(),
        tracking_url: o.tracking_url.clone().unwrap_or_default(),
        ship_time: o.ship_time.map(timestamp),
    };
    enqueue(conn, ORDER_SHIPPED, order, "OrderShipped", &payload).await
}

/// `order.finished`.
pub async fn finished(conn: &mut PgConnection, order: &StoredOrder) -> Result<(), OrderError> {
    let o = &order.order;
    let payload = OrderFinished {
        order_id: o.order_id.to_string(),
        user_id: o.user_id.to_string(),
        deliver_time: o.deliver_time.map(timestamp),
    };
    enqueue(conn, ORDER_FINISHED, order, "OrderFinished", &payload).await
}
