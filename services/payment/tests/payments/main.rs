//! The payment service over real gRPC and HTTP against real PostgreSQL and RabbitMQ, with the real
//! product and order services in-process on the same broker namespace, so every saga step
//! (order.created → payment → AttachPayment → webhook → order.paid / payment.failed → order
//! state, cancellations and refunds, seller payouts) travels over the real bus.

mod crash;
mod payouts;
mod points;
mod sandbox;
mod shop;
mod stripe;
#[path = "../../../order/tests/carts/support.rs"]
mod support;
mod validation;
mod webhooks;
