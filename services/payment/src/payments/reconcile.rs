//! Reconciliation: payments still unsettled past a threshold are re-fetched from their provider
//! and settled exactly as their webhook would have settled them (missed or lost webhooks). The
//! sweeper runs it periodically; `ReconcilePayments` runs it on demand. Concurrent runs are safe:
//! each settlement locks its payment and the state machine ignores a repeat.

use std::time::Duration;

use mercato_messaging::headers;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::context::PaymentContext;
use crate::domain::Status;
use crate::error::PaymentError;
use crate::payments::settle::{self, Applied};
use crate::payments::store;

/// What one run found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Payments examined.
    pub examined: u32,
    /// Found succeeded and settled.
    pub succeeded: u32,
    /// Found failed or cancelled and settled.
    pub failed: u32,
    /// Still pending at the provider (or without an intent yet).
    pub pending: u32,
}

/// Examines up to `limit` payments unsettled for at least `older_than`.
pub async fn run_once(
    context: &PaymentContext,
    older_than: Duration,
    limit: i64,
) -> Result<Report, PaymentError> {
    let before = context.clock.now()
        - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::days(30));
    let mut conn = context.pool.acquire().await?;
    let ids = store::open_since(&mut conn, before, limit).await?;
    let mut report = Report::default();
    for id in ids {
        let Some(payment) = store::get(&mut conn, id).await? else {
            continue;
        };
        report.examined += 1;
        // The settlement's own span (under the sweep or the operator's ReconcilePayments call),
        // linked to the trace the payment was created in, as a webhook's span is: the
        // `order.paid` it publishes continues from here.
        let span = tracing::info_span!(
            "payment.reconcile",
            payment.id = %payment.payment_id,
            order.id = %payment.order_id
        );
        headers::add_stored_link(&span, &payment.trace_context);
        match settle::settle_from_provider(context, &payment, None)
            .instrument(span)
            .await
        {
            Ok(Applied::Moved(Status::Succeeded)) => report.succeeded += 1,
            Ok(Applied::Moved(Status::Failed | Status::Cancelled)) => report.failed += 1,
            Ok(_) => report.pending += 1,
            Err(error) => {
                // One provider failure must not stop the sweep; the payment is retried next run.
                tracing::warn!(payment.id = %id, %error, "reconciliation could not settle a payment");
                report.pending += 1;
            }
        }
    }
    if report.examined > 0 {
        tracing::info!(?report, "reconciliation run");
    }
    Ok(report)
}

/// The periodic sweep, until `cancel`.
pub async fn sweeper(context: PaymentContext, cancel: CancellationToken) {
    let settings = context.settings.payments.clone();
    let mut interval = tokio::time::interval(settings.reconcile_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        if let Err(error) = run_once(&context, settings.reconcile_after, 100).await {
            tracing::warn!(%error, "reconciliation sweep failed");
        }
    }
}
