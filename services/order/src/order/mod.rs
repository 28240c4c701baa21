//! Orders: checkout (`create`), the state machine (`state`, applied by `transition`), the
//! expiry sweeper, the consumer of payment outcomes, live watching, and the `OrderService`
//! surface.
//!
//! Layout: `state` (pure rules, property-tested), `store` (SQL), `model` (rows and their wire
//! form), `events` (outbox payloads), `idempotency` (CreateOrder's keys), `create`, `transition`,
//! `sweeper`, `consumers`, `watch`, `grpc`, `error`.

pub mod consumers;
pub mod create;
pub mod error;
pub mod events;
pub mod grpc;
pub mod idempotency;
pub mod model;
pub mod state;
pub mod store;
pub mod sweeper;
pub mod transition;
pub mod watch;

use mercato_messaging::{Consumer, ConsumerConfig, Namespace};
use mercato_platform::grpc::GrpcServer;
use mercato_platform::shutdown::Shutdown;
use mercato_proto::mercato::order::v1::order_service_server::OrderServiceServer;

pub use self::error::OrderError;
use crate::context::OrderContext;

/// Adds `OrderService` to `server`.
pub fn register(server: GrpcServer, context: &OrderContext) -> GrpcServer {
    server.add_service(OrderServiceServer::new(grpc::OrderGrpc::new(
        context.clone(),
    )))
}

/// Starts the orders' background tasks under `shutdown`: the change listener of `WatchOrder`,
/// the expiry sweeper and the consumer of payment outcomes.
pub fn spawn_background(context: &OrderContext, shutdown: &Shutdown) {
    shutdown.spawn(
        context
            .watch
            .clone()
            .listen(context.pool.clone(), shutdown.token()),
    );
    shutdown.spawn(sweeper::run(context.clone(), shutdown.token()));
    match consumers::topology(&context.namespace) {
        Ok(topology) => {
            let consumer = Consumer::new(
                context.connector.clone(),
                topology,
                context.pool.clone(),
                consumers::PaymentOutcomeHandler::new(context.clone()),
                ConsumerConfig {
                    prefetch: context.settings.amqp.prefetch.get(),
                    shutdown_grace: context.settings.common.shutdown_grace,
                    ..ConsumerConfig::default()
                },
            );
            shutdown.spawn(consumer.run(shutdown.token()));
        }
        // The names are constants; this only fails if they are edited into invalid ones.
        Err(error) => tracing::error!(%error, "the payment outcome consumer could not be set up"),
    }
}

/// Every queue the orders' consumer declares in `namespace` (tests delete them afterwards).
pub fn queue_names(namespace: &Namespace) -> Vec<String> {
    consumers::topology(namespace)
        .map(|topology| topology.queue_names())
        .unwrap_or_default()
}
