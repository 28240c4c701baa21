//! The whole checkout saga through the BFF, end to end: the real user, product, order, payment
//! and process services in-process (all but the user service on one broker namespace, so every
//! step travels over the real bus), against real PostgreSQL, Redis and RabbitMQ, and for STRIPE a
//! real localstripe.
//!
//! - Each method — POINTS (the wallet charged first), SANDBOX (the payment page's Pay form) and
//!   STRIPE (the PaymentIntent confirmed at localstripe with the Visa test card, settled by
//!   localstripe's signed webhook) — goes register → coupon claimed → cart → `CreateOrder` → paid
//!   → FINISHED, watched through the BFF's `WatchOrder`; the order then carries the shipment's
//!   tracking number (the same as the admin's `ListShipments` shows), its history went through
//!   PAID, SHIPPED and FINISHED, the stock reservation is COMMITTED with on hand reduced by the
//!   units bought, and the coupon is USED by the order.
//! - A paid order cancelled before it ships (by the buyer's `CancelOrder`, or the admin's
//!   `CancelAnyOrder`) is refunded once, its committed stock goes back on hand (the reservation
//!   RETURNED), its coupon is AVAILABLE again, and an operator can no longer ship it.
//! - With the manual carrier, an operator ships through the admin's `MarkShipmentShipped` and a
//!   buyer's `WatchOrder` sees SHIPPED (with the operator's tracking number) and then, once the
//!   carrier reports the delivery, FINISHED; the shipment RPCs' refusals name the public field.

#[path = "../support/mod.rs"]
mod support;

mod cancellation;
mod checkout;
mod shipments;
mod shop;
