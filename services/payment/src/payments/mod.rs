//! Payments: creation from `order.created` (`create`), settlement from provider observations
//! (`settle`), refunds (`refund`), reconciliation (`reconcile`), the order event consumer
//! (`consumers`), outbox payloads (`events`) and SQL (`store`).

pub mod consumers;
pub mod create;
pub mod events;
pub mod reconcile;
pub mod refund;
pub mod settle;
pub mod store;

use mercato_messaging::{Consumer, ConsumerConfig, Namespace};
use mercato_platform::shutdown::Shutdown;

use crate::context::PaymentContext;

/// Starts the payments' background tasks under `shutdown`: the order event consumer and the
/// reconciliation sweeper.
pub fn spawn_background(context: &PaymentContext, shutdown: &Shutdown) {
    shutdown.spawn(reconcile::sweeper(context.clone(), shutdown.token()));
    match consumers::topology(&context.namespace) {
        Ok(topology) => {
            let consumer = Consumer::new(
                context.connector.clone(),
                topology,
                context.pool.clone(),
                consumers::OrderEventHandler::new(context.clone()),
                ConsumerConfig {
                    prefetch: context.settings.amqp.prefetch.get(),
                    shutdown_grace: context.settings.common.shutdown_grace,
                    ..ConsumerConfig::default()
                },
            );
            shutdown.spawn(consumer.run(shutdown.token()));
        }
        // The names are constants; this only fails if they are edited into invalid ones.
        Err(error) => tracing::error!(%error, "the order event consumer could not be set up"),
    }
}

/// Every queue the payments' consumer declares in `namespace` (tests delete them afterwards).
pub fn queue_names(namespace: &Namespace) -> Vec<String> {
    consumers::topology(namespace)
        .map(|topology| topology.queue_names())
        .unwrap_or_default()
}
