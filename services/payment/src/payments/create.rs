//! Creating the payment of a new order (from `order.created`), idempotently per order:
//!
//! 1. record the payment PENDING in its own committed transaction (`payments.order_id` is
//!    unique, so a redelivery, a crash retry or a concurrent duplicate finds the same payment and
//!    payment id);
//! 2. for a provider method, create the intent with a key derived from the order (the same
//!    intent on every attempt) and record it (REQUIRES_ACTION, payment URL);
//! 3. `OrderService.AttachPayment` (idempotent on the order side: a second call is a no-op);
//! 4. for POINTS, in the consumer's transaction (with its inbox row): lock the payment, debit
//!    the wallet and settle it SUCCEEDED with `order.paid`, or FAILED with `payment.failed`
//!    (`insufficient_points`) — exactly once, because only a PENDING payment is debited.
//!
//! A crash anywhere before the consumer's commit redelivers the event and runs the same steps
//! again, each of which finds its earlier effect.

use mercato_proto::mercato::events::v1::OrderCreated;
use mercato_proto::mercato::order::v1::AttachPaymentRequest;
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::domain::{self, Method, Status};
use crate::error::PaymentError;
use crate::payments::store::{self, NewPayment, PaymentRow};
use crate::payments::{events, settle};
use crate::provider::CreateIntent;
use crate::wallet;

/// The failure code of a POINTS payment the wallet cannot cover.
pub const INSUFFICIENT_POINTS: &str = "insufficient_points";

/// Why an `order.created` cannot be turned into a payment, ever.
#[derive(Debug, thiserror::Error)]
#[error("unusable order.created: {0}")]
pub struct BadOrder(pub String);

/// The facts of `order.created` the payment needs, validated.
#[derive(Debug, Clone)]
pub struct OrderFacts {
    /// The order.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The total to collect.
    pub amount: i64,
    /// Its currency.
    pub currency: String,
    /// How.
    pub method: Method,
    /// The encoded event payload (kept for `order.paid`).
    pub snapshot: Vec<u8>,
}

impl OrderFacts {
    /// Validates an `OrderCreated` payload against the shop currency.
    pub fn parse(created: &OrderCreated, currency: &str) -> Result<Self, BadOrder> {
        let order_id = Uuid::parse_str(&created.order_id)
            .map_err(|_| BadOrder(format!("order_id {:?} is not a uuid", created.order_id)))?;
        let user_id = Uuid::parse_str(&created.user_id)
            .map_err(|_| BadOrder(format!("user_id {:?} is not a uuid", created.user_id)))?;
        let total = created
            .total
            .as_ref()
            .ok_or_else(|| BadOrder("the order has no total".to_owned()))?;
        if total.amount_minor <= 0 {
            return Err(BadOrder(format!(
                "the order total {} is not positive",
                total.amount_minor
            )));
        }
        if total.currency_code != currency {
            return Err(BadOrder(format!(
                "the order is in {}, the shop in {currency}",
                total.currency_code
            )));
        }
        let method =
            mercato_proto::mercato::common::v1::PaymentMethod::try_from(created.payment_method)
                .ok()
                .and_then(Method::from_proto)
                .ok_or_else(|| BadOrder(format!("payment method {}", created.payment_method)))?;
        Ok(Self {
            order_id,
            user_id,
            amount: total.amount_minor,
            currency: total.currency_code.clone(),
            method,
            snapshot: created.encode_to_vec(),
        })
    }
}

/// What creating the payment failed with.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The event can never be applied.
    #[error(transparent)]
    Bad(#[from] BadOrder),
    /// A step failed; `is_transient` says whether a retry may succeed.
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// The order service refused AttachPayment for good (unknown order).
    #[error("the order service refused to attach the payment: {0}")]
    Refused(String),
}

/// Steps 1-2: the order's payment, recorded and (for a provider method) with its intent.
pub async fn ensure_payment(
    context: &PaymentContext,
    facts: &OrderFacts,
) -> Result<PaymentRow, CreateError> {
    let now = context.clock.now();
    let provider = match facts.method {
        Method::Points => None,
        method @ (Method::Stripe | Method::Sandbox) => {
            Some(context.providers.for_method(method).ok_or_else(|| {
                BadOrder(format!("no provider serves {} payments", method.as_str()))
            })?)
        }
    };
    let mut conn = context.pool.acquire().await.map_err(PaymentError::from)?;
    let new = NewPayment {
        payment_id: Uuid::now_v7(),
        order_id: facts.order_id,
        user_id: facts.user_id,
        method: facts.method,
        provider: provider.as_ref().map(|p| p.name().to_owned()),
        amount: facts.amount,
        currency: facts.currency.clone(),
        order_snapshot: facts.snapshot.clone(),
    };
    let payment = match store::insert_if_absent(&mut conn, &new, now).await? {
        Some(inserted) => {
            tracing::info!(payment.id = %inserted.payment_id, "payment recorded");
            inserted
        }
        None => store::by_order(&mut conn, facts.order_id)
            .await?
            .ok_or_else(|| PaymentError::Corrupt("payment vanished after a conflict".to_owned()))?,
    };
    drop(conn);
    let Some(provider) = provider else {
        return Ok(payment);
    };
    if payment.provider_payment_id.is_some() || payment.status()? != Status::Pending {
        return Ok(payment);
    }
    let intent = provider
        .create_intent(&CreateIntent {
            payment_id: payment.payment_id,
            order_id: payment.order_id,
            user_id: payment.user_id,
            amount: payment.amount,
            currency: payment.currency.clone(),
            idempotency_key: domain::intent_key(payment.order_id),
        })
        .await
        .map_err(PaymentError::from)?;
    let mut tx = context.pool.begin().await.map_err(PaymentError::from)?;
    let locked = store::lock(&mut tx, payment.payment_id).await?;
    let payment = if locked.provider_payment_id.is_none() {
        use secrecy::ExposeSecret as _;
        store::record_intent(
            &mut tx,
            payment.payment_id,
            &intent.id,
            intent.payment_url.as_deref(),
            intent.client_secret.as_ref().map(|s| s.expose_secret()),
            context.clock.now(),
        )
        .await?
    } else {
        locked
    };
    tx.commit().await.map_err(PaymentError::from)?;
    Ok(payment)
}

/// Step 3: AttachPayment. `Ok(false)` when the order can no longer take a payment (cancelled or
/// expired meanwhile): the payment is then abandoned by the cancellation consumer.
pub async fn attach(context: &PaymentContext, payment: &PaymentRow) -> Result<bool, CreateError> {
    let request = AttachPaymentRequest {
        order_id: payment.order_id.to_string(),
        payment_id: payment.payment_id.to_string(),
        payment_url: payment.payment_url.clone().unwrap_or_default(),
    };
    match context.orders.clone().attach_payment(request).await {
        Ok(_) => Ok(true),
        Err(status) => {
            let code = status.code();
            if code == tonic::Code::FailedPrecondition {
                tracing::info!(order.id = %payment.order_id, "the order no longer takes a payment");
                Ok(false)
            } else if matches!(
                code,
                tonic::Code::NotFound
                    | tonic::Code::InvalidArgument
                    | tonic::Code::PermissionDenied
            ) {
                Err(CreateError::Refused(status.message().to_owned()))
            } else {
                // Anything else (unavailable, deadline, internal) may heal: retried by the bus.
                Err(PaymentError::Unavailable(format!(
                    "order service: {code}: {}",
                    status.message()
                ))
                .into())
            }
        }
    }
}

/// Step 4 for POINTS, inside `conn`'s transaction: debit once and settle.
pub async fn settle_points(
    context: &PaymentContext,
    conn: &mut PgConnection,
    payment_id: Uuid,
    attachable: bool,
) -> Result<PaymentRow, PaymentError> {
    let payment = store::lock(conn, payment_id).await?;
    if payment.status()? != Status::Pending {
        return Ok(payment);
    }
    let now = context.clock.now();
    if !attachable {
        // The order ended before it could be paid: nothing is debited.
        return store::set_status(conn, payment_id, Status::Cancelled, None, now).await;
    }
    match wallet::spend(
        conn,
        payment.user_id,
        payment.amount,
        payment.order_id,
        payment.payment_id,
        now,
    )
    .await
    {
        Ok(_) => {
            let paid = store::set_status(conn, payment_id, Status::Succeeded, None, now).await?;
            events::order_paid(conn, &paid, now).await?;
            let fee_bps = context.settings.payouts.platform_fee_bps;
            crate::payouts::record::for_paid_order(conn, &paid, fee_bps, now).await?;
            tracing::info!(payment.id = %payment_id, "points payment succeeded");
            Ok(paid)
        }
        Err(err @ PaymentError::InsufficientBalance { .. }) => {
            let message = err.to_string();
            let failed = store::set_status(
                conn,
                payment_id,
                Status::Failed,
                Some((INSUFFICIENT_POINTS, &message)),
                now,
            )
            .await?;
            events::payment_failed(conn, &failed, now).await?;
            tracing::info!(payment.id = %payment_id, "points payment failed: {message}");
            Ok(failed)
        }
        Err(other) => Err(other),
    }
}

/// The whole of `order.created`, the final step in `conn`'s transaction.
pub async fn handle_order_created(
    context: &PaymentContext,
    conn: &mut PgConnection,
    facts: &OrderFacts,
) -> Result<PaymentRow, CreateError> {
    let payment = ensure_payment(context, facts).await?;
    let status = payment.status()?;
    let attachable = if payment.attached || status == Status::Cancelled {
        !matches!(status, Status::Cancelled)
    } else {
        match attach(context, &payment).await {
            Ok(attachable) => attachable,
            Err(refused @ CreateError::Refused(_)) => {
                // The order service does not know the order: nothing may be collected for it.
                // The payment (and its intent) is cancelled and the event dead-lettered.
                settle::abandon(context, payment.payment_id).await?;
                return Err(refused);
            }
            Err(other) => return Err(other),
        }
    };
    if attachable && !payment.attached {
        store::mark_attached(conn, payment.payment_id).await?;
    }
    match payment.method()? {
        Method::Points => Ok(settle_points(context, conn, payment.payment_id, attachable).await?),
        // An order that ended before its payment was attached never shows the buyer a page:
        // its intent is cancelled now (the cancellation event may have come first and found no
        // payment).
        Method::Sandbox | Method::Stripe if !attachable && status.is_open() => {
            Ok(settle::abandon(context, payment.payment_id).await?)
        }
        Method::Sandbox | Method::Stripe => Ok(payment),
    }
}
