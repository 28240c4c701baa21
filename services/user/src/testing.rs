//! Starting the user service in tests: [`UserService`] for `mercato_testkit::TestSystem`, and
//! [`TestEnv`] for tests that need their own settings or restart the service on one database.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex, PoisonError};
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
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::settings::{AuthSettings, PasswordHashing, Settings};
use crate::{Application, ApplicationError, MIGRATOR};

/// Argon2id cost for tests: the minimum memory, one pass, so a debug build hashes quickly. Real
/// deployments keep the defaults.
pub const TEST_PASSWORD_HASHING: PasswordHashing = PasswordHashing {
    memory_kib: 64,
    iterations: 1,
    concurrency: 4,
};

/// Where the service's resources are for one test.
pub type TestResources = ServiceResources;

/// Settings for a test instance whose HTTP listener is `http_addr` (the issuer URL points at
/// it, so the discovery document's `jwks_uri` is reachable).
pub fn test_settings(resources: &TestResources, http_addr: SocketAddr) -> Settings {
    let mut auth = AuthSettings::local_defaults();
    auth.issuer = format!("http://{http_addr}");
    auth.password_hashing = TEST_PASSWORD_HASHING;
    Settings {
        common: CommonSettings {
            service: crate::settings::SERVICE.to_owned(),
            listen: ListenSettings {
                grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                http_addr,
            },
            telemetry: TelemetrySettings::local("mercato-user"),
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
            prefetch: std::num::NonZeroU16::MIN,
        },
        bus_namespace: resources.broker_namespace.clone(),
        auth,
    }
}

/// HTTP addresses of in-process instances by gRPC address, so a test that started the service
/// through `TestSystem` (which only knows gRPC) finds its JWKS.
static HTTP_ADDRS: LazyLock<Mutex<HashMap<SocketAddr, SocketAddr>>> = LazyLock::new(Mutex::default);
static HTTP_ADDR_ANNOUNCED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// The HTTP address (JWKS, discovery) of the in-process instance serving gRPC on `grpc_addr`,
/// waiting up to `patience` for it to start.
pub async fn http_addr_of(grpc_addr: SocketAddr, patience: Duration) -> Option<SocketAddr> {
    let lookup = || {
        HTTP_ADDRS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&grpc_addr)
            .copied()
    };
    tokio::time::timeout(patience, async {
        loop {
            // Register interest before looking, so an announcement in between is not missed.
            let announced = HTTP_ADDR_ANNOUNCED.notified();
            if let Some(addr) = lookup() {
                return addr;
            }
            announced.await;
        }
    })
    .await
    .ok()
}

fn announce(grpc_addr: SocketAddr, http_addr: SocketAddr) {
    HTTP_ADDRS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(grpc_addr, http_addr);
    HTTP_ADDR_ANNOUNCED.notify_waiters();
}

/// The user service for `mercato_testkit::TestSystem` (local issuer, test password cost). Its
/// HTTP address comes from [`http_addr_of`].
#[derive(Debug)]
pub struct UserService;

impl TestService for UserService {
    const NAME: &'static str = "user";

    fn migrators() -> Vec<&'static Migrator> {
        vec![&mercato_messaging::MIGRATOR, &MIGRATOR]
    }

    async fn run(ctx: ServiceContext) -> Result<(), mercato_testkit::system::ServiceError> {
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let http_addr = http_listener.local_addr()?;
        let resources = ctx.resources();
        let settings = test_settings(&resources, http_addr);
        let application = Application::build(settings, ctx.grpc_listener, http_listener)
            .await?
            .with_shutdown(ctx.shutdown);
        announce(application.grpc_addr(), http_addr);
        application.run().await?;
        Ok(())
    }
}

/// One test's database, Redis prefix and broker namespace, on which the service can be started
/// (and restarted) with custom settings.
#[derive(Debug)]
pub struct TestEnv {
    env: ServiceEnv,
}

impl TestEnv {
    /// Fresh, migrated resources.
    pub async fn new() -> Result<Self, mercato_testkit::Error> {
        let env = ServiceEnv::new(UserService::NAME, &UserService::migrators()).await?;
        Ok(Self { env })
    }

    /// The service's database.
    pub fn database(&self) -> &TestDatabase {
        self.env.database()
    }

    /// The broker namespace (the bus exchanges are deleted with the test).
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

    /// Starts the service with the test settings adjusted by `configure`.
    pub async fn start(
        &self,
        configure: impl FnOnce(&mut Settings),
    ) -> Result<RunningUser, ApplicationError> {
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await?;
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let http_addr = http_listener.local_addr()?;
        let mut settings = test_settings(&self.resources(), http_addr);
        configure(&mut settings);
        let application = Application::build(settings, grpc_listener, http_listener).await?;
        let shutdown = application.shutdown();
        let grpc_addr = application.grpc_addr();
        let task = tokio::spawn(application.run());
        Ok(RunningUser {
            grpc_addr,
            http_addr,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running instance; dropping it triggers its shutdown.
#[derive(Debug)]
pub struct RunningUser {
    /// gRPC address.
    pub grpc_addr: SocketAddr,
    /// HTTP address (JWKS, discovery, probes).
    pub http_addr: SocketAddr,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), ApplicationError>>>,
}

impl RunningUser {
    /// `http://<grpc addr>`.
    pub fn grpc_uri(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://<http addr><path>`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
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

impl Drop for RunningUser {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
