//! The shipment worker: repeatedly claims the most overdue shipment whose next step is due
//! (`FOR UPDATE SKIP LOCKED`, so replicas and operators' RPCs never act on one shipment at once),
//! takes that step (see `fulfil`) and commits. The step's due time is stored on the row, so a
//! restarted service resumes every unfinished shipment where it stopped.
//!
//! A failed step is recorded on the row: transient failures (a service down) are retried with
//! exponential backoff; a refusal is resolved by asking the order service for the order — an
//! order that ended (CANCELLED, EXPIRED) withdraws a shipment still PREPARING; an order the
//! order service has not marked PAID yet (its own order.paid consumer is behind) is retried;
//! anything else stalls the shipment with its `last_error` for an operator.
//!
//! Each step runs in a `process.shipment_step` span whose parent is the trace context stored with
//! the shipment (the `order.paid` delivery that recorded it), so the order's MarkOrderShipped and
//! MarkOrderFinished calls and the step's notifications are in the trace of the payment's
//! settlement.

use chrono::{DateTime, Utc};
use mercato_messaging::headers;
use mercato_proto::mercato::common::v1::OrderStatus;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::context::ProcessContext;
use crate::domain::{
    SIMULATED_CARRIER, ShipmentStatus, Step, backoff, next_step, simulated_tracking_number,
};
use crate::error::ProcessError;
use crate::shipments::fulfil;
use crate::shipments::store::{self, Handover, ShipmentRow};
use crate::wake::Wakeup;

/// What the worker did with one claimed shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// No shipment was due.
    Idle,
    /// The step succeeded.
    Stepped(Step),
    /// The step failed and is retried later.
    Deferred(Step),
    /// The order ended before shipping: the shipment was withdrawn.
    Cancelled,
    /// The step was refused for good; the shipment waits for an operator.
    Stalled(Step),
}

fn later(context: &ProcessContext, attempts: i32, now: DateTime<Utc>) -> DateTime<Utc> {
    let settings = &context.settings.fulfilment;
    let wait = backoff(attempts, settings.retry_base, settings.retry_max);
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::minutes(5))
}

async fn take(
    context: &ProcessContext,
    conn: &mut PgConnection,
    shipment: &ShipmentRow,
    step: Step,
    now: DateTime<Utc>,
) -> Result<(), ProcessError> {
    match step {
        Step::CommitStock => fulfil::commit_stock(context, conn, shipment)
            .await
            .map(|_| ()),
        Step::Ship => {
            let (carrier, tracking_number) = if shipment.tracking_number.is_empty() {
                // Written by the manual carrier and left to the simulated one after a change of
                // setting: the simulated carrier takes it with a number of its own.
                (
                    SIMULATED_CARRIER.to_owned(),
                    simulated_tracking_number(rand::random()),
                )
            } else {
                (shipment.carrier.clone(), shipment.tracking_number.clone())
            };
            let handover = Handover {
                carrier,
                tracking_number,
                tracking_url: shipment.tracking_url.clone(),
                ship_time: now,
            };
            fulfil::ship(context, conn, shipment, &handover)
                .await
                .map(|_| ())
        }
        Step::Deliver => fulfil::deliver(context, conn, shipment, now)
            .await
            .map(|_| ()),
        Step::Done => {
            // A terminal row is never due (a CHECK constraint), so this is unreachable in
            // practice; clearing the due time keeps the worker from claiming it again.
            store::record_failure(conn, shipment.shipment_id, "terminal", None, now).await
        }
    }
}

/// Decides what a refused step means (see the module docs).
async fn resolve_refusal(
    context: &ProcessContext,
    conn: &mut PgConnection,
    shipment: &ShipmentRow,
    step: Step,
    error: &ProcessError,
    now: DateTime<Utc>,
) -> Result<Advance, ProcessError> {
    let id = shipment.shipment_id;
    let order = match fulfil::order_status(context, shipment).await {
        Ok(order) => order,
        Err(lookup) => {
            let text = format!("{error}; the order lookup failed: {lookup}");
            let next = later(context, shipment.attempts + 1, now);
            store::record_failure(conn, id, &text, Some(next), now).await?;
            return Ok(Advance::Deferred(step));
        }
    };
    let preparing = shipment.status()? == ShipmentStatus::Preparing;
    match order {
        OrderStatus::Cancelled | OrderStatus::Expired if preparing => {
            let why = format!("withdrawn: the order is {}", order.as_str_name());
            store::cancel(conn, id, &why, now).await?;
            tracing::info!(shipment.id = %id, order.status = order.as_str_name(),
                "the order ended before shipping; shipment withdrawn");
            Ok(Advance::Cancelled)
        }
        OrderStatus::Pending | OrderStatus::AwaitingPayment if step == Step::Ship => {
            let text = format!("{error}; the order service has not applied order.paid yet");
            let next = later(context, shipment.attempts + 1, now);
            store::record_failure(conn, id, &text, Some(next), now).await?;
            Ok(Advance::Deferred(step))
        }
        OrderStatus::Unspecified
        | OrderStatus::Pending
        | OrderStatus::AwaitingPayment
        | OrderStatus::Paid
        | OrderStatus::Shipped
        | OrderStatus::Finished
        | OrderStatus::Cancelled
        | OrderStatus::Expired => {
            let text = format!("{error} (order {})", order.as_str_name());
            tracing::warn!(shipment.id = %id, error = %text, "shipment step refused; stalled");
            store::record_failure(conn, id, &text, None, now).await?;
            Ok(Advance::Stalled(step))
        }
    }
}

/// The span of one step of `shipment`, continuing the trace the shipment was recorded in.
fn step_span(shipment: &ShipmentRow, step: Step) -> tracing::Span {
    let span = tracing::info_span!("process.shipment_step",
        shipment.id = %shipment.shipment_id, order.id = %shipment.order_id,
        shipment.step = ?step);
    headers::set_stored_parent(&span, &shipment.trace_context);
    span
}

/// Claims and advances one due shipment.
pub async fn advance_one(context: &ProcessContext) -> Result<Advance, ProcessError> {
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let Some(shipment) = store::claim_due(&mut tx, now).await? else {
        return Ok(Advance::Idle);
    };
    let step = next_step(shipment.status()?, shipment.stock_committed);
    let span = step_span(&shipment, step);
    let advance = step_once(context, &mut tx, &shipment, step, now)
        .instrument(span)
        .await?;
    tx.commit().await?;
    Ok(advance)
}

/// Takes `step` of the claimed `shipment` and records a failure on the row.
async fn step_once(
    context: &ProcessContext,
    tx: &mut PgConnection,
    shipment: &ShipmentRow,
    step: Step,
    now: DateTime<Utc>,
) -> Result<Advance, ProcessError> {
    let advance = match take(context, tx, shipment, step, now).await {
        Ok(()) => Advance::Stepped(step),
        // The transaction may be broken: roll back; the row stays due and is claimed again.
        Err(err @ (ProcessError::Database(_) | ProcessError::Outbox(_))) => return Err(err),
        Err(err) if err.is_transient() => {
            tracing::warn!(shipment.id = %shipment.shipment_id, error = %err,
                "shipment step failed; retrying later");
            let next = later(context, shipment.attempts + 1, now);
            store::record_failure(tx, shipment.shipment_id, &err.to_string(), Some(next), now)
                .await?;
            Advance::Deferred(step)
        }
        Err(err) => resolve_refusal(context, tx, shipment, step, &err, now).await?,
    };
    Ok(advance)
}

/// Advances due shipments until `cancel` fires, woken by new shipments or the sweep interval:
/// on each wake-up `workers` drains run at once, each claiming its own row (`SKIP LOCKED`),
/// until none is due. One listener serves them all (a listener holds a pooled connection).
pub async fn run(context: ProcessContext, cancel: CancellationToken, workers: usize) {
    let mut wakeup = Wakeup::new(
        context.pool.clone(),
        store::CHANNEL,
        context.settings.fulfilment.sweep_interval,
    );
    loop {
        let mut drains = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let (context, cancel) = (context.clone(), cancel.clone());
            drains.spawn(async move { drain(&context, &cancel).await });
        }
        while drains.join_next().await.is_some() {}
        if cancel.is_cancelled() || !wakeup.wait(&cancel).await {
            return;
        }
    }
}

/// Advances due shipments one after another until none is due (or `cancel`).
async fn drain(context: &ProcessContext, cancel: &CancellationToken) {
    while !cancel.is_cancelled() {
        match advance_one(context).await {
            Ok(Advance::Idle) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "shipment sweep failed");
                return;
            }
        }
    }
}
