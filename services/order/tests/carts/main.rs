//! The cart over a real gRPC channel against real PostgreSQL, Redis and RabbitMQ, with the real
//! product service running in-process and seeded through its own API.

mod access;
mod lifecycle;
mod statuses;
mod support;
mod system;
mod validation;
