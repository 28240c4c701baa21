//! Seller payouts (marketplace): each seller's connected Stripe account, and for every paid
//! order one payout per seller with an account, transferred by a worker and reversed when the
//! order is refunded.
//!
//! - **Accounts** (`accounts`): `CreateSellerAccount` creates an Express account keyed by the
//!   seller and stores it (one per seller); its status (ONBOARDING, ACTIVE, RESTRICTED) is
//!   derived from the provider's flags and refreshed on reads, links, `account.updated` webhooks
//!   and by the worker while payouts wait for it.
//! - **Recording** (`record`): in the transaction that writes `order.paid`, the order's lines
//!   (from the stored `order.created`, which names each line's seller) are summed per seller,
//!   the platform fee taken (`rules`), and a PENDING payout inserted for every seller that has an
//!   account (unique per order and seller, so a replayed `order.paid` records nothing new).
//!   Sellers without an account get no payout: the platform keeps their proceeds.
//! - **Worker** (`worker`): claims due payouts (`FOR UPDATE SKIP LOCKED`), leases them, and
//!   transfers (or reverses) outside the transaction; see there for how a crash between the
//!   provider call and our write is resolved without a second transfer.
//! - **Refunds** (`record::on_refund`): in the refund's transaction each payout's reversal
//!   target becomes the refunded fraction of its net; a payout never sent is simply REVERSED
//!   when the whole order is refunded; the worker reverses the rest.

pub mod accounts;
pub mod record;
pub mod rules;
pub mod store;
pub mod worker;

use mercato_platform::shutdown::Shutdown;

use crate::context::PaymentContext;

/// Starts the payout worker under `shutdown` when Stripe Connect is configured.
pub fn spawn_background(context: &PaymentContext, shutdown: &Shutdown) {
    if context.connect.is_some() {
        shutdown.spawn(worker::run(context.clone(), shutdown.token()));
    }
}
