//! Mercato's Stripe adapter: PaymentIntents, refunds, Connect (connected accounts, onboarding and
//! dashboard links, transfers and their reversals) and webhook event parsing over async-stripe,
//! with plain request and result types so no Stripe type leaves this crate.
//!
//! Only the payment service depends on this crate, so only it compiles async-stripe. The service
//! puts [`StripeClient`] behind its own provider trait; the modules here are the "connector":
//! `client` (the calls), `convert` (Stripe's types ↔ ours, input checks) and [`webhook`]
//! (event parsing; signature verification is the webhook endpoint's job, see that module).
//!
//! Idempotency: every call that creates something takes an idempotency key, sent as Stripe's
//! `Idempotency-Key` header. Fakes such as localstripe ignore it, so callers keep their own
//! dedupe (one payment row per order) as well.
//!
//! The `testing` feature adds [`testing`]: localstripe from the repository's virtualenv, a
//! response-normalizing proxy in front of it (which also serves the Connect endpoints localstripe
//! lacks, from an in-memory emulation in Stripe's documented shapes), and helpers to confirm
//! payments, register webhooks and complete a seller's onboarding.

mod client;
mod convert;
mod error;
mod types;
pub mod webhook;

#[cfg(feature = "testing")]
pub mod testing;

pub use client::{DEFAULT_BASE_URL, DEFAULT_TIMEOUT, StripeClient, StripeConfig};
pub use error::{ApiError, ApiErrorKind, StripeError};
pub use types::{
    Account, AccountKind, AccountLink, AccountLinkKind, CapabilityStatus, CreatedPaymentIntent,
    LoginLink, NewAccount, NewAccountLink, NewPaymentIntent, NewRefund, NewTransfer,
    NewTransferReversal, ORDER_ID_METADATA_KEY, PAYMENT_ID_METADATA_KEY, PAYOUT_ID_METADATA_KEY,
    PaymentError, PaymentIntent, PaymentIntentStatus, REFUND_ID_METADATA_KEY, Refund, RefundStatus,
    SELLER_ID_METADATA_KEY, Transfer, TransferQuery, TransferReversal,
};
pub use webhook::{EventKind, EventParseError, WebhookEvent, parse_event};
