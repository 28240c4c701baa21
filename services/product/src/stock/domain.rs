//! Pure stock rules: the reservation state machine, stock change kinds, and the parsing of a
//! reservation request into merged, sorted lines. No I/O here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::settings::MIN_RESERVATION_TTL;

/// Most lines one reservation request may carry (before merging).
pub const MAX_LINES: usize = 100;
/// Most units of one SKU one reservation may hold (after merging duplicate lines).
pub const MAX_LINE_QUANTITY: i64 = 9_999;
/// Highest on-hand quantity AdjustStock accepts.
pub const MAX_ON_HAND: i64 = 1_000_000_000;
/// Longest free-text reason (history, release, restock).
pub const MAX_REASON_CHARS: usize = 200;
/// Longest AdjustStock idempotency key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// One invalid request field: its path relative to the request and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path, e.g. `lines[3].quantity`.
    pub field: String,
    /// Lowercase explanation for the client.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The state of a reservation (`ReservationStatus` without the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    /// Units are held.
    Pending,
    /// The order was paid; the units left stock.
    Committed,
    /// Given back before payment.
    Released,
    /// Released by the sweeper after its TTL.
    Expired,
    /// Committed units went back on hand.
    Returned,
}

impl ReservationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Committed => "COMMITTED",
            Self::Released => "RELEASED",
            Self::Expired => "EXPIRED",
            Self::Returned => "RETURNED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "PENDING" => Some(Self::Pending),
            "COMMITTED" => Some(Self::Committed),
            "RELEASED" => Some(Self::Released),
            "EXPIRED" => Some(Self::Expired),
            "RETURNED" => Some(Self::Returned),
            _ => None,
        }
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What caused a stock change (`StockChangeKind` without the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// AdjustStock.
    Adjustment,
    /// A reservation took units.
    Reservation,
    /// A reservation was committed.
    Commit,
    /// A reservation was released.
    Release,
    /// A reservation expired.
    Expiry,
    /// Committed units went back on hand.
    Return,
}

impl ChangeKind {
    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::Adjustment,
        Self::Reservation,
        Self::Commit,
        Self::Release,
        Self::Expiry,
        Self::Return,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adjustment => "ADJUSTMENT",
            Self::Reservation => "RESERVATION",
            Self::Commit => "COMMIT",
            Self::Release => "RELEASE",
            Self::Expiry => "EXPIRY",
            Self::Return => "RETURN",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    /// The fixed history reason of system changes.
    pub fn default_reason(self) -> &'static str {
        match self {
            Self::Adjustment => "stock adjusted",
            Self::Reservation => "reserved for order",
            Self::Commit => "order paid",
            Self::Release => "reservation released",
            Self::Expiry => "reservation expired",
            Self::Return => "paid order cancelled before shipping",
        }
    }
}

/// One merged reservation line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// The SKU.
    pub sku_id: Uuid,
    /// Units (1..=[`MAX_LINE_QUANTITY`]).
    pub quantity: i64,
}

/// A validated reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// The order, also the idempotency key.
    pub order_id: Uuid,
    /// Merged lines, sorted by sku_id (the lock order).
    pub lines: Vec<Line>,
    /// How long the reservation holds.
    pub ttl: Duration,
}

impl ReserveRequest {
    /// The hash of the merged lines that a replay must match.
    pub fn lines_hash(&self) -> String {
        lines_hash(&self.lines)
    }
}

/// The hash of merged, sorted lines.
pub fn lines_hash(lines: &[Line]) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.sku_id.as_bytes());
        hasher.update(line.quantity.to_be_bytes());
    }
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// A requested line before parsing, as the transport delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// The SKU id text.
    pub sku_id: &'a str,
    /// The quantity.
    pub quantity: i64,
}

/// Parses a UUID field.
pub fn parse_uuid(raw: &str, field: &str) -> Result<Uuid, Violation> {
    if raw.is_empty() {
        return Err(Violation::new(field, "is required"));
    }
    Uuid::parse_str(raw).map_err(|_| Violation::new(field, "must be a uuid"))
}

/// Validates a reservation request: the order id, 1-100 lines with UUID sku ids and quantities
/// of 1-9,999 that stay within 9,999 per SKU after merging, and a TTL between 1 minute and
/// `max_ttl` (`None` means `default_ttl`). Every violation is reported, each naming its field.
pub fn parse_reserve_request(
    order_id: &str,
    lines: &[RawLine<'_>],
    ttl: Option<Result<Duration, ()>>,
    default_ttl: Duration,
    max_ttl: Duration,
) -> Result<ReserveRequest, Vec<Violation>> {
    let mut violations = Vec::new();
    let order_id = parse_uuid(order_id, "order_id").map_err(|v| violations.push(v));
    if lines.is_empty() {
        violations.push(Violation::new("lines", "at least one line is required"));
    }
    if lines.len() > MAX_LINES {
        violations.push(Violation::new(
            "lines",
            format!("at most {MAX_LINES} lines are allowed"),
        ));
    }
    let mut merged: BTreeMap<Uuid, i64> = BTreeMap::new();
    // Per-line checks are skipped for oversized requests: one violation says it all, and a
    // thousand identical ones would only bloat the error.
    if lines.len() <= MAX_LINES {
        for (index, line) in lines.iter().enumerate() {
            let sku_id = parse_uuid(line.sku_id, &format!("lines[{index}].sku_id"))
                .map_err(|v| violations.push(v));
            let quantity_field = format!("lines[{index}].quantity");
            if !(1..=MAX_LINE_QUANTITY).contains(&line.quantity) {
                violations.push(Violation::new(
                    quantity_field,
                    format!("must be between 1 and {MAX_LINE_QUANTITY}"),
                ));
                continue;
            }
            let Ok(sku_id) = sku_id else { continue };
            let total = merged.entry(sku_id).or_insert(0);
            match total.checked_add(line.quantity) {
                Some(sum) if sum <= MAX_LINE_QUANTITY => *total = sum,
                Some(_) | None => violations.push(Violation::new(
                    quantity_field,
                    format!("the lines of sku {sku_id} add up to more than {MAX_LINE_QUANTITY}"),
                )),
            }
        }
    }
    let ttl = match ttl {
        None => Ok(default_ttl),
        Some(Ok(ttl)) if (MIN_RESERVATION_TTL..=max_ttl).contains(&ttl) => Ok(ttl),
        Some(Ok(_) | Err(())) => {
            violations.push(Violation::new(
                "ttl",
                format!(
                    "must be between {}s and {}s",
                    MIN_RESERVATION_TTL.as_secs(),
                    max_ttl.as_secs()
                ),
            ));
            Err(())
        }
    };
    match (order_id, ttl) {
        (Ok(order_id), Ok(ttl)) if violations.is_empty() => Ok(ReserveRequest {
            order_id,
            lines: merged
                .into_iter()
                .map(|(sku_id, quantity)| Line { sku_id, quantity })
                .collect(),
            ttl,
        }),
        _ => Err(violations),
    }
}

/// Validates a free-text reason: at most 200 characters, optionally required.
pub fn parse_reason(raw: &str, field: &str, required: bool) -> Result<String, Violation> {
    let reason = raw.trim();
    if required && reason.is_empty() {
        return Err(Violation::new(field, "is required"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Violation::new(
            field,
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// Validates an idempotency key: 1-128 printable ASCII characters.
pub fn parse_idempotency_key(raw: &str) -> Result<String, Violation> {
    let field = "idempotency_key";
    if raw.is_empty() {
        return Err(Violation::new(field, "is required"));
    }
    if raw.len() > MAX_IDEMPOTENCY_KEY_CHARS || !raw.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Violation::new(
            field,
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ascii characters"),
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Duration = Duration::from_secs(900);
    const MAX: Duration = Duration::from_secs(3600);

    fn sku(n: u8) -> String {
        Uuid::from_bytes([n; 16]).to_string()
    }

    #[test]
    fn duplicate_lines_are_merged_and_sorted() {
        let (a, b) = (sku(2), sku(1));
        let lines = [
            RawLine {
                sku_id: &a,
                quantity: 2,
            },
            RawLine {
                sku_id: &b,
                quantity: 1,
            },
            RawLine {
                sku_id: &a,
                quantity: 3,
            },
        ];
        let order = Uuid::now_v7().to_string();
        let request =
            parse_reserve_request(&order, &lines, None, DEFAULT, MAX).expect("a valid request");
        assert_eq!(request.ttl, DEFAULT);
        assert_eq!(
            request.lines,
            vec![
                Line {
                    sku_id: Uuid::from_bytes([1; 16]),
                    quantity: 1
                },
                Line {
                    sku_id: Uuid::from_bytes([2; 16]),
                    quantity: 5
                },
            ]
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let a = sku(1);
        let lines = [
            RawLine {
                sku_id: &a,
                quantity: 0,
            },
            RawLine {
                sku_id: "nope",
                quantity: 1,
            },
            RawLine {
                sku_id: &a,
                quantity: -4,
            },
        ];
        let violations =
            parse_reserve_request("x", &lines, Some(Ok(Duration::from_secs(59))), DEFAULT, MAX)
                .expect_err("invalid");
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "order_id",
                "lines[0].quantity",
                "lines[1].sku_id",
                "lines[2].quantity",
                "ttl"
            ]
        );
    }

    #[test]
    fn merged_quantities_may_not_exceed_the_line_limit() {
        let a = sku(1);
        let lines = [
            RawLine {
                sku_id: &a,
                quantity: 9_000,
            },
            RawLine {
                sku_id: &a,
                quantity: 1_000,
            },
        ];
        let order = Uuid::now_v7().to_string();
        let violations =
            parse_reserve_request(&order, &lines, None, DEFAULT, MAX).expect_err("too many");
        assert_eq!(violations[0].field, "lines[1].quantity");
    }

    #[test]
    fn the_same_lines_hash_alike_and_different_lines_do_not() {
        let one = [Line {
            sku_id: Uuid::from_bytes([1; 16]),
            quantity: 1,
        }];
        let two = [Line {
            sku_id: Uuid::from_bytes([1; 16]),
            quantity: 2,
        }];
        assert_eq!(lines_hash(&one), lines_hash(&one));
        assert_ne!(lines_hash(&one), lines_hash(&two));
    }

    #[test]
    fn statuses_and_kinds_round_trip() {
        for status in [
            ReservationStatus::Pending,
            ReservationStatus::Committed,
            ReservationStatus::Released,
            ReservationStatus::Expired,
            ReservationStatus::Returned,
        ] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
        }
    }
}
