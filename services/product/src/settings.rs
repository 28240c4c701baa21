//! The product service's typed settings: the shared blocks plus the catalog's and the stock's
//! own, read from `MERCATO_PRODUCT__<KEY>` (then `MERCATO__<KEY>`, then the defaults).

use mercato_platform::settings::{
    AmqpSettings, CommonSettings, ConfigError, DatabaseSettings, EnvSource, ListenSettings,
    RedisSettings,
};

use crate::catalog::CatalogSettings;
use crate::stock::StockSettings;

/// The service name used for variables, logs and the `application_name`.
pub const SERVICE: &str = "product";

/// Everything the product service reads at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listeners, telemetry, limits, shutdown grace.
    pub common: CommonSettings,
    /// The service's PostgreSQL database.
    pub database: DatabaseSettings,
    /// Redis (product and ranking caches, sold-out markers).
    pub redis: RedisSettings,
    /// RabbitMQ (the outbox relay and the consumers of order events).
    pub amqp: AmqpSettings,
    /// `BUS_NAMESPACE`: prefix of every exchange and queue name, empty (the root namespace) by
    /// default.
    pub bus_namespace: String,
    /// Products, SKUs, search, caches and the ranking.
    pub catalog: CatalogSettings,
    /// Stock, reservations and the expiry sweeper.
    pub stock: StockSettings,
}

impl Settings {
    /// Reads every setting, reporting all problems at once.
    pub fn read(source: &EnvSource) -> Result<Self, ConfigError> {
        let reader = source.service(SERVICE);
        let listen = ListenSettings {
            grpc_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 50052)),
            http_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8082)),
        };
        let common = CommonSettings::read(&reader, listen);
        let database = DatabaseSettings::read(&reader);
        let redis = RedisSettings::read(&reader);
        let amqp = AmqpSettings::read(&reader);
        let bus_namespace = reader.with_default("BUS_NAMESPACE", String::new());
        let catalog = CatalogSettings::read(&reader);
        let stock = StockSettings::read(&reader);
        reader.finish(|| {
            Some(Self {
                common: common?,
                database: database?,
                redis: redis?,
                amqp: amqp?,
                bus_namespace: bus_namespace?,
                catalog: catalog?,
                stock: stock?,
            })
        })
    }
}
