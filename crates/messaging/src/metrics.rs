//! The bus's Prometheus series, registered in the process's default registry (the one
//! `mercato_platform::metrics` serves on `/metrics`).
//!
//! | series | type | labels | what |
//! |---|---|---|---|
//! | `mercato_consumer_deliveries_total` | counter | `queue`, `outcome` | deliveries settled: `processed`, `duplicate` (acked without running), `retry_scheduled`, `dead_lettered`, `requeued` |
//! | `mercato_consumer_dead_letters_total` | counter | `queue`, `reason` | messages sent to the consumer's DLQ, by `x-mercato-dead-letter-reason` |
//! | `mercato_consumer_processing_seconds` | histogram | `queue` | delivery to settlement (decode, inbox, handler, commit, ack) |
//! | `mercato_consumer_lag_seconds` | histogram | `queue` | the event's `occurred_at` to the start of its processing: how far behind the consumer runs |
//! | `mercato_outbox_published_total` | counter | `database` | rows the broker confirmed |
//! | `mercato_outbox_refused_total` | counter | `database` | rows the broker refused (nack, unroutable) or that could not be prepared; they back off |
//! | `mercato_outbox_backlog` | gauge | `database` | unpublished rows, sampled by the relay |
//! | `mercato_outbox_oldest_age_seconds` | gauge | `database` | age of the oldest unpublished row (0 when none) |
//!
//! The outbox is labelled by the PostgreSQL database it lives in, which is one per service.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use crate::OutcomeKind;

/// Seconds, from a quick handler to a consumer minutes behind.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

fn register<M: Collector + Clone + 'static>(metric: M) -> M {
    // Each series is a static registered once; a second registration is a programming error.
    if let Err(error) = prometheus::register(Box::new(metric.clone())) {
        tracing::error!(%error, "metric not registered");
    }
    metric
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter definition"))
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge definition"))
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(BUCKETS.to_vec());
    register(HistogramVec::new(opts, labels).expect("a valid histogram definition"))
}

static DELIVERIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "mercato_consumer_deliveries_total",
        "Deliveries settled by a consumer, by queue and outcome",
        &["queue", "outcome"],
    )
});

static DEAD_LETTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "mercato_consumer_dead_letters_total",
        "Messages a consumer sent to its dead-letter queue, by queue and reason",
        &["queue", "reason"],
    )
});

static PROCESSING: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "mercato_consumer_processing_seconds",
        "Time from receiving a delivery to settling it, by queue",
        &["queue"],
    )
});

static LAG: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "mercato_consumer_lag_seconds",
        "Time from an event's occurred_at to the start of its processing, by queue",
        &["queue"],
    )
});

static OUTBOX_PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "mercato_outbox_published_total",
        "Outbox rows published with a broker confirm, by database",
        &["database"],
    )
});

static OUTBOX_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "mercato_outbox_refused_total",
        "Outbox rows the broker refused or that could not be prepared, by database",
        &["database"],
    )
});

static OUTBOX_BACKLOG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "mercato_outbox_backlog",
        "Unpublished outbox rows, by database",
        &["database"],
    )
});

static OUTBOX_OLDEST_AGE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "mercato_outbox_oldest_age_seconds",
        "Age of the oldest unpublished outbox row in seconds (0 when none), by database",
        &["database"],
    )
});

/// The `outcome` label value of a settled delivery.
pub(crate) fn outcome_label(kind: &OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Processed => "processed",
        OutcomeKind::Duplicate => "duplicate",
        OutcomeKind::RetryScheduled { .. } => "retry_scheduled",
        OutcomeKind::DeadLettered(_) => "dead_lettered",
        OutcomeKind::Requeued => "requeued",
    }
}

/// Creates `queue`'s series at zero, so a consumer that never dead-lettered still exports its
/// DLQ count (and `rate()` sees the first increment).
pub(crate) fn register_queue(queue: &str) {
    for outcome in [
        "processed",
        "duplicate",
        "retry_scheduled",
        "dead_lettered",
        "requeued",
    ] {
        DELIVERIES.with_label_values(&[queue, outcome]);
    }
    for reason in [
        crate::DeadLetterReason::RetriesExhausted,
        crate::DeadLetterReason::Permanent,
        crate::DeadLetterReason::Undecodable,
    ] {
        DEAD_LETTERS.with_label_values(&[queue, reason.as_str()]);
    }
    PROCESSING.with_label_values(&[queue]);
    LAG.with_label_values(&[queue]);
}

/// Creates `database`'s outbox counters at zero.
pub(crate) fn register_outbox(database: &str) {
    OUTBOX_PUBLISHED.with_label_values(&[database]);
    OUTBOX_REFUSED.with_label_values(&[database]);
}

/// Records one settled delivery of `queue`.
pub(crate) fn record_delivery(queue: &str, kind: &OutcomeKind, seconds: f64) {
    DELIVERIES
        .with_label_values(&[queue, outcome_label(kind)])
        .inc();
    if let OutcomeKind::DeadLettered(reason) = kind {
        DEAD_LETTERS
            .with_label_values(&[queue, reason.as_str()])
            .inc();
    }
    PROCESSING.with_label_values(&[queue]).observe(seconds);
}

/// Records how long after it occurred an event reached `queue`'s handler (negative skews, a
/// producer clock ahead of ours, count as zero).
pub(crate) fn record_lag(queue: &str, seconds: f64) {
    LAG.with_label_values(&[queue]).observe(seconds.max(0.0));
}

/// Records a relay batch's confirmed and refused rows.
pub(crate) fn record_relayed(database: &str, published: usize, refused: usize) {
    let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    if published > 0 {
        OUTBOX_PUBLISHED
            .with_label_values(&[database])
            .inc_by(to_u64(published));
    }
    if refused > 0 {
        OUTBOX_REFUSED
            .with_label_values(&[database])
            .inc_by(to_u64(refused));
    }
}

/// Sets the outbox backlog gauges of `database`.
pub(crate) fn record_backlog(database: &str, rows: i64, oldest_age_seconds: i64) {
    OUTBOX_BACKLOG
        .with_label_values(&[database])
        .set(rows.max(0));
    OUTBOX_OLDEST_AGE
        .with_label_values(&[database])
        .set(oldest_age_seconds.max(0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeadLetterReason;

    #[test]
    fn every_outcome_has_a_stable_label() {
        assert_eq!(outcome_label(&OutcomeKind::Processed), "processed");
        assert_eq!(outcome_label(&OutcomeKind::Duplicate), "duplicate");
        assert_eq!(
            outcome_label(&OutcomeKind::DeadLettered(DeadLetterReason::Permanent)),
            "dead_lettered"
        );
        assert_eq!(outcome_label(&OutcomeKind::Requeued), "requeued");
    }

    #[test]
    fn gauges_never_go_negative() {
        record_backlog("unit_test_db", -3, -1);
        assert_eq!(OUTBOX_BACKLOG.with_label_values(&["unit_test_db"]).get(), 0);
        assert_eq!(
            OUTBOX_OLDEST_AGE.with_label_values(&["unit_test_db"]).get(),
            0
        );
    }
}
