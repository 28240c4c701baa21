//! The adapter's own request and result types: plain data, no Stripe type inside.
//!
//! Amounts are integer minor units (cents), currencies lowercase ISO 4217 codes, ids Stripe's
//! strings (`pi_…`, `re_…`, `tr_…`, `trr_…`, `acct_…`).

use std::fmt;

/// The metadata key that carries our order id (PaymentIntents).
pub const ORDER_ID_METADATA_KEY: &str = "order_id";
/// The metadata key that carries our payment id (PaymentIntents).
pub const PAYMENT_ID_METADATA_KEY: &str = "payment_id";
/// The metadata key that carries our refund id (refunds).
pub const REFUND_ID_METADATA_KEY: &str = "refund_id";
/// The metadata key that carries our seller id (connected accounts).
pub const SELLER_ID_METADATA_KEY: &str = "seller_id";
/// The metadata key that carries our payout id (transfers).
pub const PAYOUT_ID_METADATA_KEY: &str = "payout_id";

/// A PaymentIntent to create for an order; the browser confirms it with the client secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPaymentIntent {
    /// Minor units, 1 ..= 99_999_999 (Stripe's eight digits).
    pub amount: i64,
    /// Three-letter ISO code, any case (sent lowercase).
    pub currency: String,
    /// Stored in the metadata under [`ORDER_ID_METADATA_KEY`].
    pub order_id: String,
    /// Stored in the metadata under [`PAYMENT_ID_METADATA_KEY`] when given.
    pub payment_id: Option<String>,
    /// Sent as the `Idempotency-Key` header (1 ..= 255 characters), e.g. derived from the order.
    pub idempotency_key: String,
    /// Groups the payment with the order's seller transfers (separate charges and transfers).
    /// Not accepted by localstripe: leave it `None` there.
    pub transfer_group: Option<String>,
}

/// What creating a PaymentIntent returns: enough to hand the browser its client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedPaymentIntent {
    pub id: String,
    /// For the browser only (Stripe.js `confirmPayment`); never log it.
    pub client_secret: String,
    pub status: PaymentIntentStatus,
}

impl fmt::Debug for CreatedPaymentIntent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedPaymentIntent")
            .field("id", &self.id)
            .field("client_secret", &"[redacted]")
            .field("status", &self.status)
            .finish()
    }
}

/// A PaymentIntent as the provider reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    pub id: String,
    pub status: PaymentIntentStatus,
    pub amount: i64,
    /// What was actually collected; equals `amount` once succeeded (refunds do not lower it).
    pub amount_received: i64,
    pub currency: String,
    /// The `order_id` metadata value, when present.
    pub order_id: Option<String>,
    /// The `payment_id` metadata value, when present.
    pub payment_id: Option<String>,
    /// The charge of the latest attempt (`ch_…`), usable as a transfer's `source_transaction`.
    pub latest_charge: Option<String>,
    /// Why the latest attempt failed, when it did.
    pub last_error: Option<PaymentError>,
    /// Unix seconds.
    pub created: i64,
}

/// The reason a payment attempt failed (`last_payment_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentError {
    /// Stripe's error code, e.g. `card_declined`.
    pub code: Option<String>,
    /// The issuer's reason for a card decline, e.g. `insufficient_funds`.
    pub decline_code: Option<String>,
    /// A human-readable message from Stripe (may be shown to the buyer).
    pub message: Option<String>,
}

/// The PaymentIntent lifecycle (docs.stripe.com/payments/paymentintents/lifecycle).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PaymentIntentStatus {
    /// Created, or the last attempt failed: the buyer must (re)enter a payment method.
    RequiresPaymentMethod,
    RequiresConfirmation,
    /// 3-D Secure or another step in the browser.
    RequiresAction,
    /// Submitted; the outcome comes later (webhook or re-fetch).
    Processing,
    /// Authorized, waiting for a manual capture (we capture automatically, so rarely seen).
    RequiresCapture,
    Succeeded,
    Canceled,
    /// A status this adapter does not know (a newer API version).
    Other(String),
}

impl PaymentIntentStatus {
    /// Stripe's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::Processing => "processing",
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Canceled => "canceled",
            Self::Other(other) => other,
        }
    }

    /// Succeeded and canceled PaymentIntents never change status again.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Canceled)
    }
}

impl fmt::Display for PaymentIntentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refund of a PaymentIntent's charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    pub payment_intent: String,
    /// Minor units; `None` refunds whatever is left.
    pub amount: Option<i64>,
    pub idempotency_key: String,
    /// Stored in the refund's metadata under [`REFUND_ID_METADATA_KEY`] when given.
    pub refund_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub status: RefundStatus,
    pub amount: i64,
    pub currency: String,
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
    /// Absent, or a status this adapter does not know.
    Other(String),
}

impl RefundStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::RequiresAction => "requires_action",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Other(other) => other,
        }
    }
}

/// How a connected account is configured, in the controller properties Stripe recommends over
/// the deprecated `type` (docs.stripe.com/connect/migrate-to-controller-properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// What `type=express` means: the Express Dashboard, Stripe collects requirements through
    /// hosted onboarding, the platform pays Stripe's fees and is liable for negative balances
    /// (`controller[stripe_dashboard][type]=express`, `controller[fees][payer]=application`,
    /// `controller[losses][payments]=application`).
    Express,
    /// What `type=standard` means: the full Stripe Dashboard, the account pays its own fees and
    /// Stripe is liable (`controller[stripe_dashboard][type]=full`,
    /// `controller[fees][payer]=account`, `controller[losses][payments]=stripe`).
    Standard,
}

/// A connected account to create for a seller; it requests the `transfers` and
/// `card_payments` capabilities, which Stripe activates once onboarding is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub kind: AccountKind,
    /// ISO 3166-1 alpha-2, any case (sent upper case).
    pub country: String,
    /// Stored in the metadata under [`SELLER_ID_METADATA_KEY`].
    pub seller_id: String,
    /// Prefills onboarding when given.
    pub email: Option<String>,
    /// Derive it from the seller, so a retry (or a concurrent duplicate) gets the same account.
    pub idempotency_key: String,
}

/// The state of one capability of a connected account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CapabilityStatus {
    Active,
    Inactive,
    Pending,
    /// Not requested, or not reported for this account.
    Absent,
    /// A state this adapter does not know.
    Other(String),
}

/// A connected account as Stripe reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `acct_…`.
    pub id: String,
    /// Upper case, when reported.
    pub country: Option<String>,
    /// The account may create charges.
    pub charges_enabled: bool,
    /// Stripe may pay its balance out to its bank account.
    pub payouts_enabled: bool,
    /// The seller has submitted the onboarding form (requirements may still be due).
    pub details_submitted: bool,
    /// Whether transfers to this account are possible: only once `Active`.
    pub transfers: CapabilityStatus,
    /// The `seller_id` metadata value, when present.
    pub seller_id: Option<String>,
    /// Unix seconds, when reported.
    pub created: Option<i64>,
}

/// What an account link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountLinkKind {
    /// Stripe-hosted onboarding (`account_onboarding`).
    Onboarding,
    /// Updating details, only for accounts whose requirements the platform collects
    /// (`account_update`; not Express or Standard accounts).
    Update,
}

/// A single-use link into Stripe-hosted onboarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccountLink {
    /// `acct_…`.
    pub account: String,
    pub kind: AccountLinkKind,
    /// Where Stripe sends the seller when they leave or finish the flow (http or https).
    pub return_url: String,
    /// Where Stripe sends the seller when the link expired or was used (http or https); that
    /// page should ask for a fresh link.
    pub refresh_url: String,
}

/// An account link: open `url` in the seller's browser before `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLink {
    pub url: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A single-use link into an Express account's dashboard (Stripe documents no expiry time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLink {
    pub url: String,
    /// Unix seconds.
    pub created: i64,
}

/// A Connect transfer from the platform balance to a seller's connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransfer {
    /// Minor units, > 0: the seller's item total minus the platform fee.
    pub amount: i64,
    pub currency: String,
    /// The connected account, `acct_…`.
    pub destination: String,
    /// Usually the order's group, the same as the PaymentIntent's `transfer_group`.
    pub transfer_group: Option<String>,
    /// The paid charge (`ch_…`) the funds come from, so the transfer does not wait for the
    /// platform's available balance.
    pub source_transaction: Option<String>,
    /// Stored in the metadata under [`PAYOUT_ID_METADATA_KEY`] when given, so the transfer can
    /// be found again ([`crate::StripeClient::list_transfers`]) after a lost answer.
    pub payout_id: Option<String>,
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: String,
    pub amount: i64,
    pub amount_reversed: i64,
    pub currency: String,
    pub destination: Option<String>,
    pub transfer_group: Option<String>,
    pub source_transaction: Option<String>,
    /// The `payout_id` metadata value, when present.
    pub payout_id: Option<String>,
    /// True only once the whole amount is reversed.
    pub reversed: bool,
    /// Unix seconds.
    pub created: i64,
}

/// Which transfers [`crate::StripeClient::list_transfers`] returns (newest first, one page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferQuery {
    pub transfer_group: Option<String>,
    /// `acct_…`.
    pub destination: Option<String>,
    /// 1 ..= 100; `None` is Stripe's default of 10.
    pub limit: Option<i64>,
}

/// A (partial) reversal of a transfer, e.g. when the order is refunded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransferReversal {
    /// The transfer, `tr_…`.
    pub transfer: String,
    /// Minor units; `None` reverses whatever is left.
    pub amount: Option<i64>,
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReversal {
    pub id: String,
    pub transfer: String,
    pub amount: i64,
    pub currency: String,
}
