//! Refunds, once per idempotency scope (`order-cancelled:<order>` for the automatic refund of a
//! cancelled or expired order, `rpc:<caller>:<key>` for RefundPayment).
//!
//! POINTS: one transaction records the refund SUCCEEDED, credits the wallet (a REFUND ledger
//! entry, unique per refund), adds it to the payment and writes `payment.refunded`.
//!
//! Provider methods: the refund is first recorded PENDING (reserving its amount, under the
//! payment's row lock so concurrent refunds cannot exceed the captured amount) and committed;
//! then the provider is asked with a key derived from the refund id; then a second transaction
//! settles it. A crash in between leaves a PENDING refund that the next attempt with the same
//! scope resumes (the provider's key returns the same refund).
//!
//! A succeeded refund also moves the order's seller payouts towards reversal, in the same
//! transaction (`payouts::record::on_refund`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::domain::{self, Method};
use crate::error::PaymentError;
use crate::payments::events;
use crate::payments::store::{self, PaymentRow, RefundRow};
use crate::payouts;
use crate::provider::{ProviderError, RefundRequest, RefundState};
use crate::wallet;

/// A refund to make.
#[derive(Debug, Clone)]
pub struct RefundCommand {
    /// The payment.
    pub payment_id: Uuid,
    /// How much; `None` for everything still refundable.
    pub amount: Option<i64>,
    /// Why (1-200 characters).
    pub reason: String,
    /// What makes it happen once.
    pub scope: String,
    /// Hash binding the scope to the request.
    pub request_hash: String,
}

/// Refunds; returns the refund and the payment afterwards. A replay of the same scope with the
/// same request returns the first refund; with another request `IDEMPOTENCY_KEY_REUSED`.
pub async fn refund(
    context: &PaymentContext,
    command: &RefundCommand,
) -> Result<(RefundRow, PaymentRow), PaymentError> {
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let payment = store::lock(&mut tx, command.payment_id).await?;
    if let Some(existing) = store::refund_by_scope(&mut tx, &command.scope).await? {
        if existing.request_hash != command.request_hash
            || existing.payment_id != command.payment_id
        {
            return Err(PaymentError::IdempotencyKeyReused);
        }
        tx.commit().await?;
        if existing.status == "PENDING" {
            return complete_at_provider(context, &payment, existing).await;
        }
        return Ok((existing, payment));
    }
    let status = payment.status()?;
    if !status.is_captured() {
        return Err(PaymentError::IllegalState(status));
    }
    let refundable = payment.amount - store::refunds_in_flight(&mut tx, payment.payment_id).await?;
    let amount = command.amount.unwrap_or(refundable);
    if amount <= 0 || amount > refundable {
        return Err(PaymentError::RefundExceedsPayment {
            refundable: refundable.max(0),
        });
    }
    let mut refund = RefundRow {
        refund_id: Uuid::now_v7(),
        payment_id: payment.payment_id,
        amount,
        status: "PENDING".to_owned(),
        reason: command.reason.clone(),
        provider_refund_id: None,
        failure_message: None,
        idempotency_scope: command.scope.clone(),
        request_hash: command.request_hash.clone(),
        create_time: now,
        settle_time: None,
    };
    if payment.method()? == Method::Points {
        refund.status = "SUCCEEDED".to_owned();
        refund.settle_time = Some(now);
        store::insert_refund(&mut tx, &refund).await?;
        wallet::credit_refund(
            &mut tx,
            payment.user_id,
            amount,
            payment.order_id,
            payment.payment_id,
            refund.refund_id,
            now,
        )
        .await?;
        let after = succeed(&mut tx, &payment, &refund, now).await?;
        tx.commit().await?;
        tracing::info!(payment.id = %payment.payment_id, refund.id = %refund.refund_id, amount,
            "points refunded");
        return Ok((refund, after));
    }
    store::insert_refund(&mut tx, &refund).await?;
    tx.commit().await?;
    complete_at_provider(context, &payment, refund).await
}

async fn succeed(
    conn: &mut sqlx::PgConnection,
    payment: &PaymentRow,
    refund: &RefundRow,
    now: DateTime<Utc>,
) -> Result<PaymentRow, PaymentError> {
    let total = payment.refunded_amount + refund.amount;
    let after = store::add_refunded(
        conn,
        payment.payment_id,
        refund.amount,
        domain::after_refunds(payment.amount, total),
        now,
    )
    .await?;
    events::payment_refunded(conn, &after, refund, now).await?;
    payouts::record::on_refund(conn, &after, now).await?;
    Ok(after)
}

async fn complete_at_provider(
    context: &PaymentContext,
    payment: &PaymentRow,
    refund: RefundRow,
) -> Result<(RefundRow, PaymentRow), PaymentError> {
    let (Some(name), Some(intent_id)) = (&payment.provider, &payment.provider_payment_id) else {
        return Err(PaymentError::Corrupt(format!(
            "payment {} has no provider intent to refund",
            payment.payment_id
        )));
    };
    let provider = context
        .providers
        .by_name(name)
        .ok_or_else(|| PaymentError::Unavailable(format!("provider {name} is not configured")))?;
    let answer = provider
        .refund(&RefundRequest {
            intent_id: intent_id.clone(),
            refund_id: refund.refund_id,
            amount: refund.amount,
            currency: payment.currency.clone(),
            idempotency_key: format!("mercato-refund-{}", refund.refund_id.simple()),
        })
        .await;
    let (status, provider_id, failure_text): (&str, Option<String>, Option<String>) = match &answer
    {
        Ok(r) => match &r.state {
            RefundState::Pending => ("PENDING", Some(r.id.clone()), None),
            RefundState::Succeeded => ("SUCCEEDED", Some(r.id.clone()), None),
            RefundState::Failed(why) => ("FAILED", Some(r.id.clone()), Some(why.clone())),
        },
        // Left PENDING: the next attempt with the same scope asks again.
        Err(ProviderError::Unavailable(why)) => {
            return Err(PaymentError::Unavailable(why.clone()));
        }
        Err(err) => ("FAILED", None, Some(err.to_string())),
    };
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let locked = store::lock(&mut tx, payment.payment_id).await?;
    let settled = store::settle_refund(
        &mut tx,
        refund.refund_id,
        status,
        provider_id.as_deref(),
        failure_text.as_deref(),
        now,
    )
    .await?;
    let Some(settled) = settled else {
        // Another attempt settled it first.
        let current = store::refund_by_scope(&mut tx, &refund.idempotency_scope)
            .await?
            .unwrap_or(refund);
        tx.commit().await?;
        return Ok((current, locked));
    };
    let after = if settled.status == "SUCCEEDED" {
        succeed(&mut tx, &locked, &settled, now).await?
    } else {
        locked
    };
    tx.commit().await?;
    tracing::info!(payment.id = %payment.payment_id, refund.id = %settled.refund_id,
        status = %settled.status, "provider refund recorded");
    if let Err(err) = answer
        && settled.status == "FAILED"
    {
        return Err(PaymentError::from(err));
    }
    Ok((settled, after))
}
