//! Shared service plumbing for every Mercato binary, with no business logic: typed settings,
//! telemetry, shutdown and drain, the one gRPC server stack and client channel, the error-code
//! table, the forwarded principal and request id, Prometheus metrics, and PostgreSQL/Redis/HTTP-probe
//! set-up.
//!
//! How a service's `main` puts the pieces together (the service's own settings block and tonic
//! services go where the comments are):
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use mercato_platform::settings::{CommonSettings, DatabaseSettings, EnvSource, ListenSettings};
//! use mercato_platform::{db, grpc, http, shutdown::Shutdown, telemetry};
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let source = EnvSource::from_env();
//!     let reader = source.service("order");
//!     let defaults = ListenSettings {
//!         grpc_addr: "0.0.0.0:50053".parse()?,
//!         http_addr: "0.0.0.0:8083".parse()?,
//!     };
//!     let common = CommonSettings::read(&reader, defaults);
//!     let database = DatabaseSettings::read(&reader);
//!     // let reservation_ttl = reader.with_default("RESERVATION_TTL", Duration::from_secs(900));
//!     let (common, database) = reader.finish(|| Some((common?, database?)))?;
//!
//!     let telemetry = telemetry::init(&common.telemetry)?;
//!     let pool = db::connect(&database, &common.service).await?;
//!     // db::migrate(&pool, &sqlx::migrate!()).await?;
//!
//!     let shutdown = Shutdown::new();
//!     shutdown.listen_for_signals();
//!     let readiness = http::Readiness::new(shutdown.token())
//!         .with_check(db::readiness_check(pool.clone(), Duration::from_secs(2)));
//!     let grpc_listener = tokio::net::TcpListener::bind(common.listen.grpc_addr).await?;
//!     let http_listener = tokio::net::TcpListener::bind(common.listen.http_addr).await?;
//!
//!     let server = grpc::GrpcServer::new(grpc::ServerOptions::internal(common.limits))?;
//!     //  .add_service(OrderServiceServer::new(OrderGrpc::new(pool.clone())));
//!     shutdown.spawn(server.serve(grpc_listener, shutdown.wait_owned()));
//!     shutdown.spawn(http::serve(http_listener, http::router(readiness), shutdown.wait_owned()));
//!
//!     shutdown.cancelled().await;
//!     shutdown.drain(common.shutdown_grace).await;
//!     pool.close().await;
//!     telemetry.shutdown().await;
//!     Ok(())
//! }
//! ```

pub mod address;
pub mod clock;
pub mod db;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod principal;
pub mod redis;
pub mod request_id;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
