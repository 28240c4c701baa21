//! The order service: the persistent per-user cart (`CartService`, lines enriched live from the
//! product service), checkout and the order state machine (`OrderService`), and coupons with
//! first-come-first-served campaigns (`CouponService`).
//!
//! [`Application::build`] takes pre-bound listeners so tests start the service on port 0. The
//! parts share an [`OrderContext`]; [`cart`], [`order`] and [`coupon`] each register their gRPC
//! service themselves.

pub mod cart;
pub mod clock;
pub mod context;
pub mod coupon;
pub mod order;
pub mod settings;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mercato_messaging::{
    ConnectionConfig, Connector, Namespace, OutboxRelay, Publisher, RelayConfig,
};
use mercato_platform::grpc::{
    ChannelError, ChannelOptions, GrpcServer, GrpcServerError, ServerOptions, connect_lazy,
    finish_serving,
};
use mercato_platform::shutdown::Shutdown;
use mercato_platform::{db, http as probes, redis as platform_redis};
use mercato_proto::mercato::product::v1::product_service_client::ProductServiceClient;
use mercato_proto::mercato::product::v1::stock_service_client::StockServiceClient;
use secrecy::ExposeSecret as _;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::clock::Clock;
pub use crate::context::OrderContext;
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
    /// The product service URL is not a valid endpoint.
    #[error("product service channel set-up failed")]
    Channel(#[from] ChannelError),
    /// A listener has no local address.
    #[error("listener failed")]
    Io(#[from] std::io::Error),
}

/// A built, not yet running, order service.
#[derive(Debug)]
pub struct Application {
    context: OrderContext,
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
        let pool = db::connect(&settings.database, "mercato-order").await?;
        db::migrate(&pool, &mercato_messaging::MIGRATOR).await?;
        db::migrate(&pool, &MIGRATOR).await?;
        let redis = platform_redis::connect(&settings.redis).await?;
        let keys = platform_redis::Keys::from_settings(&settings.redis);
        let namespace = Namespace::from_setting(&settings.bus_namespace)?;
        let connector = Connector::new(ConnectionConfig::new(
            settings.amqp.url.expose_secret(),
            "order-service",
        ));
        let relay = OutboxRelay::new(
            pool.clone(),
            Publisher::new(connector.clone(), namespace.clone()),
            RelayConfig {
                // Progress announcements: nothing in the system consumes them yet; a subscriber
                // hears them from when its queue exists. `order.created`, `order.cancelled`
                // and the rest must reach their consumers and are retried until a queue takes
                // them.
                announcements: [
                    order::events::ORDER_AWAITING_PAYMENT,
                    order::events::ORDER_SHIPPED,
                    order::events::ORDER_FINISHED,
                ]
                .map(str::to_owned)
                .to_vec(),
                ..RelayConfig::default()
            },
        );
        let channel = connect_lazy(
            &settings.product_service_url,
            &ChannelOptions::new(settings::SERVICE),
        )?;
        let product = ProductServiceClient::new(channel.clone());
        let stock = StockServiceClient::new(channel);
        Ok(Self {
            grpc_addr: grpc_listener.local_addr()?,
            http_addr: http_listener.local_addr()?,
            context: OrderContext {
                pool,
                redis,
                keys,
                clock: Clock::system(),
                connector,
                namespace,
                settings: Arc::new(settings),
                product,
                stock,
                watch: order::watch::Watch::new(),
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

    /// The shared context (tests inspect the pool through it).
    pub fn context(&self) -> &OrderContext {
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
        let server = cart::register(server, &context);
        let server = order::register(server, &context);
        let server = coupon::register(server, &context);
        let grpc_task = shutdown.spawn(server.serve(grpc_listener, shutdown.wait_owned()));
        shutdown.spawn(probes::serve(
            http_listener,
            probes::router(readiness),
            shutdown.wait_owned(),
        ));
        shutdown.spawn(relay.run(shutdown.token()));
        order::spawn_background(&context, &shutdown);
        coupon::spawn_background(&context, &shutdown);

        shutdown.cancelled().await;
        let drained = shutdown.drain(context.settings.common.shutdown_grace).await;
        context.connector.close().await;
        context.pool.close().await;
        Ok(finish_serving(grpc_task, drained).await?)
    }
}
