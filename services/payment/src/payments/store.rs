//! SQL over `payments` and `refunds`: plain functions over `&mut PgConnection`; the use cases
//! open and commit the transactions.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use mercato_messaging::headers;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{Method, Status};
use crate::error::PaymentError;

/// A stored payment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    /// Id (UUID v7).
    pub payment_id: Uuid,
    /// The order it pays.
    pub order_id: Uuid,
    /// The payer.
    pub user_id: Uuid,
    /// Stored method name.
    pub method: String,
    /// Provider name; `None` for POINTS.
    pub provider: Option<String>,
    /// Stored status name.
    pub status: String,
    /// Amount in minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// Σ succeeded refunds.
    pub refunded_amount: i64,
    /// The provider's intent id.
    pub provider_payment_id: Option<String>,
    /// The page where the buyer pays.
    pub payment_url: Option<String>,
    /// The provider's client secret.
    pub client_secret: Option<String>,
    /// Failure code when FAILED.
    pub failure_code: Option<String>,
    /// Failure message when FAILED.
    pub failure_message: Option<String>,
    /// The `OrderCreated` payload.
    pub order_snapshot: Vec<u8>,
    /// Whether AttachPayment answered.
    pub attached: bool,
    /// +1 per change.
    pub version: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Reached SUCCEEDED, FAILED or CANCELLED.
    pub settle_time: Option<DateTime<Utc>>,
    /// The trace context the payment was created in (webhooks about it link to it).
    pub trace_context: Json<HashMap<String, String>>,
}

impl PaymentRow {
    /// The parsed status.
    pub fn status(&self) -> Result<Status, PaymentError> {
        Status::parse(&self.status)
            .ok_or_else(|| PaymentError::Corrupt(format!("payment status {:?}", self.status)))
    }

    /// The parsed method.
    pub fn method(&self) -> Result<Method, PaymentError> {
        Method::parse(&self.method)
            .ok_or_else(|| PaymentError::Corrupt(format!("payment method {:?}", self.method)))
    }
}

/// A stored refund.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundRow {
    /// Id (UUID v7).
    pub refund_id: Uuid,
    /// The refunded payment.
    pub payment_id: Uuid,
    /// Amount.
    pub amount: i64,
    /// `PENDING`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    /// Why.
    pub reason: String,
    /// The provider's refund id.
    pub provider_refund_id: Option<String>,
    /// The provider's explanation when FAILED.
    pub failure_message: Option<String>,
    /// What makes it happen once.
    pub idempotency_scope: String,
    /// Hash of the first request.
    pub request_hash: String,
    /// Requested.
    pub create_time: DateTime<Utc>,
    /// Settled.
    pub settle_time: Option<DateTime<Utc>>,
}

/// A payment to record.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// Fresh id.
    pub payment_id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The payer.
    pub user_id: Uuid,
    /// How.
    pub method: Method,
    /// Which provider; `None` for POINTS.
    pub provider: Option<String>,
    /// Amount.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// The `OrderCreated` payload.
    pub order_snapshot: Vec<u8>,
}

/// Inserts the order's payment unless it has one, with the current trace context; `None` when it
/// already had one. A concurrent insert for the same order waits on the unique index and then
/// sees the conflict.
pub async fn insert_if_absent(
    conn: &mut PgConnection,
    new: &NewPayment,
    now: DateTime<Utc>,
) -> Result<Option<PaymentRow>, PaymentError> {
    Ok(sqlx::query_as::<_, PaymentRow>(
        "INSERT INTO payments (payment_id, order_id, user_id, method, provider, status, amount, \
                               currency, order_snapshot, create_time, update_time, \
                               trace_context) \
         VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $8, $9, $9, $10) \
         ON CONFLICT (order_id) DO NOTHING RETURNING *",
    )
    .bind(new.payment_id)
    .bind(new.order_id)
    .bind(new.user_id)
    .bind(new.method.as_str())
    .bind(&new.provider)
    .bind(new.amount)
    .bind(&new.currency)
    .bind(&new.order_snapshot)
    .bind(now)
    .bind(Json(headers::capture_current_span()))
    .fetch_optional(conn)
    .await?)
}

/// The payment of an order.
pub async fn by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<PaymentRow>, PaymentError> {
    Ok(
        sqlx::query_as::<_, PaymentRow>("SELECT * FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// A payment by id.
pub async fn get(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<Option<PaymentRow>, PaymentError> {
    Ok(
        sqlx::query_as::<_, PaymentRow>("SELECT * FROM payments WHERE payment_id = $1")
            .bind(payment_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// A payment by id, row-locked until the transaction ends.
pub async fn lock(conn: &mut PgConnection, payment_id: Uuid) -> Result<PaymentRow, PaymentError> {
    sqlx::query_as::<_, PaymentRow>("SELECT * FROM payments WHERE payment_id = $1 FOR UPDATE")
        .bind(payment_id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| PaymentError::payment_not_found(payment_id))
}

/// The payment of a provider intent.
pub async fn by_provider_id(
    conn: &mut PgConnection,
    provider_payment_id: &str,
) -> Result<Option<PaymentRow>, PaymentError> {
    Ok(
        sqlx::query_as::<_, PaymentRow>("SELECT * FROM payments WHERE provider_payment_id = $1")
            .bind(provider_payment_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Records the provider's intent on a payment that has none yet (REQUIRES_ACTION).
pub async fn record_intent(
    conn: &mut PgConnection,
    payment_id: Uuid,
    provider_payment_id: &str,
    payment_url: Option<&str>,
    client_secret: Option<&str>,
    now: DateTime<Utc>,
) -> Result<PaymentRow, PaymentError> {
    Ok(sqlx::query_as::<_, PaymentRow>(
        "UPDATE payments SET provider_payment_id = $2, payment_url = $3, client_secret = $4, \
                status = CASE WHEN status = 'PENDING' THEN 'REQUIRES_ACTION' ELSE status END, \
                version = version + 1, update_time = $5 \
         WHERE payment_id = $1 RETURNING *",
    )
    .bind(payment_id)
    .bind(provider_payment_id)
    .bind(payment_url)
    .bind(client_secret)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Moves a payment to `status` (one version step); `failure` is recorded for FAILED. Settled
/// states get their `settle_time`.
pub async fn set_status(
    conn: &mut PgConnection,
    payment_id: Uuid,
    status: Status,
    failure: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Result<PaymentRow, PaymentError> {
    let settles = matches!(
        status,
        Status::Succeeded | Status::Failed | Status::Cancelled
    );
    Ok(sqlx::query_as::<_, PaymentRow>(
        "UPDATE payments SET status = $2, failure_code = $3, failure_message = $4, \
                version = version + 1, update_time = $5, \
                settle_time = CASE WHEN $6 THEN $5 ELSE settle_time END \
         WHERE payment_id = $1 RETURNING *",
    )
    .bind(payment_id)
    .bind(status.as_str())
    .bind(failure.map(|f| f.0))
    .bind(failure.map(|f| f.1))
    .bind(now)
    .bind(settles)
    .fetch_one(conn)
    .await?)
}

/// Marks that AttachPayment answered.
pub async fn mark_attached(conn: &mut PgConnection, payment_id: Uuid) -> Result<(), PaymentError> {
    sqlx::query("UPDATE payments SET attached = TRUE WHERE payment_id = $1")
        .bind(payment_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds a succeeded refund to a payment and moves it to `status`.
pub async fn add_refunded(
    conn: &mut PgConnection,
    payment_id: Uuid,
    amount: i64,
    status: Status,
    now: DateTime<Utc>,
) -> Result<PaymentRow, PaymentError> {
    Ok(sqlx::query_as::<_, PaymentRow>(
        "UPDATE payments SET refunded_amount = refunded_amount + $2, status = $3, \
                version = version + 1, update_time = $4 \
         WHERE payment_id = $1 RETURNING *",
    )
    .bind(payment_id)
    .bind(amount)
    .bind(status.as_str())
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// The refunds of a payment, oldest first.
pub async fn refunds_of(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<Vec<RefundRow>, PaymentError> {
    Ok(sqlx::query_as::<_, RefundRow>(
        "SELECT * FROM refunds WHERE payment_id = $1 ORDER BY create_time, refund_id",
    )
    .bind(payment_id)
    .fetch_all(conn)
    .await?)
}

/// The refund made under `scope`, if any.
pub async fn refund_by_scope(
    conn: &mut PgConnection,
    scope: &str,
) -> Result<Option<RefundRow>, PaymentError> {
    Ok(
        sqlx::query_as::<_, RefundRow>("SELECT * FROM refunds WHERE idempotency_scope = $1")
            .bind(scope)
            .fetch_optional(conn)
            .await?,
    )
}

/// Σ amount of the refunds of a payment that are not FAILED (PENDING ones reserve their amount).
pub async fn refunds_in_flight(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<i64, PaymentError> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount), 0)::bigint FROM refunds \
         WHERE payment_id = $1 AND status <> 'FAILED'",
    )
    .bind(payment_id)
    .fetch_one(conn)
    .await?)
}

/// Records a refund.
pub async fn insert_refund(
    conn: &mut PgConnection,
    refund: &RefundRow,
) -> Result<(), PaymentError> {
    sqlx::query(
        "INSERT INTO refunds (refund_id, payment_id, amount, status, reason, provider_refund_id, \
                              failure_message, idempotency_scope, request_hash, create_time, \
                              settle_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(refund.refund_id)
    .bind(refund.payment_id)
    .bind(refund.amount)
    .bind(&refund.status)
    .bind(&refund.reason)
    .bind(&refund.provider_refund_id)
    .bind(&refund.failure_message)
    .bind(&refund.idempotency_scope)
    .bind(&refund.request_hash)
    .bind(refund.create_time)
    .bind(refund.settle_time)
    .execute(conn)
    .await?;
    Ok(())
}

/// Settles a PENDING refund; `None` when it was no longer PENDING (someone else settled it).
pub async fn settle_refund(
    conn: &mut PgConnection,
    refund_id: Uuid,
    status: &str,
    provider_refund_id: Option<&str>,
    failure_message: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<RefundRow>, PaymentError> {
    Ok(sqlx::query_as::<_, RefundRow>(
        "UPDATE refunds SET status = $2, provider_refund_id = COALESCE($3, provider_refund_id), \
                failure_message = $4, settle_time = CASE WHEN $2 = 'PENDING' THEN NULL ELSE $5 END \
         WHERE refund_id = $1 AND status = 'PENDING' RETURNING *",
    )
    .bind(refund_id)
    .bind(status)
    .bind(provider_refund_id)
    .bind(failure_message)
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

/// Ids of unsettled payments with an intent, untouched since `before`, oldest first.
pub async fn open_since(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, PaymentError> {
    Ok(sqlx::query_scalar(
        "SELECT payment_id FROM payments \
         WHERE status IN ('PENDING', 'REQUIRES_ACTION', 'PROCESSING') AND update_time <= $1 \
         ORDER BY update_time LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Where the next page starts: after `(create_time, payment_id)`, for the same filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// `create_time` of the last item returned, in microseconds.
    pub create_micros: i64,
    /// Its id.
    pub id: Uuid,
    /// Hash of the filters the token was issued for.
    pub filter: String,
}

impl PageToken {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}.{}",
            self.create_micros,
            self.id.simple(),
            self.filter
        ))
    }

    /// Parses a token issued for `filter`.
    pub fn decode(raw: &str, filter: &str) -> Result<Self, PaymentError> {
        let text = URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(PaymentError::InvalidPageToken)?;
        let mut parts = text.splitn(3, '.');
        let (Some(micros), Some(id), Some(token_filter)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(PaymentError::InvalidPageToken);
        };
        if token_filter != filter {
            return Err(PaymentError::InvalidPageToken);
        }
        Ok(Self {
            create_micros: micros.parse().map_err(|_| PaymentError::InvalidPageToken)?,
            id: Uuid::parse_str(id).map_err(|_| PaymentError::InvalidPageToken)?,
            filter: token_filter.to_owned(),
        })
    }
}

/// Hash of listing filters, binding page tokens to them.
pub fn filter_hash(parts: &[String]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    URL_SAFE_NO_PAD.encode(&hasher.finalize()[..12])
}

/// Filters of a payment listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this payer's payments.
    pub user_id: Option<Uuid>,
    /// Only this order's.
    pub order_id: Option<Uuid>,
    /// Only these states (empty: all).
    pub statuses: Vec<Status>,
    /// Only this method.
    pub method: Option<Method>,
}

impl ListFilter {
    /// The hash binding page tokens to these filters.
    pub fn hash(&self) -> String {
        let mut names: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        filter_hash(&[
            self.user_id.map(|u| u.to_string()).unwrap_or_default(),
            self.order_id.map(|u| u.to_string()).unwrap_or_default(),
            names.join(","),
            self.method
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
        ])
    }
}

/// One page of payments, newest first, and whether more follow.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    after: Option<&PageToken>,
    limit: usize,
) -> Result<(Vec<PaymentRow>, bool), PaymentError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let after_time = after.and_then(|t| DateTime::<Utc>::from_timestamp_micros(t.create_micros));
    let fetch = i64::try_from(limit).unwrap_or(100) + 1;
    let rows = sqlx::query_as::<_, PaymentRow>(
        "SELECT * FROM payments \
         WHERE ($1::uuid IS NULL OR user_id = $1) \
           AND ($2::uuid IS NULL OR order_id = $2) \
           AND (cardinality($3::text[]) = 0 OR status = ANY($3)) \
           AND ($4::text IS NULL OR method = $4) \
           AND ($5::timestamptz IS NULL OR (create_time, payment_id) < ($5, $6)) \
         ORDER BY create_time DESC, payment_id DESC LIMIT $7",
    )
    .bind(filter.user_id)
    .bind(filter.order_id)
    .bind(&statuses)
    .bind(filter.method.map(Method::as_str))
    .bind(after_time)
    .bind(after.map(|t| t.id))
    .bind(fetch)
    .fetch_all(conn)
    .await?;
    let more = rows.len() > limit;
    Ok((rows.into_iter().take(limit).collect(), more))
}
