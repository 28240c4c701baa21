//! Pure rules of fulfilment: shipment and notification states, what the worker does next with a
//! shipment, retry backoff, tracking numbers, dedupe keys and notification templates. No tonic,
//! sqlx or lapin here.

use std::collections::BTreeMap;
use std::time::Duration;

/// Where a shipment is (`mercato.common.v1.ShipmentStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentStatus {
    /// Created from order.paid; stock being committed, parcel being prepared.
    Preparing,
    /// Handed to the carrier (the order is SHIPPED).
    Shipped,
    /// Delivered (the order is FINISHED); terminal.
    Delivered,
    /// Withdrawn because the order ended before it shipped; terminal.
    Cancelled,
}

impl ShipmentStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preparing => "PREPARING",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "PREPARING" => Some(Self::Preparing),
            "SHIPPED" => Some(Self::Shipped),
            "DELIVERED" => Some(Self::Delivered),
            "CANCELLED" => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// Whether nothing more happens to the shipment.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Delivered | Self::Cancelled)
    }
}

/// The step the worker takes next with a shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Commit the order's stock reservation (`StockService.CommitReservation`).
    CommitStock,
    /// Hand the parcel over (`OrderService.MarkOrderShipped`, then SHIPPED).
    Ship,
    /// Record the delivery (`OrderService.MarkOrderFinished`, then DELIVERED).
    Deliver,
    /// Nothing: the shipment is terminal.
    Done,
}

/// What comes next for a shipment in `status` whose stock is (or is not yet) committed. Every
/// remote step is idempotent and the local state changes only after it succeeded, so taking the
/// same step again after a crash is always safe.
pub fn next_step(status: ShipmentStatus, stock_committed: bool) -> Step {
    match status {
        ShipmentStatus::Preparing if !stock_committed => Step::CommitStock,
        ShipmentStatus::Preparing => Step::Ship,
        ShipmentStatus::Shipped => Step::Deliver,
        ShipmentStatus::Delivered | ShipmentStatus::Cancelled => Step::Done,
    }
}

/// The wait before retry number `attempts` (1 = after the first failure): `base` doubled per
/// failure, never above `max`.
pub fn backoff(attempts: i32, base: Duration, max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.checked_mul(1_u32 << exponent).unwrap_or(max).min(max)
}

/// The simulated carrier's name.
pub const SIMULATED_CARRIER: &str = "simulated";

/// A tracking number for the simulated carrier: `SIM-` and 12 random upper-case hex digits.
pub fn simulated_tracking_number(random: u64) -> String {
    format!("SIM-{:012X}", random & 0xFFFF_FFFF_FFFF)
}

/// Whether `raw` is a valid tracking number: 1-64 characters of ASCII letters, digits and `-`.
pub fn valid_tracking_number(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The state of a notification (`mercato.process.v1.NotificationStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    /// Waiting for the sender.
    Pending,
    /// Delivered; terminal.
    Sent,
    /// Gave up after the maximum attempts; RetryNotification queues it again.
    Failed,
}

impl NotificationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "PENDING" => Some(Self::Pending),
            "SENT" => Some(Self::Sent),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What a notification is about (`mercato.common.v1.NotificationKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// Welcome after registration.
    Welcome,
    /// Order paid and confirmed.
    OrderConfirmed,
    /// Payment failed, order cancelled.
    PaymentFailed,
    /// Parcel shipped.
    OrderShipped,
    /// Parcel delivered.
    OrderDelivered,
    /// Order cancelled.
    OrderCancelled,
    /// Order expired unpaid.
    OrderExpired,
    /// Refund issued.
    RefundIssued,
    /// A seller's SKU runs low.
    LowStock,
}

impl NotificationKind {
    /// Every kind.
    pub const ALL: [Self; 9] = [
        Self::Welcome,
        Self::OrderConfirmed,
        Self::PaymentFailed,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::OrderCancelled,
        Self::OrderExpired,
        Self::RefundIssued,
        Self::LowStock,
    ];

    /// The stored name (the enum value without its prefix).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Welcome => "WELCOME",
            Self::OrderConfirmed => "ORDER_CONFIRMED",
            Self::PaymentFailed => "PAYMENT_FAILED",
            Self::OrderShipped => "ORDER_SHIPPED",
            Self::OrderDelivered => "ORDER_DELIVERED",
            Self::OrderCancelled => "ORDER_CANCELLED",
            Self::OrderExpired => "ORDER_EXPIRED",
            Self::RefundIssued => "REFUND_ISSUED",
            Self::LowStock => "LOW_STOCK",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    /// The dedupe key of this kind of notification about `order_id` (`order_shipped:{id}`).
    pub fn order_key(self, order_id: &str) -> String {
        format!("{}:{order_id}", self.as_str().to_lowercase())
    }

    /// The subject and body for `parameters` (missing parameters render as empty text).
    pub fn render(self, parameters: &BTreeMap<String, String>) -> (String, String) {
        let p = |key: &str| parameters.get(key).map_or("", String::as_str);
        match self {
            Self::Welcome => (
                "Welcome to Mercato".to_owned(),
                format!("Hello {}, your account is ready.", p("display_name")),
            ),
            Self::OrderConfirmed => (
                format!("Order {} confirmed", p("order_id")),
                format!(
                    "We received your payment of {} for order {}. We are preparing your parcel.",
                    p("total"),
                    p("order_id")
                ),
            ),
            Self::PaymentFailed => (
                format!("Payment for order {} failed", p("order_id")),
                format!(
                    "Your payment for order {} failed: {}. The order was cancelled.",
                    p("order_id"),
                    p("failure_message")
                ),
            ),
            Self::OrderShipped => {
                let mut body = format!(
                    "Order {} was handed to {} with tracking number {}.",
                    p("order_id"),
                    p("carrier"),
                    p("tracking_number")
                );
                if !p("tracking_url").is_empty() {
                    body.push_str(&format!(" Track it at {}.", p("tracking_url")));
                }
                (format!("Order {} shipped", p("order_id")), body)
            }
            Self::OrderDelivered => (
                format!("Order {} delivered", p("order_id")),
                format!(
                    "Order {} was delivered. Thank you for shopping.",
                    p("order_id")
                ),
            ),
            Self::OrderCancelled => (
                format!("Order {} cancelled", p("order_id")),
                format!("Order {} was cancelled ({}).", p("order_id"), p("reason")),
            ),
            Self::OrderExpired => (
                format!("Order {} expired", p("order_id")),
                format!("Order {} was not paid in time and expired.", p("order_id")),
            ),
            Self::RefundIssued => (
                format!("Refund for order {}", p("order_id")),
                format!("We refunded {} for order {}.", p("amount"), p("order_id")),
            ),
            Self::LowStock => (
                format!("SKU {} runs low", p("sku_code")),
                format!(
                    "Only {} units of {} are left.",
                    p("available"),
                    p("sku_code")
                ),
            ),
        }
    }
}

/// The recipient as shown to operators: `u***@example.com` for an address, the text unchanged
/// otherwise (the log sink addresses users by id).
pub fn mask_recipient(recipient: &str) -> String {
    match recipient.split_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        _ => recipient.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipment_commits_stock_then_ships_then_delivers_then_rests() {
        use ShipmentStatus as S;
        assert_eq!(next_step(S::Preparing, false), Step::CommitStock);
        assert_eq!(next_step(S::Preparing, true), Step::Ship);
        assert_eq!(next_step(S::Shipped, true), Step::Deliver);
        assert_eq!(next_step(S::Delivered, true), Step::Done);
        assert_eq!(next_step(S::Cancelled, false), Step::Done);
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(1, base, max), Duration::from_millis(100));
        assert_eq!(backoff(2, base, max), Duration::from_millis(200));
        assert_eq!(backoff(4, base, max), Duration::from_millis(800));
        assert_eq!(backoff(5, base, max), max);
        assert_eq!(backoff(1_000, base, max), max);
        assert_eq!(backoff(0, base, max), base);
    }

    #[test]
    fn simulated_tracking_numbers_are_valid_tracking_numbers() {
        for random in [0, 1, u64::MAX, 0xDEAD_BEEF] {
            let number = simulated_tracking_number(random);
            assert!(valid_tracking_number(&number), "{number}");
            assert_eq!(number.len(), 16);
        }
        assert!(!valid_tracking_number(""));
        assert!(!valid_tracking_number("has space"));
        assert!(!valid_tracking_number(&"9".repeat(65)));
    }

    #[test]
    fn every_kind_round_trips_and_order_keys_name_kind_and_order() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            NotificationKind::OrderShipped.order_key("o-1"),
            "order_shipped:o-1"
        );
    }

    #[test]
    fn the_shipped_template_names_carrier_and_tracking_number() {
        let parameters: BTreeMap<String, String> = [
            ("order_id", "o-1"),
            ("carrier", "simulated"),
            ("tracking_number", "SIM-1"),
            ("tracking_url", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (subject, body) = NotificationKind::OrderShipped.render(&parameters);
        assert_eq!(subject, "Order o-1 shipped");
        assert!(
            body.contains("simulated") && body.contains("SIM-1"),
            "{body}"
        );
        assert!(!body.contains("Track it"), "{body}");
    }

    #[test]
    fn addresses_are_masked_and_user_ids_shown() {
        assert_eq!(mask_recipient("taro@example.com"), "t***@example.com");
        assert_eq!(mask_recipient("user:0190"), "user:0190");
    }
}
