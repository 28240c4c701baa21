//! The order service's consumer of payment outcomes (`order.payment-outcomes`, bound to
//! `order.paid` and `payment.failed`): a paid order moves to PAID; a failed payment cancels an
//! unpaid order (coupon restored, `order.cancelled` written, so the product service releases the
//! stock). Each effect commits with the inbox row, so a redelivery changes nothing; a stale
//! event (a failure reported after the order was paid) is a no-op by the state machine.
//!
//! A payment that succeeded for an order that is already CANCELLED or EXPIRED cannot be applied:
//! the event is refused permanently and lands in the dead-letter queue, where it is kept for the
//! operator (and the payment service's refund path) instead of being dropped.

use mercato_messaging::{ConsumerTopology, Handler, HandlerError, IncomingEvent, Namespace};
use mercato_proto::mercato::common::v1::OrderCancellationReason;
use mercato_proto::mercato::events::v1::{OrderPaid, PaymentFailed};
use prost::Message as _;
use sqlx::PgConnection;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::context::OrderContext;
use crate::coupon::CouponError;
use crate::order::error::OrderError;
use crate::order::events::{ORDER_PAID, PAYMENT_FAILED};
use crate::order::state::Command;
use crate::order::store::Facts;
use crate::order::transition::{self, Request};
use crate::settings::SERVICE;

/// Consumer name of the payment outcome queue.
pub const PAYMENT_OUTCOMES: &str = "payment-outcomes";

/// The queue of [`PaymentOutcomeHandler`].
pub fn topology(namespace: &Namespace) -> Result<ConsumerTopology, mercato_messaging::Error> {
    ConsumerTopology::new(
        namespace,
        SERVICE,
        PAYMENT_OUTCOMES,
        [ORDER_PAID, PAYMENT_FAILED],
    )
}

/// Applies `order.paid` and `payment.failed` to orders.
#[derive(Debug, Clone)]
pub struct PaymentOutcomeHandler {
    context: OrderContext,
}

impl PaymentOutcomeHandler {
    /// A handler over `context`.
    pub fn new(context: OrderContext) -> Self {
        Self { context }
    }
}

fn parse_id(raw: &str, what: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(raw)
        .map_err(|_| HandlerError::permanent(format!("{what} {raw:?} is not a uuid")))
}

/// The order and the request an event asks for.
fn decode(event: &IncomingEvent) -> Result<(Uuid, Request), HandlerError> {
    let payload = event
        .envelope
        .payload
        .as_ref()
        .ok_or_else(|| HandlerError::permanent("the event has no payload"))?;
    match event.envelope.event_type.as_str() {
        ORDER_PAID => {
            let paid = OrderPaid::decode(payload.value.as_slice())
                .map_err(|e| HandlerError::permanent(format!("undecodable OrderPaid: {e}")))?;
            let paid_time = paid.paid_time.and_then(|t| {
                chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            });
            let facts = Facts {
                payment_id: (!paid.payment_id.is_empty()).then(|| paid.payment_id.clone()),
                paid_time,
                ..Facts::default()
            };
            Ok((
                parse_id(&paid.order_id, "order_id")?,
                Request::new(Command::MarkPaid).with_facts(facts),
            ))
        }
        PAYMENT_FAILED => {
            let failed = PaymentFailed::decode(payload.value.as_slice())
                .map_err(|e| HandlerError::permanent(format!("undecodable PaymentFailed: {e}")))?;
            let facts = Facts {
                cancellation_reason: Some(OrderCancellationReason::PaymentFailed as i16),
                ..Facts::default()
            };
            Ok((
                parse_id(&failed.order_id, "order_id")?,
                Request::new(Command::PaymentFailed).with_facts(facts),
            ))
        }
        other => Err(HandlerError::permanent(format!(
            "unexpected event type {other}"
        ))),
    }
}

fn handler_error(err: OrderError) -> HandlerError {
    match err {
        OrderError::Database(db) => HandlerError::from(db),
        OrderError::Outbox(e) => HandlerError::retryable(e),
        // Restoring the coupon met a database failure: as retryable as our own.
        OrderError::Coupon(CouponError::Database(db)) => HandlerError::from(db),
        // The product service is not called here, so nothing else can heal by waiting.
        other @ (OrderError::Validation(_)
        | OrderError::DuplicateLine(_)
        | OrderError::NotFound { .. }
        | OrderError::SkuNotPurchasable(_)
        | OrderError::CartEmpty
        | OrderError::CartNotCheckoutable(_)
        | OrderError::ShippingAddressRequired
        | OrderError::PriceChanged { .. }
        | OrderError::IdempotencyKeyReused
        | OrderError::RequestInProgress
        | OrderError::IllegalTransition { .. }
        | OrderError::RoleRequired(_)
        | OrderError::InvalidPageToken
        | OrderError::Coupon(_)
        | OrderError::Upstream(_)
        | OrderError::Replayed(_)
        | OrderError::CatalogUnavailable(_)
        | OrderError::Corrupt(_)) => HandlerError::permanent(other.to_string()),
    }
}

impl Handler for PaymentOutcomeHandler {
    async fn handle(
        &self,
        event: &IncomingEvent,
        conn: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let (order_id, request) = decode(event)?;
        let span = tracing::info_span!("order.apply_payment_outcome", order.id = %order_id,
            event.r#type = %event.envelope.event_type);
        let now = self.context.clock.now();
        async {
            let outcome = transition::apply(conn, order_id, request, now)
                .await
                .map_err(handler_error)?;
            if !outcome.moved {
                tracing::info!("the order already reflects this payment outcome");
            }
            Ok(())
        }
        .instrument(span)
        .await
    }
}
