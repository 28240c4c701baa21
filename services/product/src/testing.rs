//! Starting the product service in tests: [`ProductService`] for `mercato_testkit::TestSystem`,
//! and [`TestEnv`] for tests that need their own settings, a manual clock, or a restart on one
//! database.

use std::net::SocketAddr;
use std::time::Duration;

use mercato_platform::settings::{
    AmqpSettings, CommonSettings, DatabaseSettings, ListenSettings, RedisSettings, ServerLimits,
    TelemetrySettings,
};
use mercato_platform::shutdown::Shutdown;
use mercato_testkit::{
    ServiceContext, ServiceEnv, ServiceResources, TestBroker, TestDatabase, TestRedis, TestService,
};
use secrecy::SecretString;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::catalog::CatalogSettings;
use crate::clock::Clock;
use crate::context::ProductContext;
use crate::settings::Settings;
use crate::stock::StockSettings;
use crate::{Application, ApplicationError, MIGRATOR};

/// Where the service's resources are for one test.
pub type TestResources = ServiceResources;

/// Settings for a test instance on `resources`, both listeners on port 0.
pub fn test_settings(resources: &TestResources) -> Settings {
    Settings {
        common: CommonSettings {
            service: crate::settings::SERVICE.to_owned(),
            listen: ListenSettings {
                grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            },
            telemetry: TelemetrySettings::local("mercato-product"),
            limits: ServerLimits::default(),
            shutdown_grace: Duration::from_secs(5),
            shutdown_delay: Duration::ZERO,
        },
        database: DatabaseSettings::from_url(resources.database_url.clone()),
        redis: RedisSettings {
            url: SecretString::from(resources.redis_url.clone()),
            key_prefix: resources.redis_prefix.clone(),
        },
        amqp: AmqpSettings {
            url: SecretString::from(resources.amqp_url.clone()),
            prefetch: std::num::NonZeroU16::new(16).unwrap_or(std::num::NonZeroU16::MIN),
        },
        bus_namespace: resources.broker_namespace.clone(),
        catalog: CatalogSettings::test_defaults(),
        stock: StockSettings::test_defaults(),
    }
}

/// The product service for `mercato_testkit::TestSystem` (system clock, test settings).
#[derive(Debug)]
pub struct ProductService;

impl TestService for ProductService {
    const NAME: &'static str = "product";

    fn migrators() -> Vec<&'static Migrator> {
        vec![&mercato_messaging::MIGRATOR, &MIGRATOR]
    }

    async fn run(ctx: ServiceContext) -> Result<(), mercato_testkit::system::ServiceError> {
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let resources = ctx.resources();
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
}

impl TestEnv {
    /// Fresh, migrated resources.
    pub async fn new() -> Result<Self, mercato_testkit::Error> {
        let env = ServiceEnv::new(ProductService::NAME, &ProductService::migrators()).await?;
        Ok(Self { env })
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

    /// The Redis prefix.
    pub fn redis(&self) -> &TestRedis {
        self.env.redis()
    }

    /// The resources as settings inputs.
    pub fn resources(&self) -> TestResources {
        self.env.resources()
    }

    /// Starts the service on the system clock with the test settings adjusted by `configure`.
    pub async fn start(
        &self,
        configure: impl FnOnce(&mut Settings),
    ) -> Result<RunningProduct, ApplicationError> {
        self.start_with_clock(Clock::system(), configure).await
    }

    /// Starts the service with business time taken from `clock`.
    pub async fn start_with_clock(
        &self,
        clock: Clock,
        configure: impl FnOnce(&mut Settings),
    ) -> Result<RunningProduct, ApplicationError> {
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
        Ok(RunningProduct {
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
pub struct RunningProduct {
    /// gRPC address.
    pub grpc_addr: SocketAddr,
    /// HTTP address (probes).
    pub http_addr: SocketAddr,
    /// The instance's shared context (pool, Redis, clock, settings).
    pub context: ProductContext,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), ApplicationError>>>,
}

impl RunningProduct {
    /// `http://<grpc addr>`.
    pub fn grpc_uri(&self) -> String {
        format!("http://{}", self.grpc_addr)
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

impl Drop for RunningProduct {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
