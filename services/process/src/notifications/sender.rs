//! The sender: delivers due PENDING notifications through the sink, marking each SENT, or
//! scheduling a retry with backoff until the maximum attempts (or a permanent refusal) make it
//! FAILED.
//!
//! No transaction stays open while a notification is delivered. A short transaction claims a
//! batch with `FOR UPDATE SKIP LOCKED` and leases it (moves its `next_attempt_time` past the
//! longest the whole batch may take, at most `NOTIFICATION_SEND_TIMEOUT` per notification);
//! each delivery then runs under that timeout, and its outcome is written by one statement that
//! only applies while the lease is still ours. So replicas never deliver one notification at the
//! same time, a slow relay holds no row lock or pooled connection, and a sender that dies
//! mid-batch leaves its rows to be taken again when the lease runs out. A crash between a
//! delivery and its record delivers it again (at-least-once per dedupe key; the e-mail's
//! `Message-ID` is the same both times).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::context::ProcessContext;
use crate::domain::backoff;
use crate::error::ProcessError;
use crate::notifications::sink::Delivery;
use crate::notifications::store::{self, NotificationRow};
use crate::wake::Wakeup;

/// Notifications claimed per transaction.
pub const BATCH: i64 = 20;

/// Added to a batch's lease beyond its deliveries' timeouts (the outcome writes).
const LEASE_MARGIN: Duration = Duration::from_secs(5);

fn later(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
}

/// How long a batch is leased for: every delivery in it may use its whole timeout.
pub fn lease(send_timeout: Duration) -> Duration {
    send_timeout
        .checked_mul(u32::try_from(BATCH).unwrap_or(u32::MAX))
        .unwrap_or(Duration::from_secs(3_600))
        + LEASE_MARGIN
}

/// Delivers one batch of due notifications; how many were claimed. When `cancel` fires
/// mid-batch, the notifications not yet attempted are released (due again at once) rather than
/// left leased, so a restart delivers them without waiting for the lease to run out.
pub async fn send_batch(
    context: &ProcessContext,
    cancel: &CancellationToken,
) -> Result<usize, ProcessError> {
    let settings = &context.settings.notifier;
    let now = context.clock.now();
    // Whole microseconds, as PostgreSQL stores it: the lease is compared for equality later.
    let lease_until = later(now, lease(settings.send_timeout));
    let lease_until = DateTime::<Utc>::from_timestamp_micros(lease_until.timestamp_micros())
        .unwrap_or(lease_until);
    let mut tx = context.pool.begin().await?;
    let due = store::claim_due(&mut tx, now, BATCH, lease_until).await?;
    tx.commit().await?;
    for (position, notification) in due.iter().enumerate() {
        if cancel.is_cancelled() {
            let rest: Vec<_> = due[position..].iter().map(|n| n.notification_id).collect();
            let mut conn = context.pool.acquire().await?;
            store::release(&mut conn, &rest, lease_until, context.clock.now()).await?;
            break;
        }
        let delivery = match tokio::time::timeout(
            settings.send_timeout,
            context.notifier.deliver(&context.users, notification),
        )
        .await
        {
            Ok(delivery) => delivery,
            Err(_) => Delivery::Retry {
                error: format!("the delivery took longer than {:?}", settings.send_timeout),
                recipient: None,
            },
        };
        record(context, notification, delivery).await?;
    }
    Ok(due.len())
}

async fn record(
    context: &ProcessContext,
    notification: &NotificationRow,
    delivery: Delivery,
) -> Result<(), ProcessError> {
    let settings = &context.settings.notifier;
    let id = notification.notification_id;
    // The claim set it; a claimed row always has one.
    let Some(lease) = notification.next_attempt_time else {
        return Err(ProcessError::Corrupt(format!(
            "claimed notification {id} has no lease"
        )));
    };
    let now = context.clock.now();
    let mut conn = context.pool.acquire().await?;
    let kept = match delivery {
        Delivery::Sent { recipient } => {
            store::record_sent(&mut conn, id, lease, &recipient, now).await?
        }
        Delivery::Retry { error, recipient } => {
            let attempts = notification.attempt_count + 1;
            let next = (attempts < settings.max_attempts).then(|| {
                later(
                    now,
                    backoff(attempts, settings.retry_base, Duration::from_secs(3_600)),
                )
            });
            tracing::warn!(notification.id = %id, %error, attempts, gave_up = next.is_none(),
                "notification delivery failed");
            store::record_failed(&mut conn, id, lease, recipient.as_deref(), &error, next).await?
        }
        Delivery::Fail { error, recipient } => {
            tracing::warn!(notification.id = %id, %error, attempts = notification.attempt_count + 1,
                "notification delivery failed for good");
            store::record_failed(&mut conn, id, lease, recipient.as_deref(), &error, None).await?
        }
    };
    if !kept {
        tracing::warn!(notification.id = %id,
            "the delivery outlasted its lease and another sender took the notification over");
    }
    Ok(())
}

/// Sends until `cancel` fires, woken by new notifications or the sweep interval.
pub async fn run(context: ProcessContext, cancel: CancellationToken) {
    let mut wakeup = Wakeup::new(
        context.pool.clone(),
        store::CHANNEL,
        context.settings.notifier.sweep_interval,
    );
    let batch = usize::try_from(BATCH).unwrap_or(usize::MAX);
    loop {
        let full = match send_batch(&context, &cancel).await {
            Ok(count) => count >= batch,
            Err(error) => {
                tracing::warn!(%error, "notification sweep failed");
                false
            }
        };
        if full && !cancel.is_cancelled() {
            continue;
        }
        if !wakeup.wait(&cancel).await {
            return;
        }
    }
}
