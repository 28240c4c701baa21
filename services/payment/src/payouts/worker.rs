//! The payout worker: claims the most overdue due payout (`FOR UPDATE SKIP LOCKED`, so
//! replicas never work on one payout at once), decides its next step, leases it (commits a next
//! look [`LEASE`] away, so no other worker takes it meanwhile), takes the step at the provider
//! outside any transaction, then records the outcome under the payout's row lock.
//!
//! Steps: a payout without a transfer whose seller account is not ACTIVE re-reads the account
//! (and waits with backoff while it stays so); otherwise it is transferred; a transferred payout
//! whose reversal target is above what went back is reversed; a payout refunded in full before
//! any transfer request is REVERSED without one.
//!
//! **No second transfer.** The lease that precedes a transfer request also sets
//! `transfer_requested`, committed before anything is sent. If the worker dies after the
//! provider made the transfer but before our write (or the answer is lost), the next attempt
//! sees `transfer_requested` and first looks the transfer up by the order's transfer group, the
//! destination and the payout id in its metadata, adopting it if found; only then does it ask
//! again, with the same idempotency key (derived from the payout), which Stripe answers with the
//! first transfer while it remembers the key. Reversals are checked against the transfer's
//! `amount_reversed` at the provider before each request, so a reversal whose answer was lost
//! is never repeated either.
//!
//! A failed step is retried with exponential backoff (`PAYOUT_RETRY_BASE_MS` doubled per
//! attempt, at most `PAYOUT_RETRY_MAX_SECS`); a refused transfer makes the payout FAILED until a
//! retry succeeds.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::context::PaymentContext;
use crate::error::PaymentError;
use crate::payments::store as payments;
use crate::payouts::accounts;
use crate::payouts::rules::{self, AccountStatus, PayoutState};
use crate::payouts::store::{self, PayoutRow};
use crate::provider::connect::{ProviderTransfer, StripeConnect, TransferRequest};
use crate::provider::stripe;

/// How long a claimed payout is left to its worker before another may take it: longer than the
/// provider calls of one step (each times out after 30 s).
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(300);

/// The next step of a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Re-read the seller's account (it is not ACTIVE).
    CheckAccount,
    /// Transfer the net to the seller.
    Transfer,
    /// Reverse up to the reversal target.
    Reverse,
    /// Refunded in full before any transfer request: REVERSED without a transfer.
    Withdraw,
    /// Nothing to do.
    Done,
}

/// What a payout needs next, given its seller account's status.
pub fn next_step(payout: &PayoutRow, account: AccountStatus) -> Result<Step, PaymentError> {
    if payout.state()? == PayoutState::Reversed {
        return Ok(Step::Done);
    }
    if payout.provider_transfer_id.is_none() {
        if !payout.transfer_requested && payout.reversal_target >= payout.net_amount {
            return Ok(Step::Withdraw);
        }
        return Ok(if account == AccountStatus::Active {
            Step::Transfer
        } else {
            Step::CheckAccount
        });
    }
    Ok(if payout.reversal_target > payout.reversed_amount {
        Step::Reverse
    } else {
        Step::Done
    })
}

/// What one call of [`advance_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// No payout was due.
    Idle,
    /// The step was taken (or found already taken).
    Stepped(Step),
    /// The step failed and is retried later.
    Deferred(Step),
}

enum Outcome {
    Transferred(ProviderTransfer),
    Reversed(i64),
    Account(AccountStatus),
}

fn later(context: &PaymentContext, attempts: i32, now: DateTime<Utc>) -> DateTime<Utc> {
    let settings = &context.settings.payouts;
    let wait = rules::backoff(attempts, settings.retry_base, settings.retry_max);
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
}

async fn transfer(
    context: &PaymentContext,
    connect: &StripeConnect,
    payout: &PayoutRow,
) -> Result<ProviderTransfer, PaymentError> {
    if payout.transfer_requested
        && let Some(found) = connect
            .find_transfer(
                payout.payout_id,
                payout.order_id,
                &payout.provider_account_id,
            )
            .await?
    {
        tracing::info!(payout.id = %payout.payout_id, stripe.transfer = %found.id,
            "the transfer of an earlier attempt was found and adopted");
        return Ok(found);
    }
    let mut conn = context.pool.acquire().await?;
    let payment = payments::get(&mut conn, payout.payment_id)
        .await?
        .ok_or_else(|| PaymentError::payment_not_found(payout.payment_id))?;
    drop(conn);
    // A card payment's charge funds its sellers' transfers; other methods' come from the
    // platform balance.
    let source_charge = match (&payment.provider, &payment.provider_payment_id) {
        (Some(provider), Some(intent)) if provider == stripe::NAME => {
            connect.source_charge(intent).await?
        }
        _ => None,
    };
    Ok(connect
        .transfer(&TransferRequest {
            payout_id: payout.payout_id,
            order_id: payout.order_id,
            destination: payout.provider_account_id.clone(),
            amount: payout.net_amount,
            currency: payout.currency.clone(),
            source_charge,
        })
        .await?)
}

async fn reverse(connect: &StripeConnect, payout: &PayoutRow) -> Result<i64, PaymentError> {
    let transfer = payout.provider_transfer_id.as_deref().ok_or_else(|| {
        PaymentError::Corrupt(format!("payout {} has no transfer", payout.payout_id))
    })?;
    let target = payout.reversal_target;
    let now = connect.transfer_state(transfer).await?;
    if now.amount_reversed >= target {
        // Reversed already (an earlier attempt whose answer was lost, or by an operator).
        return Ok(now.amount_reversed.min(payout.net_amount));
    }
    let amount = target - now.amount_reversed;
    connect
        .reverse(
            transfer,
            amount,
            &rules::reversal_key(payout.payout_id, target),
        )
        .await?;
    tracing::info!(payout.id = %payout.payout_id, amount, target, "payout reversed");
    Ok(target)
}

async fn take(
    context: &PaymentContext,
    connect: &StripeConnect,
    payout: &PayoutRow,
    step: Step,
) -> Result<Outcome, PaymentError> {
    match step {
        Step::Transfer => transfer(context, connect, payout)
            .await
            .map(Outcome::Transferred),
        Step::Reverse => reverse(connect, payout).await.map(Outcome::Reversed),
        Step::CheckAccount => {
            let mut conn = context.pool.acquire().await?;
            let account = store::account(&mut conn, payout.seller_id)
                .await?
                .ok_or_else(|| {
                    PaymentError::Corrupt(format!(
                        "payout {} has no seller account",
                        payout.payout_id
                    ))
                })?;
            drop(conn);
            let fresh = accounts::refresh(context, connect, &account).await?;
            fresh.status().map(Outcome::Account)
        }
        Step::Withdraw | Step::Done => Err(PaymentError::Corrupt(format!(
            "step {step:?} is taken under the claim"
        ))),
    }
}

/// Claims and advances one due payout.
pub async fn advance_one(context: &PaymentContext) -> Result<Advance, PaymentError> {
    let connect = accounts::connect(context)?;
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let Some(payout) = store::claim_due(&mut tx, now).await? else {
        return Ok(Advance::Idle);
    };
    let id = payout.payout_id;
    let account = match store::account(&mut tx, payout.seller_id).await? {
        Some(account) => account.status()?,
        None => AccountStatus::Onboarding,
    };
    let step = next_step(&payout, account)?;
    match step {
        Step::Done => {
            store::record_failure(&mut tx, id, None, "nothing to do", None, now).await?;
            tx.commit().await?;
            return Ok(Advance::Stepped(step));
        }
        Step::Withdraw => {
            store::cancel_untransferred(&mut tx, id, now).await?;
            tx.commit().await?;
            return Ok(Advance::Stepped(step));
        }
        Step::CheckAccount | Step::Transfer | Step::Reverse => {
            let until =
                now + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::minutes(5));
            store::lease(&mut tx, id, until, step == Step::Transfer, now).await?;
            tx.commit().await?;
        }
    }
    // The lease counted this attempt and, for a transfer, recorded that a request may be sent.
    let attempts = payout.attempts + 1;
    let outcome = take(context, connect, &payout, step).await;
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let locked = store::lock(&mut tx, id).await?;
    let advance = match outcome {
        Ok(Outcome::Transferred(transfer)) => {
            let next = (locked.reversal_target > 0).then_some(now);
            store::mark_transferred(&mut tx, id, &transfer.id, next, now).await?;
            tracing::info!(payout.id = %id, stripe.transfer = %transfer.id,
                amount = transfer.amount, "payout transferred");
            if next.is_some() {
                store::notify(&mut tx).await?;
            }
            Advance::Stepped(step)
        }
        Ok(Outcome::Reversed(total)) => {
            let next = (locked.reversal_target > total).then_some(now);
            store::mark_reversed(&mut tx, id, total, next, now).await?;
            Advance::Stepped(step)
        }
        Ok(Outcome::Account(AccountStatus::Active)) => {
            // `refresh` made the seller's payouts due already.
            Advance::Stepped(step)
        }
        Ok(Outcome::Account(status)) => {
            let text = format!("the seller's account is {}", status.as_str());
            let next = later(context, attempts, now);
            store::record_failure(&mut tx, id, None, &text, Some(next), now).await?;
            Advance::Deferred(step)
        }
        Err(error) => {
            let refused = matches!(error, PaymentError::ProviderRejected { .. });
            let status = (step == Step::Transfer && refused).then_some(PayoutState::Failed);
            tracing::warn!(payout.id = %id, ?step, %error, "payout step failed; retrying later");
            let next = later(context, attempts, now);
            store::record_failure(&mut tx, id, status, &error.to_string(), Some(next), now).await?;
            Advance::Deferred(step)
        }
    };
    tx.commit().await?;
    Ok(advance)
}

/// Advances due payouts until `cancel`, woken by `pg_notify` from the transactions that make
/// work due, with a sweep every `PAYOUT_SWEEP_INTERVAL_MS` as the fallback.
pub async fn run(context: PaymentContext, cancel: CancellationToken) {
    let mut wakeup = Wakeup::new(
        context.pool.clone(),
        context.settings.payouts.sweep_interval,
    );
    loop {
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match advance_one(&context).await {
                Ok(Advance::Idle) => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "payout sweep failed");
                    break;
                }
            }
        }
        if !wakeup.wait(&cancel).await {
            return;
        }
    }
}

/// Waits for the next reason to look for work: a notification on [`store::CHANNEL`] or the
/// sweep interval.
struct Wakeup {
    pool: PgPool,
    interval: std::time::Duration,
    listener: Option<PgListener>,
}

impl Wakeup {
    fn new(pool: PgPool, interval: std::time::Duration) -> Self {
        Self {
            pool,
            interval,
            listener: None,
        }
    }

    /// `true` when it is time to look, `false` once `cancel` fired.
    async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        if self.listener.is_none() {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut listener) => match listener.listen(store::CHANNEL).await {
                    Ok(()) => self.listener = Some(listener),
                    Err(error) => tracing::warn!(%error, "payout listen failed"),
                },
                Err(error) => tracing::warn!(%error, "payout listener connect failed"),
            }
        }
        let listener = &mut self.listener;
        let notified = async {
            match listener.as_mut() {
                Some(l) => l.recv().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let failed = tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(self.interval) => false,
            ok = notified => !ok,
        };
        if failed {
            // Reconnect on the next wait; sweep now meanwhile.
            self.listener = None;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn payout() -> PayoutRow {
        let now = Utc::now();
        PayoutRow {
            payout_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            payment_id: Uuid::from_u128(3),
            seller_id: Uuid::from_u128(4),
            provider_account_id: "acct_1".to_owned(),
            currency: "JPY".to_owned(),
            gross_amount: 1_000,
            platform_fee: 100,
            net_amount: 900,
            fee_bps: 1_000,
            status: "PENDING".to_owned(),
            provider_transfer_id: None,
            transfer_requested: false,
            reversal_target: 0,
            reversed_amount: 0,
            attempts: 0,
            next_attempt_time: Some(now),
            last_error: None,
            create_time: now,
            update_time: now,
            transfer_time: None,
            reverse_time: None,
        }
    }

    #[test]
    fn a_payout_waits_for_an_active_account_then_transfers_then_reverses() {
        let fresh = payout();
        assert_eq!(
            next_step(&fresh, AccountStatus::Onboarding).ok(),
            Some(Step::CheckAccount)
        );
        assert_eq!(
            next_step(&fresh, AccountStatus::Restricted).ok(),
            Some(Step::CheckAccount)
        );
        assert_eq!(
            next_step(&fresh, AccountStatus::Active).ok(),
            Some(Step::Transfer)
        );
        let transferred = PayoutRow {
            status: "TRANSFERRED".to_owned(),
            provider_transfer_id: Some("tr_1".to_owned()),
            transfer_requested: true,
            ..payout()
        };
        assert_eq!(
            next_step(&transferred, AccountStatus::Restricted).ok(),
            Some(Step::Done)
        );
        let refunded = PayoutRow {
            reversal_target: 300,
            ..transferred.clone()
        };
        assert_eq!(
            next_step(&refunded, AccountStatus::Active).ok(),
            Some(Step::Reverse)
        );
        let reversed = PayoutRow {
            reversed_amount: 300,
            ..refunded
        };
        assert_eq!(
            next_step(&reversed, AccountStatus::Active).ok(),
            Some(Step::Done)
        );
    }

    #[test]
    fn a_payout_refunded_before_any_transfer_request_is_withdrawn_but_not_after_one() {
        let refunded = PayoutRow {
            reversal_target: 900,
            ..payout()
        };
        assert_eq!(
            next_step(&refunded, AccountStatus::Active).ok(),
            Some(Step::Withdraw)
        );
        let requested = PayoutRow {
            transfer_requested: true,
            ..refunded.clone()
        };
        assert_eq!(
            next_step(&requested, AccountStatus::Active).ok(),
            Some(Step::Transfer),
            "a transfer may exist: find or make it, then reverse it"
        );
        let partly = PayoutRow {
            reversal_target: 300,
            ..payout()
        };
        assert_eq!(
            next_step(&partly, AccountStatus::Active).ok(),
            Some(Step::Transfer)
        );
    }
}
