//! Stock events: `stock.reservation_expired` and `stock.low` written to the outbox in the
//! transaction of the change, and the consumer of `order.cancelled` / `order.expired` that gives
//! an order's stock back.

use chrono::{DateTime, Utc};
use mercato_messaging::envelope::new_envelope;
use mercato_messaging::{
    ConsumerTopology, Handler, HandlerError, IncomingEvent, Namespace, outbox,
};
use mercato_proto::mercato::events::v1::{
    OrderCancelled, OrderExpired, StockLine, StockLow, StockReservationExpired,
};
use prost::Message as _;
use sqlx::PgConnection;
use tracing::Instrument as _;
use uuid::Uuid;

use super::domain::{Line, ReservationStatus};
use super::error::StockError;
use super::ops;
use super::store::{self, LowStock, ReservationRow};
use super::{StockApp, markers};
use crate::settings::SERVICE;

/// Routing key of an expired reservation.
pub const STOCK_RESERVATION_EXPIRED: &str = "stock.reservation_expired";
/// Routing key of a low-stock crossing.
pub const STOCK_LOW: &str = "stock.low";
/// Routing key of a cancelled order.
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// Routing key of an expired order.
pub const ORDER_EXPIRED: &str = "order.expired";
/// Consumer name of the reservation release queue (`product.stock-release`).
pub const RELEASE_CONSUMER: &str = "stock-release";

fn any(type_name: &str, value: Vec<u8>) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/mercato.events.v1.{type_name}"),
        value,
    }
}

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Enqueues `stock.reservation_expired` for `reservation` (now EXPIRED).
pub async fn reservation_expired(
    conn: &mut PgConnection,
    reservation: &ReservationRow,
    lines: &[Line],
) -> Result<(), mercato_messaging::Error> {
    let payload = StockReservationExpired {
        reservation_id: reservation.id.to_string(),
        order_id: reservation.order_id.to_string(),
        lines: lines
            .iter()
            .map(|l| StockLine {
                sku_id: l.sku_id.to_string(),
                quantity: l.quantity,
            })
            .collect(),
        expire_time: Some(timestamp(reservation.expires_at)),
    };
    let envelope = new_envelope(
        STOCK_RESERVATION_EXPIRED,
        "reservation",
        reservation.id.to_string(),
        2,
        SERVICE,
        Some(any("StockReservationExpired", payload.encode_to_vec())),
    );
    outbox::enqueue(conn, &envelope).await
}

/// Enqueues `stock.low` for a SKU that just fell to or below `threshold`.
pub async fn stock_low(
    conn: &mut PgConnection,
    low: &LowStock,
    threshold: i64,
    now: DateTime<Utc>,
) -> Result<(), mercato_messaging::Error> {
    let payload = StockLow {
        sku_id: low.sku_id.to_string(),
        product_id: low.product_id.to_string(),
        seller_id: low.seller_id.to_string(),
        sku_code: low.sku_code.clone(),
        available: low.available,
        threshold,
        observe_time: Some(timestamp(now)),
    };
    let envelope = new_envelope(
        STOCK_LOW,
        "sku",
        low.sku_id.to_string(),
        1,
        SERVICE,
        Some(any("StockLow", payload.encode_to_vec())),
    );
    outbox::enqueue(conn, &envelope).await
}

/// The queue of [`ReleaseHandler`]: `product.stock-release`, bound to `order.cancelled` and
/// `order.expired`.
pub fn release_topology(
    namespace: &Namespace,
) -> Result<ConsumerTopology, mercato_messaging::Error> {
    ConsumerTopology::new(
        namespace,
        SERVICE,
        RELEASE_CONSUMER,
        [ORDER_CANCELLED, ORDER_EXPIRED],
    )
}

/// Gives an order's stock back when the order is cancelled or expires: a PENDING reservation is
/// released; a COMMITTED one (the order was paid) is restocked on `order.cancelled`. Anything
/// else is already settled, so a duplicate or late event changes nothing (and the inbox drops
/// exact redeliveries before this runs).
#[derive(Debug, Clone)]
pub struct ReleaseHandler {
    app: StockApp,
}

impl ReleaseHandler {
    /// A handler over `app`.
    pub fn new(app: StockApp) -> Self {
        Self { app }
    }
}

/// The order id and which event it came from.
fn decode(event: &IncomingEvent) -> Result<(Uuid, bool, String), HandlerError> {
    let payload = event
        .envelope
        .payload
        .as_ref()
        .ok_or_else(|| HandlerError::permanent("the event has no payload"))?;
    let (order_id, cancelled, label) = match event.envelope.event_type.as_str() {
        ORDER_CANCELLED => {
            let message = OrderCancelled::decode(payload.value.as_slice())
                .map_err(|e| HandlerError::permanent(format!("undecodable OrderCancelled: {e}")))?;
            (message.order_id, true, "order cancelled")
        }
        ORDER_EXPIRED => {
            let message = OrderExpired::decode(payload.value.as_slice())
                .map_err(|e| HandlerError::permanent(format!("undecodable OrderExpired: {e}")))?;
            (message.order_id, false, "order expired")
        }
        other => {
            return Err(HandlerError::permanent(format!(
                "unexpected event type {other}"
            )));
        }
    };
    let order_id = Uuid::parse_str(&order_id)
        .map_err(|_| HandlerError::permanent(format!("order_id {order_id:?} is not a uuid")))?;
    Ok((order_id, cancelled, label.to_owned()))
}

impl Handler for ReleaseHandler {
    async fn handle(
        &self,
        event: &IncomingEvent,
        conn: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let (order_id, cancelled, reason) = decode(event)?;
        let span = tracing::info_span!("stock.release_for_order", order.id = %order_id,
            event.r#type = %event.envelope.event_type);
        self.apply(conn, order_id, cancelled, &reason)
            .instrument(span)
            .await
    }
}

impl ReleaseHandler {
    async fn apply(
        &self,
        conn: &mut PgConnection,
        order_id: Uuid,
        cancelled: bool,
        reason: &str,
    ) -> Result<(), HandlerError> {
        let op = self.app.op_context();
        let Some(found) = store::find_reservation(conn, order_id, true)
            .await
            .map_err(HandlerError::from)?
        else {
            // The order never reserved (its CreateOrder failed before), nothing to give back.
            tracing::info!("no reservation for the order");
            return Ok(());
        };
        let status = found.status().map_err(handler_error)?;
        let state = match status {
            ReservationStatus::Pending => ops::release(conn, order_id, reason, op).await,
            ReservationStatus::Committed if cancelled => {
                ops::restock(conn, order_id, reason, op).await
            }
            ReservationStatus::Committed => {
                tracing::warn!("an expired order has a committed reservation, left as it is");
                return Ok(());
            }
            ReservationStatus::Released
            | ReservationStatus::Expired
            | ReservationStatus::Returned => return Ok(()),
        }
        .map_err(handler_error)?;
        // The effect commits with the inbox row after this returns. Clearing the sold-out markers
        // and the cache now (before that commit) is safe: a missing marker only sends a
        // reservation to the database, which decides correctly either way, and a cache entry
        // rebuilt from the old state in between lives for its short TTL only. The products are
        // read on this connection: a second one per handler could starve the pool.
        let sku_ids: Vec<Uuid> = state.changes.iter().map(|c| c.sku_id).collect();
        let products = store::product_ids(conn, &sku_ids).await?;
        markers::sync(self.app.context(), &state.changes).await;
        self.app.invalidate_products(&products).await;
        Ok(())
    }
}

fn handler_error(err: StockError) -> HandlerError {
    match err {
        StockError::Database(db) => HandlerError::from(db),
        StockError::Outbox(e) => HandlerError::retryable(e),
        other @ (StockError::Validation(_)
        | StockError::InvalidPageToken
        | StockError::TokenMissing
        | StockError::RoleRequired(_)
        | StockError::NotResourceOwner
        | StockError::NotFound { .. }
        | StockError::SkuNotPurchasable(_)
        | StockError::InsufficientStock(_)
        | StockError::ReservationConflict(_)
        | StockError::ReservationExpired(_)
        | StockError::IllegalTransition { .. }
        | StockError::VersionMismatch(_)
        | StockError::StockBelowReserved(_)
        | StockError::IdempotencyKeyReused
        | StockError::Corrupt(_)) => HandlerError::permanent(other.to_string()),
    }
}
