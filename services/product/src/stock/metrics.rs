//! The stock's Prometheus series, counted after the transaction that made the change committed
//! (so a rolled-back attempt is never counted):
//!
//! | series | type | labels | what |
//! |---|---|---|---|
//! | `mercato_stock_reservations_total` | counter | `outcome` | `ReserveStock` answers: `reserved` (a new reservation), `refused` (insufficient stock, the sold-out fast path included); replays are not counted |
//! | `mercato_stock_reservations_ended_total` | counter | `status` | reservations moved out of PENDING by an RPC or the sweeper: `committed`, `released`, `restocked`, `expired` |
//!
//! Releases and restocks by the `order.cancelled` / `order.expired` consumers commit with the
//! consumer's inbox row, out of this module's sight; they show in the bus's
//! `mercato_consumer_deliveries_total` for the product service's queue.

use std::sync::LazyLock;

use mercato_platform::metrics::{counter_vec, prometheus::IntCounterVec};

// Every label value is created at zero, so each series exists from the first use on.
static RESERVATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = counter_vec(
        "mercato_stock_reservations_total",
        "ReserveStock answers, by outcome (reserved or refused)",
        &["outcome"],
    );
    for outcome in ["reserved", "refused"] {
        counter.with_label_values(&[outcome]);
    }
    counter
});

static ENDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = counter_vec(
        "mercato_stock_reservations_ended_total",
        "Reservations moved out of PENDING by an RPC or the expiry sweeper, by new status",
        &["status"],
    );
    for status in ["committed", "released", "restocked", "expired"] {
        counter.with_label_values(&[status]);
    }
    counter
});

/// Creates the series (at zero) before anything happened.
pub(crate) fn register() {
    LazyLock::force(&RESERVATIONS);
    LazyLock::force(&ENDED);
}

/// A new reservation committed.
pub(crate) fn reserved() {
    RESERVATIONS.with_label_values(&["reserved"]).inc();
}

/// A reservation refused for insufficient stock.
pub(crate) fn refused() {
    RESERVATIONS.with_label_values(&["refused"]).inc();
}

/// `count` reservations moved to `status` (`committed`, `released`, `restocked`, `expired`).
pub(crate) fn ended(status: &'static str, count: usize) {
    if count > 0 {
        ENDED
            .with_label_values(&[status])
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }
}
