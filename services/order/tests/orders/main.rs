//! Checkout and the order lifecycle over real gRPC against real PostgreSQL, Redis and RabbitMQ,
//! with the real product service running in-process, seeded through its own API, and sharing the
//! test's broker namespace with the order service so compensation travels over the real bus.

mod broker_down;
mod checkout;
mod compensation;
mod idempotency;
mod lifecycle;
mod shop;
#[path = "../carts/support.rs"]
mod support;
mod validation;
