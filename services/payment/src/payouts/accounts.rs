//! Seller accounts: creating a seller's connected account (once per seller), reading it with its
//! status refreshed from the provider, onboarding and dashboard links, and `account.updated`
//! webhooks. Whenever a refresh finds an account newly ACTIVE, the seller's waiting payouts
//! become due in the same transaction.
//!
//! Creation holds a per-seller advisory lock from the check for an existing account until the
//! new one is stored, so two concurrent requests of one seller make one provider call each in
//! turn and the second finds the first's account. The provider call is keyed by the seller, so a
//! crash after it (before our insert) is repaired by the retry getting the same account back
//! while Stripe remembers the key (24 hours).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::error::{PaymentError, Violation};
use crate::grpc::request_hash;
use crate::payments::settle::{self, EventRecord};
use crate::payouts::rules::{self, AccountStatus};
use crate::payouts::store::{self, SellerAccountRow};
use crate::provider::connect::{ConnectError, Link, StripeConnect};

/// How long a CreateSellerAccount key replays its first answer.
const KEY_RETENTION_HOURS: i64 = 24;

/// A validated CreateSellerAccount.
#[derive(Debug, Clone)]
pub struct CreateAccount {
    /// Upper-case ISO 3166-1 alpha-2.
    pub country_code: String,
    /// Where onboarding returns.
    pub return_url: String,
    /// Where an expired link sends the seller.
    pub refresh_url: String,
    /// The client's key.
    pub idempotency_key: String,
}

impl CreateAccount {
    fn hash(&self) -> String {
        request_hash(&[
            self.country_code.clone(),
            self.return_url.clone(),
            self.refresh_url.clone(),
        ])
    }
}

/// The provider, or FAILED_PRECONDITION when this deployment has none.
pub fn connect(context: &PaymentContext) -> Result<&StripeConnect, PaymentError> {
    context
        .connect
        .as_ref()
        .ok_or(PaymentError::PayoutsNotConfigured)
}

/// A provider refusal of an account request, naming our field where Stripe names its parameter.
fn account_error(error: ConnectError) -> PaymentError {
    match error {
        ConnectError::Rejected {
            param: Some(param),
            message,
            ..
        } if matches!(param.as_str(), "country" | "return_url" | "refresh_url") => {
            let field = if param == "country" {
                "country_code".to_owned()
            } else {
                param
            };
            PaymentError::Validation(vec![Violation::new(field, message)])
        }
        other @ (ConnectError::Unavailable(_)
        | ConnectError::NotFound(_)
        | ConnectError::Rejected { .. }) => PaymentError::from(other),
    }
}

/// Creates the seller's account and its first onboarding link; a replay of the same request
/// (same key within 24 hours) returns the same account with a fresh link.
pub async fn create(
    context: &PaymentContext,
    seller_id: Uuid,
    command: &CreateAccount,
) -> Result<(SellerAccountRow, Link), PaymentError> {
    let connect = connect(context)?;
    let hash = command.hash();
    let mut tx = context.pool.begin().await?;
    store::lock_seller(&mut tx, seller_id).await?;
    if let Some(existing) = store::account(&mut tx, seller_id).await? {
        tx.commit().await?;
        let now = context.clock.now();
        let fresh = existing.idempotency_key == command.idempotency_key
            && existing.create_time > now - Duration::hours(KEY_RETENTION_HOURS);
        if !fresh {
            return Err(PaymentError::SellerAccountExists);
        }
        if existing.request_hash != hash {
            return Err(PaymentError::IdempotencyKeyReused);
        }
        let link = link_for(
            connect,
            &existing,
            &command.return_url,
            &command.refresh_url,
        )
        .await?;
        return Ok((existing, link));
    }
    let account = connect
        .create_account(seller_id, &command.country_code)
        .await
        .map_err(account_error)?;
    let now = context.clock.now();
    let row = SellerAccountRow {
        seller_id,
        provider_account_id: account.id.clone(),
        status: rules::account_status(account.flags).as_str().to_owned(),
        country_code: account
            .country
            .clone()
            .unwrap_or_else(|| command.country_code.clone()),
        charges_enabled: account.charges_enabled,
        payouts_enabled: account.flags.payouts_enabled,
        details_submitted: account.flags.details_submitted,
        idempotency_key: command.idempotency_key.clone(),
        request_hash: hash,
        create_time: now,
        update_time: now,
        refresh_time: now,
    };
    let row = store::insert_account(&mut tx, &row).await?;
    tx.commit().await?;
    tracing::info!(seller.id = %seller_id, stripe.account = %row.provider_account_id,
        "seller account created");
    // The account is stored: if the link fails, a retry with the same key replays and links.
    let link = connect
        .onboarding_link(
            &row.provider_account_id,
            &command.return_url,
            &command.refresh_url,
        )
        .await?;
    Ok((row, link))
}

async fn link_for(
    connect: &StripeConnect,
    account: &SellerAccountRow,
    return_url: &str,
    refresh_url: &str,
) -> Result<Link, PaymentError> {
    let link = if account.status()? == AccountStatus::Active {
        connect.dashboard_link(&account.provider_account_id).await?
    } else {
        connect
            .onboarding_link(&account.provider_account_id, return_url, refresh_url)
            .await?
    };
    Ok(link)
}

/// The seller's account, NOT_FOUND when none.
async fn load(context: &PaymentContext, seller_id: Uuid) -> Result<SellerAccountRow, PaymentError> {
    let mut conn = context.pool.acquire().await?;
    store::account(&mut conn, seller_id)
        .await?
        .ok_or_else(|| PaymentError::NotFound {
            resource_type: "seller_account",
            resource_id: seller_id.to_string(),
        })
}

/// Asks the provider about `account` and stores the answer; waiting payouts become due when it
/// is now ACTIVE. Returns the account afterwards.
pub async fn refresh(
    context: &PaymentContext,
    connect: &StripeConnect,
    account: &SellerAccountRow,
) -> Result<SellerAccountRow, PaymentError> {
    let found = connect.account(&account.provider_account_id).await?;
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let updated = apply(&mut tx, account.seller_id, &found, now).await?;
    tx.commit().await?;
    Ok(updated.unwrap_or_else(|| account.clone()))
}

/// Stores what the provider said about the seller's account (locking it); `None` when the
/// seller has no account.
async fn apply(
    conn: &mut sqlx::PgConnection,
    seller_id: Uuid,
    found: &crate::provider::connect::ProviderAccount,
    now: DateTime<Utc>,
) -> Result<Option<SellerAccountRow>, PaymentError> {
    let Some(before) = store::lock_account(conn, seller_id).await? else {
        return Ok(None);
    };
    let status = rules::account_status(found.flags);
    let after = store::update_account(
        conn,
        seller_id,
        status,
        found.charges_enabled,
        found.flags,
        now,
    )
    .await?;
    if status == AccountStatus::Active {
        let woken = store::wake_seller(conn, seller_id, now).await?;
        if woken > 0 {
            tracing::info!(seller.id = %seller_id, woken, "seller account active: payouts due");
        }
    }
    if before.status != after.status {
        tracing::info!(seller.id = %seller_id, from = %before.status, to = %after.status,
            "seller account status changed");
    }
    Ok(Some(after))
}

/// The seller's account; a status other than ACTIVE is refreshed from the provider first (if
/// the provider cannot be asked, the stored status is returned).
pub async fn get(
    context: &PaymentContext,
    seller_id: Uuid,
) -> Result<SellerAccountRow, PaymentError> {
    let account = load(context, seller_id).await?;
    let Some(connect) = context.connect.as_ref() else {
        return Ok(account);
    };
    if account.status()? == AccountStatus::Active {
        return Ok(account);
    }
    match refresh(context, connect, &account).await {
        Ok(fresh) => Ok(fresh),
        Err(error) => {
            tracing::warn!(seller.id = %seller_id, %error, "seller account not refreshed");
            Ok(account)
        }
    }
}

/// A fresh link for the seller: onboarding until the account is ACTIVE (refreshed first), the
/// Express dashboard afterwards.
pub async fn link(
    context: &PaymentContext,
    seller_id: Uuid,
    return_url: &str,
    refresh_url: &str,
) -> Result<(Link, AccountStatus), PaymentError> {
    let connect = connect(context)?;
    let account = load(context, seller_id).await?;
    let account = refresh(context, connect, &account).await?;
    let link = link_for(connect, &account, return_url, refresh_url).await?;
    Ok((link, account.status()?))
}

/// An `account.updated` webhook (signature already verified): the account is re-fetched from
/// the provider (the body is not trusted) and stored with the event id, in one transaction.
pub async fn account_updated(
    context: &PaymentContext,
    provider_account_id: &str,
    event: &EventRecord<'_>,
) -> Result<String, PaymentError> {
    let mut conn = context.pool.acquire().await?;
    let account = store::account_by_provider_id(&mut conn, provider_account_id).await?;
    drop(conn);
    let (Some(account), Some(connect)) = (account, context.connect.as_ref()) else {
        let mut tx = context.pool.begin().await?;
        settle::record_event(&mut tx, event, Some(provider_account_id)).await?;
        tx.commit().await?;
        return Ok("unknown account".to_owned());
    };
    let found = connect.account(provider_account_id).await?;
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    if !settle::record_event(&mut tx, event, Some(provider_account_id)).await? {
        return Ok("duplicate".to_owned());
    }
    let after = apply(&mut tx, account.seller_id, &found, now).await?;
    tx.commit().await?;
    Ok(format!(
        "seller account {}",
        after.map_or(account.status, |a| a.status)
    ))
}
