//! The user service: local accounts and the built-in token issuer (EdDSA or RS256 access JWTs
//! with private keys optionally encrypted at rest, a JWKS, rotating refresh tokens with reuse
//! detection, signing-key rotation), profiles and shipping addresses, roles, and profile
//! provisioning for external identity providers.
//!
//! [`Application::build`] takes pre-bound listeners so tests start the service on port 0.

pub mod app;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod http;
pub mod key_encryption;
pub mod keys;
pub mod settings;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;
use std::time::Duration;

use mercato_messaging::{
    ConnectionConfig, Connector, Namespace, OutboxRelay, Publisher, RelayConfig,
};
use mercato_platform::grpc::{GrpcServer, GrpcServerError, ServerOptions, finish_serving};
use mercato_platform::shutdown::Shutdown;
use mercato_platform::{db, http as probes, redis as platform_redis};
use mercato_proto::mercato::user::v1::auth_service_server::AuthServiceServer;
use mercato_proto::mercato::user::v1::signing_key_service_server::SigningKeyServiceServer;
use mercato_proto::mercato::user::v1::user_service_server::UserServiceServer;
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::app::UserApp;
use crate::error::UserError;
use crate::grpc::UserGrpc;
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
    /// Key or account set-up failed.
    #[error("user service set-up failed")]
    User(#[from] UserError),
    /// The gRPC server failed.
    #[error("grpc server failed")]
    Grpc(#[from] GrpcServerError),
    /// A listener has no local address.
    #[error("listener failed")]
    Io(#[from] std::io::Error),
}

/// A built, not yet running, user service.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    pool: PgPool,
    app: UserApp,
    connector: Connector,
    relay: OutboxRelay,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    redis: redis::aio::ConnectionManager,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: Shutdown,
}

impl Application {
    /// Connects to PostgreSQL, Redis and RabbitMQ, migrates, makes sure a signing key exists,
    /// and prepares both servers on the given listeners.
    pub async fn build(
        settings: Settings,
        grpc_listener: TcpListener,
        http_listener: TcpListener,
    ) -> Result<Self, ApplicationError> {
        let pool = db::connect(&settings.database, "mercato-user").await?;
        db::migrate(&pool, &mercato_messaging::MIGRATOR).await?;
        db::migrate(&pool, &MIGRATOR).await?;
        let redis = platform_redis::connect(&settings.redis).await?;
        let keys = platform_redis::Keys::from_settings(&settings.redis);
        let app = UserApp::new(pool.clone(), redis.clone(), keys, settings.auth.clone()).await?;
        app.ensure_signing_key().await?;

        let namespace = Namespace::from_setting(&settings.bus_namespace)?;
        let connector = Connector::new(ConnectionConfig::new(
            settings.amqp.url.expose_secret(),
            "user-service",
        ));
        let relay = OutboxRelay::new(
            pool.clone(),
            Publisher::new(connector.clone(), namespace),
            RelayConfig {
                // Nothing in the system consumes it yet; a subscriber hears it from when its
                // queue exists.
                announcements: vec![events::USER_REGISTERED.to_owned()],
                ..RelayConfig::default()
            },
        );
        Ok(Self {
            grpc_addr: grpc_listener.local_addr()?,
            http_addr: http_listener.local_addr()?,
            settings,
            pool,
            app,
            connector,
            relay,
            grpc_listener,
            http_listener,
            redis,
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

    /// Where gRPC is served.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where the JWKS, discovery and probes are served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The shutdown handle: triggering it stops the service (`main` wires signals to it).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until shutdown is triggered, then drains within the grace period.
    pub async fn run(self) -> Result<(), ApplicationError> {
        let Self {
            settings,
            pool,
            app,
            connector,
            relay,
            grpc_listener,
            http_listener,
            redis,
            shutdown,
            ..
        } = self;
        let readiness = probes::Readiness::new(shutdown.token())
            .with_check(db::readiness_check(pool.clone(), Duration::from_secs(2)))
            .with_check(platform_redis::readiness_check(
                redis,
                Duration::from_secs(2),
            ));
        let grpc = UserGrpc::new(app.clone());
        let server = GrpcServer::new(
            ServerOptions::internal(settings.common.limits)
                .with_shutdown_delay(settings.common.shutdown_delay),
        )?
        .add_service(AuthServiceServer::new(grpc.clone()))
        .add_service(UserServiceServer::new(grpc.clone()))
        .add_service(SigningKeyServiceServer::new(grpc));
        let router = probes::router(readiness).merge(http::well_known_router(app));
        let grpc_task = shutdown.spawn(server.serve(grpc_listener, shutdown.wait_owned()));
        shutdown.spawn(probes::serve(http_listener, router, shutdown.wait_owned()));
        shutdown.spawn(relay.run(shutdown.token()));

        shutdown.cancelled().await;
        let drained = shutdown.drain(settings.common.shutdown_grace).await;
        connector.close().await;
        pool.close().await;
        Ok(finish_serving(grpc_task, drained).await?)
    }
}
