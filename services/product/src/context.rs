//! What every part of the service shares: the pool, Redis, the clock, the bus, the settings.

use std::sync::Arc;

use mercato_messaging::{Connector, Namespace};
use mercato_platform::redis::Keys;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::settings::Settings;

/// The shared context of the catalog, stock and ranking parts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProductContext {
    /// The service's database.
    pub pool: PgPool,
    /// Redis (caches, sold-out markers).
    pub redis: ConnectionManager,
    /// This service's Redis key prefix.
    pub keys: Keys,
    /// "Now" for business rules.
    pub clock: Clock,
    /// The broker connection (consumers open their channels on it).
    pub connector: Connector,
    /// The broker namespace (exchange and queue names).
    pub namespace: Namespace,
    /// Every setting.
    pub settings: Arc<Settings>,
}
