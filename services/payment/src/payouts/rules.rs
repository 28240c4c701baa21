//! The pure rules of seller payouts: each seller's share of a paid order and the platform fee,
//! how much of a payout a refund takes back, what an account's provider flags mean, the keys
//! sent to the provider, and the retry backoff. No sqlx, tonic or Stripe types.
//!
//! Money is integer minor units throughout. The fee is `⌈gross × bps / 10 000⌉`: rounded up to a
//! whole minor unit, so the seller's net (`gross − fee`) is rounded down, in the platform's
//! favour (`mercato.payment.v1.Payout`). Coupon discounts and the shipping fee are the
//! platform's: a seller's gross is the plain total of their lines.

use std::collections::BTreeMap;
use std::time::Duration;

use mercato_proto::mercato::common::v1::{PayoutStatus, SellerAccountStatus};
use uuid::Uuid;

/// The most basis points there are: a fee of the whole amount.
pub const MAX_FEE_BPS: u16 = 10_000;

/// A seller's account state at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountStatus {
    /// Created; onboarding not finished.
    Onboarding,
    /// Transfers and payouts enabled: payouts are transferred.
    Active,
    /// Onboarding was submitted but the provider disabled transfers or payouts; payouts wait.
    Restricted,
}

impl AccountStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onboarding => "ONBOARDING",
            Self::Active => "ACTIVE",
            Self::Restricted => "RESTRICTED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Onboarding, Self::Active, Self::Restricted]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// The wire enum.
    pub fn to_proto(self) -> SellerAccountStatus {
        match self {
            Self::Onboarding => SellerAccountStatus::Onboarding,
            Self::Active => SellerAccountStatus::Active,
            Self::Restricted => SellerAccountStatus::Restricted,
        }
    }
}

/// What the provider says about an account, reduced to what the status depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountFlags {
    /// The onboarding form was submitted.
    pub details_submitted: bool,
    /// The provider pays the account's balance out to its bank.
    pub payouts_enabled: bool,
    /// The account may receive transfers (its `transfers` capability is active).
    pub transfers_active: bool,
}

/// ACTIVE once transfers and payouts are both enabled; RESTRICTED when the form was submitted
/// but either is disabled (more information needed, under review); ONBOARDING before.
pub fn account_status(flags: AccountFlags) -> AccountStatus {
    if flags.payouts_enabled && flags.transfers_active {
        AccountStatus::Active
    } else if flags.details_submitted {
        AccountStatus::Restricted
    } else {
        AccountStatus::Onboarding
    }
}

/// The state of a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayoutState {
    /// Due, not transferred yet (waiting for the worker or for the seller's account).
    Pending,
    /// Transferred to the seller's account (possibly partly reversed since).
    Transferred,
    /// Wholly reversed, or never transferred because the order was refunded first; terminal.
    Reversed,
    /// The provider refused the transfer; retried with backoff.
    Failed,
}

impl PayoutState {
    /// Every state.
    pub const ALL: [Self; 4] = [
        Self::Pending,
        Self::Transferred,
        Self::Reversed,
        Self::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Transferred => "TRANSFERRED",
            Self::Reversed => "REVERSED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The wire enum.
    pub fn to_proto(self) -> PayoutStatus {
        match self {
            Self::Pending => PayoutStatus::Pending,
            Self::Transferred => PayoutStatus::Transferred,
            Self::Reversed => PayoutStatus::Reversed,
            Self::Failed => PayoutStatus::Failed,
        }
    }

    /// The state of a wire enum; `None` for UNSPECIFIED.
    pub fn from_proto(status: PayoutStatus) -> Option<Self> {
        match status {
            PayoutStatus::Unspecified => None,
            PayoutStatus::Pending => Some(Self::Pending),
            PayoutStatus::Transferred => Some(Self::Transferred),
            PayoutStatus::Reversed => Some(Self::Reversed),
            PayoutStatus::Failed => Some(Self::Failed),
        }
    }
}

/// One line of a paid order, as the payout rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// The product's seller.
    pub seller_id: Uuid,
    /// `unit_price × quantity`, minor units.
    pub line_total: i64,
}

/// A seller's share of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// The seller.
    pub seller_id: Uuid,
    /// Σ line totals.
    pub gross: i64,
    /// The platform's fee.
    pub fee: i64,
    /// `gross − fee`: what the seller receives.
    pub net: i64,
}

/// Why an order's lines cannot be split into shares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// A line total below zero.
    #[error("line total {0} is negative")]
    NegativeLine(i64),
    /// A seller's total does not fit in 64 bits.
    #[error("a seller's lines overflow")]
    Overflow,
}

/// The fee on `gross` at `bps`: `⌈gross × bps / 10 000⌉` (0 ≤ fee ≤ gross for 0 ≤ bps ≤ 10 000).
pub fn platform_fee(gross: i64, bps: u16) -> i64 {
    let bps = i128::from(bps.min(MAX_FEE_BPS));
    let scaled = i128::from(gross.max(0)) * bps;
    let fee = (scaled + 9_999) / 10_000;
    i64::try_from(fee).unwrap_or(gross)
}

/// Each seller's share of `lines` at `bps`, in seller order; sellers whose net rounds to zero
/// (a zero total, or a fee of everything) get none, since there is nothing to transfer.
pub fn shares(lines: &[Line], bps: u16) -> Result<Vec<Share>, ShareError> {
    let mut gross: BTreeMap<Uuid, i64> = BTreeMap::new();
    for line in lines {
        if line.line_total < 0 {
            return Err(ShareError::NegativeLine(line.line_total));
        }
        let total = gross.entry(line.seller_id).or_default();
        *total = total
            .checked_add(line.line_total)
            .ok_or(ShareError::Overflow)?;
    }
    Ok(gross
        .into_iter()
        .map(|(seller_id, gross)| {
            let fee = platform_fee(gross, bps);
            Share {
                seller_id,
                gross,
                fee,
                net: gross - fee,
            }
        })
        .filter(|share| share.net > 0)
        .collect())
}

/// How much of a payout of `net` must have gone back once `refunded` of the payment's `amount`
/// is refunded: the refunded fraction of `net`, rounded down (the seller keeps a fraction of a
/// minor unit until the last refund), and exactly `net` once everything is refunded. It only
/// grows as refunds add up, so reversing "target − already reversed" converges without drift.
pub fn reversal_target(net: i64, refunded: i64, amount: i64) -> i64 {
    if amount <= 0 || refunded >= amount {
        return net.max(0);
    }
    if refunded <= 0 {
        return 0;
    }
    let share = i128::from(net) * i128::from(refunded) / i128::from(amount);
    i64::try_from(share).unwrap_or(net).clamp(0, net)
}

/// The transfer group of an order's payouts (and of its PaymentIntent, where the provider
/// takes one): `order_<order id>`.
pub fn transfer_group(order_id: Uuid) -> String {
    format!("order_{order_id}")
}

/// The provider idempotency key of a payout's transfer: the same on every attempt, so one
/// payout (one seller, one order) is one transfer.
pub fn transfer_key(payout_id: Uuid) -> String {
    format!("mercato-payout-{}", payout_id.simple())
}

/// The provider idempotency key of the reversal that brings a payout's reversed total to
/// `target`: each step of a growing target has its own key, a retry of a step the same.
pub fn reversal_key(payout_id: Uuid, target: i64) -> String {
    format!("mercato-payout-{}-reversal-{target}", payout_id.simple())
}

/// The provider idempotency key of a seller's connected account: one account per seller, even
/// across requests with different client keys.
pub fn account_key(seller_id: Uuid) -> String {
    format!("mercato-seller-account-{}", seller_id.simple())
}

/// The wait before attempt `attempts + 1` after `attempts` failures: `base × 2^(attempts − 1)`,
/// at most `max`.
pub fn backoff(attempts: i32, base: Duration, max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.checked_mul(1_u32 << exponent).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn seller(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn the_fee_is_rounded_up_so_the_seller_never_gets_a_fraction_more() {
        assert_eq!(platform_fee(10_000, 1_000), 1_000);
        assert_eq!(platform_fee(1_999, 1_000), 200, "199.9 rounds up");
        assert_eq!(platform_fee(1, 1), 1, "0.0001 rounds up");
        assert_eq!(platform_fee(1_200, 0), 0);
        assert_eq!(platform_fee(1_200, 10_000), 1_200);
        assert_eq!(platform_fee(i64::MAX, 10_000), i64::MAX);
    }

    #[test]
    fn lines_are_summed_per_seller_and_empty_shares_dropped() {
        let lines = [
            Line {
                seller_id: seller(2),
                line_total: 1_200,
            },
            Line {
                seller_id: seller(1),
                line_total: 999,
            },
            Line {
                seller_id: seller(2),
                line_total: 2_400,
            },
            Line {
                seller_id: seller(3),
                line_total: 0,
            },
        ];
        let split = shares(&lines, 1_000).expect("shares");
        assert_eq!(
            split,
            [
                Share {
                    seller_id: seller(1),
                    gross: 999,
                    fee: 100,
                    net: 899
                },
                Share {
                    seller_id: seller(2),
                    gross: 3_600,
                    fee: 360,
                    net: 3_240
                },
            ]
        );
        assert!(shares(&lines, MAX_FEE_BPS).expect("shares").is_empty());
        assert_eq!(
            shares(
                &[Line {
                    seller_id: seller(1),
                    line_total: -1
                }],
                0
            ),
            Err(ShareError::NegativeLine(-1))
        );
    }

    #[test]
    fn a_full_refund_reverses_everything_and_a_partial_one_its_share_rounded_down() {
        assert_eq!(reversal_target(900, 0, 1_000), 0);
        assert_eq!(reversal_target(900, 333, 1_000), 299, "299.7 rounds down");
        assert_eq!(reversal_target(900, 1_000, 1_000), 900);
        assert_eq!(reversal_target(899, 1_001, 1_000), 899);
    }

    #[test]
    fn account_status_needs_transfers_and_payouts() {
        let flags = |details_submitted, payouts_enabled, transfers_active| AccountFlags {
            details_submitted,
            payouts_enabled,
            transfers_active,
        };
        assert_eq!(
            account_status(flags(false, false, false)),
            AccountStatus::Onboarding
        );
        assert_eq!(
            account_status(flags(true, false, false)),
            AccountStatus::Restricted
        );
        assert_eq!(
            account_status(flags(true, true, false)),
            AccountStatus::Restricted
        );
        assert_eq!(
            account_status(flags(true, false, true)),
            AccountStatus::Restricted
        );
        assert_eq!(
            account_status(flags(true, true, true)),
            AccountStatus::Active
        );
    }

    #[test]
    fn keys_are_derived_from_our_ids() {
        let id = Uuid::from_u128(0xabc);
        assert_eq!(
            transfer_key(id),
            "mercato-payout-00000000000000000000000000000abc"
        );
        assert_ne!(reversal_key(id, 100), reversal_key(id, 200));
        assert_eq!(
            transfer_group(id),
            "order_00000000-0000-0000-0000-000000000abc"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(1, base, max), base);
        assert_eq!(backoff(3, base, max), Duration::from_millis(400));
        assert_eq!(backoff(40, base, max), max);
    }

    proptest! {
        /// Whatever the lines and the rate: fee + net = gross, 0 ≤ fee ≤ gross, and the net is
        /// never more than the exact share (the rounding is the platform's).
        #[test]
        fn shares_conserve_money(
            totals in prop::collection::vec((0_u128..4, 0_i64..10_000_000), 0..20),
            bps in 0_u16..=10_000,
        ) {
            let lines: Vec<Line> = totals
                .iter()
                .map(|(s, t)| Line { seller_id: seller(*s), line_total: *t })
                .collect();
            let split = shares(&lines, bps).expect("no overflow at these sizes");
            for share in &split {
                prop_assert_eq!(share.fee + share.net, share.gross);
                prop_assert!(share.fee >= 0 && share.fee <= share.gross);
                let exact = i128::from(share.gross) * i128::from(10_000 - bps);
                prop_assert!(i128::from(share.net) * 10_000 <= exact);
                prop_assert!(i128::from(share.net + 1) * 10_000 > exact);
            }
            let total: i64 = lines.iter().map(|l| l.line_total).sum();
            let accounted: i64 = split.iter().map(|s| s.gross).sum();
            prop_assert!(accounted <= total);
        }

        /// Reversal targets grow with the refunded total and end at the whole net.
        #[test]
        fn reversal_targets_only_grow(
            net in 1_i64..10_000_000,
            amount in 1_i64..10_000_000,
            refunds in prop::collection::vec(1_i64..1_000_000, 1..10),
        ) {
            let mut refunded = 0;
            let mut last = 0;
            for refund in refunds {
                refunded = (refunded + refund).min(amount);
                let target = reversal_target(net, refunded, amount);
                prop_assert!(target >= last && target <= net);
                last = target;
            }
            prop_assert_eq!(reversal_target(net, amount, amount), net);
        }
    }
}
