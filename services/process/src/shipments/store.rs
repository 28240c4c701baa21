//! SQL of shipments, over `&mut PgConnection` (the caller owns the transaction).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mercato_messaging::headers;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::ShipmentStatus;
use crate::error::ProcessError;
use crate::paging::PageToken;

/// The wake-up channel of the shipment worker.
pub const CHANNEL: &str = "process_shipments";

/// A stored shipment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShipmentRow {
    /// Id (UUIDv7).
    pub shipment_id: Uuid,
    /// The order (unique).
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The payment that paid the order.
    pub payment_id: String,
    /// `PREPARING`, `SHIPPED`, `DELIVERED`, `CANCELLED`.
    pub status: String,
    /// Carrier name.
    pub carrier: String,
    /// Tracking number (shown once SHIPPED).
    pub tracking_number: String,
    /// Tracking page.
    pub tracking_url: Option<String>,
    /// `PostalAddress`, protobuf-encoded.
    pub shipping_address: Vec<u8>,
    /// The order total for display.
    pub order_total: String,
    /// Whether the stock reservation is committed.
    pub stock_committed: bool,
    /// When the worker acts next.
    pub next_step_time: Option<DateTime<Utc>>,
    /// Failed attempts of the current step.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Handed over.
    pub ship_time: Option<DateTime<Utc>>,
    /// Delivered.
    pub deliver_time: Option<DateTime<Utc>>,
    /// Withdrawn.
    pub cancel_time: Option<DateTime<Utc>>,
    /// Last change.
    pub update_time: DateTime<Utc>,
    /// +1 per change.
    pub version: i64,
    /// The trace context the shipment was recorded in (its worker steps continue it).
    pub trace_context: Json<HashMap<String, String>>,
}

impl ShipmentRow {
    /// The parsed status.
    pub fn status(&self) -> Result<ShipmentStatus, ProcessError> {
        ShipmentStatus::parse(&self.status)
            .ok_or_else(|| ProcessError::Corrupt(format!("shipment status {:?}", self.status)))
    }
}

/// One parcel line.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LineRow {
    /// SKU id.
    pub sku_id: String,
    /// SKU code.
    pub sku_code: String,
    /// Product name.
    pub product_name: String,
    /// Units.
    pub quantity: i64,
}

/// A shipment to create from `order.paid`.
#[derive(Debug, Clone)]
pub struct NewShipment {
    /// The order.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The payment.
    pub payment_id: String,
    /// Carrier (empty until an operator ships it, for the manual carrier).
    pub carrier: String,
    /// The simulated carrier's tracking number (empty for the manual carrier).
    pub tracking_number: String,
    /// `PostalAddress`, protobuf-encoded.
    pub shipping_address: Vec<u8>,
    /// The order total for display.
    pub order_total: String,
    /// The parcel's lines.
    pub lines: Vec<LineRow>,
}

/// Inserts the order's shipment unless it has one, with the current trace context; the shipment
/// and whether it was created now.
pub async fn insert_if_absent(
    conn: &mut PgConnection,
    new: &NewShipment,
    now: DateTime<Utc>,
) -> Result<(ShipmentRow, bool), ProcessError> {
    let inserted = sqlx::query_as::<_, ShipmentRow>(
        "INSERT INTO shipments (shipment_id, order_id, user_id, payment_id, status, carrier, \
             tracking_number, shipping_address, order_total, next_step_time, create_time, \
             update_time, trace_context) \
         VALUES ($1, $2, $3, $4, 'PREPARING', $5, $6, $7, $8, $9, $9, $9, $10) \
         ON CONFLICT ON CONSTRAINT shipments_order_id_key DO NOTHING RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(new.order_id)
    .bind(new.user_id)
    .bind(&new.payment_id)
    .bind(&new.carrier)
    .bind(&new.tracking_number)
    .bind(&new.shipping_address)
    .bind(&new.order_total)
    .bind(now)
    .bind(Json(headers::capture_current_span()))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = inserted else {
        let existing = by_order(conn, new.order_id)
            .await?
            .ok_or_else(|| ProcessError::Corrupt("shipment conflict without a row".to_owned()))?;
        return Ok((existing, false));
    };
    for (position, line) in new.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO shipment_lines (shipment_id, position, sku_id, sku_code, product_name, \
                 quantity) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(row.shipment_id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(&line.sku_id)
        .bind(&line.sku_code)
        .bind(&line.product_name)
        .bind(line.quantity)
        .execute(&mut *conn)
        .await?;
    }
    Ok((row, true))
}

/// The shipment `id`.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<ShipmentRow>, ProcessError> {
    Ok(
        sqlx::query_as::<_, ShipmentRow>("SELECT * FROM shipments WHERE shipment_id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The shipment `id`, locked until the transaction ends (waits for a worker holding it).
pub async fn get_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ShipmentRow>, ProcessError> {
    Ok(sqlx::query_as::<_, ShipmentRow>(
        "SELECT * FROM shipments WHERE shipment_id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// The shipment of `order_id`.
pub async fn by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<ShipmentRow>, ProcessError> {
    Ok(
        sqlx::query_as::<_, ShipmentRow>("SELECT * FROM shipments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The lines of a shipment, in order.
pub async fn lines(conn: &mut PgConnection, id: Uuid) -> Result<Vec<LineRow>, ProcessError> {
    Ok(sqlx::query_as::<_, LineRow>(
        "SELECT sku_id, sku_code, product_name, quantity FROM shipment_lines \
         WHERE shipment_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(conn)
    .await?)
}

/// Claims the most overdue shipment whose step is due, skipping rows another worker (or an
/// operator's RPC) holds; the lock lasts until the transaction ends.
pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Option<ShipmentRow>, ProcessError> {
    Ok(sqlx::query_as::<_, ShipmentRow>(
        "SELECT * FROM shipments WHERE next_step_time <= $1 \
         ORDER BY next_step_time LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

/// Records the committed stock; the next step is due at `next` (None: wait for an operator).
pub async fn mark_committed(
    conn: &mut PgConnection,
    id: Uuid,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<ShipmentRow, ProcessError> {
    Ok(sqlx::query_as::<_, ShipmentRow>(
        "UPDATE shipments SET stock_committed = true, next_step_time = $2, attempts = 0, \
             last_error = NULL, update_time = $3, version = version + 1 \
         WHERE shipment_id = $1 RETURNING *",
    )
    .bind(id)
    .bind(next)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// The facts of a handover to the carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// Carrier name.
    pub carrier: String,
    /// Tracking number.
    pub tracking_number: String,
    /// Tracking page.
    pub tracking_url: Option<String>,
    /// When it was handed over.
    pub ship_time: DateTime<Utc>,
}

/// Records the handover (SHIPPED); the delivery step is due at `next`.
pub async fn mark_shipped(
    conn: &mut PgConnection,
    id: Uuid,
    handover: &Handover,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<ShipmentRow, ProcessError> {
    Ok(sqlx::query_as::<_, ShipmentRow>(
        "UPDATE shipments SET status = 'SHIPPED', carrier = $2, tracking_number = $3, \
             tracking_url = $4, ship_time = $5, next_step_time = $6, attempts = 0, \
             last_error = NULL, update_time = $7, version = version + 1 \
         WHERE shipment_id = $1 RETURNING *",
    )
    .bind(id)
    .bind(&handover.carrier)
    .bind(&handover.tracking_number)
    .bind(&handover.tracking_url)
    .bind(handover.ship_time)
    .bind(next)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Records the delivery (DELIVERED, nothing more to do).
pub async fn mark_delivered(
    conn: &mut PgConnection,
    id: Uuid,
    deliver_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ShipmentRow, ProcessError> {
    Ok(sqlx::query_as::<_, ShipmentRow>(
        "UPDATE shipments SET status = 'DELIVERED', deliver_time = $2, next_step_time = NULL, \
             attempts = 0, last_error = NULL, update_time = $3, version = version + 1 \
         WHERE shipment_id = $1 RETURNING *",
    )
    .bind(id)
    .bind(deliver_time)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Withdraws a shipment whose order ended before it shipped (CANCELLED).
pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    why: &str,
    now: DateTime<Utc>,
) -> Result<ShipmentRow, ProcessError> {
    Ok(sqlx::query_as::<_, ShipmentRow>(
        "UPDATE shipments SET status = 'CANCELLED', cancel_time = $2, next_step_time = NULL, \
             last_error = $3, update_time = $2, version = version + 1 \
         WHERE shipment_id = $1 RETURNING *",
    )
    .bind(id)
    .bind(now)
    .bind(why)
    .fetch_one(conn)
    .await?)
}

/// Records a failed attempt: retried at `next`, or never (None) when it needs an operator.
pub async fn record_failure(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), ProcessError> {
    sqlx::query(
        "UPDATE shipments SET attempts = attempts + 1, last_error = $2, next_step_time = $3, \
             update_time = $4 WHERE shipment_id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(next)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Filters of a shipment listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this order's.
    pub order_id: Option<Uuid>,
    /// Only these states (empty = all).
    pub statuses: Vec<ShipmentStatus>,
}

impl ListFilter {
    /// The hash page tokens are bound to.
    pub fn hash(&self) -> String {
        let mut parts = vec![self.order_id.map(|id| id.to_string()).unwrap_or_default()];
        parts.extend(self.statuses.iter().map(|s| s.as_str().to_owned()));
        crate::paging::filter_hash(&parts)
    }
}

/// One page of shipments, newest first, and whether more follow.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    after: Option<&PageToken>,
    limit: usize,
) -> Result<(Vec<ShipmentRow>, bool), ProcessError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let after_time = after.and_then(|t| DateTime::<Utc>::from_timestamp_micros(t.create_micros));
    let fetch = i64::try_from(limit).unwrap_or(100) + 1;
    let rows = sqlx::query_as::<_, ShipmentRow>(
        "SELECT * FROM shipments \
         WHERE ($1::uuid IS NULL OR order_id = $1) \
           AND (cardinality($2::text[]) = 0 OR status = ANY($2)) \
           AND ($3::timestamptz IS NULL OR (create_time, shipment_id) < ($3, $4)) \
         ORDER BY create_time DESC, shipment_id DESC LIMIT $5",
    )
    .bind(filter.order_id)
    .bind(&statuses)
    .bind(after_time)
    .bind(after.map(|t| t.id))
    .bind(fetch)
    .fetch_all(conn)
    .await?;
    let more = rows.len() > limit;
    Ok((rows.into_iter().take(limit).collect(), more))
}
