//! The process service over real gRPC against real PostgreSQL and RabbitMQ, with the real product
//! and order services in-process on the same broker namespace: order.paid (published as the
//! payment service publishes it) → stock committed → shipment → order SHIPPED → FINISHED →
//! notifications, under duplicates, crashes and restarts; the notifications as e-mail through a
//! real SMTP server, addressed by the real user service; and bad input on every RPC.

mod crash;
mod email;
mod fulfilment;
mod shop;
#[path = "../../../order/tests/carts/support.rs"]
mod support;
mod validation;
