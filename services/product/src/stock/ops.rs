//! The stock use cases inside one transaction: reserve, commit, release, restock, expire, adjust.
//! Each takes the caller's connection (a transaction it owns: the gRPC use cases in `app.rs`, the
//! consumers' inbox transaction, the sweeper, the property tests) and never commits itself, so a
//! failure anywhere leaves nothing behind. Status changes are guarded by the current status and
//! made together with the stock change and its history rows.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::domain::{ChangeKind, Line, ReservationStatus, ReserveRequest};
use super::error::{Shortage, StockError};
use super::events;
use super::store::{self, ChangeContext, Delta, HistoryRow, ReservationRow, StockRow};

/// Business time and the rules every change needs.
#[derive(Debug, Clone, Copy)]
pub struct OpContext {
    /// "Now" from the service clock.
    pub now: DateTime<Utc>,
    /// `stock.low` threshold.
    pub low_stock_threshold: i64,
}

/// A reservation with its lines and what the call changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationState {
    /// The reservation row (after the call).
    pub reservation: ReservationRow,
    /// Its lines, sorted by sku_id.
    pub lines: Vec<Line>,
    /// History rows the call wrote (empty for replays and no-ops), sorted by sku_id.
    pub changes: Vec<HistoryRow>,
    /// True when the call found the work already done (a replay).
    pub replayed: bool,
}

impl ReservationState {
    /// The reservation's status.
    pub fn status(&self) -> Result<ReservationStatus, StockError> {
        self.reservation.status()
    }
}

/// Writes the side effects every stock change shares: `stock.low` events for SKUs that just
/// crossed the threshold.
async fn after_changes(
    conn: &mut PgConnection,
    changes: &[HistoryRow],
    op: OpContext,
) -> Result<(), StockError> {
    if changes.is_empty() {
        return Ok(());
    }
    let sku_ids: Vec<Uuid> = changes.iter().map(|c| c.sku_id).collect();
    for low in store::low_stock_crossings(conn, &sku_ids, op.low_stock_threshold).await? {
        events::stock_low(conn, &low, op.low_stock_threshold, op.now).await?;
    }
    Ok(())
}

async fn existing(
    conn: &mut PgConnection,
    reservation: ReservationRow,
) -> Result<ReservationState, StockError> {
    let lines = store::reservation_lines(conn, reservation.id).await?;
    Ok(ReservationState {
        reservation,
        lines,
        changes: Vec::new(),
        replayed: true,
    })
}

/// The existing reservation of the request's order if it has one: a replay with the same lines
/// (`Ok(Some)`), or `RESERVATION_CONFLICT` for different lines.
pub async fn replay(
    conn: &mut PgConnection,
    request: &ReserveRequest,
) -> Result<Option<ReservationState>, StockError> {
    match store::find_reservation(conn, request.order_id, false).await? {
        Some(found) if found.lines_hash == request.lines_hash() => {
            Ok(Some(existing(conn, found).await?))
        }
        Some(_) => Err(StockError::ReservationConflict(request.order_id)),
        None => Ok(None),
    }
}

/// Reserves every line or nothing. The reservation row is inserted first, so a concurrent
/// duplicate for the same order waits on it and then replays instead of competing for stock;
/// the stock rows are then locked in sorted order and checked: unknown SKU, not purchasable,
/// short (every short SKU is reported).
pub async fn reserve(
    conn: &mut PgConnection,
    request: &ReserveRequest,
    op: OpContext,
) -> Result<ReservationState, StockError> {
    let ttl = chrono::Duration::from_std(request.ttl)
        .map_err(|_| StockError::field("ttl", "is out of range"))?;
    let row = ReservationRow {
        id: Uuid::now_v7(),
        order_id: request.order_id,
        status: ReservationStatus::Pending.as_str().to_owned(),
        lines_hash: request.lines_hash(),
        expires_at: op.now + ttl,
        created_at: op.now,
        settled_at: None,
    };
    if !store::insert_reservation(conn, &row).await? {
        return replay(conn, request)
            .await?
            .ok_or_else(|| StockError::Corrupt("a conflicting reservation vanished".to_owned()));
    }
    let sku_ids: Vec<Uuid> = request.lines.iter().map(|l| l.sku_id).collect();
    let stock = store::lock_stock(conn, &sku_ids).await?;
    check_reservable(&request.lines, &stock)?;
    store::insert_lines(conn, row.id, &request.lines).await?;
    let deltas: Vec<Delta> = request
        .lines
        .iter()
        .map(|l| Delta {
            sku_id: l.sku_id,
            on_hand: 0,
            reserved: l.quantity,
        })
        .collect();
    // `lock_stock` above holds these rows already.
    let changes = store::apply_locked_deltas(
        conn,
        &deltas,
        ChangeContext {
            kind: ChangeKind::Reservation,
            order_id: Some(request.order_id),
            reason: ChangeKind::Reservation.default_reason(),
            actor_id: None,
            now: op.now,
        },
    )
    .await?;
    after_changes(conn, &changes, op).await?;
    Ok(ReservationState {
        reservation: row,
        lines: request.lines.clone(),
        changes,
        replayed: false,
    })
}

/// The checks of [`reserve`] on the locked rows (both slices sorted by sku_id).
fn check_reservable(lines: &[Line], stock: &[StockRow]) -> Result<(), StockError> {
    let mut shortages = Vec::new();
    for line in lines {
        let Some(row) = stock.iter().find(|s| s.sku_id == line.sku_id) else {
            return Err(StockError::sku_not_found(line.sku_id));
        };
        if !row.purchasable {
            return Err(StockError::SkuNotPurchasable(line.sku_id));
        }
        if row.available() < line.quantity {
            shortages.push(Shortage {
                sku_id: line.sku_id,
                requested: line.quantity,
                available: row.available().max(0),
            });
        }
    }
    if shortages.is_empty() {
        Ok(())
    } else {
        Err(StockError::InsufficientStock(shortages))
    }
}

/// What a transition does to a reservation in `from`.
struct Move {
    to: ReservationStatus,
    kind: ChangeKind,
    /// Change per unit of each line: (on_hand, reserved).
    per_unit: (i64, i64),
}

/// Applies `step` to the locked reservation of `order_id` if it is in `from`; `done` statuses
/// are replays (no change), anything else is an illegal transition.
async fn transition(
    conn: &mut PgConnection,
    order_id: Uuid,
    from: ReservationStatus,
    done: &[ReservationStatus],
    step: Move,
    reason: &str,
    op: OpContext,
) -> Result<ReservationState, StockError> {
    let reservation = store::find_reservation(conn, order_id, true)
        .await?
        .ok_or_else(|| StockError::reservation_not_found(order_id))?;
    let current = reservation.status()?;
    if done.contains(&current) {
        return existing(conn, reservation).await;
    }
    if current != from {
        return Err(StockError::IllegalTransition {
            order_id,
            current,
            requested: step.to,
        });
    }
    let lines = store::reservation_lines(conn, reservation.id).await?;
    let mut deltas = Vec::with_capacity(lines.len());
    for line in &lines {
        let (on_hand, reserved) = step.per_unit;
        deltas.push(Delta {
            sku_id: line.sku_id,
            on_hand: on_hand
                .checked_mul(line.quantity)
                .ok_or_else(|| StockError::Corrupt("line quantity overflow".to_owned()))?,
            reserved: reserved
                .checked_mul(line.quantity)
                .ok_or_else(|| StockError::Corrupt("line quantity overflow".to_owned()))?,
        });
    }
    let changes = store::apply_deltas(
        conn,
        &deltas,
        ChangeContext {
            kind: step.kind,
            order_id: Some(order_id),
            reason,
            actor_id: None,
            now: op.now,
        },
    )
    .await?;
    // The row is locked, so the guard cannot miss; it is the belt to the lock's braces.
    let reservation = store::transition(conn, reservation.id, from, step.to, op.now)
        .await?
        .ok_or_else(|| StockError::Corrupt("a locked reservation changed status".to_owned()))?;
    after_changes(conn, &changes, op).await?;
    Ok(ReservationState {
        reservation,
        lines,
        changes,
        replayed: false,
    })
}

/// PENDING → COMMITTED: the units leave on_hand and reserved. A reservation past its expiry is
/// refused even if the sweeper has not run yet.
pub async fn commit(
    conn: &mut PgConnection,
    order_id: Uuid,
    op: OpContext,
) -> Result<ReservationState, StockError> {
    if let Some(found) = store::find_reservation(conn, order_id, true).await? {
        let status = found.status()?;
        let expired = status == ReservationStatus::Expired
            || (status == ReservationStatus::Pending && found.expires_at <= op.now);
        if expired {
            return Err(StockError::ReservationExpired(order_id));
        }
    }
    transition(
        conn,
        order_id,
        ReservationStatus::Pending,
        &[ReservationStatus::Committed],
        Move {
            to: ReservationStatus::Committed,
            kind: ChangeKind::Commit,
            per_unit: (-1, -1),
        },
        ChangeKind::Commit.default_reason(),
        op,
    )
    .await
}

/// PENDING → RELEASED: the units become available again. RELEASED and EXPIRED are replays.
pub async fn release(
    conn: &mut PgConnection,
    order_id: Uuid,
    reason: &str,
    op: OpContext,
) -> Result<ReservationState, StockError> {
    let reason = if reason.is_empty() {
        ChangeKind::Release.default_reason()
    } else {
        reason
    };
    transition(
        conn,
        order_id,
        ReservationStatus::Pending,
        &[ReservationStatus::Released, ReservationStatus::Expired],
        Move {
            to: ReservationStatus::Released,
            kind: ChangeKind::Release,
            per_unit: (0, -1),
        },
        reason,
        op,
    )
    .await
}

/// COMMITTED → RETURNED: the committed units go back on hand. RETURNED is a replay.
pub async fn restock(
    conn: &mut PgConnection,
    order_id: Uuid,
    reason: &str,
    op: OpContext,
) -> Result<ReservationState, StockError> {
    let reason = if reason.is_empty() {
        ChangeKind::Return.default_reason()
    } else {
        reason
    };
    transition(
        conn,
        order_id,
        ReservationStatus::Committed,
        &[ReservationStatus::Returned],
        Move {
            to: ReservationStatus::Returned,
            kind: ChangeKind::Return,
            per_unit: (1, 0),
        },
        reason,
        op,
    )
    .await
}

/// Expires up to `limit` PENDING reservations past their expiry (skipping any another
/// transaction holds): gives their units back, marks them EXPIRED, and writes history and a
/// `stock.reservation_expired` event for each.
pub async fn expire_batch(
    conn: &mut PgConnection,
    limit: i64,
    op: OpContext,
) -> Result<Vec<ReservationState>, StockError> {
    let claimed = store::claim_expired(conn, op.now, limit).await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let mut batch = Vec::with_capacity(claimed.len());
    let mut all_skus = Vec::new();
    for reservation in claimed {
        let lines = store::reservation_lines(conn, reservation.id).await?;
        all_skus.extend(lines.iter().map(|l| l.sku_id));
        batch.push((reservation, lines));
    }
    // Lock every SKU of the batch at once, in sorted order, before changing any: per-reservation
    // locking would take the union out of order and could deadlock with a reservation.
    all_skus.sort_unstable();
    all_skus.dedup();
    store::lock_stock(conn, &all_skus).await?;
    let mut expired = Vec::with_capacity(batch.len());
    for (reservation, lines) in batch {
        let deltas: Vec<Delta> = lines
            .iter()
            .map(|l| Delta {
                sku_id: l.sku_id,
                on_hand: 0,
                reserved: -l.quantity,
            })
            .collect();
        let changes = store::apply_deltas(
            conn,
            &deltas,
            ChangeContext {
                kind: ChangeKind::Expiry,
                order_id: Some(reservation.order_id),
                reason: ChangeKind::Expiry.default_reason(),
                actor_id: None,
                now: op.now,
            },
        )
        .await?;
        let reservation = store::transition(
            conn,
            reservation.id,
            ReservationStatus::Pending,
            ReservationStatus::Expired,
            op.now,
        )
        .await?
        .ok_or_else(|| StockError::Corrupt("a claimed reservation changed status".to_owned()))?;
        events::reservation_expired(conn, &reservation, &lines).await?;
        after_changes(conn, &changes, op).await?;
        expired.push(ReservationState {
            reservation,
            lines,
            changes,
            replayed: false,
        });
    }
    Ok(expired)
}

/// An AdjustStock request after validation.
#[derive(Debug, Clone)]
pub struct Adjustment<'a> {
    /// The SKU.
    pub sku_id: Uuid,
    /// The new on-hand quantity.
    pub on_hand: i64,
    /// The version the caller read (0: never stocked).
    pub expected_version: i64,
    /// The history reason.
    pub reason: &'a str,
    /// The seller or admin.
    pub actor_id: Uuid,
    /// `Some(seller)` when the caller must own the SKU; `None` for admins.
    pub required_owner: Option<Uuid>,
}

/// Sets a SKU's on-hand quantity if `expected_version` is current and the result is not below
/// the reserved units. Returns the stock after the change and its history entry.
pub async fn adjust(
    conn: &mut PgConnection,
    adjustment: &Adjustment<'_>,
    op: OpContext,
) -> Result<(StockRow, HistoryRow), StockError> {
    let stock = store::lock_stock(conn, &[adjustment.sku_id])
        .await?
        .into_iter()
        .next()
        .filter(|stock| !stock.deleted)
        .ok_or_else(|| StockError::sku_not_found(adjustment.sku_id))?;
    if adjustment
        .required_owner
        .is_some_and(|owner| owner != stock.seller_id)
    {
        return Err(StockError::NotResourceOwner);
    }
    // Rows start at version 1; 0 names that initial, never-stocked state too.
    let version_matches = stock.version == adjustment.expected_version
        || (adjustment.expected_version == 0 && stock.version == 1);
    if !version_matches {
        return Err(StockError::VersionMismatch(stock.version));
    }
    if adjustment.on_hand < stock.reserved {
        return Err(StockError::StockBelowReserved(stock.reserved));
    }
    let delta = adjustment
        .on_hand
        .checked_sub(stock.on_hand)
        .ok_or_else(|| StockError::Corrupt("on hand overflow".to_owned()))?;
    let changes = store::apply_deltas(
        conn,
        &[Delta {
            sku_id: adjustment.sku_id,
            on_hand: delta,
            reserved: 0,
        }],
        ChangeContext {
            kind: ChangeKind::Adjustment,
            order_id: None,
            reason: adjustment.reason,
            actor_id: Some(adjustment.actor_id),
            now: op.now,
        },
    )
    .await?;
    after_changes(conn, &changes, op).await?;
    let entry = changes
        .into_iter()
        .next()
        .ok_or_else(|| StockError::Corrupt("an adjustment wrote no history".to_owned()))?;
    let after = StockRow {
        on_hand: entry.on_hand_after,
        reserved: entry.reserved_after,
        version: stock.version.saturating_add(1),
        updated_at: op.now,
        ..stock
    };
    Ok((after, entry))
}
