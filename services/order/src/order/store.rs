//! The orders' SQL: insert a new order with its lines and first history row, load one, lock one
//! for a transition, apply a transition (one version step, one history row, one notification),
//! list a page, and find unpaid orders past their deadline.
//!
//! Every change calls `pg_notify('order_changed', order_id)` in its transaction, so watchers
//! (see `watch`) hear of it exactly when it commits.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::order::error::OrderError;
use crate::order::model::{HistoryRow, LineRow, OrderRow, StoredOrder};
use crate::order::state::Status;

/// The notification channel of order changes; the payload is the order id.
pub const CHANNEL: &str = "order_changed";

/// A new order's line.
#[derive(Debug, Clone)]
pub struct NewLine {
    /// The stored line.
    pub row: LineRow,
}

/// Everything CreateOrder writes for a new order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order row (status PENDING, version 1).
    pub order: OrderRow,
    /// Its lines.
    pub lines: Vec<LineRow>,
}

async fn notify(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(order_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes `new` with its lines and the creation history row.
pub async fn insert(conn: &mut PgConnection, new: &NewOrder) -> Result<(), OrderError> {
    let o = &new.order;
    sqlx::query(
        "INSERT INTO orders (order_id, user_id, status, currency, subtotal, discount, \
         shipping_fee, total, payment_method, user_coupon_id, coupon_id, coupon_name, \
         coupon_kind, shipping_address, version, create_time, update_time, payment_due_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17)",
    )
    .bind(o.order_id)
    .bind(o.user_id)
    .bind(&o.status)
    .bind(&o.currency)
    .bind(o.subtotal)
    .bind(o.discount)
    .bind(o.shipping_fee)
    .bind(o.total)
    .bind(o.payment_method)
    .bind(o.user_coupon_id)
    .bind(o.coupon_id)
    .bind(&o.coupon_name)
    .bind(o.coupon_kind)
    .bind(&o.shipping_address)
    .bind(o.version)
    .bind(o.create_time)
    .bind(o.payment_due_time)
    .execute(&mut *conn)
    .await?;
    for line in &new.lines {
        sqlx::query(
            "INSERT INTO order_lines (order_id, position, sku_id, product_id, seller_id, \
             product_name, sku_code, option_values, main_image_url, quantity, unit_price, \
             line_total) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(o.order_id)
        .bind(line.position)
        .bind(line.sku_id)
        .bind(line.product_id)
        .bind(line.seller_id)
        .bind(&line.product_name)
        .bind(&line.sku_code)
        .bind(Json(&line.option_values.0))
        .bind(&line.main_image_url)
        .bind(line.quantity)
        .bind(line.unit_price)
        .bind(line.line_total)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO order_history (order_id, version, from_status, to_status, change_time) \
         VALUES ($1, 1, NULL, $2, $3)",
    )
    .bind(o.order_id)
    .bind(&o.status)
    .bind(o.create_time)
    .execute(&mut *conn)
    .await?;
    notify(conn, o.order_id).await?;
    Ok(())
}

/// The order with its lines and history, if it exists.
pub async fn load(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<StoredOrder>, OrderError> {
    let Some(order) = sqlx::query_as::<_, OrderRow>("SELECT * FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    complete(conn, order).await.map(Some)
}

/// Loads the lines and history of `order`.
pub async fn complete(conn: &mut PgConnection, order: OrderRow) -> Result<StoredOrder, OrderError> {
    let lines = sqlx::query_as::<_, LineRow>(
        "SELECT position, sku_id, product_id, seller_id, product_name, sku_code, option_values, \
         main_image_url, quantity, unit_price, line_total \
         FROM order_lines WHERE order_id = $1 ORDER BY position",
    )
    .bind(order.order_id)
    .fetch_all(&mut *conn)
    .await?;
    let history = sqlx::query_as::<_, HistoryRow>(
        "SELECT version, from_status, to_status, change_time \
         FROM order_history WHERE order_id = $1 ORDER BY version",
    )
    .bind(order.order_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(StoredOrder {
        order,
        lines,
        history,
    })
}

/// Locks the order row for a transition.
pub async fn lock(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<OrderRow>, OrderError> {
    Ok(
        sqlx::query_as::<_, OrderRow>("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Facts a transition records next to the status (each kept if already set).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Payment id.
    pub payment_id: Option<String>,
    /// Payment page.
    pub payment_url: Option<String>,
    /// When the payment was attached.
    pub attach_time: Option<DateTime<Utc>>,
    /// When it was paid.
    pub paid_time: Option<DateTime<Utc>>,
    /// Shipment id.
    pub shipment_id: Option<String>,
    /// Carrier.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// Tracking page.
    pub tracking_url: Option<String>,
    /// When it shipped.
    pub ship_time: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub deliver_time: Option<DateTime<Utc>>,
    /// Why it was cancelled (wire value).
    pub cancellation_reason: Option<i16>,
}

const SET_FACTS: &str = "payment_id = COALESCE(payment_id, $3), \
     payment_url = COALESCE(payment_url, $4), attach_time = COALESCE(attach_time, $5), \
     paid_time = COALESCE(paid_time, $6), shipment_id = COALESCE(shipment_id, $7), \
     carrier = COALESCE(carrier, $8), tracking_number = COALESCE(tracking_number, $9), \
     tracking_url = COALESCE(tracking_url, $10), ship_time = COALESCE(ship_time, $11), \
     deliver_time = COALESCE(deliver_time, $12), \
     cancellation_reason = COALESCE(cancellation_reason, $13)";

fn bind_facts<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, OrderRow, sqlx::postgres::PgArguments>,
    facts: &'q Facts,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, OrderRow, sqlx::postgres::PgArguments> {
    query
        .bind(&facts.payment_id)
        .bind(&facts.payment_url)
        .bind(facts.attach_time)
        .bind(facts.paid_time)
        .bind(&facts.shipment_id)
        .bind(&facts.carrier)
        .bind(&facts.tracking_number)
        .bind(&facts.tracking_url)
        .bind(facts.ship_time)
        .bind(facts.deliver_time)
        .bind(facts.cancellation_reason)
}

/// Moves the locked order `from` ▶ `to` with `facts`: one version step and one history row.
/// Returns the updated row.
pub async fn apply_move(
    conn: &mut PgConnection,
    from: &OrderRow,
    to: Status,
    facts: &Facts,
    now: DateTime<Utc>,
) -> Result<OrderRow, OrderError> {
    let sql = format!(
        "UPDATE orders SET status = $2, version = version + 1, update_time = $14, {SET_FACTS} \
         WHERE order_id = $1 RETURNING *"
    );
    let query = sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(sql))
        .bind(from.order_id)
        .bind(to.as_str());
    let row = bind_facts(query, facts)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO order_history (order_id, version, from_status, to_status, change_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(row.order_id)
    .bind(row.version)
    .bind(&from.status)
    .bind(to.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    notify(conn, row.order_id).await?;
    Ok(row)
}

/// Records facts that arrived late (a payment attached after the order was paid) without a
/// status change or version step.
pub async fn fill_facts(
    conn: &mut PgConnection,
    order: &OrderRow,
    facts: &Facts,
) -> Result<OrderRow, OrderError> {
    let sql = format!("UPDATE orders SET status = $2, {SET_FACTS} WHERE order_id = $1 RETURNING *");
    let query = sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(sql))
        .bind(order.order_id)
        .bind(&order.status);
    Ok(bind_facts(query, facts).fetch_one(conn).await?)
}

/// Where the next page starts: after `(create_time, order_id)`, for the same filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// `create_time` of the last order returned, in microseconds.
    pub create_micros: i64,
    /// Its id.
    pub order_id: Uuid,
    /// Hash of the filters the token was issued for.
    pub filter: String,
}

impl PageToken {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}.{}",
            self.create_micros,
            self.order_id.simple(),
            self.filter
        ))
    }

    /// Parses a token issued for `filter`.
    pub fn decode(raw: &str, filter: &str) -> Result<Self, OrderError> {
        let text = URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(OrderError::InvalidPageToken)?;
        let mut parts = text.splitn(3, '.');
        let (Some(micros), Some(id), Some(token_filter)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(OrderError::InvalidPageToken);
        };
        if token_filter != filter {
            return Err(OrderError::InvalidPageToken);
        }
        Ok(Self {
            create_micros: micros.parse().map_err(|_| OrderError::InvalidPageToken)?,
            order_id: Uuid::parse_str(id).map_err(|_| OrderError::InvalidPageToken)?,
            filter: token_filter.to_owned(),
        })
    }
}

/// The filters of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this buyer's orders.
    pub user_id: Option<Uuid>,
    /// Only these states (empty: all).
    pub statuses: Vec<Status>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
}

impl ListFilter {
    /// The hash binding page tokens to these filters.
    pub fn hash(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut names: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut hasher = Sha256::new();
        hasher.update(self.user_id.map(|u| u.to_string()).unwrap_or_default());
        hasher.update(names.join(","));
        hasher.update(
            self.from
                .map(|t| t.timestamp_micros())
                .unwrap_or(i64::MIN)
                .to_be_bytes(),
        );
        hasher.update(
            self.to
                .map(|t| t.timestamp_micros())
                .unwrap_or(i64::MAX)
                .to_be_bytes(),
        );
        URL_SAFE_NO_PAD.encode(&hasher.finalize()[..12])
    }
}

/// One page of orders, newest first: up to `limit` after `after`, plus whether more follow.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    after: Option<&PageToken>,
    limit: usize,
) -> Result<(Vec<StoredOrder>, bool), OrderError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let after_time = after.and_then(|t| DateTime::<Utc>::from_timestamp_micros(t.create_micros));
    let fetch = i64::try_from(limit).unwrap_or(100) + 1;
    let rows = sqlx::query_as::<_, OrderRow>(
        "SELECT * FROM orders \
         WHERE ($1::uuid IS NULL OR user_id = $1) \
           AND (cardinality($2::text[]) = 0 OR status = ANY($2)) \
           AND ($3::timestamptz IS NULL OR create_time >= $3) \
           AND ($4::timestamptz IS NULL OR create_time < $4) \
           AND ($5::timestamptz IS NULL OR (create_time, order_id) < ($5, $6)) \
         ORDER BY create_time DESC, order_id DESC LIMIT $7",
    )
    .bind(filter.user_id)
    .bind(&statuses)
    .bind(filter.from)
    .bind(filter.to)
    .bind(after_time)
    .bind(after.map(|t| t.order_id))
    .bind(fetch)
    .fetch_all(&mut *conn)
    .await?;
    let more = rows.len() > limit;
    let mut orders = Vec::with_capacity(rows.len().min(limit));
    for row in rows.into_iter().take(limit) {
        orders.push(complete(conn, row).await?);
    }
    Ok((orders, more))
}

/// Ids of unpaid orders whose payment deadline is at or before `now`, oldest deadline first,
/// skipping rows another sweeper holds.
pub async fn due_unpaid<'e>(
    executor: impl PgExecutor<'e>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, OrderError> {
    Ok(sqlx::query_scalar(
        "SELECT order_id FROM orders \
         WHERE status IN ('PENDING', 'AWAITING_PAYMENT') AND payment_due_time <= $1 \
         ORDER BY payment_due_time LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}
