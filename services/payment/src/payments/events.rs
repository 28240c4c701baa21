//! The events the payment service writes to its outbox, in the transaction of the change they
//! report (aggregate `payment`, the payment id, the payment version), and the routing keys of the
//! order events it consumes.

use chrono::{DateTime, Utc};
use mercato_messaging::envelope::new_envelope;
use mercato_messaging::outbox;
use mercato_proto::mercato::common::v1::Money;
use mercato_proto::mercato::events::v1::{OrderCreated, OrderPaid, PaymentFailed, PaymentRefunded};
use prost::Message;
use sqlx::PgConnection;

use crate::error::PaymentError;
use crate::payments::store::{PaymentRow, RefundRow};
use crate::settings::SERVICE;

/// `order.created` (consumed).
pub const ORDER_CREATED: &str = "order.created";
/// `order.cancelled` (consumed).
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// `order.expired` (consumed).
pub const ORDER_EXPIRED: &str = "order.expired";
/// `order.paid` (produced here, on success).
pub const ORDER_PAID: &str = "order.paid";
/// `payment.failed`.
pub const PAYMENT_FAILED: &str = "payment.failed";
/// `payment.refunded`.
pub const PAYMENT_REFUNDED: &str = "payment.refunded";

/// A protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn money(currency: &str, amount: i64) -> Money {
    Money {
        currency_code: currency.to_owned(),
        amount_minor: amount,
    }
}

fn method(payment: &PaymentRow) -> Result<i32, PaymentError> {
    Ok(payment.method()?.to_proto().into())
}

async fn enqueue<M: Message>(
    conn: &mut PgConnection,
    event_type: &str,
    payment: &PaymentRow,
    type_name: &str,
    payload: &M,
) -> Result<(), PaymentError> {
    let envelope = new_envelope(
        event_type,
        "payment",
        payment.payment_id.to_string(),
        payment.version,
        SERVICE,
        Some(prost_types::Any {
            type_url: format!("type.googleapis.com/mercato.events.v1.{type_name}"),
            value: payload.encode_to_vec(),
        }),
    );
    outbox::enqueue(conn, &envelope).await?;
    Ok(())
}

/// `order.paid` for a payment that just succeeded; lines and address come from the stored
/// `order.created`.
pub async fn order_paid(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    let order = OrderCreated::decode(payment.order_snapshot.as_slice())
        .map_err(|e| PaymentError::Corrupt(format!("stored order snapshot: {e}")))?;
    let payload = OrderPaid {
        order_id: payment.order_id.to_string(),
        user_id: payment.user_id.to_string(),
        payment_id: payment.payment_id.to_string(),
        payment_method: method(payment)?,
        amount: Some(money(&payment.currency, payment.amount)),
        lines: order.lines,
        shipping_address: order.shipping_address,
        paid_time: Some(timestamp(payment.settle_time.unwrap_or(now))),
    };
    enqueue(conn, ORDER_PAID, payment, "OrderPaid", &payload).await
}

/// `payment.failed` for a payment that just failed.
pub async fn payment_failed(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    let payload = PaymentFailed {
        payment_id: payment.payment_id.to_string(),
        order_id: payment.order_id.to_string(),
        user_id: payment.user_id.to_string(),
        payment_method: method(payment)?,
        amount: Some(money(&payment.currency, payment.amount)),
        failure_code: payment.failure_code.clone().unwrap_or_default(),
        failure_message: payment.failure_message.clone().unwrap_or_default(),
        fail_time: Some(timestamp(payment.settle_time.unwrap_or(now))),
    };
    enqueue(conn, PAYMENT_FAILED, payment, "PaymentFailed", &payload).await
}

/// `payment.refunded` for a refund that just succeeded (`payment` is the payment after it).
pub async fn payment_refunded(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    refund: &RefundRow,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    let payload = PaymentRefunded {
        refund_id: refund.refund_id.to_string(),
        payment_id: payment.payment_id.to_string(),
        order_id: payment.order_id.to_string(),
        user_id: payment.user_id.to_string(),
        payment_method: method(payment)?,
        amount: Some(money(&payment.currency, refund.amount)),
        refunded_amount: Some(money(&payment.currency, payment.refunded_amount)),
        fully_refunded: payment.refunded_amount >= payment.amount,
        refund_time: Some(timestamp(refund.settle_time.unwrap_or(now))),
    };
    enqueue(conn, PAYMENT_REFUNDED, payment, "PaymentRefunded", &payload).await
}
