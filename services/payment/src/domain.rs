//! The payment domain, pure: methods, the monotonic payment state machine, refund arithmetic and
//! the idempotency keys derived from an order. No tonic, sqlx or provider types.
//!
//! ```text
//! PENDING < REQUIRES_ACTION < PROCESSING < { SUCCEEDED, FAILED, CANCELLED }
//!                                            SUCCEEDED < PARTIALLY_REFUNDED < REFUNDED
//! ```
//! Provider observations only ever move a payment forward: an observation at or below the current
//! rank (a late `processing` after `succeeded`) is ignored, and FAILED, CANCELLED and anything at
//! or after SUCCEEDED never take a provider status again. Only refunds move a SUCCEEDED payment.

use mercato_proto::mercato::common::v1::{PaymentMethod, PaymentStatus};
use uuid::Uuid;

/// How the buyer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Card through Stripe (served by the sandbox provider when no Stripe provider is set up).
    Stripe,
    /// The points wallet.
    Points,
    /// The built-in sandbox provider.
    Sandbox,
}

impl Method {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "STRIPE",
            Self::Points => "POINTS",
            Self::Sandbox => "SANDBOX",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Stripe, Self::Points, Self::Sandbox]
            .into_iter()
            .find(|m| m.as_str() == raw)
    }

    /// The wire enum.
    pub fn to_proto(self) -> PaymentMethod {
        match self {
            Self::Stripe => PaymentMethod::Stripe,
            Self::Points => PaymentMethod::Points,
            Self::Sandbox => PaymentMethod::Sandbox,
        }
    }

    /// The domain method of a wire enum; `None` for UNSPECIFIED.
    pub fn from_proto(method: PaymentMethod) -> Option<Self> {
        match method {
            PaymentMethod::Unspecified => None,
            PaymentMethod::Stripe => Some(Self::Stripe),
            PaymentMethod::Points => Some(Self::Points),
            PaymentMethod::Sandbox => Some(Self::Sandbox),
        }
    }
}

/// The state of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Recorded; the provider has not been asked yet.
    Pending,
    /// The buyer must act (open the page, confirm the intent).
    RequiresAction,
    /// The provider is processing it.
    Processing,
    /// Money captured.
    Succeeded,
    /// Definitively failed (terminal).
    Failed,
    /// Abandoned before success (terminal).
    Cancelled,
    /// Part of the captured amount was refunded.
    PartiallyRefunded,
    /// Everything was refunded (terminal).
    Refunded,
}

/// Every status, for tests and exhaustive checks.
pub const ALL: [Status; 8] = [
    Status::Pending,
    Status::RequiresAction,
    Status::Processing,
    Status::Succeeded,
    Status::Failed,
    Status::Cancelled,
    Status::PartiallyRefunded,
    Status::Refunded,
];

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::RequiresAction => "REQUIRES_ACTION",
            Self::Processing => "PROCESSING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Self::Refunded => "REFUNDED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The wire enum.
    pub fn to_proto(self) -> PaymentStatus {
        match self {
            Self::Pending => PaymentStatus::Pending,
            Self::RequiresAction => PaymentStatus::RequiresAction,
            Self::Processing => PaymentStatus::Processing,
            Self::Succeeded => PaymentStatus::Succeeded,
            Self::Failed => PaymentStatus::Failed,
            Self::Cancelled => PaymentStatus::Cancelled,
            Self::PartiallyRefunded => PaymentStatus::PartiallyRefunded,
            Self::Refunded => PaymentStatus::Refunded,
        }
    }

    /// The domain status of a wire enum; `None` for UNSPECIFIED.
    pub fn from_proto(status: PaymentStatus) -> Option<Self> {
        match status {
            PaymentStatus::Unspecified => None,
            PaymentStatus::Pending => Some(Self::Pending),
            PaymentStatus::RequiresAction => Some(Self::RequiresAction),
            PaymentStatus::Processing => Some(Self::Processing),
            PaymentStatus::Succeeded => Some(Self::Succeeded),
            PaymentStatus::Failed => Some(Self::Failed),
            PaymentStatus::Cancelled => Some(Self::Cancelled),
            PaymentStatus::PartiallyRefunded => Some(Self::PartiallyRefunded),
            PaymentStatus::Refunded => Some(Self::Refunded),
        }
    }

    /// Position in the monotonic order (ties are incomparable siblings).
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::RequiresAction => 1,
            Self::Processing => 2,
            Self::Succeeded | Self::Failed | Self::Cancelled => 3,
            Self::PartiallyRefunded => 4,
            Self::Refunded => 5,
        }
    }

    /// Not settled yet: the provider may still report a change.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::RequiresAction | Self::Processing
        )
    }

    /// Money was captured and not all of it given back.
    pub fn is_captured(self) -> bool {
        matches!(self, Self::Succeeded | Self::PartiallyRefunded)
    }
}

/// What the provider says about an intent, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The buyer must act.
    RequiresAction,
    /// Processing at the provider.
    Processing,
    /// Captured.
    Succeeded,
    /// Failed, with the provider's code and a message safe to show the buyer.
    Failed {
        /// E.g. `card_declined`.
        code: String,
        /// E.g. "your card was declined".
        message: String,
    },
    /// Cancelled at the provider.
    Cancelled,
}

impl Observed {
    /// The payment status this observation stands for.
    pub fn status(&self) -> Status {
        match self {
            Self::RequiresAction => Status::RequiresAction,
            Self::Processing => Status::Processing,
            Self::Succeeded => Status::Succeeded,
            Self::Failed { .. } => Status::Failed,
            Self::Cancelled => Status::Cancelled,
        }
    }
}

/// Whether a payment in `current` takes the provider's `observed` status: only an open payment
/// moves, and only forwards. `None` means "ignore" (stale or regressing).
pub fn advance(current: Status, observed: &Observed) -> Option<Status> {
    let target = observed.status();
    (current.is_open() && target.rank() > current.rank()).then_some(target)
}

/// The status of a captured payment of `amount` after refunds totalling `refunded`.
pub fn after_refunds(amount: i64, refunded: i64) -> Status {
    if refunded >= amount {
        Status::Refunded
    } else if refunded > 0 {
        Status::PartiallyRefunded
    } else {
        Status::Succeeded
    }
}

/// The provider idempotency key of the intent of `order_id`: every attempt to create the
/// order's payment (redeliveries, crashes, concurrent duplicates) sends the same key.
pub fn intent_key(order_id: Uuid) -> String {
    format!("mercato-order-{}", order_id.simple())
}

/// The idempotency scope of the automatic refund of a cancelled or expired order.
pub fn cancellation_refund_scope(order_id: Uuid) -> String {
    format!("order-cancelled:{}", order_id.simple())
}

/// Whether `key` is an acceptable client idempotency key: 1-128 printable ASCII characters.
pub fn valid_idempotency_key(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn observed(status: Status) -> Option<Observed> {
        match status {
            Status::RequiresAction => Some(Observed::RequiresAction),
            Status::Processing => Some(Observed::Processing),
            Status::Succeeded => Some(Observed::Succeeded),
            Status::Failed => Some(Observed::Failed {
                code: "card_declined".to_owned(),
                message: "declined".to_owned(),
            }),
            Status::Cancelled => Some(Observed::Cancelled),
            Status::Pending | Status::PartiallyRefunded | Status::Refunded => None,
        }
    }

    #[test]
    fn stored_names_and_wire_values_round_trip() {
        for status in ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(Status::from_proto(status.to_proto()), Some(status));
        }
        for method in [Method::Stripe, Method::Points, Method::Sandbox] {
            assert_eq!(Method::parse(method.as_str()), Some(method));
            assert_eq!(Method::from_proto(method.to_proto()), Some(method));
        }
    }

    #[test]
    fn a_late_processing_never_regresses_a_succeeded_payment() {
        assert_eq!(advance(Status::Succeeded, &Observed::Processing), None);
    }

    #[test]
    fn a_failure_after_success_is_ignored() {
        let failed = observed(Status::Failed).expect("observable");
        assert_eq!(advance(Status::Succeeded, &failed), None);
    }

    #[test]
    fn success_before_processing_settles_and_the_processing_is_then_ignored() {
        let settled = advance(Status::RequiresAction, &Observed::Succeeded);
        assert_eq!(settled, Some(Status::Succeeded));
        assert_eq!(advance(Status::Succeeded, &Observed::Processing), None);
    }

    #[test]
    fn refund_totals_decide_between_partial_and_full() {
        assert_eq!(after_refunds(1_000, 0), Status::Succeeded);
        assert_eq!(after_refunds(1_000, 1), Status::PartiallyRefunded);
        assert_eq!(after_refunds(1_000, 1_000), Status::Refunded);
    }

    #[test]
    fn idempotency_keys_are_printable_ascii_of_bounded_length() {
        assert!(valid_idempotency_key("a"));
        assert!(valid_idempotency_key(&"k".repeat(128)));
        assert!(!valid_idempotency_key(""));
        assert!(!valid_idempotency_key(&"k".repeat(129)));
        assert!(!valid_idempotency_key("has space"));
        assert!(!valid_idempotency_key("ключ"));
    }

    fn any_status() -> impl Strategy<Value = Status> {
        prop::sample::select(ALL.to_vec())
    }

    proptest! {
        /// Whatever sequence of provider observations arrives, in whatever order, the payment
        /// only moves up in rank, never leaves a settled state, and ends settled as soon as one
        /// settling observation arrived.
        #[test]
        fn provider_observations_only_move_a_payment_forward(
            sequence in prop::collection::vec(any_status(), 0..12)
        ) {
            let mut current = Status::Pending;
            let mut settled_seen = false;
            for next in sequence {
                let Some(obs) = observed(next) else { continue };
                settled_seen |= !obs.status().is_open();
                if let Some(moved) = advance(current, &obs) {
                    prop_assert!(moved.rank() > current.rank());
                    prop_assert!(current.is_open());
                    current = moved;
                }
            }
            prop_assert_eq!(!current.is_open(), settled_seen);
        }
    }
}
