//! Settling payments from what the provider says: the one place where a provider observation
//! becomes a payment transition (with `order.paid` or `payment.failed` in the same transaction),
//! shared by webhooks, reconciliation and abandonment. The body of a webhook is never trusted:
//! the intent is always re-fetched from the provider, and the monotonic state machine
//! (`domain::advance`) ignores anything that would move the payment backwards.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::domain::{self, Observed, Status};
use crate::error::PaymentError;
use crate::payments::events;
use crate::payments::store::{self, PaymentRow};
use crate::payouts;

/// The failure code of a payment whose intent the provider cancelled on its own.
pub const INTENT_CANCELED: &str = "payment_intent_canceled";

/// What an observation did to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The payment moved to this status.
    Moved(Status),
    /// Stale or regressing: the payment stays in this status.
    Unchanged(Status),
    /// The webhook event was already applied.
    Duplicate,
}

/// Applies `observed` to the locked `payment` inside `conn`'s transaction. A success publishes
/// `order.paid` and records the order's seller payouts (at `fee_bps`) when `announce_success`
/// (not when the order already ended and the payment is about to be refunded); a failure or a
/// provider-side cancellation publishes `payment.failed`.
pub async fn apply_observation(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    observed: &Observed,
    announce_success: bool,
    fee_bps: u16,
    now: DateTime<Utc>,
) -> Result<Applied, PaymentError> {
    let current = payment.status()?;
    let Some(target) = domain::advance(current, observed) else {
        tracing::info!(payment.id = %payment.payment_id, current = current.as_str(),
            observed = observed.status().as_str(), "stale provider status ignored");
        return Ok(Applied::Unchanged(current));
    };
    let id = payment.payment_id;
    match observed {
        Observed::Succeeded => {
            let paid = store::set_status(conn, id, target, None, now).await?;
            if announce_success {
                events::order_paid(conn, &paid, now).await?;
                payouts::record::for_paid_order(conn, &paid, fee_bps, now).await?;
            }
        }
        Observed::Failed { code, message } => {
            let failed = store::set_status(conn, id, target, Some((code, message)), now).await?;
            events::payment_failed(conn, &failed, now).await?;
        }
        Observed::Cancelled => {
            let failed = store::set_status(
                conn,
                id,
                target,
                Some((INTENT_CANCELED, "the payment was cancelled by the provider")),
                now,
            )
            .await?;
            events::payment_failed(conn, &failed, now).await?;
        }
        Observed::RequiresAction | Observed::Processing => {
            store::set_status(conn, id, target, None, now).await?;
        }
    }
    tracing::info!(payment.id = %id, from = current.as_str(), to = target.as_str(), "payment moved");
    Ok(Applied::Moved(target))
}

/// A received provider event to deduplicate with the settlement.
#[derive(Debug, Clone)]
pub struct EventRecord<'a> {
    /// The provider's event id.
    pub id: &'a str,
    /// Its type.
    pub event_type: &'a str,
}

/// Records `event` unless already recorded (`false` then); in the caller's transaction. A
/// concurrent copy waits on the primary key until the first commits, then sees it.
pub async fn record_event(
    conn: &mut PgConnection,
    event: &EventRecord<'_>,
    object_id: Option<&str>,
) -> Result<bool, PaymentError> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_events (event_id, event_type, object_id) VALUES ($1, $2, $3) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event.id)
    .bind(event.event_type)
    .bind(object_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Re-fetches the payment's intent from its provider and applies what it says, recording
/// `event` (if any) in the same transaction.
pub async fn settle_from_provider(
    context: &PaymentContext,
    payment: &PaymentRow,
    event: Option<&EventRecord<'_>>,
) -> Result<Applied, PaymentError> {
    let (Some(provider_name), Some(intent_id)) = (&payment.provider, &payment.provider_payment_id)
    else {
        return Ok(Applied::Unchanged(payment.status()?));
    };
    let provider = context.providers.by_name(provider_name).ok_or_else(|| {
        PaymentError::Unavailable(format!("provider {provider_name} is not configured"))
    })?;
    let intent = provider.retrieve_intent(intent_id).await?;
    let mut tx = context.pool.begin().await?;
    if let Some(event) = event
        && !record_event(&mut tx, event, Some(intent_id)).await?
    {
        return Ok(Applied::Duplicate);
    }
    let locked = store::lock(&mut tx, payment.payment_id).await?;
    let fee_bps = context.settings.payouts.platform_fee_bps;
    let applied = apply_observation(
        &mut tx,
        &locked,
        &intent.status,
        true,
        fee_bps,
        context.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(applied)
}

/// Abandons an unsettled payment because its order ended: cancels the intent at the provider and
/// marks the payment CANCELLED (no event: the order is already over). An intent found to have
/// succeeded meanwhile makes the payment SUCCEEDED instead, without `order.paid`, for the caller
/// to refund.
pub async fn abandon(
    context: &PaymentContext,
    payment_id: Uuid,
) -> Result<PaymentRow, PaymentError> {
    let mut conn = context.pool.acquire().await?;
    let payment = store::get(&mut conn, payment_id)
        .await?
        .ok_or_else(|| PaymentError::payment_not_found(payment_id))?;
    drop(conn);
    if !payment.status()?.is_open() {
        return Ok(payment);
    }
    let intent = match (&payment.provider, &payment.provider_payment_id) {
        (Some(name), Some(intent_id)) => {
            let provider = context.providers.by_name(name).ok_or_else(|| {
                PaymentError::Unavailable(format!("provider {name} is not configured"))
            })?;
            let key = format!("mercato-cancel-{}", payment.payment_id.simple());
            Some(provider.cancel_intent(intent_id, &key).await?)
        }
        _ => None,
    };
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let locked = store::lock(&mut tx, payment_id).await?;
    if !locked.status()?.is_open() {
        return Ok(locked);
    }
    let after = match intent.map(|i| i.status) {
        Some(Observed::Succeeded) => {
            let fee_bps = context.settings.payouts.platform_fee_bps;
            apply_observation(&mut tx, &locked, &Observed::Succeeded, false, fee_bps, now).await?;
            store::get(&mut tx, payment_id)
                .await?
                .ok_or_else(|| PaymentError::payment_not_found(payment_id))?
        }
        _ => store::set_status(&mut tx, payment_id, Status::Cancelled, None, now).await?,
    };
    tx.commit().await?;
    tracing::info!(payment.id = %payment_id, status = %after.status, "payment abandoned");
    Ok(after)
}
