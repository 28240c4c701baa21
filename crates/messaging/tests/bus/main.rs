//! Integration tests of the event bus against the real PostgreSQL and RabbitMQ.
//!
//! One binary with a module per scenario (one link instead of one per file);
//! nextest still runs every test in its own process. Tests named `serial_*`
//! disturb the shared broker and are meant to run alone.

mod consumer;
mod outbox;
mod outbox_broker_down;
mod serial_broker_restart;
mod support;
mod trace_context;
