//! The points wallet: a balance per user and its append-only ledger.
//!
//! Every movement is one ledger insert; the `ledger_apply` trigger moves the balance under the
//! wallet's row lock, the `CHECK (balance >= 0)` refuses a negative balance, and a deferred
//! constraint trigger checks balance = Σ ledger at every commit (see the migration). The code
//! here locks the wallet first and checks the balance inside the lock, so a refusal is a precise
//! error rather than a constraint violation.

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::{PaymentError, is_retryable_database};
use crate::payments::store::{PageToken, filter_hash};
use crate::settings::WalletSettings;

/// How many times a wallet write is retried after a lock or serialization conflict.
pub const MAX_RETRIES: u32 = 3;

/// A wallet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WalletRow {
    /// Owner.
    pub user_id: Uuid,
    /// Balance, ≥ 0.
    pub balance: i64,
    /// +1 per entry.
    pub version: i64,
    /// Last change; `None` for a wallet never used.
    pub update_time: Option<DateTime<Utc>>,
}

/// What moved the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A top-up.
    Charge,
    /// Spent on an order.
    Spend,
    /// Given back by a refund.
    Refund,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "CHARGE",
            Self::Spend => "SPEND",
            Self::Refund => "REFUND",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Charge, Self::Spend, Self::Refund]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// A ledger entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    /// Id (UUID v7).
    pub entry_id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Stored kind.
    pub kind: String,
    /// Signed change.
    pub amount: i64,
    /// Balance right after.
    pub balance_after: i64,
    /// The wallet version this entry made (its position in the wallet's history).
    pub wallet_version: i64,
    /// Order (SPEND, REFUND).
    pub order_id: Option<Uuid>,
    /// Payment (SPEND, REFUND).
    pub payment_id: Option<Uuid>,
    /// Refund (REFUND).
    pub refund_id: Option<Uuid>,
    /// CHARGE: the client's key.
    pub idempotency_key: Option<String>,
    /// CHARGE: hash of the request.
    pub request_hash: Option<String>,
    /// Written.
    pub create_time: DateTime<Utc>,
}

/// Runs `attempt` (one whole transaction) and retries it up to [`MAX_RETRIES`] times when it
/// fails with a deadlock, serialization failure or lock timeout; after that `ABORTED`.
pub async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, PaymentError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PaymentError>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Err(PaymentError::Database(err)) if is_retryable_database(&err) => {
                if retries == MAX_RETRIES {
                    tracing::warn!(error = %err, "wallet write kept conflicting");
                    return Err(PaymentError::Conflict);
                }
                retries += 1;
                tracing::debug!(error = %err, retries, "wallet write conflicted; retrying");
            }
            other => return other,
        }
    }
}

/// Creates the user's wallet if missing and locks it until the transaction ends.
pub async fn lock(conn: &mut PgConnection, user_id: Uuid) -> Result<WalletRow, PaymentError> {
    sqlx::query("INSERT INTO wallets (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(
        sqlx::query_as::<_, WalletRow>("SELECT * FROM wallets WHERE user_id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_one(conn)
            .await?,
    )
}

/// The user's wallet, or an empty one when never used (nothing is written).
pub async fn get(conn: &mut PgConnection, user_id: Uuid) -> Result<WalletRow, PaymentError> {
    Ok(
        sqlx::query_as::<_, WalletRow>("SELECT * FROM wallets WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(conn)
            .await?
            .unwrap_or(WalletRow {
                user_id,
                balance: 0,
                version: 0,
                update_time: None,
            }),
    )
}

struct NewEntry<'a> {
    user_id: Uuid,
    kind: Kind,
    amount: i64,
    order_id: Option<Uuid>,
    payment_id: Option<Uuid>,
    refund_id: Option<Uuid>,
    idempotency_key: Option<&'a str>,
    request_hash: Option<&'a str>,
    now: DateTime<Utc>,
}

async fn append(conn: &mut PgConnection, entry: NewEntry<'_>) -> Result<EntryRow, PaymentError> {
    Ok(sqlx::query_as::<_, EntryRow>(
        "INSERT INTO ledger_entries (entry_id, user_id, kind, amount, order_id, payment_id, \
                                     refund_id, idempotency_key, request_hash, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(entry.user_id)
    .bind(entry.kind.as_str())
    .bind(entry.amount)
    .bind(entry.order_id)
    .bind(entry.payment_id)
    .bind(entry.refund_id)
    .bind(entry.idempotency_key)
    .bind(entry.request_hash)
    .bind(entry.now)
    .fetch_one(conn)
    .await?)
}

/// A validated top-up.
#[derive(Debug, Clone)]
pub struct Charge {
    /// Whose wallet.
    pub user_id: Uuid,
    /// Points, 1 to `MAX_CHARGE`.
    pub amount: i64,
    /// The client's key.
    pub idempotency_key: String,
    /// Hash of the request, binding the key to it.
    pub request_hash: String,
}

/// Adds points once per key: a replay with the same request returns the first entry; the key
/// with another request is `IDEMPOTENCY_KEY_REUSED`. Concurrent duplicates serialise on the
/// wallet lock, so the second sees the first's entry.
pub async fn charge(
    pool: &PgPool,
    charge: &Charge,
    settings: &WalletSettings,
    now: DateTime<Utc>,
) -> Result<(WalletRow, EntryRow), PaymentError> {
    let max_balance = settings.max_balance;
    // A bounded wait for the wallet lock turns a stuck holder into a retryable 55P03.
    let lock_timeout = format!("{}ms", settings.lock_timeout.as_millis().max(1));
    with_retries(|| async {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(&lock_timeout)
            .execute(&mut *tx)
            .await?;
        let wallet = lock(&mut tx, charge.user_id).await?;
        let existing = sqlx::query_as::<_, EntryRow>(
            "SELECT * FROM ledger_entries \
             WHERE user_id = $1 AND kind = 'CHARGE' AND idempotency_key = $2",
        )
        .bind(charge.user_id)
        .bind(&charge.idempotency_key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(entry) = existing {
            if entry.request_hash.as_deref() != Some(charge.request_hash.as_str()) {
                return Err(PaymentError::IdempotencyKeyReused);
            }
            return Ok((wallet, entry));
        }
        if wallet
            .balance
            .checked_add(charge.amount)
            .is_none_or(|b| b > max_balance)
        {
            return Err(PaymentError::WalletLimitExceeded { max: max_balance });
        }
        let entry = append(
            &mut tx,
            NewEntry {
                user_id: charge.user_id,
                kind: Kind::Charge,
                amount: charge.amount,
                order_id: None,
                payment_id: None,
                refund_id: None,
                idempotency_key: Some(&charge.idempotency_key),
                request_hash: Some(&charge.request_hash),
                now,
            },
        )
        .await?;
        let wallet = get(&mut tx, charge.user_id).await?;
        tx.commit().await?;
        Ok((wallet, entry))
    })
    .await
}

/// Spends `amount` points on a payment inside the caller's transaction; `INSUFFICIENT_BALANCE`
/// (nothing written) when the wallet holds less.
pub async fn spend(
    conn: &mut PgConnection,
    user_id: Uuid,
    amount: i64,
    order_id: Uuid,
    payment_id: Uuid,
    now: DateTime<Utc>,
) -> Result<EntryRow, PaymentError> {
    let wallet = lock(conn, user_id).await?;
    if wallet.balance < amount {
        return Err(PaymentError::InsufficientBalance {
            balance: wallet.balance,
            required: amount,
        });
    }
    append(
        conn,
        NewEntry {
            user_id,
            kind: Kind::Spend,
            amount: -amount,
            order_id: Some(order_id),
            payment_id: Some(payment_id),
            refund_id: None,
            idempotency_key: None,
            request_hash: None,
            now,
        },
    )
    .await
}

/// Gives `amount` points back for a refund inside the caller's transaction (once per refund: a
/// unique index backs it up). Refunds are not capped by the maximum balance: they return points
/// that were in the wallet before.
pub async fn credit_refund(
    conn: &mut PgConnection,
    user_id: Uuid,
    amount: i64,
    order_id: Uuid,
    payment_id: Uuid,
    refund_id: Uuid,
    now: DateTime<Utc>,
) -> Result<EntryRow, PaymentError> {
    lock(conn, user_id).await?;
    append(
        conn,
        NewEntry {
            user_id,
            kind: Kind::Refund,
            amount,
            order_id: Some(order_id),
            payment_id: Some(payment_id),
            refund_id: Some(refund_id),
            idempotency_key: None,
            request_hash: None,
            now,
        },
    )
    .await
}

/// One page of a user's entries, newest first (by position in the wallet's history, which is
/// the order the wallet lock applied them in), and whether more follow. `after.create_micros`
/// carries the position of the last entry of the previous page.
pub async fn entries(
    conn: &mut PgConnection,
    user_id: Uuid,
    kinds: &[Kind],
    after: Option<&PageToken>,
    limit: usize,
) -> Result<(Vec<EntryRow>, bool), PaymentError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let fetch = i64::try_from(limit).unwrap_or(100) + 1;
    let rows = sqlx::query_as::<_, EntryRow>(
        "SELECT * FROM ledger_entries \
         WHERE user_id = $1 \
           AND (cardinality($2::text[]) = 0 OR kind = ANY($2)) \
           AND ($3::bigint IS NULL OR wallet_version < $3) \
         ORDER BY wallet_version DESC LIMIT $4",
    )
    .bind(user_id)
    .bind(&kinds)
    .bind(after.map(|t| t.create_micros))
    .bind(fetch)
    .fetch_all(conn)
    .await?;
    let more = rows.len() > limit;
    Ok((rows.into_iter().take(limit).collect(), more))
}

/// The filter hash of an entry listing.
pub fn entries_filter(user_id: Uuid, kinds: &[Kind]) -> String {
    let mut names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    filter_hash(&[user_id.to_string(), names.join(",")])
}
