//! SQL of the stock history listing (keyset paging with opaque tokens) and of AdjustStock's
//! idempotency keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest as _, Sha256};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::domain::ChangeKind;
use super::error::StockError;
use super::store::HistoryRow;

/// How long an AdjustStock idempotency key is remembered.
pub const IDEMPOTENCY_KEY_RETENTION: Duration = Duration::hours(24);

/// Where the next page starts: after the entry `(created_at, id)`, for the same filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// `created_at` of the last entry returned, in microseconds.
    pub created_at_micros: i64,
    /// Id of the last entry returned.
    pub id: Uuid,
    /// Hash of the SKU and kinds filter the token was issued for.
    pub filter: String,
}

/// The hash binding a page token to its SKU and kinds filter.
pub fn filter_hash(sku_id: Uuid, kinds: &[ChangeKind]) -> String {
    let mut names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut hasher = Sha256::new();
    hasher.update(sku_id.as_bytes());
    hasher.update(names.join(",").as_bytes());
    URL_SAFE_NO_PAD.encode(&hasher.finalize()[..12])
}

impl PageToken {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}.{}",
            self.created_at_micros,
            self.id.simple(),
            self.filter
        ))
    }

    /// Parses a token issued for `filter`; anything else is `INVALID_PAGE_TOKEN`.
    pub fn decode(raw: &str, filter: &str) -> Result<Self, StockError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| StockError::InvalidPageToken)?;
        let text = String::from_utf8(bytes).map_err(|_| StockError::InvalidPageToken)?;
        let mut parts = text.splitn(3, '.');
        let (Some(micros), Some(id), Some(token_filter)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(StockError::InvalidPageToken);
        };
        if token_filter != filter {
            return Err(StockError::InvalidPageToken);
        }
        Ok(Self {
            created_at_micros: micros.parse().map_err(|_| StockError::InvalidPageToken)?,
            id: Uuid::parse_str(id).map_err(|_| StockError::InvalidPageToken)?,
            filter: token_filter.to_owned(),
        })
    }
}

/// One page of a SKU's history, newest first: up to `limit` entries after `after`, plus whether
/// more follow.
pub async fn list_history(
    conn: &mut PgConnection,
    sku_id: Uuid,
    kinds: &[ChangeKind],
    after: Option<&PageToken>,
    limit: usize,
) -> Result<(Vec<HistoryRow>, bool), StockError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let after_time = after
        .map(|t| {
            DateTime::<Utc>::from_timestamp_micros(t.created_at_micros)
                .ok_or(StockError::InvalidPageToken)
        })
        .transpose()?;
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut rows = sqlx::query_as::<_, HistoryRow>(
        "SELECT id, sku_id, kind, on_hand_before, on_hand_after, reserved_before,
                reserved_after, reason, order_id, actor_id, created_at
           FROM stock_history
          WHERE sku_id = $1
            AND (cardinality($2::text[]) = 0 OR kind = ANY($2))
            AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
          ORDER BY created_at DESC, id DESC
          LIMIT $5",
    )
    .bind(sku_id)
    .bind(&kinds)
    .bind(after_time)
    .bind(after.map(|t| t.id))
    .bind(fetch)
    .fetch_all(conn)
    .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows, more))
}

/// The remembered result of an AdjustStock call.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AdjustmentKeyRow {
    /// Hash of the request the key was first used with.
    pub request_hash: String,
    /// The SKU it adjusted.
    pub sku_id: Uuid,
    /// The history entry it wrote.
    pub history_entry_id: Uuid,
    /// Stock after the change.
    pub on_hand: i64,
    /// Reserved after the change.
    pub reserved: i64,
    /// Version after the change.
    pub version: i64,
    /// `updated_at` after the change.
    pub stock_updated_at: DateTime<Utc>,
}

/// The live (younger than 24 hours) use of `key` by `actor_id`.
pub async fn find_adjustment_key(
    conn: &mut PgConnection,
    actor_id: Uuid,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<AdjustmentKeyRow>, sqlx::Error> {
    sqlx::query_as::<_, AdjustmentKeyRow>(
        "SELECT request_hash, sku_id, history_entry_id, on_hand, reserved, version,
                stock_updated_at
           FROM stock_adjustment_keys
          WHERE actor_id = $1 AND idempotency_key = $2 AND created_at > $3",
    )
    .bind(actor_id)
    .bind(key)
    .bind(now - IDEMPOTENCY_KEY_RETENTION)
    .fetch_optional(conn)
    .await
}

/// Remembers the result of an AdjustStock call under `(actor_id, key)`, replacing an expired use
/// of the key. `false` when a live use exists (a concurrent call with the same key won).
pub async fn save_adjustment_key(
    conn: &mut PgConnection,
    actor_id: Uuid,
    key: &str,
    row: &AdjustmentKeyRow,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let saved = sqlx::query(
        "INSERT INTO stock_adjustment_keys (actor_id, idempotency_key, request_hash, sku_id,
                                            history_entry_id, on_hand, reserved, version,
                                            stock_updated_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (actor_id, idempotency_key) DO UPDATE
            SET request_hash = EXCLUDED.request_hash, sku_id = EXCLUDED.sku_id,
                history_entry_id = EXCLUDED.history_entry_id, on_hand = EXCLUDED.on_hand,
                reserved = EXCLUDED.reserved, version = EXCLUDED.version,
                stock_updated_at = EXCLUDED.stock_updated_at, created_at = EXCLUDED.created_at
          WHERE stock_adjustment_keys.created_at <= $11",
    )
    .bind(actor_id)
    .bind(key)
    .bind(&row.request_hash)
    .bind(row.sku_id)
    .bind(row.history_entry_id)
    .bind(row.on_hand)
    .bind(row.reserved)
    .bind(row.version)
    .bind(row.stock_updated_at)
    .bind(now)
    .bind(now - IDEMPOTENCY_KEY_RETENTION)
    .execute(conn)
    .await?;
    Ok(saved.rows_affected() == 1)
}

/// One history entry by id.
pub async fn history_entry(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<HistoryRow>, sqlx::Error> {
    sqlx::query_as::<_, HistoryRow>(
        "SELECT id, sku_id, kind, on_hand_before, on_hand_after, reserved_before,
                reserved_after, reason, order_id, actor_id, created_at
           FROM stock_history WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The hash of an AdjustStock request body (what a replay must repeat).
pub fn adjustment_hash(sku_id: Uuid, on_hand: i64, expected_version: i64, reason: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(sku_id.as_bytes());
    hasher.update(on_hand.to_be_bytes());
    hasher.update(expected_version.to_be_bytes());
    hasher.update(reason.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_only_for_their_filter() {
        let sku = Uuid::now_v7();
        let filter = filter_hash(sku, &[ChangeKind::Commit]);
        let token = PageToken {
            created_at_micros: 1_700_000_000_000_000,
            id: Uuid::now_v7(),
            filter: filter.clone(),
        };
        assert_eq!(
            PageToken::decode(&token.encode(), &filter).ok(),
            Some(token.clone())
        );
        let other = filter_hash(sku, &[]);
        assert!(PageToken::decode(&token.encode(), &other).is_err());
        assert!(PageToken::decode("garbage!", &filter).is_err());
    }
}
