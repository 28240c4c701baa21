//! The catalog part of the product service: `ProductService` (products, SKUs, search) and
//! `RankingService` (best sellers fed by `order.paid`).
//!
//! Layout, as in the other services: `domain` (pure rules and validation), `app` (use cases
//! owning the transactions), `store` and `list` (SQL), `convert` and `grpc` (the only protobuf
//! code), `error` (the one mapping to gRPC statuses), `ranking` (consumer, single-flight cache
//! and its gRPC service).
//!
//! **The product detail cache.** `GetProduct` answers for PUBLISHED, live products are cached in
//! Redis under [`crate::cache::product_key`] for `product_cache_ttl` (60 s by default), as the
//! public sees them (active SKUs only). Owners, admins and internal callers always read
//! PostgreSQL, so they see their inactive SKUs and their own writes at once. Every catalog write
//! that changes what `GetProduct` shows invalidates the entry after its transaction commits;
//! stock changes do the same through `cache::invalidate_product`. The deliberate weakness: a
//! reader that loaded the row just before a concurrent write commits may store the old view
//! after the write's invalidation, and `available_quantity` in a cached copy may lag reservations
//! that do not invalidate; both are stale for at most the TTL. That is acceptable because
//! `available_quantity` is documented as a hint (`ReserveStock` decides), and prices are
//! snapshotted from `BatchGetSkus`, which never reads the cache.

pub mod app;
pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod list;
pub mod ranking;
pub mod store;

use std::time::Duration;

use mercato_messaging::Consumer;
use mercato_messaging::consumer::ConsumerConfig;
use mercato_platform::grpc::GrpcServer;
use mercato_platform::settings::Reader;
use mercato_platform::shutdown::Shutdown;
use mercato_proto::mercato::product::v1::product_service_server::ProductServiceServer;
use mercato_proto::mercato::product::v1::ranking_service_server::RankingServiceServer;

pub use self::error::CatalogError;
use crate::context::ProductContext;

/// Settings of the catalog part (`MERCATO_PRODUCT__<KEY>`).
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// `CURRENCY`: the shop currency every price is in (default `JPY`).
    pub currency: String,
    /// `PRODUCT_CACHE_TTL`: lifetime of a cached product detail (default 60 s).
    pub product_cache_ttl: Duration,
    /// `RANKING_WINDOW`: the best-seller window ending now (default 3 days).
    pub ranking_window: Duration,
    /// `RANKING_CACHE_TTL`: lifetime of a cached ranking (default 60 s).
    pub ranking_cache_ttl: Duration,
    /// `RANKING_DEPTH`: products kept per ranking snapshot, i.e. how far paging goes
    /// (default 100).
    pub ranking_depth: usize,
    /// `RANKING_LOCK_TTL`: how long a recomputation holds its single-flight lock at most
    /// (default 10 s).
    pub ranking_lock_ttl: Duration,
    /// `RANKING_WAIT`: how long callers wait for another caller's recomputation before
    /// computing themselves (default 2 s).
    pub ranking_wait: Duration,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            currency: "JPY".to_owned(),
            product_cache_ttl: Duration::from_secs(60),
            ranking_window: Duration::from_secs(3 * 24 * 3600),
            ranking_cache_ttl: Duration::from_secs(60),
            ranking_depth: 100,
            ranking_lock_ttl: Duration::from_secs(10),
            ranking_wait: Duration::from_secs(2),
        }
    }
}

impl CatalogSettings {
    /// Reads the catalog settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let currency = reader.with_default("CURRENCY", defaults.currency);
        let product_cache_ttl =
            reader.with_default("PRODUCT_CACHE_TTL", defaults.product_cache_ttl);
        let ranking_window = reader.with_default("RANKING_WINDOW", defaults.ranking_window);
        let ranking_cache_ttl =
            reader.with_default("RANKING_CACHE_TTL", defaults.ranking_cache_ttl);
        let ranking_depth = reader.with_default("RANKING_DEPTH", defaults.ranking_depth);
        let ranking_lock_ttl = reader.with_default("RANKING_LOCK_TTL", defaults.ranking_lock_ttl);
        let ranking_wait = reader.with_default("RANKING_WAIT", defaults.ranking_wait);
        if currency
            .as_deref()
            .is_some_and(|c| !domain::valid_currency(c))
        {
            reader.invalid(
                "CURRENCY",
                "must be a three-letter upper-case iso 4217 code",
            );
        }
        for (key, value) in [
            ("PRODUCT_CACHE_TTL", product_cache_ttl),
            ("RANKING_WINDOW", ranking_window),
            ("RANKING_CACHE_TTL", ranking_cache_ttl),
            ("RANKING_LOCK_TTL", ranking_lock_ttl),
        ] {
            if value == Some(Duration::ZERO) {
                reader.invalid(key, "must be greater than zero");
            }
        }
        if ranking_depth == Some(0) {
            reader.invalid("RANKING_DEPTH", "must be at least 1");
        }
        Some(Self {
            currency: currency?,
            product_cache_ttl: product_cache_ttl?,
            ranking_window: ranking_window?,
            ranking_cache_ttl: ranking_cache_ttl?,
            ranking_depth: ranking_depth?,
            ranking_lock_ttl: ranking_lock_ttl?,
            ranking_wait: ranking_wait?,
        })
    }

    /// The settings tests start with (the defaults).
    pub fn test_defaults() -> Self {
        Self::default()
    }
}

/// Adds `ProductService` and `RankingService` to `server`.
pub fn register(server: GrpcServer, context: &ProductContext) -> GrpcServer {
    server
        .add_service(ProductServiceServer::new(grpc::ProductGrpc::new(
            app::CatalogApp::new(context.clone()),
        )))
        .add_service(RankingServiceServer::new(ranking::RankingGrpc::new(
            context.clone(),
        )))
}

/// Starts the `order.paid` consumer of the ranking under `shutdown`.
pub fn spawn_background(context: &ProductContext, shutdown: &Shutdown) {
    let topology = match ranking::events::best_sellers_topology(&context.namespace) {
        Ok(topology) => topology,
        Err(error) => {
            // Only an invalid constant name gets here; fail loudly rather than serve silently.
            tracing::error!(%error, "best-seller consumer topology is invalid, not consuming");
            return;
        }
    };
    let config = ConsumerConfig {
        prefetch: context.settings.amqp.prefetch.get(),
        shutdown_grace: context.settings.common.shutdown_grace,
        ..ConsumerConfig::default()
    };
    let consumer = Consumer::new(
        context.connector.clone(),
        topology,
        context.pool.clone(),
        ranking::events::BestSellerHandler,
        config,
    );
    shutdown.spawn(consumer.run(shutdown.token()));
}

#[cfg(test)]
mod tests {
    use mercato_platform::settings::EnvSource;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<CatalogSettings, String> {
        let source = EnvSource::from_pairs(pairs.iter().copied());
        let reader = source.service("product");
        let settings = CatalogSettings::read(&reader);
        reader.finish(|| settings).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = read(&[]).expect("defaults are valid");
        assert_eq!(settings.currency, "JPY");
        assert_eq!(settings.ranking_window, Duration::from_secs(72 * 3600));
        assert_eq!(settings.product_cache_ttl, Duration::from_secs(60));
    }

    #[test]
    fn service_variables_override_the_defaults() {
        let settings = read(&[
            ("MERCATO_PRODUCT__RANKING_WINDOW", "24h"),
            ("MERCATO_PRODUCT__CURRENCY", "EUR"),
        ])
        .expect("valid overrides");
        assert_eq!(settings.ranking_window, Duration::from_secs(24 * 3600));
        assert_eq!(settings.currency, "EUR");
    }

    #[test]
    fn invalid_values_are_reported_by_variable_name() {
        let error = read(&[
            ("MERCATO_PRODUCT__CURRENCY", "euro"),
            ("MERCATO_PRODUCT__RANKING_CACHE_TTL", "0s"),
        ])
        .expect_err("invalid values");
        assert!(error.contains("MERCATO_PRODUCT__CURRENCY"), "{error}");
        assert!(
            error.contains("MERCATO_PRODUCT__RANKING_CACHE_TTL"),
            "{error}"
        );
    }
}
