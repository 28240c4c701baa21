//! The stock part of the product service: per-SKU stock, reservations that never oversell, the
//! expiry sweeper, the sold-out fast path and the consumers that give an order's stock back.
//!
//! Layout: `domain` (pure rules), `store`/`history` (SQL), `ops` (one use case inside a caller's
//! transaction: what the gRPC use cases, the consumers, the sweeper and the property tests
//! share), `app` (transactions and the Redis upkeep after commit), `markers` (sold-out markers),
//! `events` (outbox events and the consumer), `sweeper`, `grpc`, `error`, `metrics`.
//!
//! Every stock change locks its `stock_levels` rows in sorted sku_id order, updates them, and
//! writes one `stock_history` row per SKU in the same transaction; the CHECK constraints of
//! `stock_levels` make overselling impossible even for a buggy caller.

pub mod app;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod history;
pub mod markers;
mod metrics;
pub mod ops;
pub mod settings;
pub mod store;
pub mod sweeper;

use mercato_messaging::{Consumer, ConsumerConfig, Namespace};
use mercato_platform::grpc::GrpcServer;
use mercato_platform::shutdown::Shutdown;
use mercato_proto::mercato::product::v1::stock_service_server::StockServiceServer;

pub use app::StockApp;
pub use settings::StockSettings;

use crate::context::ProductContext;

/// Adds the stock's gRPC services to `server`.
pub fn register(server: GrpcServer, context: &ProductContext) -> GrpcServer {
    metrics::register();
    server.add_service(StockServiceServer::new(grpc::StockGrpc::new(
        StockApp::new(context.clone()),
    )))
}

/// Starts the stock's background tasks under `shutdown`: the expiry sweeper (unless disabled)
/// and the consumer of `order.cancelled` / `order.expired`.
pub fn spawn_background(context: &ProductContext, shutdown: &Shutdown) {
    let app = StockApp::new(context.clone());
    if context.settings.stock.sweeper_enabled {
        shutdown.spawn(sweeper::run(app.clone(), shutdown.token()));
    }
    match events::release_topology(&context.namespace) {
        Ok(topology) => {
            let consumer = Consumer::new(
                context.connector.clone(),
                topology,
                context.pool.clone(),
                events::ReleaseHandler::new(app),
                ConsumerConfig {
                    prefetch: context.settings.amqp.prefetch.get(),
                    shutdown_grace: context.settings.common.shutdown_grace,
                    ..ConsumerConfig::default()
                },
            );
            shutdown.spawn(consumer.run(shutdown.token()));
        }
        // The names are constants; this only fails if they are edited into invalid ones.
        Err(error) => tracing::error!(%error, "the stock release consumer could not be set up"),
    }
}

/// Every queue the stock part's consumers declare in `namespace` (tests delete them afterwards).
pub fn queue_names(namespace: &Namespace) -> Vec<String> {
    events::release_topology(namespace)
        .map(|topology| topology.queue_names())
        .unwrap_or_default()
}
