//! Starts any set of Mercato services in this process, each on 127.0.0.1:0 with its own fresh
//! database, sharing one broker namespace and one Redis prefix, and hands back typed clients.
//!
//! A service crate opts in by implementing [`TestService`] (usually in a `testing` module next
//! to its `Application`): its name, its migrators and how to run from a [`ServiceContext`].
//! Scenario tests then write
//!
//! ```ignore
//! let system = TestSystem::builder()
//!     .with::<ProductService>()
//!     .with::<OrderService>()
//!     .start()
//!     .await
//!     .expect("system starts");
//! let mut orders = system.client("order", OrderServiceClient::new);
//! ```
//!
//! Every listener is bound before any service starts, so each service knows its peers'
//! addresses up front and a client can connect at once: the kernel queues the connection until
//! the server accepts it, so no test sleeps waiting for a port.

use std::{collections::BTreeMap, future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use mercato_platform::{
    grpc::{ChannelOptions, ClientChannel, connect_lazy},
    shutdown::Shutdown,
};
use sqlx::{PgPool, migrate::Migrator};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{Error, TestBroker, TestDatabase, TestRedis};

/// Boxed error a service returns when it fails to start or stops with an error.
pub type ServiceError = Box<dyn std::error::Error + Send + Sync + 'static>;

type BoxedRun = Box<
    dyn FnOnce(ServiceContext) -> Pin<Box<dyn Future<Output = Result<(), ServiceError>> + Send>>,
>;

/// A service that [`TestSystem`] can start in-process.
pub trait TestService: 'static {
    /// The service's name (`"order"`), used for peers, clients and log lines.
    const NAME: &'static str;

    /// The migrators of the service's database, applied in order to a template that each test
    /// clones (typically `[&mercato_messaging::MIGRATOR, &MIGRATOR]`).
    fn migrators() -> Vec<&'static Migrator>;

    /// Serves on `ctx.grpc_listener` until `ctx.shutdown` is triggered, then drains and returns.
    fn run(ctx: ServiceContext) -> impl Future<Output = Result<(), ServiceError>> + Send + 'static;
}

/// Everything one in-process service instance gets: isolated resources and its peers.
#[derive(Debug)]
pub struct ServiceContext {
    /// This service's name.
    pub name: &'static str,
    /// A pool on the service's own fresh, migrated database.
    pub pool: PgPool,
    /// The URL of that database, for code that builds its own pool.
    pub database_url: String,
    /// The broker URL.
    pub amqp_url: String,
    /// The namespace prefixing every exchange and queue of this test (shared by all services, so
    /// they talk over one bus that no other test sees).
    pub broker_namespace: String,
    /// The Redis URL.
    pub redis_url: String,
    /// The key prefix of this test and service (`<test prefix><service>:`).
    pub redis_prefix: String,
    /// The gRPC listener, already bound to 127.0.0.1:0.
    pub grpc_listener: TcpListener,
    /// The gRPC base URIs of every service in the system, this one included.
    pub peers: Peers,
    /// Triggered when the system shuts down.
    pub shutdown: Shutdown,
}

/// The gRPC base URIs (`http://127.0.0.1:<port>`) of the services in a [`TestSystem`].
#[derive(Debug, Clone, Default)]
pub struct Peers(Arc<BTreeMap<&'static str, SocketAddr>>);

impl Peers {
    /// The address of service `name`, if the system runs it.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.0.get(name).copied()
    }

    /// The base URI of service `name`, if the system runs it.
    pub fn uri(&self, name: &str) -> Option<String> {
        self.addr(name).map(|addr| format!("http://{addr}"))
    }

    /// The names of every service in the system.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }
}

struct Registration {
    name: &'static str,
    migrators: Vec<&'static Migrator>,
    run: BoxedRun,
}

/// Collects the services to start; see [`TestSystem::builder`].
#[must_use]
pub struct TestSystemBuilder {
    services: Vec<Registration>,
}

impl std::fmt::Debug for TestSystemBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.services.iter().map(|s| s.name).collect();
        f.debug_struct("TestSystemBuilder")
            .field("services", &names)
            .finish()
    }
}

impl TestSystemBuilder {
    /// Adds service `S`.
    ///
    /// # Panics
    /// When `S` was already added: one instance per name keeps peers unambiguous.
    pub fn with<S: TestService>(mut self) -> Self {
        assert!(
            self.services.iter().all(|s| s.name != S::NAME),
            "service {} added twice",
            S::NAME
        );
        self.services.push(Registration {
            name: S::NAME,
            migrators: S::migrators(),
            run: Box::new(|ctx| Box::pin(S::run(ctx))),
        });
        self
    }

    /// Creates the databases, binds every listener, then starts every service.
    pub async fn start(self) -> Result<TestSystem, Error> {
        let broker = TestBroker::new();
        let redis = TestRedis::new()?;
        let shutdown = Shutdown::new();

        // Bind everything first so every service starts knowing all of its peers.
        let mut prepared = Vec::with_capacity(self.services.len());
        let mut addrs = BTreeMap::new();
        for registration in self.services {
            let database = TestDatabase::new(&registration.migrators).await?;
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            addrs.insert(registration.name, addr);
            prepared.push((registration, database, listener));
        }
        let peers = Peers(Arc::new(addrs));

        let mut services = BTreeMap::new();
        for (registration, database, listener) in prepared {
            let ctx = ServiceContext {
                name: registration.name,
                pool: database.pool().clone(),
                database_url: database.url().to_owned(),
                amqp_url: broker.url().to_owned(),
                broker_namespace: broker.namespace().to_owned(),
                redis_url: redis.url().to_owned(),
                redis_prefix: format!("{}{}:", redis.prefix(), registration.name),
                grpc_listener: listener,
                peers: peers.clone(),
                shutdown: shutdown.clone(),
            };
            let task = tokio::spawn((registration.run)(ctx));
            services.insert(registration.name, Running { database, task });
        }
        Ok(TestSystem {
            peers,
            services,
            shutdown,
            broker,
            redis,
        })
    }
}

#[derive(Debug)]
struct Running {
    database: TestDatabase,
    task: JoinHandle<Result<(), ServiceError>>,
}

/// A running set of in-process services. Dropping it triggers their shutdown; call
/// [`TestSystem::shutdown`] to also wait for them and see their errors.
#[derive(Debug)]
pub struct TestSystem {
    peers: Peers,
    services: BTreeMap<&'static str, Running>,
    shutdown: Shutdown,
    // Kept alive for the system's lifetime; their guards clean up after it.
    broker: TestBroker,
    redis: TestRedis,
}

impl TestSystem {
    /// Starts collecting the services of a new system.
    pub fn builder() -> TestSystemBuilder {
        TestSystemBuilder {
            services: Vec::new(),
        }
    }

    /// The services' addresses.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// A channel to service `name` built like the services' own (trace context and caller
    /// injected), calling as `"testkit"`.
    ///
    /// # Panics
    /// When the system does not run `name`: that is a mistake in the test itself.
    pub fn channel(&self, name: &str) -> ClientChannel {
        let uri = self
            .peers
            .uri(name)
            .unwrap_or_else(|| panic!("the test system runs no service named {name}"));
        connect_lazy(&uri, &ChannelOptions::new("testkit"))
            .unwrap_or_else(|e| panic!("channel to {name}: {e}"))
    }

    /// A generated client for service `name`: `system.client("order", OrderServiceClient::new)`.
    pub fn client<C>(&self, name: &str, new: impl FnOnce(ClientChannel) -> C) -> C {
        new(self.channel(name))
    }

    /// The pool on service `name`'s database, for checking invariants straight from the data.
    ///
    /// # Panics
    /// When the system does not run `name`.
    pub fn pool(&self, name: &str) -> &PgPool {
        self.services
            .get(name)
            .unwrap_or_else(|| panic!("the test system runs no service named {name}"))
            .database
            .pool()
    }

    /// The broker namespace shared by the services.
    pub fn broker(&self) -> &TestBroker {
        &self.broker
    }

    /// The Redis prefix shared by the services.
    pub fn redis(&self) -> &TestRedis {
        &self.redis
    }

    /// Whether service `name` has stopped (crashed, or returned early).
    pub fn has_stopped(&self, name: &str) -> bool {
        self.services
            .get(name)
            .is_some_and(|running| running.task.is_finished())
    }

    /// Triggers shutdown and waits for every service; returns the first error any of them
    /// reported, naming the service.
    pub async fn shutdown(mut self) -> Result<(), String> {
        self.shutdown.trigger();
        let mut first_error = None;
        for (name, running) in std::mem::take(&mut self.services) {
            let outcome = match running.task.await {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => format!("service {name} failed: {error}"),
                Err(join) => format!("service {name} panicked: {join}"),
            };
            first_error.get_or_insert(outcome);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
