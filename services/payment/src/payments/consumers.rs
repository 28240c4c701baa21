//! The payment service's consumer of order events (`payment.order-events`, bound to
//! `order.created`, `order.cancelled` and `order.expired`):
//!
//! - `order.created` creates the order's payment (see [`crate::payments::create`]);
//! - `order.cancelled` / `order.expired` abandon an unsettled payment (the intent is cancelled at
//!   the provider) and refund a captured one in full, once per order — whether or not the order
//!   was PAID when it ended, since money captured for an ended order must go back.
//!
//! Each event's inbox row commits with the consumer's last write; every earlier step is
//! idempotent on its own, so a redelivery after a crash repeats nothing.

use mercato_messaging::{ConsumerTopology, Handler, HandlerError, IncomingEvent, Namespace};
use mercato_proto::mercato::events::v1::{OrderCancelled, OrderCreated, OrderExpired};
use prost::Message as _;
use sqlx::PgConnection;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::domain;
use crate::error::PaymentError;
use crate::payments::create::{self, CreateError, OrderFacts};
use crate::payments::events::{ORDER_CANCELLED, ORDER_CREATED, ORDER_EXPIRED};
use crate::payments::refund::{self, RefundCommand};
use crate::payments::{settle, store};
use crate::settings::SERVICE;

/// Consumer name of the order event queue.
pub const ORDER_EVENTS: &str = "order-events";

/// The queue of [`OrderEventHandler`].
pub fn topology(namespace: &Namespace) -> Result<ConsumerTopology, mercato_messaging::Error> {
    ConsumerTopology::new(
        namespace,
        SERVICE,
        ORDER_EVENTS,
        [ORDER_CREATED, ORDER_CANCELLED, ORDER_EXPIRED],
    )
}

/// Applies order events to payments.
#[derive(Debug, Clone)]
pub struct OrderEventHandler {
    context: PaymentContext,
}

impl OrderEventHandler {
    /// A handler over `context`.
    pub fn new(context: PaymentContext) -> Self {
        Self { context }
    }
}

fn payment_error(err: PaymentError) -> HandlerError {
    // Database failures are usually transient (deadlock, failover), as the bus assumes.
    if let PaymentError::Database(db) = err {
        HandlerError::from(db)
    } else if err.is_transient() {
        HandlerError::retryable(err)
    } else {
        HandlerError::permanent(err)
    }
}

fn create_error(err: CreateError) -> HandlerError {
    match err {
        CreateError::Bad(bad) => HandlerError::permanent(bad),
        CreateError::Refused(why) => HandlerError::permanent(why),
        CreateError::Payment(err) => payment_error(err),
    }
}

fn payload(event: &IncomingEvent) -> Result<&[u8], HandlerError> {
    event
        .envelope
        .payload
        .as_ref()
        .map(|any| any.value.as_slice())
        .ok_or_else(|| HandlerError::permanent("the event has no payload"))
}

fn order_id(raw: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(raw)
        .map_err(|_| HandlerError::permanent(format!("order_id {raw:?} is not a uuid")))
}

/// An ended order: abandon its open payment, refund a captured one.
pub async fn order_ended(
    context: &PaymentContext,
    order_id: Uuid,
    reason: &str,
) -> Result<(), PaymentError> {
    let mut conn = context.pool.acquire().await?;
    let Some(payment) = store::by_order(&mut conn, order_id).await? else {
        // order.created not applied yet: when it is, AttachPayment refuses and the payment is
        // abandoned there.
        tracing::info!(order.id = %order_id, "the ended order has no payment yet");
        return Ok(());
    };
    drop(conn);
    let payment = if payment.status()?.is_open() {
        settle::abandon(context, payment.payment_id).await?
    } else {
        payment
    };
    if !payment.status()?.is_captured() {
        return Ok(());
    }
    let command = RefundCommand {
        payment_id: payment.payment_id,
        amount: None,
        reason: reason.to_owned(),
        scope: domain::cancellation_refund_scope(order_id),
        request_hash: "order-ended".to_owned(),
    };
    match refund::refund(context, &command).await {
        Ok(_) => Ok(()),
        // An operator refunded everything already: nothing is left to give back.
        Err(PaymentError::RefundExceedsPayment { refundable: 0 }) => Ok(()),
        Err(other) => Err(other),
    }
}

impl Handler for OrderEventHandler {
    async fn handle(
        &self,
        event: &IncomingEvent,
        conn: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let event_type = event.envelope.event_type.as_str();
        match event_type {
            ORDER_CREATED => {
                let created = OrderCreated::decode(payload(event)?).map_err(|e| {
                    HandlerError::permanent(format!("undecodable OrderCreated: {e}"))
                })?;
                let facts = OrderFacts::parse(&created, &self.context.settings.payments.currency)
                    .map_err(HandlerError::permanent)?;
                let span = tracing::info_span!("payment.create_for_order",
                    order.id = %facts.order_id, payment.method = facts.method.as_str());
                create::handle_order_created(&self.context, conn, &facts)
                    .instrument(span)
                    .await
                    .map(|_| ())
                    .map_err(create_error)
            }
            ORDER_CANCELLED | ORDER_EXPIRED => {
                let (id, reason) = if event_type == ORDER_CANCELLED {
                    let cancelled = OrderCancelled::decode(payload(event)?).map_err(|e| {
                        HandlerError::permanent(format!("undecodable OrderCancelled: {e}"))
                    })?;
                    (order_id(&cancelled.order_id)?, "order cancelled")
                } else {
                    let expired = OrderExpired::decode(payload(event)?).map_err(|e| {
                        HandlerError::permanent(format!("undecodable OrderExpired: {e}"))
                    })?;
                    (order_id(&expired.order_id)?, "order expired")
                };
                let span = tracing::info_span!("payment.order_ended", order.id = %id,
                    event.r#type = %event_type);
                order_ended(&self.context, id, reason)
                    .instrument(span)
                    .await
                    .map_err(payment_error)
            }
            other => Err(HandlerError::permanent(format!(
                "unexpected event type {other}"
            ))),
        }
    }
}
