//! The cart's SQL. Every mutation runs in one transaction that first upserts the user's `carts`
//! row: the row lock serialises one user's mutations, so the line limit cannot be raced, and the
//! quantity changes are still single atomic statements (`quantity = cart_lines.quantity + $n`)
//! guarded by the table's CHECK on 1-999.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest as _, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::cart::error::CartError;

/// Units one line may hold at most.
pub const MAX_LINE_QUANTITY: i64 = 999;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::hours(24);

/// One stored line: what the user wants, without any catalog fact.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredLine {
    /// The SKU.
    pub sku_id: Uuid,
    /// Units, 1-999.
    pub quantity: i64,
    /// When the line was first added.
    pub add_time: DateTime<Utc>,
}

/// A user's stored cart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredCart {
    /// Lines in the order they were first added.
    pub lines: Vec<StoredLine>,
    /// When the contents last changed; `None` for a never-used cart.
    pub update_time: Option<DateTime<Utc>>,
}

/// Whether a mutation was applied or was the replay of an earlier one (same idempotency key and
/// request), which changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The change was written.
    Applied,
    /// An earlier call with this key did it already.
    Replayed,
}

/// An idempotency key with the RPC it is scoped to and the request's fingerprint.
#[derive(Debug, Clone)]
pub struct IdempotencyKey<'a> {
    /// `AddCartItem` or `RemoveCartItem`.
    pub rpc: &'static str,
    /// The client's key (validated).
    pub key: &'a str,
    /// A hash of the request fields the key stands for.
    pub fingerprint: Vec<u8>,
}

impl<'a> IdempotencyKey<'a> {
    /// The key of a call of `rpc` about `sku_id` and `quantity`.
    pub fn new(rpc: &'static str, key: &'a str, sku_id: Uuid, quantity: i64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(sku_id.as_bytes());
        hasher.update(quantity.to_be_bytes());
        Self {
            rpc,
            key,
            fingerprint: hasher.finalize().to_vec(),
        }
    }
}

/// The user's cart (empty, without update time, when they never used it).
pub async fn load(pool: &PgPool, user_id: Uuid) -> Result<StoredCart, CartError> {
    let update_time: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT update_time FROM carts WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    let lines = sqlx::query_as::<_, StoredLine>(
        "SELECT sku_id, quantity, add_time FROM cart_lines WHERE user_id = $1 ORDER BY seq",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    Ok(StoredCart { lines, update_time })
}

/// Creates or touches the user's cart row, locking it for the transaction.
async fn lock_cart(
    tx: &mut Transaction<'_, Postgres>,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), CartError> {
    sqlx::query(
        "INSERT INTO carts (user_id, update_time) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET update_time = EXCLUDED.update_time",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records `key` for the user, or tells whether its earlier use was the same request.
async fn claim_key(
    tx: &mut Transaction<'_, Postgres>,
    user_id: Uuid,
    key: &IdempotencyKey<'_>,
    now: DateTime<Utc>,
) -> Result<Outcome, CartError> {
    // Expired keys of this user are forgotten here; the table never grows past a day of keys.
    sqlx::query("DELETE FROM cart_idempotency_keys WHERE user_id = $1 AND create_time <= $2")
        .bind(user_id)
        .bind(now - IDEMPOTENCY_KEY_TTL)
        .execute(&mut **tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO cart_idempotency_keys (user_id, rpc, key, fingerprint, create_time) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, rpc, key) DO NOTHING",
    )
    .bind(user_id)
    .bind(key.rpc)
    .bind(key.key)
    .bind(&key.fingerprint)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Outcome::Applied);
    }
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT fingerprint FROM cart_idempotency_keys \
         WHERE user_id = $1 AND rpc = $2 AND key = $3",
    )
    .bind(user_id)
    .bind(key.rpc)
    .bind(key.key)
    .fetch_one(&mut **tx)
    .await?;
    if stored == key.fingerprint {
        Ok(Outcome::Replayed)
    } else {
        Err(CartError::IdempotencyKeyReused)
    }
}

/// Whether `key` was already used for this very request within its lifetime (a replay), without
/// writing anything; `IDEMPOTENCY_KEY_REUSED` when it was used for another request. Lets a replay
/// answer with the cart even when the catalog changed since the first call.
pub async fn is_replay(
    pool: &PgPool,
    user_id: Uuid,
    key: &IdempotencyKey<'_>,
    now: DateTime<Utc>,
) -> Result<bool, CartError> {
    let stored: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT fingerprint FROM cart_idempotency_keys \
         WHERE user_id = $1 AND rpc = $2 AND key = $3 AND create_time > $4",
    )
    .bind(user_id)
    .bind(key.rpc)
    .bind(key.key)
    .bind(now - IDEMPOTENCY_KEY_TTL)
    .fetch_optional(pool)
    .await?;
    match stored {
        None => Ok(false),
        Some(fingerprint) if fingerprint == key.fingerprint => Ok(true),
        Some(_) => Err(CartError::IdempotencyKeyReused),
    }
}

/// Adds `quantity` units of `sku_id`: a new line (if fewer than `max_lines` exist) or an
/// increment of the existing one, never beyond 999 units.
pub async fn add(
    pool: &PgPool,
    user_id: Uuid,
    sku_id: Uuid,
    quantity: i64,
    key: Option<&IdempotencyKey<'_>>,
    max_lines: usize,
    now: DateTime<Utc>,
) -> Result<Outcome, CartError> {
    let mut tx = pool.begin().await?;
    lock_cart(&mut tx, user_id, now).await?;
    if let Some(key) = key
        && claim_key(&mut tx, user_id, key, now).await? == Outcome::Replayed
    {
        tx.rollback().await?;
        return Ok(Outcome::Replayed);
    }
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT quantity FROM cart_lines WHERE user_id = $1 AND sku_id = $2")
            .bind(user_id)
            .bind(sku_id)
            .fetch_optional(&mut *tx)
            .await?;
    if existing.is_none() {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM cart_lines WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max_lines {
            return Err(CartError::CartFull(max_lines));
        }
    }
    let written: Option<i64> = sqlx::query_scalar(
        "INSERT INTO cart_lines (user_id, sku_id, quantity, add_time) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, sku_id) DO UPDATE SET quantity = cart_lines.quantity + $3 \
         WHERE cart_lines.quantity + $3 <= $5 \
         RETURNING quantity",
    )
    .bind(user_id)
    .bind(sku_id)
    .bind(quantity)
    .bind(now)
    .bind(MAX_LINE_QUANTITY)
    .fetch_optional(&mut *tx)
    .await?;
    if written.is_none() {
        let held = existing.unwrap_or_default();
        return Err(CartError::field(
            "quantity",
            format!("the line holds {held} units; the new quantity must stay within 1-999"),
        ));
    }
    tx.commit().await?;
    Ok(Outcome::Applied)
}

/// Sets the quantity of an existing line.
pub async fn set_quantity(
    pool: &PgPool,
    user_id: Uuid,
    sku_id: Uuid,
    quantity: i64,
    now: DateTime<Utc>,
) -> Result<(), CartError> {
    let mut tx = pool.begin().await?;
    lock_cart(&mut tx, user_id, now).await?;
    let updated =
        sqlx::query("UPDATE cart_lines SET quantity = $3 WHERE user_id = $1 AND sku_id = $2")
            .bind(user_id)
            .bind(sku_id)
            .bind(quantity)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if updated == 0 {
        return Err(CartError::line_not_found(sku_id));
    }
    tx.commit().await?;
    Ok(())
}

/// Removes `quantity` units of a line (0, or at least what it holds, removes the line).
pub async fn remove(
    pool: &PgPool,
    user_id: Uuid,
    sku_id: Uuid,
    quantity: i64,
    key: Option<&IdempotencyKey<'_>>,
    now: DateTime<Utc>,
) -> Result<Outcome, CartError> {
    let mut tx = pool.begin().await?;
    lock_cart(&mut tx, user_id, now).await?;
    if let Some(key) = key
        && claim_key(&mut tx, user_id, key, now).await? == Outcome::Replayed
    {
        tx.rollback().await?;
        return Ok(Outcome::Replayed);
    }
    let deleted = sqlx::query(
        "DELETE FROM cart_lines WHERE user_id = $1 AND sku_id = $2 \
         AND ($3 = 0 OR quantity <= $3)",
    )
    .bind(user_id)
    .bind(sku_id)
    .bind(quantity)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted == 0 {
        let updated = sqlx::query(
            "UPDATE cart_lines SET quantity = quantity - $3 WHERE user_id = $1 AND sku_id = $2",
        )
        .bind(user_id)
        .bind(sku_id)
        .bind(quantity)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(CartError::line_not_found(sku_id));
        }
    }
    tx.commit().await?;
    Ok(Outcome::Applied)
}

/// Removes every line. The update time changes only when there was something to remove.
pub async fn clear(pool: &PgPool, user_id: Uuid, now: DateTime<Utc>) -> Result<(), CartError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM cart_lines WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted > 0 {
        sqlx::query("UPDATE carts SET update_time = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Removes the lines a checkout ordered, in the order's transaction: each `(sku, quantity)` line
/// that still holds exactly that quantity. A line the user changed meanwhile (on another device)
/// stays, so nothing added after the checkout read the cart is lost.
pub async fn remove_checked_out(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    ordered: &[(Uuid, i64)],
    now: DateTime<Utc>,
) -> Result<(), CartError> {
    let skus: Vec<Uuid> = ordered.iter().map(|(sku, _)| *sku).collect();
    let quantities: Vec<i64> = ordered.iter().map(|(_, quantity)| *quantity).collect();
    let deleted = sqlx::query(
        "DELETE FROM cart_lines c USING unnest($2::uuid[], $3::bigint[]) AS o(sku_id, quantity) \
         WHERE c.user_id = $1 AND c.sku_id = o.sku_id AND c.quantity = o.quantity",
    )
    .bind(user_id)
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if deleted > 0 {
        sqlx::query("UPDATE carts SET update_time = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
