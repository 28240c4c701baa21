//! The BFF's own Prometheus series (beside the RPC series every gRPC server records, see
//! `mercato_platform::metrics`):
//!
//! | series | type | labels | what |
//! |---|---|---|---|
//! | `mercato_bff_auth_failures_total` | counter | `reason` | requests refused at the edge for their credentials: `token_missing`, `not_bearer`, `invalid_subject`, or why the token failed ([`TokenError::metric_reason`]) |
//! | `mercato_bff_rate_limited_total` | counter | `class`, `subject` | requests over budget, by route class and whose budget (`ip` or `user`; never the value) |
//! | `mercato_bff_rate_limiter_unavailable_total` | counter | `class` | checks Redis could not answer (auth fails closed, the rest open) |
//! | `mercato_bff_jwks_refreshes_total` | counter | `issuer`, `outcome` | JWKS fetches per configured issuer, `ok` or `error` |

use std::sync::LazyLock;

use mercato_platform::metrics::{counter_vec, prometheus::IntCounterVec};

use crate::jwt::TokenError;

/// Every reason [`auth_failed`] is called with.
const AUTH_REASONS: [&str; 11] = [
    "token_missing",
    "not_bearer",
    "invalid_subject",
    "malformed",
    "algorithm_not_allowed",
    "missing_kid",
    "untrusted_issuer",
    "unknown_kid",
    "algorithm_mismatch",
    "expired",
    "invalid",
];

/// The route classes that have budgets.
const CLASSES: [&str; 3] = ["auth", "read", "write"];

// Known label values are created at zero, so each series exists before its first increment.
static AUTH_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = counter_vec(
        "mercato_bff_auth_failures_total",
        "Requests the edge refused for their credentials, by reason",
        &["reason"],
    );
    for reason in AUTH_REASONS {
        counter.with_label_values(&[reason]);
    }
    counter
});

static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = counter_vec(
        "mercato_bff_rate_limited_total",
        "Requests refused as over budget, by route class and subject kind",
        &["class", "subject"],
    );
    for class in CLASSES {
        for subject in ["ip", "user"] {
            counter.with_label_values(&[class, subject]);
        }
    }
    counter
});

static LIMITER_UNAVAILABLE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = counter_vec(
        "mercato_bff_rate_limiter_unavailable_total",
        "Rate-limit checks Redis could not answer, by route class",
        &["class"],
    );
    for class in CLASSES {
        counter.with_label_values(&[class]);
    }
    counter
});

/// Creates the BFF's series (at zero) before any request arrives.
pub fn register() {
    LazyLock::force(&AUTH_FAILURES);
    LazyLock::force(&RATE_LIMITED);
    LazyLock::force(&LIMITER_UNAVAILABLE);
    LazyLock::force(&JWKS_REFRESHES);
}

static JWKS_REFRESHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "mercato_bff_jwks_refreshes_total",
        "JWKS fetches, by issuer and outcome",
        &["issuer", "outcome"],
    )
});

/// A request refused for its token.
pub(crate) fn token_refused(error: &TokenError) {
    auth_failed(error.metric_reason());
}

/// A request refused for its credentials (`reason` is a fixed label value).
pub(crate) fn auth_failed(reason: &'static str) {
    AUTH_FAILURES.with_label_values(&[reason]).inc();
}

/// A request over the budget of `subject` (`ip` or `user`).
pub(crate) fn rate_limited(class: &'static str, subject: &'static str) {
    RATE_LIMITED.with_label_values(&[class, subject]).inc();
}

/// A rate-limit check Redis did not answer.
pub(crate) fn limiter_unavailable(class: &'static str) {
    LIMITER_UNAVAILABLE.with_label_values(&[class]).inc();
}

/// One JWKS fetch of a configured `issuer`.
pub(crate) fn jwks_refreshed(issuer: &str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    JWKS_REFRESHES.with_label_values(&[issuer, outcome]).inc();
}
