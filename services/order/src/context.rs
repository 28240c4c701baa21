//! What every part of the service shares: the pool, Redis, the clock, the bus, the settings and
//! the product service clients.

use std::sync::Arc;

use mercato_messaging::{Connector, Namespace};
use mercato_platform::grpc::ClientChannel;
use mercato_platform::redis::Keys;
use mercato_proto::mercato::product::v1::product_service_client::ProductServiceClient;
use mercato_proto::mercato::product::v1::stock_service_client::StockServiceClient;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::settings::Settings;

/// The shared context of the service's parts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OrderContext {
    /// The service's database.
    pub pool: PgPool,
    /// Redis.
    pub redis: ConnectionManager,
    /// This service's Redis key prefix.
    pub keys: Keys,
    /// "Now" for business rules.
    pub clock: Clock,
    /// The broker connection.
    pub connector: Connector,
    /// The broker namespace (exchange and queue names).
    pub namespace: Namespace,
    /// Every setting.
    pub settings: Arc<Settings>,
    /// The product service (SKU facts for cart lines), connected lazily.
    pub product: ProductServiceClient<ClientChannel>,
    /// The product service's stock reservations (checkout), on the same channel.
    pub stock: StockServiceClient<ClientChannel>,
    /// Committed order changes, for `WatchOrder` streams.
    pub watch: crate::order::watch::Watch,
}
