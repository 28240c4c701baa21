//! One service's isolated resources for a test that starts (and restarts) the service itself,
//! rather than through [`crate::TestSystem`]: [`ServiceEnv`] owns them, [`ServiceResources`] is
//! what a service's test settings are built from.

use sqlx::migrate::Migrator;

use crate::{Error, ServiceContext, TestBroker, TestDatabase, TestRedis};

/// Where one service's resources are for one test: the inputs of its test settings.
#[derive(Debug, Clone)]
pub struct ServiceResources {
    /// The service's database.
    pub database_url: String,
    /// Redis.
    pub redis_url: String,
    /// The service's key prefix in this test (`<test prefix><service>:`).
    pub redis_prefix: String,
    /// The broker.
    pub amqp_url: String,
    /// The broker namespace of this test.
    pub broker_namespace: String,
}

impl ServiceContext {
    /// The resources of an in-process instance started by [`crate::TestSystem`].
    pub fn resources(&self) -> ServiceResources {
        ServiceResources {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            amqp_url: self.amqp_url.clone(),
            broker_namespace: self.broker_namespace.clone(),
        }
    }
}

/// A fresh database (migrated with the service's migrators), a Redis prefix and a broker
/// namespace for one service, all removed when this drops. The bus exchanges every service's
/// relay declares are tracked already; queues that the service declares while running are found
/// and deleted by [`TestBroker`] itself.
#[derive(Debug)]
pub struct ServiceEnv {
    service: &'static str,
    database: TestDatabase,
    redis: TestRedis,
    broker: TestBroker,
}

impl ServiceEnv {
    /// Fresh resources for `service`, its database migrated by `migrators` in order.
    pub async fn new(
        service: &'static str,
        migrators: &[&'static Migrator],
    ) -> Result<Self, Error> {
        let database = TestDatabase::new(migrators).await?;
        let redis = TestRedis::new()?;
        let broker = TestBroker::new();
        broker.track_exchange(broker.name("mercato.events"));
        broker.track_exchange(broker.name("mercato.events.dlx"));
        Ok(Self {
            service,
            database,
            redis,
            broker,
        })
    }

    /// The service's database.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// The Redis prefix of the test.
    pub fn redis(&self) -> &TestRedis {
        &self.redis
    }

    /// The broker namespace of the test.
    pub fn broker(&self) -> &TestBroker {
        &self.broker
    }

    /// The resources as settings inputs.
    pub fn resources(&self) -> ServiceResources {
        ServiceResources {
            database_url: self.database.url().to_owned(),
            redis_url: self.redis.url().to_owned(),
            redis_prefix: format!("{}{}:", self.redis.prefix(), self.service),
            amqp_url: self.broker.url().to_owned(),
            broker_namespace: self.broker.namespace().to_owned(),
        }
    }
}
