//! Starting the payment service in tests: [`PaymentService`] for `mercato_testkit::TestSystem`
//! (its order service is the system's `order` peer), and [`TestEnv`] for tests that need their
//! own settings, a manual clock, or a restart on one database, against an order service the test
//! started itself.

use std::net::SocketAddr;
use std::time::Duration;

use mercato_platform::settings::{
    AmqpSettings, CommonSettings, DatabaseSettings, ListenSettings, ServerLimits, TelemetrySettings,
};
use mercato_platform::shutdown::Shutdown;
use mercato_testkit::{
    ServiceContext, ServiceEnv, ServiceResources, TestBroker, TestDatabase, TestService,
};
use secrecy::SecretString;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::context::PaymentContext;
use crate::settings::{PaymentSettings, PayoutSettings, Settings, WalletSettings};
use crate::{Application, ApplicationError, MIGRATOR};
use mercato_platform::clock::Clock;

/// Where the service's resources are for one test, and where its order service is.
#[derive(Debug, Clone)]
pub struct TestResources {
    /// Database, Redis, broker.
    pub service: ServiceResources,
    /// gRPC base URI of the order service.
    pub order_service_url: String,
}

/// The webhook secret of test instances (tests sign events with it).
pub const TEST_WEBHOOK_SECRET: &str = "whsec_mercato_test";

/// Settings for a test instance on `resources`, both listeners on port 0.
pub fn test_settings(resources: &TestResources) -> Settings {
    let TestResources {
        service: resources,
        order_service_url,
    } = resources;
    Settings {
        common: CommonSettings {
            service: crate::settings::SERVICE.to_owned(),
            listen: ListenSettings {
                grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            },
            telemetry: TelemetrySettings::local("mercato-payment"),
            limits: ServerLimits::default(),
            shutdown_grace: Duration::from_secs(5),
            shutdown_delay: Duration::ZERO,
        },
        database: DatabaseSettings::from_url(resources.database_url.clone()),
        amqp: AmqpSettings {
            url: SecretString::from(resources.amqp_url.clone()),
            prefetch: std::num::NonZeroU16::new(16).unwrap_or(std::num::NonZeroU16::MIN),
        },
        bus_namespace: resources.broker_namespace.clone(),
        order_service_url: order_service_url.clone(),
        payments: PaymentSettings {
            webhook_secrets: vec![SecretString::from(TEST_WEBHOOK_SECRET)],
            // Tests run reconciliation on demand (ReconcilePayments) rather than waiting for it.
            reconcile_interval: Duration::from_secs(3_600),
            ..PaymentSettings::default()
        },
        wallet: WalletSettings::default(),
        // Quick retries: a test waits for a payout's transfer, never for a backoff.
        payouts: PayoutSettings {
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_secs(1),
            sweep_interval: Duration::from_millis(250),
            ..PayoutSettings::default()
        },
    }
}

/// The payment service for `mercato_testkit::TestSystem` (system clock, test settings); the
/// system must also run the order service, under the name `order`.
#[derive(Debug)]
pub struct PaymentService;

impl TestService for PaymentService {
    const NAME: &'static str = "payment";

    fn migrators() -> Vec<&'static Migrator> {
        vec![&mercato_messaging::MIGRATOR, &MIGRATOR]
    }

    async fn run(ctx: ServiceContext) -> Result<(), mercato_testkit::system::ServiceError> {
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let order_service_url = ctx.peers.uri("order").ok_or_else(|| {
            std::io::Error::other("the test system runs no order service for the payment service")
        })?;
        let resources = TestResources {
            service: ctx.resources(),
            order_service_url,
        };
        let application =
            Application::build(test_settings(&resources), ctx.grpc_listener, http_listener)
                .await?
                .with_shutdown(ctx.shutdown);
        application.run().await?;
        Ok(())
    }
}

/// One test's database, Redis prefix and broker namespace, on which the service can be started
/// (and restarted) with custom settings and a manual clock.
#[derive(Debug)]
pub struct TestEnv {
    env: ServiceEnv,
    order_service_url: String,
}

impl TestEnv {
    /// Fresh, migrated resources for a payment service that calls the order service at
    /// `order_service_url` (`http://host:port`).
    pub async fn new(order_service_url: impl Into<String>) -> Result<Self, mercato_testkit::Error> {
        let env = ServiceEnv::new(PaymentService::NAME, &PaymentService::migrators()).await?;
        Ok(Self {
            env,
            order_service_url: order_service_url.into(),
        })
    }

    /// The service's database.
    pub fn database(&self) -> &TestDatabase {
        self.env.database()
    }

    /// The broker namespace (the bus exchanges and the queues the service declares are deleted
    /// with the test).
    pub fn broker(&self) -> &TestBroker {
        self.env.broker()
    }

    /// The resources as settings inputs.
    pub fn resources(&self) -> TestResources {
        TestResources {
            service: self.env.resources(),
            order_service_url: self.order_service_url.clone(),
        }
    }

    /// Starts the service on the system clock with the test settings adjusted by `configure`.
    pub async fn start(
        &self,
        configure: impl FnOnce(&mut Settings),
    ) -> Result<RunningPayment, ApplicationError> {
        self.start_with_clock(Clock::system(), configure).await
    }

    /// Starts the service with business time taken from `clock`.
    pub async fn start_with_clock(
        &self,
        clock: Clock,
        configure: impl FnOnce(&mut Settings),
    ) -> Result<RunningPayment, ApplicationError> {
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await?;
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut settings = test_settings(&self.resources());
        configure(&mut settings);
        let application = Application::build(settings, grpc_listener, http_listener)
            .await?
            .with_clock(clock);
        let shutdown = application.shutdown();
        let grpc_addr = application.grpc_addr();
        let http_addr = application.http_addr();
        let context = application.context().clone();
        let task = tokio::spawn(application.run());
        Ok(RunningPayment {
            grpc_addr,
            http_addr,
            context,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running instance; dropping it triggers its shutdown.
#[derive(Debug)]
pub struct RunningPayment {
    /// gRPC address.
    pub grpc_addr: SocketAddr,
    /// HTTP address (probes, webhooks, the sandbox page).
    pub http_addr: SocketAddr,
    /// The instance's shared context (pool, clock, settings, providers).
    pub context: PaymentContext,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), ApplicationError>>>,
}

impl RunningPayment {
    /// `http://<grpc addr>`.
    pub fn grpc_uri(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://<http addr>`.
    pub fn http_uri(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Stops the instance and waits for it; returns its error, if any.
    pub async fn stop(mut self) -> Result<(), String> {
        self.shutdown.trigger();
        match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(join) => Err(join.to_string()),
            },
            None => Ok(()),
        }
    }
}

impl Drop for RunningPayment {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
