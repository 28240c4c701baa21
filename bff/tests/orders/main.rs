//! Checkout and the buyer's orders through the BFF, against the real user, product and order
//! services: explicit and cart checkouts with request-bound idempotency keys, the saved shipping
//! address as the default, history, detail, cancellation, and `WatchOrder` over gRPC and gRPC-Web — including how a stream relates to the
//! unary request timeout, its maximum duration, the BFF's shutdown, the order service going
//! away and the browser leaving. Refused calls never reach the order service.

#[path = "../support/mod.rs"]
mod support;

mod buyer;
mod checkout;
mod refusals;
mod watch;
