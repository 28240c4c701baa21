//! The coupon rules, free of I/O: validating definitions and campaigns, the discount a coupon
//! grants, whether a user coupon may be applied, the status a user coupon shows at a given time,
//! and where a campaign stands in its window. The store and the gRPC layer only move data in and
//! out of these functions.

use chrono::{DateTime, Duration, Utc};
use mercato_platform::error::Violation;

/// Longest coupon or campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest coupon description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Validity of a user coupon, in days.
pub const VALIDITY_DAYS: std::ops::RangeInclusive<i32> = 1..=3_650;
/// Coupons one campaign may issue.
pub const TOTAL_QUANTITY: std::ops::RangeInclusive<i64> = 1..=10_000_000;
/// Percentages a PERCENT coupon may take off.
pub const PERCENT_OFF: std::ops::RangeInclusive<i32> = 1..=100;

/// How a coupon computes its discount, with the numbers it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// A fixed amount off (minor units, > 0).
    Fixed {
        /// The amount off.
        amount: i64,
    },
    /// A percentage off, rounded down, optionally capped.
    Percent {
        /// 1-100.
        percent: i32,
        /// The largest discount, when set (minor units, > 0).
        cap: Option<i64>,
    },
}

impl Discount {
    /// The stored kind name.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Fixed { .. } => Kind::Fixed,
            Self::Percent { .. } => Kind::Percent,
        }
    }

    /// What this discount takes off `subtotal` (never negative, never above the subtotal).
    ///
    /// FIXED: `min(amount, subtotal)`; PERCENT: `floor(subtotal × percent / 100)`, capped.
    pub fn amount_off(&self, subtotal: i64) -> i64 {
        let subtotal = subtotal.max(0);
        let raw = match *self {
            Self::Fixed { amount } => amount,
            Self::Percent { percent, cap } => {
                // i128 so that subtotal × percent cannot overflow; the quotient is at most the
                // subtotal, which fits an i64.
                let floored = i128::from(subtotal) * i128::from(percent) / 100;
                let floored = i64::try_from(floored).unwrap_or(subtotal);
                cap.map_or(floored, |cap| floored.min(cap))
            }
        };
        raw.clamp(0, subtotal)
    }
}

/// The kind of a coupon (`kind` column, `CouponKind` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A fixed amount off.
    Fixed,
    /// A percentage off.
    Percent,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "FIXED",
            Self::Percent => "PERCENT",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "FIXED" => Some(Self::Fixed),
            "PERCENT" => Some(Self::Percent),
            _ => None,
        }
    }
}

/// A validated coupon definition (what CreateCoupon stores and every user coupon snapshots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// Shown to users; 1-100 characters, trimmed.
    pub name: String,
    /// At most 500 characters, trimmed.
    pub description: String,
    /// How the discount is computed.
    pub discount: Discount,
    /// Smallest subtotal the coupon applies to; `None` = no minimum.
    pub minimum_order_amount: Option<i64>,
    /// Days a user coupon stays usable after it is issued.
    pub validity_days: i32,
}

/// An amount of money as a request carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount<'a> {
    /// ISO 4217 code.
    pub currency: &'a str,
    /// Minor units.
    pub minor: i64,
}

/// A coupon definition as a request carries it, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefinitionInput<'a> {
    /// Name.
    pub name: &'a str,
    /// Description.
    pub description: &'a str,
    /// The kind; `None` when unspecified or unknown.
    pub kind: Option<Kind>,
    /// `fixed_discount`, when set.
    pub fixed_discount: Option<Amount<'a>>,
    /// `percent_off` (0 = unset).
    pub percent_off: i32,
    /// `max_discount`, when set.
    pub max_discount: Option<Amount<'a>>,
    /// `minimum_order_amount`, when set.
    pub minimum_order_amount: Option<Amount<'a>>,
    /// `validity_days`.
    pub validity_days: i32,
}

/// Why a definition or campaign is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Fields with bad values (every one named).
    Fields(Vec<Violation>),
    /// The only problem is an amount in a currency other than the shop's.
    CurrencyMismatch {
        /// The field path, e.g. `coupon.fixed_discount`.
        field: String,
        /// The shop currency.
        expected: String,
    },
}

/// Collects violations and currency mismatches, and decides which error they make.
#[derive(Debug, Default)]
struct Problems {
    violations: Vec<Violation>,
    currency: Vec<String>,
}

impl Problems {
    fn field(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(Violation::new(field, description));
    }

    /// Checks the currency and the range of an amount; `None` when it is not usable.
    fn amount(
        &mut self,
        amount: Amount<'_>,
        field: &str,
        shop_currency: &str,
        minimum: i64,
    ) -> Option<i64> {
        let mut usable = true;
        if amount.currency != shop_currency {
            self.currency.push(field.to_owned());
            usable = false;
        }
        if amount.minor < minimum {
            let rule = if minimum == 0 {
                "must not be negative"
            } else {
                "must be more than 0"
            };
            self.field(format!("{field}.amount_minor"), rule);
            usable = false;
        }
        usable.then_some(amount.minor)
    }

    /// `Ok` when nothing is wrong. Bad values win over currency mismatches (which are then
    /// listed among the violations); a currency mismatch alone is CURRENCY_MISMATCH.
    fn finish(self, shop_currency: &str) -> Result<(), Invalid> {
        let Self {
            mut violations,
            currency,
        } = self;
        if violations.is_empty() {
            return match currency.into_iter().next() {
                None => Ok(()),
                Some(field) => Err(Invalid::CurrencyMismatch {
                    field: format!("{field}.currency_code"),
                    expected: shop_currency.to_owned(),
                }),
            };
        }
        for field in currency {
            violations.push(Violation::new(
                format!("{field}.currency_code"),
                format!("must be the shop currency {shop_currency}"),
            ));
        }
        Err(Invalid::Fields(violations))
    }
}

/// A required text of 1-`max` characters (trimmed).
fn text(
    raw: &str,
    field: &str,
    max: usize,
    required: bool,
    problems: &mut Problems,
) -> Option<String> {
    let value = raw.trim();
    if required && value.is_empty() {
        problems.field(field, "is required");
        None
    } else if value.chars().count() > max {
        problems.field(field, format!("must be at most {max} characters"));
        None
    } else {
        Some(value.to_owned())
    }
}

/// Validates a coupon definition, with field paths under `prefix` (`coupon`). Amounts must be in
/// `shop_currency`.
pub fn validate_definition(
    input: &DefinitionInput<'_>,
    prefix: &str,
    shop_currency: &str,
) -> Result<Definition, Invalid> {
    let path = |field: &str| format!("{prefix}.{field}");
    let mut problems = Problems::default();
    let name = text(
        input.name,
        &path("name"),
        MAX_NAME_CHARS,
        true,
        &mut problems,
    );
    let description = text(
        input.description,
        &path("description"),
        MAX_DESCRIPTION_CHARS,
        false,
        &mut problems,
    );
    let discount = match input.kind {
        None => {
            problems.field(
                path("kind"),
                "must be COUPON_KIND_FIXED or COUPON_KIND_PERCENT",
            );
            None
        }
        Some(Kind::Fixed) => {
            if input.percent_off != 0 {
                problems.field(path("percent_off"), "must be 0 for a FIXED coupon");
            }
            if input.max_discount.is_some() {
                problems.field(path("max_discount"), "must be unset for a FIXED coupon");
            }
            match input.fixed_discount {
                None => {
                    problems.field(path("fixed_discount"), "is required for a FIXED coupon");
                    None
                }
                Some(amount) => problems
                    .amount(amount, &path("fixed_discount"), shop_currency, 1)
                    .map(|amount| Discount::Fixed { amount }),
            }
        }
        Some(Kind::Percent) => {
            if input.fixed_discount.is_some() {
                problems.field(path("fixed_discount"), "must be unset for a PERCENT coupon");
            }
            let percent = PERCENT_OFF.contains(&input.percent_off);
            if !percent {
                problems.field(
                    path("percent_off"),
                    "must be between 1 and 100 for a PERCENT coupon",
                );
            }
            let cap = match input.max_discount {
                None => Some(None),
                Some(cap) => problems
                    .amount(cap, &path("max_discount"), shop_currency, 1)
                    .map(Some),
            };
            match (percent, cap) {
                (true, Some(cap)) => Some(Discount::Percent {
                    percent: input.percent_off,
                    cap,
                }),
                (true, None) | (false, _) => None,
            }
        }
    };
    let minimum = match input.minimum_order_amount {
        None => Some(None),
        Some(minimum) => problems
            .amount(minimum, &path("minimum_order_amount"), shop_currency, 0)
            .map(Some),
    };
    if !VALIDITY_DAYS.contains(&input.validity_days) {
        problems.field(path("validity_days"), "must be between 1 and 3650");
    }
    problems.finish(shop_currency)?;
    match (name, description, discount, minimum) {
        (Some(name), Some(description), Some(discount), Some(minimum_order_amount)) => {
            Ok(Definition {
                name,
                description,
                discount,
                minimum_order_amount,
                validity_days: input.validity_days,
            })
        }
        // Every `None` above recorded a problem, so `finish` already returned.
        _ => Err(Invalid::Fields(vec![Violation::new(prefix, "is invalid")])),
    }
}

/// A validated campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    /// Shown to users; 1-100 characters, trimmed.
    pub name: String,
    /// Claims are accepted from here (inclusive).
    pub start_time: DateTime<Utc>,
    /// Claims are refused from here (exclusive).
    pub end_time: DateTime<Utc>,
    /// Coupons the campaign may issue.
    pub total_quantity: i64,
}

/// A campaign as a request carries it. Times are `None` when unset; `Err(())` when the timestamp
/// is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignInput<'a> {
    /// Name.
    pub name: &'a str,
    /// Start of the window.
    pub start_time: Option<Result<DateTime<Utc>, ()>>,
    /// End of the window.
    pub end_time: Option<Result<DateTime<Utc>, ()>>,
    /// Total quantity.
    pub total_quantity: i64,
}

/// Validates a campaign's name, window and quantity, with field paths under `prefix`.
pub fn validate_campaign(input: &CampaignInput<'_>, prefix: &str) -> Result<Campaign, Invalid> {
    let path = |field: &str| format!("{prefix}.{field}");
    let mut problems = Problems::default();
    let name = text(
        input.name,
        &path("name"),
        MAX_NAME_CHARS,
        true,
        &mut problems,
    );
    let mut time = |raw: Option<Result<DateTime<Utc>, ()>>, field: &str| match raw {
        None => {
            problems.field(path(field), "is required");
            None
        }
        Some(Err(())) => {
            problems.field(path(field), "is not a valid timestamp");
            None
        }
        Some(Ok(time)) => Some(time),
    };
    let start_time = time(input.start_time, "start_time");
    let end_time = time(input.end_time, "end_time");
    if let (Some(start), Some(end)) = (start_time, end_time)
        && end <= start
    {
        problems.field(path("end_time"), "must be after start_time");
    }
    if !TOTAL_QUANTITY.contains(&input.total_quantity) {
        problems.field(path("total_quantity"), "must be between 1 and 10000000");
    }
    // Campaigns carry no money, so there is no currency to mismatch.
    problems.finish("")?;
    match (name, start_time, end_time) {
        (Some(name), Some(start_time), Some(end_time)) => Ok(Campaign {
            name,
            start_time,
            end_time,
            total_quantity: input.total_quantity,
        }),
        _ => Err(Invalid::Fields(vec![Violation::new(prefix, "is invalid")])),
    }
}

/// When a coupon issued at `issue_time` with `validity_days` stops being usable.
pub fn expire_time(issue_time: DateTime<Utc>, validity_days: i32) -> DateTime<Utc> {
    issue_time + Duration::days(i64::from(validity_days))
}

/// The stored state of a user coupon (`status` column, `UserCouponStatus` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Unused (and unexpired, unless the sweeper has not caught up).
    Available,
    /// Applied to an order.
    Used,
    /// Past its expiry unused; terminal.
    Expired,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Used => "USED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "AVAILABLE" => Some(Self::Available),
            "USED" => Some(Self::Used),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }

    /// The status a user coupon shows at `now`: an AVAILABLE coupon at or past its expiry is
    /// EXPIRED, whether or not the sweeper has written that yet.
    pub fn at(self, expire_time: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        match self {
            Self::Available if now >= expire_time => Self::Expired,
            Self::Available | Self::Used | Self::Expired => self,
        }
    }
}

/// Why a user coupon cannot be applied to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Already used.
    NotAvailable,
    /// Expired (stored EXPIRED, or AVAILABLE past its expiry).
    Expired,
    /// The subtotal is below the coupon's minimum.
    MinimumNotMet {
        /// The minimum.
        minimum: i64,
    },
}

/// Whether a user coupon in `status`, expiring at `expire_time`, with `minimum` (if any), may be
/// applied to a subtotal of `subtotal` at `now`; checked in that order.
pub fn check_use(
    status: Status,
    expire_time: DateTime<Utc>,
    minimum: Option<i64>,
    subtotal: i64,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    match status.at(expire_time, now) {
        Status::Used => Err(Refusal::NotAvailable),
        Status::Expired => Err(Refusal::Expired),
        Status::Available => match minimum {
            Some(minimum) if subtotal < minimum => Err(Refusal::MinimumNotMet { minimum }),
            Some(_) | None => Ok(()),
        },
    }
}

/// The state a user coupon takes when its order is cancelled or expires at `now`: AVAILABLE
/// again, unless the coupon itself expired meanwhile.
pub fn restored_status(expire_time: DateTime<Utc>, now: DateTime<Utc>) -> Status {
    Status::Available.at(expire_time, now)
}

/// Where a campaign stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    /// Before `start_time`.
    Upcoming,
    /// In the window with coupons left.
    Running,
    /// In the window, every coupon issued.
    SoldOut,
    /// At or after `end_time`.
    Ended,
}

/// The state of a campaign with window `[start, end)` that issued `issued` of `total` at `now`.
/// The window decides first: an ended campaign is ENDED even if it sold out.
pub fn campaign_state(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    issued: i64,
    total: i64,
    now: DateTime<Utc>,
) -> CampaignState {
    if now < start {
        CampaignState::Upcoming
    } else if now >= end {
        CampaignState::Ended
    } else if issued >= total {
        CampaignState::SoldOut
    } else {
        CampaignState::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid time")
    }

    fn yen(minor: i64) -> Option<Amount<'static>> {
        Some(Amount {
            currency: "JPY",
            minor,
        })
    }

    fn fixed(amount: i64) -> DefinitionInput<'static> {
        DefinitionInput {
            name: "Spring 500 yen off",
            description: "",
            kind: Some(Kind::Fixed),
            fixed_discount: yen(amount),
            percent_off: 0,
            max_discount: None,
            minimum_order_amount: None,
            validity_days: 30,
        }
    }

    fn percent(percent_off: i32) -> DefinitionInput<'static> {
        DefinitionInput {
            kind: Some(Kind::Percent),
            fixed_discount: None,
            percent_off,
            ..fixed(0)
        }
    }

    fn fields(result: Result<Definition, Invalid>) -> Vec<String> {
        match result {
            Err(Invalid::Fields(violations)) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("expected field violations, got {other:?}"),
        }
    }

    #[test]
    fn a_fixed_discount_takes_its_amount_off() {
        assert_eq!(Discount::Fixed { amount: 500 }.amount_off(3_000), 500);
    }

    #[test]
    fn a_fixed_discount_never_exceeds_the_subtotal() {
        assert_eq!(Discount::Fixed { amount: 5_000 }.amount_off(1_200), 1_200);
        assert_eq!(Discount::Fixed { amount: 5_000 }.amount_off(0), 0);
    }

    #[test]
    fn a_percent_discount_is_rounded_down_to_a_whole_minor_unit() {
        let discount = Discount::Percent {
            percent: 15,
            cap: None,
        };
        // 999 × 15 / 100 = 149.85
        assert_eq!(discount.amount_off(999), 149);
        assert_eq!(discount.amount_off(6), 0, "0.9 rounds down to nothing");
    }

    #[test]
    fn a_percent_discount_is_capped_at_its_maximum() {
        let discount = Discount::Percent {
            percent: 50,
            cap: Some(300),
        };
        assert_eq!(discount.amount_off(2_000), 300);
        assert_eq!(
            discount.amount_off(400),
            200,
            "below the cap the percentage holds"
        );
    }

    #[test]
    fn a_hundred_percent_takes_off_exactly_the_subtotal() {
        let discount = Discount::Percent {
            percent: 100,
            cap: None,
        };
        assert_eq!(discount.amount_off(12_345), 12_345);
    }

    #[test]
    fn a_percent_discount_of_a_huge_subtotal_does_not_overflow() {
        let half = Discount::Percent {
            percent: 50,
            cap: None,
        };
        assert_eq!(half.amount_off(i64::MAX), i64::MAX / 2);
        let all = Discount::Percent {
            percent: 100,
            cap: None,
        };
        assert_eq!(all.amount_off(i64::MAX), i64::MAX);
    }

    #[test]
    fn a_valid_fixed_definition_is_accepted_trimmed() {
        let definition = validate_definition(
            &DefinitionInput {
                name: "  Spring  ",
                minimum_order_amount: yen(0),
                ..fixed(500)
            },
            "coupon",
            "JPY",
        )
        .expect("valid");
        assert_eq!(definition.name, "Spring");
        assert_eq!(definition.discount, Discount::Fixed { amount: 500 });
        assert_eq!(definition.minimum_order_amount, Some(0));
    }

    #[test]
    fn a_percent_set_on_a_fixed_coupon_is_refused_naming_the_field() {
        let input = DefinitionInput {
            percent_off: 10,
            ..fixed(500)
        };
        assert_eq!(
            fields(validate_definition(&input, "coupon", "JPY")),
            ["coupon.percent_off"]
        );
    }

    #[test]
    fn a_percent_outside_one_to_a_hundred_is_refused() {
        for bad in [0, 101, -5] {
            assert_eq!(
                fields(validate_definition(&percent(bad), "coupon", "JPY")),
                ["coupon.percent_off"],
                "{bad}"
            );
        }
        assert!(validate_definition(&percent(100), "coupon", "JPY").is_ok());
        assert!(validate_definition(&percent(1), "coupon", "JPY").is_ok());
    }

    #[test]
    fn a_fixed_amount_must_be_positive_and_present() {
        assert_eq!(
            fields(validate_definition(&fixed(0), "coupon", "JPY")),
            ["coupon.fixed_discount.amount_minor"]
        );
        let missing = DefinitionInput {
            fixed_discount: None,
            ..fixed(1)
        };
        assert_eq!(
            fields(validate_definition(&missing, "coupon", "JPY")),
            ["coupon.fixed_discount"]
        );
    }

    #[test]
    fn a_cap_on_a_fixed_coupon_and_an_amount_on_a_percent_coupon_are_refused() {
        let capped_fixed = DefinitionInput {
            max_discount: yen(100),
            ..fixed(500)
        };
        assert_eq!(
            fields(validate_definition(&capped_fixed, "coupon", "JPY")),
            ["coupon.max_discount"]
        );
        let fixed_percent = DefinitionInput {
            fixed_discount: yen(100),
            ..percent(10)
        };
        assert_eq!(
            fields(validate_definition(&fixed_percent, "coupon", "JPY")),
            ["coupon.fixed_discount"]
        );
    }

    #[test]
    fn validity_must_be_one_to_3650_days() {
        for bad in [0, 3_651, -1] {
            let input = DefinitionInput {
                validity_days: bad,
                ..fixed(500)
            };
            assert_eq!(
                fields(validate_definition(&input, "coupon", "JPY")),
                ["coupon.validity_days"],
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unspecified_kind_and_a_missing_name_are_both_named() {
        let input = DefinitionInput {
            name: "   ",
            kind: None,
            ..fixed(500)
        };
        assert_eq!(
            fields(validate_definition(&input, "coupon", "JPY")),
            ["coupon.name", "coupon.kind"]
        );
    }

    #[test]
    fn a_foreign_currency_alone_is_a_currency_mismatch() {
        let input = DefinitionInput {
            fixed_discount: Some(Amount {
                currency: "USD",
                minor: 500,
            }),
            ..fixed(500)
        };
        assert_eq!(
            validate_definition(&input, "coupon", "JPY"),
            Err(Invalid::CurrencyMismatch {
                field: "coupon.fixed_discount.currency_code".to_owned(),
                expected: "JPY".to_owned(),
            })
        );
    }

    #[test]
    fn a_foreign_currency_next_to_bad_values_is_listed_among_the_violations() {
        let input = DefinitionInput {
            minimum_order_amount: Some(Amount {
                currency: "EUR",
                minor: 100,
            }),
            validity_days: 0,
            ..fixed(500)
        };
        assert_eq!(
            fields(validate_definition(&input, "coupon", "JPY")),
            [
                "coupon.validity_days",
                "coupon.minimum_order_amount.currency_code"
            ]
        );
    }

    #[test]
    fn a_negative_minimum_is_refused() {
        let input = DefinitionInput {
            minimum_order_amount: yen(-1),
            ..fixed(500)
        };
        assert_eq!(
            fields(validate_definition(&input, "coupon", "JPY")),
            ["coupon.minimum_order_amount.amount_minor"]
        );
    }

    fn campaign(start: i64, end: i64, total: i64) -> CampaignInput<'static> {
        CampaignInput {
            name: "Flash sale",
            start_time: Some(Ok(at(start))),
            end_time: Some(Ok(at(end))),
            total_quantity: total,
        }
    }

    fn campaign_fields(result: Result<Campaign, Invalid>) -> Vec<String> {
        match result {
            Err(Invalid::Fields(violations)) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("expected field violations, got {other:?}"),
        }
    }

    #[test]
    fn a_campaign_must_end_after_it_starts() {
        for end in [0, -10] {
            assert_eq!(
                campaign_fields(validate_campaign(&campaign(0, end, 10), "campaign")),
                ["campaign.end_time"]
            );
        }
        assert!(validate_campaign(&campaign(0, 1, 10), "campaign").is_ok());
    }

    #[test]
    fn a_campaign_quantity_must_be_one_to_ten_million() {
        for bad in [0, -1, 10_000_001] {
            assert_eq!(
                campaign_fields(validate_campaign(&campaign(0, 60, bad), "campaign")),
                ["campaign.total_quantity"],
                "{bad}"
            );
        }
        assert!(validate_campaign(&campaign(0, 60, 10_000_000), "campaign").is_ok());
    }

    #[test]
    fn a_campaign_without_times_names_both() {
        let input = CampaignInput {
            start_time: None,
            end_time: Some(Err(())),
            ..campaign(0, 60, 10)
        };
        assert_eq!(
            campaign_fields(validate_campaign(&input, "campaign")),
            ["campaign.start_time", "campaign.end_time"]
        );
    }

    #[test]
    fn a_user_coupon_expires_validity_days_after_issue() {
        assert_eq!(expire_time(at(0), 7), at(7 * 86_400));
    }

    #[test]
    fn an_available_coupon_shows_expired_from_its_expiry_on() {
        let expiry = at(100);
        assert_eq!(Status::Available.at(expiry, at(99)), Status::Available);
        assert_eq!(Status::Available.at(expiry, at(100)), Status::Expired);
        assert_eq!(
            Status::Used.at(expiry, at(200)),
            Status::Used,
            "a used coupon stays used"
        );
    }

    #[test]
    fn a_coupon_is_checked_for_use_then_expiry_then_minimum() {
        let expiry = at(100);
        assert_eq!(
            check_use(Status::Used, expiry, Some(1_000), 10, at(200)),
            Err(Refusal::NotAvailable)
        );
        assert_eq!(
            check_use(Status::Available, expiry, Some(1_000), 10, at(100)),
            Err(Refusal::Expired)
        );
        assert_eq!(
            check_use(Status::Expired, expiry, None, 10, at(0)),
            Err(Refusal::Expired)
        );
        assert_eq!(
            check_use(Status::Available, expiry, Some(1_000), 999, at(0)),
            Err(Refusal::MinimumNotMet { minimum: 1_000 })
        );
        assert_eq!(
            check_use(Status::Available, expiry, Some(1_000), 1_000, at(0)),
            Ok(())
        );
        assert_eq!(check_use(Status::Available, expiry, None, 0, at(0)), Ok(()));
    }

    #[test]
    fn a_restored_coupon_is_available_unless_it_expired_meanwhile() {
        assert_eq!(restored_status(at(100), at(50)), Status::Available);
        assert_eq!(restored_status(at(100), at(100)), Status::Expired);
    }

    #[test]
    fn a_campaign_is_upcoming_running_sold_out_or_ended() {
        let (start, end) = (at(0), at(60));
        assert_eq!(
            campaign_state(start, end, 0, 10, at(-1)),
            CampaignState::Upcoming
        );
        assert_eq!(
            campaign_state(start, end, 9, 10, at(0)),
            CampaignState::Running
        );
        assert_eq!(
            campaign_state(start, end, 10, 10, at(59)),
            CampaignState::SoldOut
        );
        assert_eq!(
            campaign_state(start, end, 10, 10, at(60)),
            CampaignState::Ended,
            "the window decides first"
        );
    }

    #[test]
    fn stored_names_round_trip() {
        for status in [Status::Available, Status::Used, Status::Expired] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        for kind in [Kind::Fixed, Kind::Percent] {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Status::parse("LOST"), None);
    }
}
