//! Test support for Mercato: isolation primitives on the real PostgreSQL,
//! RabbitMQ and Redis (a fresh database, a broker namespace and a Redis key
//! prefix per test, each removed when its guard drops), and a TCP proxy a test
//! can cut to simulate an outage without touching the shared servers; and
//! [`TestSystem`], which starts any set of services in-process on port 0, or [`ServiceEnv`] for
//! a test that starts one service itself.
//!
//! Server addresses come from `MERCATO_TEST_DATABASE_URL`,
//! `MERCATO_TEST_AMQP_URL` and `MERCATO_TEST_REDIS_URL` (see [`mod@env`]).

pub mod broker;
pub mod database;
pub mod env;
pub mod error;
pub mod proxy;
pub mod redis;
pub mod service;
pub mod system;

mod cleanup;

pub use broker::TestBroker;
pub use database::TestDatabase;
pub use error::Error;
pub use proxy::TcpProxy;
pub use redis::TestRedis;
pub use service::{ServiceEnv, ServiceResources};
pub use system::{Peers, ServiceContext, TestService, TestSystem};
