//! The payment service: one payment per order behind a provider trait (the built-in sandbox, or
//! an adapter plugged in with [`Application::with_provider`]), settled from signature-verified
//! webhooks and by reconciliation, refunded when a paid order is cancelled; the points wallet
//! (`WalletService`), whose ledger pays POINTS orders in the same transaction as the payment;
//! and seller payouts (`PayoutService`, [`payouts`]) through Stripe Connect.
//!
//! [`Application::build`] takes pre-bound listeners so tests start the service on port 0. The
//! HTTP listener serves the probes, the webhook endpoint and the sandbox payment page.

pub mod context;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod http;
pub mod payments;
pub mod payouts;
pub mod provider;
pub mod settings;
pub mod signature;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wallet;
pub mod webhook;

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
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use crate::context::PaymentContext;
use crate::domain::Method;
use crate::provider::connect::StripeConnect;
use crate::provider::sandbox::SandboxProvider;
use crate::provider::stripe::StripeProvider;
use crate::provider::{PaymentProvider, Providers};
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
    /// The order service URL is not a valid endpoint.
    #[error("order service channel set-up failed")]
    Channel(#[from] ChannelError),
    /// A listener failed.
    #[error("listener failed")]
    Io(#[from] std::io::Error),
    /// The Stripe client could not be built from `STRIPE_SECRET_KEY` / `STRIPE_API_BASE_URL`.
    #[error("stripe client set-up failed")]
    Stripe(#[from] mercato_stripe::StripeError),
}

/// A built, not yet running, payment service.
#[derive(Debug)]
pub struct Application {
    context: PaymentContext,
    relay: OutboxRelay,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: Shutdown,
}

/// A random signing secret for a process configured with none (sandbox only).
fn ephemeral_secret() -> SecretString {
    use rand::Rng as _;
    let bytes: [u8; 24] = rand::rng().random();
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    SecretString::from(format!("whsec_{text}"))
}

impl Application {
    /// Connects to PostgreSQL and RabbitMQ, migrates, and prepares both servers on the given
    /// listeners. SANDBOX uses the sandbox provider; STRIPE uses Stripe when
    /// `STRIPE_SECRET_KEY` is set and the sandbox otherwise (another adapter can still be
    /// plugged in with [`Application::with_provider`]).
    pub async fn build(
        settings: Settings,
        grpc_listener: TcpListener,
        http_listener: TcpListener,
    ) -> Result<Self, ApplicationError> {
        let pool = db::connect(&settings.database, "mercato-payment").await?;
        db::migrate(&pool, &mercato_messaging::MIGRATOR).await?;
        db::migrate(&pool, &MIGRATOR).await?;
        let namespace = Namespace::from_setting(&settings.bus_namespace)?;
        let connector = Connector::new(ConnectionConfig::new(
            settings.amqp.url.expose_secret(),
            "payment-service",
        ));
        let relay = OutboxRelay::new(
            pool.clone(),
            Publisher::new(connector.clone(), namespace.clone()),
            RelayConfig::default(),
        );
        let channel = connect_lazy(
            &settings.order_service_url,
            &ChannelOptions::new(settings::SERVICE),
        )?;
        let http_addr = http_listener.local_addr()?;
        let public_url = settings
            .payments
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{http_addr}"));
        let sandbox = SandboxProvider::new(pool.clone(), public_url);
        let mut providers = Providers::new();
        let shared: Arc<dyn PaymentProvider> = Arc::new(sandbox.clone());
        providers.set(Method::Sandbox, Arc::clone(&shared));
        let mut connect = None;
        match &settings.payments.stripe_secret_key {
            Some(key) => {
                connect = Some(StripeConnect::new(
                    key,
                    &settings.payments.stripe_api_base_url,
                )?);
                let stripe = StripeProvider::new(key, &settings.payments.stripe_api_base_url)?;
                tracing::info!(
                    stripe.base_url = %settings.payments.stripe_api_base_url,
                    "STRIPE payments go to stripe"
                );
                if settings.payments.webhook_secrets.is_empty() {
                    tracing::warn!(
                        "STRIPE_SECRET_KEY is set but WEBHOOK_SECRETS is not: stripe's webhooks \
                         will be refused and payments settle only by reconciliation"
                    );
                }
                providers.set(Method::Stripe, Arc::new(stripe));
            }
            None => providers.set(Method::Stripe, shared),
        }
        let webhook_secrets = if settings.payments.webhook_secrets.is_empty() {
            tracing::info!("no webhook secret configured: the sandbox signs with a random one");
            vec![ephemeral_secret()]
        } else {
            settings.payments.webhook_secrets.clone()
        };
        Ok(Self {
            grpc_addr: grpc_listener.local_addr()?,
            http_addr,
            context: PaymentContext {
                pool,
                clock: Clock::system(),
                connector,
                namespace,
                settings: Arc::new(settings),
                orders: OrderServiceClient::new(channel),
                providers,
                sandbox,
                connect,
                webhook_secrets: Arc::new(webhook_secrets),
            },
            relay,
            grpc_listener,
            http_listener,
            shutdown: Shutdown::new(),
        })
    }

    /// Serves new payments of `method` with `provider` (a Stripe adapter for
    /// [`Method::Stripe`]); payments already made with another provider keep theirs.
    #[must_use]
    pub fn with_provider(mut self, method: Method, provider: Arc<dyn PaymentProvider>) -> Self {
        self.context.providers.set(method, provider);
        self
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

    /// Where the probes, webhooks and the sandbox page are served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The shared context (tests inspect the pool through it).
    pub fn context(&self) -> &PaymentContext {
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
        let router = probes::router(readiness).merge(http::router(context.clone()));
        shutdown.spawn(probes::serve(http_listener, router, shutdown.wait_owned()));
        shutdown.spawn(relay.run(shutdown.token()));
        payments::spawn_background(&context, &shutdown);
        payouts::spawn_background(&context, &shutdown);

        shutdown.cancelled().await;
        let drained = shutdown.drain(context.settings.common.shutdown_grace).await;
        context.connector.close().await;
        context.pool.close().await;
        Ok(finish_serving(grpc_task, drained).await?)
    }
}
