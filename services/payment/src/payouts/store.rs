//! SQL over `seller_accounts` and `payouts`: plain functions over `&mut PgConnection`; the use
//! cases open and commit the transactions.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::PaymentError;
use crate::payments::store::{PageToken, filter_hash};
use crate::payouts::rules::{AccountFlags, AccountStatus, PayoutState};

/// The channel the payout worker listens on; writers notify it when work becomes due.
pub const CHANNEL: &str = "payment_payouts";

/// A stored seller account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SellerAccountRow {
    /// The seller.
    pub seller_id: Uuid,
    /// `acct_…`.
    pub provider_account_id: String,
    /// Stored status name.
    pub status: String,
    /// ISO 3166-1 alpha-2.
    pub country_code: String,
    /// As last reported.
    pub charges_enabled: bool,
    /// As last reported.
    pub payouts_enabled: bool,
    /// As last reported.
    pub details_submitted: bool,
    /// The creating request's key.
    pub idempotency_key: String,
    /// Its hash.
    pub request_hash: String,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Status last changed.
    pub update_time: DateTime<Utc>,
    /// Provider last asked.
    pub refresh_time: DateTime<Utc>,
}

impl SellerAccountRow {
    /// The parsed status.
    pub fn status(&self) -> Result<AccountStatus, PaymentError> {
        AccountStatus::parse(&self.status).ok_or_else(|| {
            PaymentError::Corrupt(format!("seller account status {:?}", self.status))
        })
    }
}

/// A stored payout.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PayoutRow {
    /// Id (UUID v7).
    pub payout_id: Uuid,
    /// The paid order.
    pub order_id: Uuid,
    /// Its payment.
    pub payment_id: Uuid,
    /// The seller paid.
    pub seller_id: Uuid,
    /// The destination account.
    pub provider_account_id: String,
    /// ISO 4217.
    pub currency: String,
    /// Σ line totals.
    pub gross_amount: i64,
    /// The platform's fee.
    pub platform_fee: i64,
    /// What the seller receives.
    pub net_amount: i64,
    /// The fee rate it was computed at.
    pub fee_bps: i32,
    /// Stored state name.
    pub status: String,
    /// `tr_…` once transferred.
    pub provider_transfer_id: Option<String>,
    /// A transfer request may have reached the provider.
    pub transfer_requested: bool,
    /// How much refunds say must go back.
    pub reversal_target: i64,
    /// How much has gone back.
    pub reversed_amount: i64,
    /// Tries since the last success.
    pub attempts: i32,
    /// When the worker looks next; `None`: nothing to do.
    pub next_attempt_time: Option<DateTime<Utc>>,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// Recorded (the order was paid).
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Transferred.
    pub transfer_time: Option<DateTime<Utc>>,
    /// Wholly reversed.
    pub reverse_time: Option<DateTime<Utc>>,
}

impl PayoutRow {
    /// The parsed state.
    pub fn state(&self) -> Result<PayoutState, PaymentError> {
        PayoutState::parse(&self.status)
            .ok_or_else(|| PaymentError::Corrupt(format!("payout status {:?}", self.status)))
    }
}

/// Queues a wake-up of the payout workers for when the current transaction commits.
pub async fn notify(conn: &mut PgConnection) -> Result<(), PaymentError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Serializes account creation per seller until the transaction ends.
pub async fn lock_seller(conn: &mut PgConnection, seller_id: Uuid) -> Result<(), PaymentError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("seller-account:{seller_id}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// The seller's account.
pub async fn account(
    conn: &mut PgConnection,
    seller_id: Uuid,
) -> Result<Option<SellerAccountRow>, PaymentError> {
    Ok(
        sqlx::query_as::<_, SellerAccountRow>("SELECT * FROM seller_accounts WHERE seller_id = $1")
            .bind(seller_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The seller's account, row-locked.
pub async fn lock_account(
    conn: &mut PgConnection,
    seller_id: Uuid,
) -> Result<Option<SellerAccountRow>, PaymentError> {
    Ok(sqlx::query_as::<_, SellerAccountRow>(
        "SELECT * FROM seller_accounts WHERE seller_id = $1 FOR UPDATE",
    )
    .bind(seller_id)
    .fetch_optional(conn)
    .await?)
}

/// The account with the provider's id.
pub async fn account_by_provider_id(
    conn: &mut PgConnection,
    provider_account_id: &str,
) -> Result<Option<SellerAccountRow>, PaymentError> {
    Ok(sqlx::query_as::<_, SellerAccountRow>(
        "SELECT * FROM seller_accounts WHERE provider_account_id = $1",
    )
    .bind(provider_account_id)
    .fetch_optional(conn)
    .await?)
}

/// Records a new account; the row as stored (times at the database's precision).
pub async fn insert_account(
    conn: &mut PgConnection,
    row: &SellerAccountRow,
) -> Result<SellerAccountRow, PaymentError> {
    Ok(sqlx::query_as::<_, SellerAccountRow>(
        "INSERT INTO seller_accounts (seller_id, provider_account_id, status, country_code, \
         charges_enabled, payouts_enabled, details_submitted, idempotency_key, request_hash, \
         create_time, update_time, refresh_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *",
    )
    .bind(row.seller_id)
    .bind(&row.provider_account_id)
    .bind(&row.status)
    .bind(&row.country_code)
    .bind(row.charges_enabled)
    .bind(row.payouts_enabled)
    .bind(row.details_submitted)
    .bind(&row.idempotency_key)
    .bind(&row.request_hash)
    .bind(row.create_time)
    .bind(row.update_time)
    .bind(row.refresh_time)
    .fetch_one(conn)
    .await?)
}

/// Stores what the provider said about the (locked) account; `update_time` moves only when the
/// status changes.
pub async fn update_account(
    conn: &mut PgConnection,
    seller_id: Uuid,
    status: AccountStatus,
    charges_enabled: bool,
    flags: AccountFlags,
    now: DateTime<Utc>,
) -> Result<SellerAccountRow, PaymentError> {
    Ok(sqlx::query_as::<_, SellerAccountRow>(
        "UPDATE seller_accounts SET status = $2, charges_enabled = $3, payouts_enabled = $4, \
         details_submitted = $5, refresh_time = $6, \
         update_time = CASE WHEN status = $2 THEN update_time ELSE $6 END \
         WHERE seller_id = $1 RETURNING *",
    )
    .bind(seller_id)
    .bind(status.as_str())
    .bind(charges_enabled)
    .bind(flags.payouts_enabled)
    .bind(flags.details_submitted)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// The accounts of `sellers` (seller id, account id).
pub async fn accounts_of(
    conn: &mut PgConnection,
    sellers: &[Uuid],
) -> Result<Vec<(Uuid, String)>, PaymentError> {
    Ok(sqlx::query_as::<_, (Uuid, String)>(
        "SELECT seller_id, provider_account_id FROM seller_accounts WHERE seller_id = ANY($1)",
    )
    .bind(sellers)
    .fetch_all(conn)
    .await?)
}

/// A payout to record.
#[derive(Debug, Clone)]
pub struct NewPayout {
    /// Fresh id.
    pub payout_id: Uuid,
    /// The paid order.
    pub order_id: Uuid,
    /// Its payment.
    pub payment_id: Uuid,
    /// The seller.
    pub seller_id: Uuid,
    /// The destination.
    pub provider_account_id: String,
    /// ISO 4217.
    pub currency: String,
    /// Σ line totals.
    pub gross_amount: i64,
    /// The fee.
    pub platform_fee: i64,
    /// The rest.
    pub net_amount: i64,
    /// The rate.
    pub fee_bps: u16,
}

/// Inserts the payout unless the order already has one for the seller; whether it was new.
pub async fn insert_payout(
    conn: &mut PgConnection,
    new: &NewPayout,
    now: DateTime<Utc>,
) -> Result<bool, PaymentError> {
    let inserted = sqlx::query(
        "INSERT INTO payouts (payout_id, order_id, payment_id, seller_id, provider_account_id, \
         currency, gross_amount, platform_fee, net_amount, fee_bps, status, next_attempt_time, \
         create_time, update_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'PENDING', $11, $11, $11) \
         ON CONFLICT ON CONSTRAINT payouts_order_seller_unique DO NOTHING",
    )
    .bind(new.payout_id)
    .bind(new.order_id)
    .bind(new.payment_id)
    .bind(new.seller_id)
    .bind(&new.provider_account_id)
    .bind(&new.currency)
    .bind(new.gross_amount)
    .bind(new.platform_fee)
    .bind(new.net_amount)
    .bind(i32::from(new.fee_bps))
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The payouts of an order, row-locked, in id order.
pub async fn lock_order_payouts(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Vec<PayoutRow>, PaymentError> {
    Ok(sqlx::query_as::<_, PayoutRow>(
        "SELECT * FROM payouts WHERE order_id = $1 ORDER BY payout_id FOR UPDATE",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?)
}

/// The payout, row-locked.
pub async fn lock(conn: &mut PgConnection, payout_id: Uuid) -> Result<PayoutRow, PaymentError> {
    Ok(
        sqlx::query_as::<_, PayoutRow>("SELECT * FROM payouts WHERE payout_id = $1 FOR UPDATE")
            .bind(payout_id)
            .fetch_one(conn)
            .await?,
    )
}

/// The payout.
pub async fn get(
    conn: &mut PgConnection,
    payout_id: Uuid,
) -> Result<Option<PayoutRow>, PaymentError> {
    Ok(
        sqlx::query_as::<_, PayoutRow>("SELECT * FROM payouts WHERE payout_id = $1")
            .bind(payout_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Claims the most overdue payout whose next look is due, skipping rows another worker holds;
/// the lock lasts until the transaction ends.
pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Option<PayoutRow>, PaymentError> {
    Ok(sqlx::query_as::<_, PayoutRow>(
        "SELECT * FROM payouts WHERE next_attempt_time <= $1 \
         ORDER BY next_attempt_time LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

/// Leases the claimed payout until `until` (no other worker takes it before), counting the
/// attempt; `requesting_transfer` marks that a transfer request is about to be sent.
pub async fn lease(
    conn: &mut PgConnection,
    payout_id: Uuid,
    until: DateTime<Utc>,
    requesting_transfer: bool,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    sqlx::query(
        "UPDATE payouts SET next_attempt_time = $2, attempts = attempts + 1, \
         transfer_requested = transfer_requested OR $3, update_time = $4 WHERE payout_id = $1",
    )
    .bind(payout_id)
    .bind(until)
    .bind(requesting_transfer)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the transfer; the next look is due at `next` (a reversal waiting) or never.
pub async fn mark_transferred(
    conn: &mut PgConnection,
    payout_id: Uuid,
    transfer_id: &str,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<PayoutRow, PaymentError> {
    Ok(sqlx::query_as::<_, PayoutRow>(
        "UPDATE payouts SET status = 'TRANSFERRED', provider_transfer_id = $2, \
         transfer_requested = TRUE, transfer_time = $4, attempts = 0, last_error = NULL, \
         next_attempt_time = $3, update_time = $4 WHERE payout_id = $1 RETURNING *",
    )
    .bind(payout_id)
    .bind(transfer_id)
    .bind(next)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Records that `reversed` of the payout has gone back (REVERSED once it is all of it).
pub async fn mark_reversed(
    conn: &mut PgConnection,
    payout_id: Uuid,
    reversed: i64,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<PayoutRow, PaymentError> {
    Ok(sqlx::query_as::<_, PayoutRow>(
        "UPDATE payouts SET reversal_target = GREATEST(reversal_target, $2), \
         reversed_amount = $2, attempts = 0, last_error = NULL, next_attempt_time = $3, \
         status = CASE WHEN $2 = net_amount THEN 'REVERSED' ELSE status END, \
         reverse_time = CASE WHEN $2 = net_amount THEN $4 ELSE reverse_time END, \
         update_time = $4 WHERE payout_id = $1 RETURNING *",
    )
    .bind(payout_id)
    .bind(reversed)
    .bind(next)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// A payout refunded in full before any transfer request was sent: REVERSED with nothing to do.
pub async fn cancel_untransferred(
    conn: &mut PgConnection,
    payout_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    sqlx::query(
        "UPDATE payouts SET status = 'REVERSED', reversal_target = net_amount, \
         next_attempt_time = NULL, last_error = NULL, reverse_time = $2, update_time = $2 \
         WHERE payout_id = $1 AND NOT transfer_requested",
    )
    .bind(payout_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Raises the payout's reversal target (never lowers it) and makes it due at `next`.
pub async fn set_reversal_target(
    conn: &mut PgConnection,
    payout_id: Uuid,
    target: i64,
    next: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    sqlx::query(
        "UPDATE payouts SET reversal_target = GREATEST(reversal_target, $2), \
         next_attempt_time = LEAST(COALESCE(next_attempt_time, $3), $3), update_time = $4 \
         WHERE payout_id = $1",
    )
    .bind(payout_id)
    .bind(target)
    .bind(next)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed try: `status` (FAILED for a refused transfer, otherwise unchanged), the
/// error and when to look again.
pub async fn record_failure(
    conn: &mut PgConnection,
    payout_id: Uuid,
    status: Option<PayoutState>,
    error: &str,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    sqlx::query(
        "UPDATE payouts SET status = COALESCE($2, status), last_error = $3, \
         next_attempt_time = $4, update_time = $5 WHERE payout_id = $1",
    )
    .bind(payout_id)
    .bind(status.map(PayoutState::as_str))
    .bind(error)
    .bind(next)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes the seller's untransferred payouts due now (their account just became ACTIVE).
pub async fn wake_seller(
    conn: &mut PgConnection,
    seller_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, PaymentError> {
    let woken = sqlx::query(
        "UPDATE payouts SET next_attempt_time = $2, attempts = 0, update_time = $2 \
         WHERE seller_id = $1 AND provider_transfer_id IS NULL \
         AND status IN ('PENDING', 'FAILED') AND next_attempt_time IS DISTINCT FROM $2",
    )
    .bind(seller_id)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if woken > 0 {
        notify(conn).await?;
    }
    Ok(woken)
}

/// Filters of a payout listing.
#[derive(Debug, Clone, Default)]
pub struct PayoutFilter {
    /// Only this seller's; `None` for every seller's (admins).
    pub seller_id: Option<Uuid>,
    /// Only these states (empty = all).
    pub states: Vec<PayoutState>,
}

impl PayoutFilter {
    /// What a page token is bound to.
    pub fn hash(&self) -> String {
        let mut states: Vec<String> = self.states.iter().map(|s| s.as_str().to_owned()).collect();
        states.sort();
        states.dedup();
        filter_hash(&[
            "payouts".to_owned(),
            self.seller_id.map(|s| s.to_string()).unwrap_or_default(),
            states.join(","),
        ])
    }
}

/// One page of payouts, newest first; whether more follow.
pub async fn list(
    conn: &mut PgConnection,
    filter: &PayoutFilter,
    after: Option<&PageToken>,
    limit: usize,
) -> Result<(Vec<PayoutRow>, bool), PaymentError> {
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    let after_time = after.and_then(|t| DateTime::<Utc>::from_timestamp_micros(t.create_micros));
    let after_id = after.map(|t| t.id);
    let fetch = i64::try_from(limit + 1).unwrap_or(101);
    let mut rows = sqlx::query_as::<_, PayoutRow>(
        "SELECT * FROM payouts \
         WHERE ($1::uuid IS NULL OR seller_id = $1) \
         AND (cardinality($2::text[]) = 0 OR status = ANY($2)) \
         AND ($3::timestamptz IS NULL OR (create_time, payout_id) < ($3, $4)) \
         ORDER BY create_time DESC, payout_id DESC LIMIT $5",
    )
    .bind(filter.seller_id)
    .bind(&states)
    .bind(after_time)
    .bind(after_id)
    .bind(fetch)
    .fetch_all(conn)
    .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_filters_hash_apart() {
        let mine = PayoutFilter {
            seller_id: Some(Uuid::from_u128(1)),
            states: vec![PayoutState::Pending, PayoutState::Failed],
        };
        let reordered = PayoutFilter {
            states: vec![PayoutState::Failed, PayoutState::Pending],
            ..mine.clone()
        };
        let theirs = PayoutFilter {
            seller_id: Some(Uuid::from_u128(2)),
            ..mine.clone()
        };
        let everyone = PayoutFilter {
            seller_id: None,
            ..mine.clone()
        };
        assert_eq!(mine.hash(), reordered.hash());
        assert_ne!(mine.hash(), theirs.hash());
        assert_ne!(mine.hash(), everyone.hash());
    }
}
