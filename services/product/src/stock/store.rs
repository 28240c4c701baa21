//! SQL of the stock part: plain functions over `&mut PgConnection`; the caller owns the
//! transaction. Every stock change goes through [`apply_deltas`], which locks the rows in sorted
//! sku_id order, updates them and writes one history row per SKU.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::domain::{ChangeKind, Line, ReservationStatus};
use super::error::StockError;

/// A SKU's stock with the catalog facts the stock rules need.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct StockRow {
    /// The SKU.
    pub sku_id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// The product's seller.
    pub seller_id: Uuid,
    /// Units held.
    pub on_hand: i64,
    /// Units held by PENDING reservations.
    pub reserved: i64,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Active, not deleted, product PUBLISHED and not deleted.
    pub purchasable: bool,
    /// The SKU or its product is deleted (it exists for history only).
    pub deleted: bool,
}

impl StockRow {
    /// `on_hand - reserved`.
    pub fn available(&self) -> i64 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

const STOCK_SELECT: &str = "SELECT s.sku_id, k.product_id, p.seller_id, s.on_hand, s.reserved, \
     s.version, s.updated_at, \
     (k.active AND k.deleted_at IS NULL AND p.status = 'PUBLISHED' AND p.deleted_at IS NULL) \
       AS purchasable, \
     (k.deleted_at IS NOT NULL OR p.deleted_at IS NOT NULL) AS deleted \
     FROM stock_levels s JOIN skus k ON k.id = s.sku_id JOIN products p ON p.id = k.product_id";

/// Locks the stock rows of `sku_ids` in sorted sku_id order (the one lock order of the service,
/// so concurrent multi-SKU changes cannot deadlock) and returns them sorted. Unknown ids are
/// simply absent.
pub async fn lock_stock(
    conn: &mut PgConnection,
    sku_ids: &[Uuid],
) -> Result<Vec<StockRow>, sqlx::Error> {
    sqlx::query_as::<_, StockRow>(sqlx::AssertSqlSafe(format!(
        "{STOCK_SELECT} WHERE s.sku_id = ANY($1) ORDER BY s.sku_id FOR UPDATE OF s"
    )))
    .bind(sku_ids)
    .fetch_all(conn)
    .await
}

/// Reads the stock of `sku_ids` without locking; deleted SKUs (or SKUs of deleted products) are
/// absent.
pub async fn read_stock(
    conn: &mut PgConnection,
    sku_ids: &[Uuid],
) -> Result<Vec<StockRow>, sqlx::Error> {
    sqlx::query_as::<_, StockRow>(sqlx::AssertSqlSafe(format!(
        "{STOCK_SELECT} WHERE s.sku_id = ANY($1) AND k.deleted_at IS NULL AND p.deleted_at IS NULL \
         ORDER BY s.sku_id"
    )))
    .bind(sku_ids)
    .fetch_all(conn)
    .await
}

/// A change of one SKU's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    /// The SKU.
    pub sku_id: Uuid,
    /// Change of on_hand.
    pub on_hand: i64,
    /// Change of reserved.
    pub reserved: i64,
}

/// What [`apply_deltas`] did to one SKU (also its history entry).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct HistoryRow {
    /// The entry.
    pub id: Uuid,
    /// The SKU.
    pub sku_id: Uuid,
    /// Stored [`ChangeKind`] name.
    pub kind: String,
    /// On hand before.
    pub on_hand_before: i64,
    /// On hand after.
    pub on_hand_after: i64,
    /// Reserved before.
    pub reserved_before: i64,
    /// Reserved after.
    pub reserved_after: i64,
    /// Reason text.
    pub reason: String,
    /// The order of reservation changes.
    pub order_id: Option<Uuid>,
    /// The adjuster.
    pub actor_id: Option<Uuid>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl HistoryRow {
    /// Available units after the change.
    pub fn available_after(&self) -> i64 {
        self.on_hand_after.saturating_sub(self.reserved_after)
    }

    /// Whether the change made units available (the sold-out marker must go).
    pub fn available_increased(&self) -> bool {
        self.available_after() > self.on_hand_before.saturating_sub(self.reserved_before)
    }
}

/// Who and why, for the history rows of one change.
#[derive(Debug, Clone, Copy)]
pub struct ChangeContext<'a> {
    /// What caused it.
    pub kind: ChangeKind,
    /// The reservation's order, if any.
    pub order_id: Option<Uuid>,
    /// Reason text.
    pub reason: &'a str,
    /// The seller or admin, for adjustments.
    pub actor_id: Option<Uuid>,
    /// Business time.
    pub now: DateTime<Utc>,
}

/// Applies `deltas` (distinct SKUs) under row locks taken in sorted order, bumps each version,
/// and writes one history row per SKU. Returns the history rows sorted by sku_id. The CHECK
/// constraints make a change that would break `0 <= reserved <= on_hand` fail rather than apply;
/// callers check first, so such a failure is a bug.
pub async fn apply_deltas(
    conn: &mut PgConnection,
    deltas: &[Delta],
    change: ChangeContext<'_>,
) -> Result<Vec<HistoryRow>, StockError> {
    let mut sku_ids: Vec<Uuid> = deltas.iter().map(|d| d.sku_id).collect();
    sku_ids.sort_unstable();
    // Lock first in sorted order: an UPDATE ... FROM unnest() locks in whatever order its plan
    // visits rows, which two transactions could do differently.
    sqlx::query(
        "SELECT sku_id FROM stock_levels WHERE sku_id = ANY($1) ORDER BY sku_id FOR UPDATE",
    )
    .bind(&sku_ids)
    .fetch_all(&mut *conn)
    .await?;
    apply_locked_deltas(conn, deltas, change).await
}

/// [`apply_deltas`] for a caller that already holds the row locks of every SKU in `deltas`
/// (taken with [`lock_stock`] in this transaction), saving a round trip while the locks are
/// held — on a hot SKU that time is the throughput.
pub async fn apply_locked_deltas(
    conn: &mut PgConnection,
    deltas: &[Delta],
    change: ChangeContext<'_>,
) -> Result<Vec<HistoryRow>, StockError> {
    let mut deltas = deltas.to_vec();
    deltas.sort_by_key(|d| d.sku_id);
    let sku_ids: Vec<Uuid> = deltas.iter().map(|d| d.sku_id).collect();
    let on_hand: Vec<i64> = deltas.iter().map(|d| d.on_hand).collect();
    let reserved: Vec<i64> = deltas.iter().map(|d| d.reserved).collect();
    let history_ids: Vec<Uuid> = deltas.iter().map(|_| Uuid::now_v7()).collect();
    let rows = sqlx::query_as::<_, HistoryRow>(
        "WITH d AS (
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::uuid[])
               AS d(sku_id, on_hand, reserved, history_id)
         ), updated AS (
             UPDATE stock_levels s
                SET on_hand = s.on_hand + d.on_hand,
                    reserved = s.reserved + d.reserved,
                    version = s.version + 1,
                    updated_at = $5
               FROM d
              WHERE s.sku_id = d.sku_id
          RETURNING s.sku_id, s.on_hand, s.reserved, d.on_hand AS d_on_hand,
                    d.reserved AS d_reserved, d.history_id
         )
         INSERT INTO stock_history (id, sku_id, kind, on_hand_before, on_hand_after,
                                    reserved_before, reserved_after, reason, order_id, actor_id,
                                    created_at)
         SELECT history_id, sku_id, $6, on_hand - d_on_hand, on_hand, reserved - d_reserved,
                reserved, $7, $8, $9, $5
           FROM updated
         RETURNING id, sku_id, kind, on_hand_before, on_hand_after, reserved_before,
                   reserved_after, reason, order_id, actor_id, created_at",
    )
    .bind(&sku_ids)
    .bind(&on_hand)
    .bind(&reserved)
    .bind(&history_ids)
    .bind(change.now)
    .bind(change.kind.as_str())
    .bind(change.reason)
    .bind(change.order_id)
    .bind(change.actor_id)
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() != deltas.len() {
        return Err(StockError::Corrupt(format!(
            "{} of {} stock rows were updated",
            rows.len(),
            deltas.len()
        )));
    }
    let mut rows = rows;
    rows.sort_by_key(|r| r.sku_id);
    Ok(rows)
}

/// A reservation row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ReservationRow {
    /// The reservation.
    pub id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// Stored [`ReservationStatus`] name.
    pub status: String,
    /// Hash of the merged lines.
    pub lines_hash: String,
    /// When a PENDING reservation expires.
    pub expires_at: DateTime<Utc>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// When it left PENDING.
    pub settled_at: Option<DateTime<Utc>>,
}

impl ReservationRow {
    /// The parsed status.
    pub fn status(&self) -> Result<ReservationStatus, StockError> {
        ReservationStatus::parse(&self.status).ok_or_else(|| {
            StockError::Corrupt(format!("unknown reservation status {}", self.status))
        })
    }
}

/// Inserts a PENDING reservation unless the order already has one (`false` then). A concurrent
/// insert for the same order waits here until the other transaction ends.
pub async fn insert_reservation(
    conn: &mut PgConnection,
    row: &ReservationRow,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO reservations (id, order_id, status, lines_hash, expires_at, created_at)
         VALUES ($1, $2, 'PENDING', $3, $4, $5)
         ON CONFLICT ON CONSTRAINT reservations_order_id_key DO NOTHING",
    )
    .bind(row.id)
    .bind(row.order_id)
    .bind(&row.lines_hash)
    .bind(row.expires_at)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Inserts the lines of a reservation.
pub async fn insert_lines(
    conn: &mut PgConnection,
    reservation_id: Uuid,
    lines: &[Line],
) -> Result<(), sqlx::Error> {
    let skus: Vec<Uuid> = lines.iter().map(|l| l.sku_id).collect();
    let quantities: Vec<i64> = lines.iter().map(|l| l.quantity).collect();
    sqlx::query(
        "INSERT INTO reservation_lines (reservation_id, sku_id, quantity)
         SELECT $1, sku_id, quantity FROM unnest($2::uuid[], $3::bigint[]) AS l(sku_id, quantity)",
    )
    .bind(reservation_id)
    .bind(&skus)
    .bind(&quantities)
    .execute(conn)
    .await?;
    Ok(())
}

const RESERVATION_COLUMNS: &str =
    "id, order_id, status, lines_hash, expires_at, created_at, settled_at";

/// The reservation of `order_id`, optionally locked for a transition.
pub async fn find_reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
    for_update: bool,
) -> Result<Option<ReservationRow>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE order_id = $1{lock}"
    )))
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// The lines of a reservation, sorted by sku_id.
pub async fn reservation_lines(
    conn: &mut PgConnection,
    reservation_id: Uuid,
) -> Result<Vec<Line>, sqlx::Error> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT sku_id, quantity FROM reservation_lines WHERE reservation_id = $1 ORDER BY sku_id",
    )
    .bind(reservation_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sku_id, quantity)| Line { sku_id, quantity })
        .collect())
}

/// Moves a reservation from `from` to `to` (the status is the guard); `None` if it was not in
/// `from` any more.
pub async fn transition(
    conn: &mut PgConnection,
    reservation_id: Uuid,
    from: ReservationStatus,
    to: ReservationStatus,
    now: DateTime<Utc>,
) -> Result<Option<ReservationRow>, sqlx::Error> {
    sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE reservations SET status = $3, settled_at = $4
          WHERE id = $1 AND status = $2 RETURNING {RESERVATION_COLUMNS}"
    )))
    .bind(reservation_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Claims up to `limit` PENDING reservations past their expiry, oldest expiry first, skipping
/// rows another sweeper (or a transition) holds.
pub async fn claim_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ReservationRow>, sqlx::Error> {
    sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations
          WHERE status = 'PENDING' AND expires_at <= $1
          ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A SKU that crossed the low-stock threshold downwards.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LowStock {
    /// The SKU.
    pub sku_id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// The seller to notify.
    pub seller_id: Uuid,
    /// The SKU code.
    pub sku_code: String,
    /// Units available now.
    pub available: i64,
}

/// Updates the low-stock flags of `sku_ids` and returns the SKUs that just crossed to or below
/// `threshold` (each crossing is reported once; the flag clears when stock goes back above).
pub async fn low_stock_crossings(
    conn: &mut PgConnection,
    sku_ids: &[Uuid],
    threshold: i64,
) -> Result<Vec<LowStock>, sqlx::Error> {
    sqlx::query_as::<_, LowStock>(
        "UPDATE stock_levels s
            SET low_alerted = (s.on_hand - s.reserved) <= $2
           FROM skus k JOIN products p ON p.id = k.product_id
          WHERE s.sku_id = ANY($1) AND k.id = s.sku_id
            AND s.low_alerted <> ((s.on_hand - s.reserved) <= $2)
      RETURNING s.sku_id, k.product_id, p.seller_id, k.sku_code,
                (s.on_hand - s.reserved) AS available",
    )
    .bind(sku_ids)
    .bind(threshold)
    .fetch_all(conn)
    .await
    .map(|rows| {
        rows.into_iter()
            .filter(|r| r.available <= threshold)
            .collect()
    })
}

/// The distinct products of `sku_ids` (for cache invalidation).
pub async fn product_ids(
    conn: &mut PgConnection,
    sku_ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT product_id FROM skus WHERE id = ANY($1)")
        .bind(sku_ids)
        .fetch_all(conn)
        .await
}
