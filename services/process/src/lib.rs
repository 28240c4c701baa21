//! The process (fulfilment) service: consumes `order.paid`, records one shipment per order, and
//! drives it with a worker — commit the stock reservation (product service), hand the parcel to
//! the carrier (simulated by default, with a configurable delay) and move the order to SHIPPED,
//! then record the delivery and move the order to FINISHED (order service). Each step asks for a
//! buyer notification through the outbox (`notification.requested`), which the service's own
//! notifier consumes into its notification table and delivers: to the log by default, or with
//! `NOTIFIER=smtp` as e-mail to the buyer's address (from the user service) through an SMTP
//! relay.
//! `ShipmentService` and `NotificationService` expose both to operators.
//!
//! [`Application::build`] takes pre-bound listeners so tests start the service on port 0.

pub mod context;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod notifications;
pub mod paging;
pub mod settings;
pub mod shipments;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wake;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mercato_messaging::{
    ConnectionConfig, Connector, Namespace, OutboxRelay, Publisher, RelayConfig,
};
use mercato_platform::clock::Clock;
use mercato_platform::grpc::{
    ChannelError, ChannelOptions, GrpcServer, GrpcServerError, ServerOptions, connect_lazy,
    finish_serving,
};
use mercato_platform::shutdown::Shutdown;
use mercato_platform::{db, http as probes};
use mercato_proto::mercato::order::v1::order_service_client::OrderServiceClient;
use mercato_proto::mercato::product::v1::stock_service_client::StockServiceClient;
use mercato_proto::mercato::user::v1::user_service_client::UserServiceClient;
use secrecy::ExposeSecret as _;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use crate::context::ProcessContext;
pub use crate::settings::Settings;

/// The service's own migrations (the outbox/inbox come from `mercato_messaging::MIGRATOR`).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    /// PostgreSQL set-up failed.
    #[error("database set-up failed")]
    Database(#[from] db::DbError),
    /// The broker namespace is invalid.
    #[error("messaging set-up failed")]
    Messaging(#[from] mercato_messaging::Error),
    /// The gRPC server failed.
    #[error("grpc server failed")]
    Grpc(#[from] GrpcServerError),
    /// A service URL is not a valid endpoint.
    #[error("service channel set-up failed")]
    Channel(#[from] ChannelError),
    /// The SMTP sink could not be set up (the message names the setting).
    #[error("notifier set-up failed: {0}")]
    Notifier(#[from] notifications::smtp::SmtpSetupError),
    /// A listener failed.
    #[error("listener failed")]
    Io(#[from] std::io::Error),
}

/// A built, not yet running, process service.
#[derive(Debug)]
pub struct Application {
    context: ProcessContext,
    relay: OutboxRelay,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: Shutdown,
}

impl Application {
    /// Connects to PostgreSQL and RabbitMQ, migrates, and prepares both servers on the given
    /// listeners.
    pub async fn build(
        settings: Settings,
        grpc_listener: TcpListener,
        http_listener: TcpListener,
    ) -> Result<Self, ApplicationError> {
        let pool = db::connect(&settings.database, "mercato-process").await?;
        db::migrate(&pool, &mercato_messaging::MIGRATOR).await?;
        db::migrate(&pool, &MIGRATOR).await?;
        let namespace = Namespace::from_setting(&settings.bus_namespace)?;
        let connector = Connector::new(ConnectionConfig::new(
            settings.amqp.url.expose_secret(),
            "process-service",
        ));
        let relay = OutboxRelay::new(
            pool.clone(),
            Publisher::new(connector.clone(), namespace.clone()),
            RelayConfig::default(),
        );
        let options = ChannelOptions::new(settings::SERVICE);
        let order_channel = connect_lazy(&settings.order_service_url, &options)?;
        let product_channel = connect_lazy(&settings.product_service_url, &options)?;
        let user_channel = connect_lazy(&settings.user_service_url, &options)?;
        let notifier = notifications::sink::Sink::new(&settings.notifier)?;
        Ok(Self {
            grpc_addr: grpc_listener.local_addr()?,
            http_addr: http_listener.local_addr()?,
            context: ProcessContext {
                pool,
                clock: Clock::system(),
                connector,
                namespace,
                settings: Arc::new(settings),
                orders: OrderServiceClient::new(order_channel),
                stock: StockServiceClient::new(product_channel),
                users: UserServiceClient::new(user_channel),
                notifier,
            },
            relay,
            grpc_listener,
            http_listener,
            shutdown: Shutdown::new(),
        })
    }

    /// Runs under `shutdown` instead of the application's own.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Takes business time from `clock`.
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
    pub fn context(&self) -> &ProcessContext {
        &self.context
    }

    /// The shutdown handle.
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
        let readiness = probes::Readiness::new(shutdown.token()).with_check(db::readiness_check(
            context.pool.clone(),
            Duration::from_secs(2),
        ));
        let server = GrpcServer::new(
            ServerOptions::internal(context.settings.common.limits)
                .with_shutdown_delay(context.settings.common.shutdown_delay),
        )?;
        let server = grpc::register(server, &context);
        let grpc_task = shutdown.spawn(server.serve(grpc_listener, shutdown.wait_owned()));
        shutdown.spawn(probes::serve(
            http_listener,
            probes::router(readiness),
            shutdown.wait_owned(),
        ));
        shutdown.spawn(relay.run(shutdown.token()));
        shipments::spawn_background(&context, &shutdown);
        notifications::spawn_background(&context, &shutdown);

        shutdown.cancelled().await;
        let drained = shutdown.drain(context.settings.common.shutdown_grace).await;
        context.connector.close().await;
        context.pool.close().await;
        Ok(finish_serving(grpc_task, drained).await?)
    }
}
