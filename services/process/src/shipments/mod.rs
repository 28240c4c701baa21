//! Shipments: the consumer of `order.paid` that records them (`consumers`), the steps of a
//! shipment (`fulfil`), the worker that takes them (`worker`) and SQL (`store`).

pub mod consumers;
pub mod fulfil;
pub mod store;
pub mod worker;

use mercato_messaging::{Consumer, ConsumerConfig, Namespace};
use mercato_platform::shutdown::Shutdown;

use crate::context::ProcessContext;

/// Starts the shipments' background tasks under `shutdown`: the order.paid consumer and the
/// worker, advancing `SHIPMENT_WORKERS` shipments at once.
pub fn spawn_background(context: &ProcessContext, shutdown: &Shutdown) {
    shutdown.spawn(worker::run(
        context.clone(),
        shutdown.token(),
        context.settings.fulfilment.workers,
    ));
    match consumers::topology(&context.namespace) {
        Ok(topology) => {
            let consumer = Consumer::new(
                context.connector.clone(),
                topology,
                context.pool.clone(),
                consumers::OrderPaidHandler::new(context.clone()),
                ConsumerConfig {
                    prefetch: context.settings.amqp.prefetch.get(),
                    shutdown_grace: context.settings.common.shutdown_grace,
                    ..ConsumerConfig::default()
                },
            );
            shutdown.spawn(consumer.run(shutdown.token()));
        }
        // The names are constants; this only fails if they are edited into invalid ones.
        Err(error) => tracing::error!(%error, "the order.paid consumer could not be set up"),
    }
}

/// Every queue the shipments' consumer declares in `namespace`.
pub fn queue_names(namespace: &Namespace) -> Vec<String> {
    consumers::topology(namespace)
        .map(|topology| topology.queue_names())
        .unwrap_or_default()
}
