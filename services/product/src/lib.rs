//! The product service: the catalog (products, SKUs, search, the product cache), per-SKU stock
//! with reservations that never oversell (and their expiry sweeper), and the best-seller ranking
//! fed by `order.paid`.
//!
//! [`Application::build`] takes pre-bound listeners so tests start the service on port 0. The
//! service is made of two parts that share a [`ProductContext`]: [`catalog`] (`ProductService`,
//! `RankingService`) and [`stock`] (`StockService`); each registers its gRPC services and starts
//! its background tasks (consumers, sweeper) itself.

pub mod cache;
pub mod catalog;
pub mod clock;
pub mod context;
pub mod settings;
pub mod stock;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mercato_messaging::{
    ConnectionConfig, Connector, Namespace, OutboxRelay, Publisher, RelayConfig,
};
use mercato_platform::grpc::{GrpcServer, GrpcServerError, ServerOptions, finish_serving};
use mercato_platform::shutdown::Shutdown;
use mercato_platform::{db, http as probes, redis as platform_redis};
use secrecy::ExposeSecret as _;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::clock::Clock;
pub use crate::context::ProductContext;
pub use crate::settings::Settings;

/// The service's own migrations (the outbox/inbox come from `mercato_messaging::MIGRATOR`).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    /// PostgreSQL set-up failed.
    #[error("database set-up failed")]
    Database(#[from] db::DbError),
    /// Redis could not be reached.
    #[error("redis set-up failed")]
    Redis(#[from] redis::RedisError),
    /// The broker namespace is invalid.
    #[error("messaging set-up failed")]
    Messaging(#[from] mercato_messaging::Error),
    /// The gRPC server failed.
    #[error("grpc server failed")]
    Grpc(#[from] GrpcServerError),
    /// A listener has no local address.
    #[error("listener failed")]
    Io(#[from] std::io::Error),
}

/// A built, not yet running, product service.
#[derive(Debug)]
pub struct Application {
    context: ProductContext,
    relay: OutboxRelay,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: Shutdown,
}

impl Application {
    /// Connects to PostgreSQL, Redis and RabbitMQ, migrates, and prepares both servers on the
    /// given listeners.
    pub async fn build(
        settings: Settings,
        grpc_listener: TcpListener,
        http_listener: TcpListener,
    ) -> Result<Self, ApplicationError> {
        let pool = db::connect(&settings.database, "mercato-product").await?;
        db::migrate(&pool, &mercato_messaging::MIGRATOR).await?;
        db::migrate(&pool, &MIGRATOR).await?;
        let redis = platform_redis::connect(&settings.redis).await?;
        let keys = platform_redis::Keys::from_settings(&settings.redis);
        let namespace = Namespace::from_setting(&settings.bus_namespace)?;
        let connector = Connector::new(ConnectionConfig::new(
            settings.amqp.url.expose_secret(),
            "product-service",
        ));
        let relay = OutboxRelay::new(
            pool.clone(),
            Publisher::new(connector.clone(), namespace.clone()),
            RelayConfig::default(),
        );
        Ok(Self {
            grpc_addr: grpc_listener.local_addr()?,
            http_addr: http_listener.local_addr()?,
            context: ProductContext {
                pool,
                redis,
                keys,
                clock: Clock::system(),
                connector,
                namespace,
                settings: Arc::new(settings),
            },
            relay,
            grpc_listener,
            http_listener,
            shutdown: Shutdown::new(),
        })
    }

    /// Runs under `shutdown` instead of the application's own (an in-process test system
    /// shares one between its services).
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Takes business time from `clock` (tests move a manual clock instead of sleeping).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.context.clock = clock;
        self
    }

    /// Where gRPC is served.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where the probes are served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The shared context (tests inspect the pool and Redis through it).
    pub fn context(&self) -> &ProductContext {
        &self.context
    }

    /// The shutdown handle: triggering it stops the service (`main` wires signals to it).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until shutdown is triggered, then drains within the grace period.
    pub async fn run(self) -> Result<(), ApplicationError> {
        let Self {
            context,
            relay,
            grpc_listener,
            http_listener,
            shutdown,
            ..
        } = self;
        let readiness = probes::Readiness::new(shutdown.token())
            .with_check(db::readiness_check(
                context.pool.clone(),
                Duration::from_secs(2),
            ))
            .with_check(platform_redis::readiness_check(
                context.redis.clone(),
                Duration::from_secs(2),
            ));
        let server = GrpcServer::new(
            ServerOptions::internal(context.settings.common.limits)
                .with_shutdown_delay(context.settings.common.shutdown_delay),
        )?;
        let server = catalog::register(server, &context);
        let server = stock::register(server, &context);
        let grpc_task = shutdown.spawn(server.serve(grpc_listener, shutdown.wait_owned()));
        shutdown.spawn(probes::serve(
            http_listener,
            probes::router(readiness),
            shutdown.wait_owned(),
        ));
        shutdown.spawn(relay.run(shutdown.token()));
        catalog::spawn_background(&context, &shutdown);
        stock::spawn_background(&context, &shutdown);

        shutdown.cancelled().await;
        let drained = shutdown.drain(context.settings.common.shutdown_grace).await;
        context.connector.close().await;
        context.pool.close().await;
        Ok(finish_serving(grpc_task, drained).await?)
    }
}
