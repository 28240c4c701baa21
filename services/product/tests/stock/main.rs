//! Integration tests of the stock part on real PostgreSQL, Redis and RabbitMQ: contention
//! (last unit, flash sale, opposite lock orders), the reservation lifecycle on a manual clock,
//! the sold-out fast path, the order-event consumers, input validation, and a property test of
//! the stock invariants.

mod access;
mod consumers;
mod fast_path;
mod lifecycle;
mod properties;
mod reserve;
mod support;
mod validation;
