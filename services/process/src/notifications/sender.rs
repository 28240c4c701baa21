//! The sender: delivers due PENDING notifications through the sink, marking each SENT, or
//! scheduling a retry with backoff until the maximum attempts make it FAILED. Batches are claimed
//! with `FOR UPDATE SKIP LOCKED`, so replicas never deliver one notification at the same time.
//! A crash between a delivery and its commit delivers it again (at-least-once per dedupe key).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::context::ProcessContext;
use crate::domain::backoff;
use crate::error::ProcessError;
use crate::notifications::sink::Sink;
use crate::notifications::store;
use crate::wake::Wakeup;

/// Notifications claimed per transaction.
pub const BATCH: i64 = 20;

/// Delivers one batch of due notifications; how many were claimed.
pub async fn send_batch(context: &ProcessContext) -> Result<usize, ProcessError> {
    let settings = &context.settings.notifier;
    let sink = Sink::new(settings.sink);
    let now = context.clock.now();
    let mut tx = context.pool.begin().await?;
    let due = store::claim_due(&mut tx, now, BATCH).await?;
    for notification in &due {
        match sink.deliver(notification).await {
            Ok(()) => store::mark_sent(&mut tx, notification.notification_id, now).await?,
            Err(error) => {
                let attempts = notification.attempt_count + 1;
                let next = (attempts < settings.max_attempts).then(|| {
                    let wait = backoff(attempts, settings.retry_base, Duration::from_secs(3_600));
                    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
                });
                tracing::warn!(notification.id = %notification.notification_id, %error,
                    attempts, gave_up = next.is_none(), "notification delivery failed");
                store::mark_attempt_failed(&mut tx, notification.notification_id, &error, next)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(due.len())
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
        let full = match send_batch(&context).await {
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
