//! Starting the process service in tests: [`ProcessService`] for `mercato_testkit::TestSystem`
//! (its order and product services are the system's `order` and `product` peers), and
//! [`TestEnv`] for tests that need their own settings or a restart on one database, against
//! services the test started itself; [`SmtpServer`] is a real SMTP server (aiosmtpd) for the
//! SMTP sink's tests.

pub mod smtp;

pub use smtp::{ReceivedMail, SmtpReply, SmtpServer, SmtpServerOptions};

use std::net::SocketAddr;
use std::time::Duration;

use mercato_platform::clock::Clock;
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

use crate::context::ProcessContext;
use crate::settings::{FulfilmentSettings, NotifierSettings, Settings};
use crate::{Application, ApplicationError, MIGRATOR};

/// Where the service's resources are for one test, and where its peers are.
#[derive(Debug, Clone)]
pub struct TestResources {
    /// Database, Redis, broker.
    pub service: ServiceResources,
    /// gRPC base URI of the order service.
    pub order_service_url: String,
    /// gRPC base URI of the product service.
    pub product_service_url: String,
    /// gRPC base URI of the user service, for the SMTP sink's e-mail lookups; `None` keeps the
    /// default (never dialled by the log sink).
    pub user_service_url: Option<String>,
}

/// Settings for a test instance on `resources`: both listeners on port 0, no carrier delay,
/// quick sweeps and retries.
pub fn test_settings(resources: &TestResources) -> Settings {
    let TestResources {
        service: resources,
        order_service_url,
        product_service_url,
        user_service_url,
    } = resources;
    Settings {
        common: CommonSettings {
            service: crate::settings::SERVICE.to_owned(),
            listen: ListenSettings {
                grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            },
            telemetry: TelemetrySettings::local("mercato-process"),
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
        product_service_url: product_service_url.clone(),
        user_service_url: user_service_url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned()),
        fulfilment: FulfilmentSettings {
            shipment_delay: Duration::ZERO,
            sweep_interval: Duration::from_millis(100),
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_millis(300),
            ..FulfilmentSettings::default()
        },
        notifier: NotifierSettings {
            sweep_interval: Duration::from_millis(100),
            retry_base: Duration::from_millis(50),
            ..NotifierSettings::default()
        },
    }
}

/// The process service for `mercato_testkit::TestSystem` (system clock, test settings); the
/// system must also run the order and product services, under the names `order` and `product`,
/// and its user service, if it runs one, is the `user` peer.
#[derive(Debug)]
pub struct ProcessService;

impl TestService for ProcessService {
    const NAME: &'static str = "process";

    fn migrators() -> Vec<&'static Migrator> {
        vec![&mercato_messaging::MIGRATOR, &MIGRATOR]
    }

    async fn run(ctx: ServiceContext) -> Result<(), mercato_testkit::system::ServiceError> {
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let peer = |name: &str| {
            ctx.peers.uri(name).ok_or_else(|| {
                std::io::Error::other(format!(
                    "the test system runs no {name} service for the process service"
                ))
            })
        };
        let resources = TestResources {
            service: ctx.resources(),
            order_service_url: peer("order")?,
            product_service_url: peer("product")?,
            user_service_url: ctx.peers.uri("user"),
        };
        let application =
            Application::build(test_settings(&resources), ctx.grpc_listener, http_listener)
                .await?
                .with_shutdown(ctx.shutdown);
        application.run().await?;
        Ok(())
    }
}

/// One test's database and broker namespace, on which the service can be started (and
/// restarted) with custom settings.
#[derive(Debug)]
pub struct TestEnv {
    env: ServiceEnv,
    order_service_url: String,
    product_service_url: String,
    user_service_url: Option<String>,
}

impl TestEnv {
    /// Fresh, migrated resources for a process service that calls the order and product
    /// services at these URIs (`http://host:port`).
    pub async fn new(
        order_service_url: impl Into<String>,
        product_service_url: impl Into<String>,
    ) -> Result<Self, mercato_testkit::Error> {
        let env = ServiceEnv::new(ProcessService::NAME, &ProcessService::migrators()).await?;
        Ok(Self {
            env,
            order_service_url: order_service_url.into(),
            product_service_url: product_service_url.into(),
            user_service_url: None,
        })
    }

    /// The service's database.
    pub fn database(&self) -> &TestDatabase {
        self.env.database()
    }

    /// The broker namespace.
    pub fn broker(&self) -> &TestBroker {
        self.env.broker()
    }

    /// The resources as settings inputs.
    pub fn resources(&self) -> TestResources {
        TestResources {
            service: self.env.resources(),
            order_service_url: self.order_service_url.clone(),
            product_service_url: self.product_service_url.clone(),
            user_service_url: self.user_service_url.clone(),
        }
    }

    /// Points later starts at another order service (one the test restarted elsewhere).
    pub fn set_order_service_url(&mut self, url: impl Into<String>) {
        self.order_service_url = url.into();
    }

    /// Points later starts at a user service (for the SMTP sink's e-mail lookups).
    pub fn set_user_service_url(&mut self, url: impl Into<String>) {
        self.user_service_url = Some(url.into());
    }

    /// The test settings adjusted by `configure`.
    pub fn settings(&self, configure: impl FnOnce(&mut Settings)) -> Settings {
        let mut settings = test_settings(&self.resources());
        configure(&mut settings);
        settings
    }

    /// Starts the service on the system clock with the test settings adjusted by `configure`.
    pub async fn start(
        &self,
        configure: impl FnOnce(&mut Settings),
    ) -> Result<RunningProcess, ApplicationError> {
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await?;
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let application =
            Application::build(self.settings(configure), grpc_listener, http_listener)
                .await?
                .with_clock(Clock::system());
        let shutdown = application.shutdown();
        let grpc_addr = application.grpc_addr();
        let http_addr = application.http_addr();
        let context = application.context().clone();
        let task = tokio::spawn(application.run());
        Ok(RunningProcess {
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
pub struct RunningProcess {
    /// gRPC address.
    pub grpc_addr: SocketAddr,
    /// HTTP address (probes).
    pub http_addr: SocketAddr,
    /// The instance's shared context (pool, clock, settings, clients).
    pub context: ProcessContext,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), ApplicationError>>>,
}

impl RunningProcess {
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

impl Drop for RunningProcess {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
