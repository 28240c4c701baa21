//! The stock use cases behind the gRPC surface: each opens its transaction, runs the step in
//! `ops`, commits, and only then touches Redis (sold-out markers, the product cache).

use uuid::Uuid;

use super::domain::{ChangeKind, ReserveRequest};
use super::error::{Shortage, StockError};
use super::history::{self, AdjustmentKeyRow, PageToken};
use super::markers;
use super::ops::{self, Adjustment, OpContext, ReservationState};
use super::store::{self, HistoryRow, StockRow};
use crate::cache;
use crate::context::ProductContext;

/// The stock use cases over the shared context. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StockApp {
    context: ProductContext,
}

/// A validated AdjustStock request with its caller.
#[derive(Debug, Clone)]
pub struct AdjustCommand {
    /// The SKU.
    pub sku_id: Uuid,
    /// New on-hand quantity.
    pub on_hand: i64,
    /// The version the caller read.
    pub expected_version: i64,
    /// History reason.
    pub reason: String,
    /// Idempotency key (scoped to the caller).
    pub idempotency_key: String,
    /// The seller or admin.
    pub actor_id: Uuid,
    /// Whether the caller is an admin (may adjust any SKU).
    pub admin: bool,
}

/// One page of history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// Entries, newest first.
    pub entries: Vec<HistoryRow>,
    /// Token of the next page, if any.
    pub next_page_token: Option<String>,
}

impl StockApp {
    /// The use cases over `context`.
    pub fn new(context: ProductContext) -> Self {
        Self { context }
    }

    /// The shared context.
    pub fn context(&self) -> &ProductContext {
        &self.context
    }

    /// "Now" and the rules, for one step.
    pub fn op_context(&self) -> OpContext {
        OpContext {
            now: self.context.clock.now(),
            low_stock_threshold: self.context.settings.stock.low_stock_threshold,
        }
    }

    /// Drops the cached product details of the SKUs in `changes` (after their commit; reads
    /// the products through its own connection).
    pub async fn invalidate(&self, changes: &[HistoryRow]) {
        if changes.is_empty() {
            return;
        }
        let sku_ids: Vec<Uuid> = changes.iter().map(|c| c.sku_id).collect();
        let products = match self.context.pool.acquire().await {
            Ok(mut conn) => store::product_ids(&mut conn, &sku_ids).await,
            Err(error) => Err(error),
        };
        match products {
            Ok(products) => self.invalidate_products(&products).await,
            Err(error) => tracing::warn!(%error, "reading products for cache invalidation failed"),
        }
    }

    /// Drops the cached details of `product_ids`.
    pub async fn invalidate_products(&self, product_ids: &[Uuid]) {
        for product_id in product_ids {
            cache::invalidate_product(&self.context, *product_id).await;
        }
    }

    async fn after_commit(&self, changes: &[HistoryRow]) {
        markers::sync(&self.context, changes).await;
        self.invalidate(changes).await;
    }

    /// The stock of one SKU (deleted SKUs are not found).
    pub async fn stock(&self, sku_id: Uuid) -> Result<StockRow, StockError> {
        self.stocks(&[sku_id])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StockError::sku_not_found(sku_id))
    }

    /// The stock of several SKUs, sorted by sku_id; unknown or deleted ones are absent.
    pub async fn stocks(&self, sku_ids: &[Uuid]) -> Result<Vec<StockRow>, StockError> {
        let mut conn = self.context.pool.acquire().await?;
        Ok(store::read_stock(&mut conn, sku_ids).await?)
    }

    /// ReserveStock: a replay answers from the existing reservation; a SKU with a sold-out
    /// marker is refused before any transaction; otherwise one transaction reserves every line.
    pub async fn reserve(&self, request: &ReserveRequest) -> Result<ReservationState, StockError> {
        // Replays first: the order's own reservation may be what sold the SKU out.
        if let Some(state) = self.replay(request).await? {
            return Ok(state);
        }
        let sku_ids: Vec<Uuid> = request.lines.iter().map(|l| l.sku_id).collect();
        let sold_out = markers::sold_out(&self.context, &sku_ids).await;
        if !sold_out.is_empty() {
            // A marker is set only after the commit that emptied the SKU; if that was a
            // concurrent duplicate of this very order, its reservation is visible now.
            if let Some(state) = self.replay(request).await? {
                return Ok(state);
            }
            super::metrics::refused();
            return Err(StockError::InsufficientStock(
                request
                    .lines
                    .iter()
                    .filter(|l| sold_out.contains(&l.sku_id))
                    .map(|l| Shortage {
                        sku_id: l.sku_id,
                        requested: l.quantity,
                        available: 0,
                    })
                    .collect(),
            ));
        }
        let mut tx = self.context.pool.begin().await?;
        match ops::reserve(&mut tx, request, self.op_context()).await {
            Ok(state) => {
                tx.commit().await?;
                if !state.replayed {
                    super::metrics::reserved();
                }
                self.after_commit(&state.changes).await;
                Ok(state)
            }
            Err(StockError::InsufficientStock(shortages)) => {
                tx.rollback().await?;
                super::metrics::refused();
                let empty: Vec<Uuid> = shortages
                    .iter()
                    .filter(|s| s.available == 0)
                    .map(|s| s.sku_id)
                    .collect();
                markers::mark(&self.context, &empty).await;
                Err(StockError::InsufficientStock(shortages))
            }
            Err(other) => Err(other),
        }
    }

    /// The order's existing reservation, if this request replays it.
    async fn replay(
        &self,
        request: &ReserveRequest,
    ) -> Result<Option<ReservationState>, StockError> {
        let mut conn = self.context.pool.acquire().await?;
        ops::replay(&mut conn, request).await
    }

    /// CommitReservation.
    pub async fn commit(&self, order_id: Uuid) -> Result<ReservationState, StockError> {
        let mut tx = self.context.pool.begin().await?;
        let state = ops::commit(&mut tx, order_id, self.op_context()).await?;
        tx.commit().await?;
        super::metrics::ended("committed", usize::from(!state.replayed));
        self.after_commit(&state.changes).await;
        Ok(state)
    }

    /// ReleaseReservation.
    pub async fn release(
        &self,
        order_id: Uuid,
        reason: &str,
    ) -> Result<ReservationState, StockError> {
        let mut tx = self.context.pool.begin().await?;
        let state = ops::release(&mut tx, order_id, reason, self.op_context()).await?;
        tx.commit().await?;
        super::metrics::ended("released", usize::from(!state.replayed));
        self.after_commit(&state.changes).await;
        Ok(state)
    }

    /// RestockReservation.
    pub async fn restock(
        &self,
        order_id: Uuid,
        reason: &str,
    ) -> Result<ReservationState, StockError> {
        let mut tx = self.context.pool.begin().await?;
        let state = ops::restock(&mut tx, order_id, reason, self.op_context()).await?;
        tx.commit().await?;
        super::metrics::ended("restocked", usize::from(!state.replayed));
        self.after_commit(&state.changes).await;
        Ok(state)
    }

    /// GetReservation.
    pub async fn reservation(&self, order_id: Uuid) -> Result<ReservationState, StockError> {
        let mut conn = self.context.pool.acquire().await?;
        let reservation = store::find_reservation(&mut conn, order_id, false)
            .await?
            .ok_or_else(|| StockError::reservation_not_found(order_id))?;
        let lines = store::reservation_lines(&mut conn, reservation.id).await?;
        Ok(ReservationState {
            reservation,
            lines,
            changes: Vec::new(),
            replayed: true,
        })
    }

    /// One sweeper batch: expires up to the configured number of reservations past their expiry
    /// (by the service clock) in one transaction. Returns how many it expired; safe to run in
    /// several replicas at once.
    pub async fn expire_batch(&self) -> Result<Vec<ReservationState>, StockError> {
        let limit = i64::from(self.context.settings.stock.sweeper_batch_size);
        let mut tx = self.context.pool.begin().await?;
        let expired = ops::expire_batch(&mut tx, limit, self.op_context()).await?;
        tx.commit().await?;
        super::metrics::ended("expired", expired.len());
        let changes: Vec<HistoryRow> = expired
            .iter()
            .flat_map(|state| state.changes.iter().cloned())
            .collect();
        self.after_commit(&changes).await;
        Ok(expired)
    }

    /// AdjustStock: a replay of the idempotency key answers with the first result.
    pub async fn adjust(
        &self,
        command: &AdjustCommand,
    ) -> Result<(StockRow, HistoryRow), StockError> {
        let op = self.op_context();
        let hash = history::adjustment_hash(
            command.sku_id,
            command.on_hand,
            command.expected_version,
            &command.reason,
        );
        let mut tx = self.context.pool.begin().await?;
        // Lock the row first so a concurrent call with the same key waits here and then sees
        // the key the first one saved.
        let stock = store::lock_stock(&mut tx, &[command.sku_id])
            .await?
            .into_iter()
            .next()
            .filter(|stock| !stock.deleted)
            .ok_or_else(|| StockError::sku_not_found(command.sku_id))?;
        if !command.admin && stock.seller_id != command.actor_id {
            return Err(StockError::NotResourceOwner);
        }
        if let Some(saved) = history::find_adjustment_key(
            &mut tx,
            command.actor_id,
            &command.idempotency_key,
            op.now,
        )
        .await?
        {
            return self.replay_adjustment(&mut tx, stock, saved, &hash).await;
        }
        let adjustment = Adjustment {
            sku_id: command.sku_id,
            on_hand: command.on_hand,
            expected_version: command.expected_version,
            reason: &command.reason,
            actor_id: command.actor_id,
            required_owner: (!command.admin).then_some(command.actor_id),
        };
        let (after, entry) = ops::adjust(&mut tx, &adjustment, op).await?;
        let saved = history::save_adjustment_key(
            &mut tx,
            command.actor_id,
            &command.idempotency_key,
            &AdjustmentKeyRow {
                request_hash: hash,
                sku_id: after.sku_id,
                history_entry_id: entry.id,
                on_hand: after.on_hand,
                reserved: after.reserved,
                version: after.version,
                stock_updated_at: after.updated_at,
            },
            op.now,
        )
        .await?;
        if !saved {
            // Used concurrently for another SKU: that call won the key.
            return Err(StockError::IdempotencyKeyReused);
        }
        tx.commit().await?;
        self.after_commit(std::slice::from_ref(&entry)).await;
        Ok((after, entry))
    }

    async fn replay_adjustment(
        &self,
        conn: &mut sqlx::PgConnection,
        stock: StockRow,
        saved: AdjustmentKeyRow,
        hash: &str,
    ) -> Result<(StockRow, HistoryRow), StockError> {
        if saved.request_hash != hash || saved.sku_id != stock.sku_id {
            return Err(StockError::IdempotencyKeyReused);
        }
        let entry = history::history_entry(conn, saved.history_entry_id)
            .await?
            .ok_or_else(|| StockError::Corrupt("a saved adjustment lost its entry".to_owned()))?;
        let after = StockRow {
            on_hand: saved.on_hand,
            reserved: saved.reserved,
            version: saved.version,
            updated_at: saved.stock_updated_at,
            ..stock
        };
        Ok((after, entry))
    }

    /// ListStockHistory for a SKU the caller may see (`owner` None for admins).
    pub async fn history(
        &self,
        sku_id: Uuid,
        owner: Option<Uuid>,
        kinds: &[ChangeKind],
        page_token: &str,
        page_size: usize,
    ) -> Result<HistoryPage, StockError> {
        let stock = self.stock(sku_id).await?;
        if owner.is_some_and(|owner| owner != stock.seller_id) {
            return Err(StockError::NotResourceOwner);
        }
        let filter = history::filter_hash(sku_id, kinds);
        let after = if page_token.is_empty() {
            None
        } else {
            Some(PageToken::decode(page_token, &filter)?)
        };
        let mut conn = self.context.pool.acquire().await?;
        let (entries, more) =
            history::list_history(&mut conn, sku_id, kinds, after.as_ref(), page_size).await?;
        let next_page_token = match entries.last() {
            Some(last) if more => Some(
                PageToken {
                    created_at_micros: last.created_at.timestamp_micros(),
                    id: last.id,
                    filter,
                }
                .encode(),
            ),
            Some(_) | None => None,
        };
        Ok(HistoryPage {
            entries,
            next_page_token,
        })
    }
}
