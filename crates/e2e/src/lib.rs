//! End-to-end tests of the whole system that need a process of their own.
//!
//! Telemetry is process-global (one tracing subscriber, one tracer provider, one metrics
//! registry per process), so a test that asserts on spans, logs or metrics cannot share its
//! process with tests that install something else. Each file under `tests/` is its own test
//! binary with one test; nextest also runs every test in a process of its own.
//!
//! - [`stack`]: the user, product, order, payment and process services started in-process through
//!   their `testing` harnesses, each on a fresh database, the last four on one broker namespace,
//!   and a BFF in front with its HTTP side; [`stack::Shop`] drives a checkout through the BFF as
//!   the storefront does. [`stack::ScaledStack`] runs two replicas of every backend service on
//!   shared resources behind the same BFF, and replaces them one at a time as a rolling restart
//!   does (`tests/rolling_restart.rs`).
//! - [`collector`]: an OTLP trace collector (the `opentelemetry-proto` service served with tonic)
//!   that keeps every exported span for the test to read.
//! - [`logs`]: a log writer that keeps what the JSON formatter writes.
//! - [`prometheus`]: reads a `/metrics` exposition.
//! - [`telemetry`]: installs the platform's subscriber for the whole process, exporting to a
//!   collector and writing logs to a buffer.

pub mod collector;
pub mod logs;
pub mod prometheus;
pub mod stack;
pub mod telemetry;
