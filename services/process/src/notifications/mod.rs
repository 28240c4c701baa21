//! Notifications: the `notification.requested` payloads the service writes (`events`), the
//! notifier's consumer that queues them (`consumers`), the notification outbox (`store`), the
//! sender that delivers them (`sender`) through the configured sink (`sink`): the log, or
//! e-mail (`smtp`) to the address the user service gives (`recipients`).

pub mod consumers;
pub mod events;
pub mod recipients;
pub mod sender;
pub mod sink;
pub mod smtp;
pub mod store;

use mercato_messaging::{Consumer, ConsumerConfig, Namespace};
use mercato_platform::shutdown::Shutdown;

use crate::context::ProcessContext;

/// Starts the notifier's background tasks under `shutdown`: its consumer and the sender.
pub fn spawn_background(context: &ProcessContext, shutdown: &Shutdown) {
    shutdown.spawn(sender::run(context.clone(), shutdown.token()));
    match consumers::topology(&context.namespace) {
        Ok(topology) => {
            let consumer = Consumer::new(
                context.connector.clone(),
                topology,
                context.pool.clone(),
                consumers::NotificationRequestHandler::new(context.clone()),
                ConsumerConfig {
                    prefetch: context.settings.amqp.prefetch.get(),
                    shutdown_grace: context.settings.common.shutdown_grace,
                    ..ConsumerConfig::default()
                },
            );
            shutdown.spawn(consumer.run(shutdown.token()));
        }
        // The names are constants; this only fails if they are edited into invalid ones.
        Err(error) => tracing::error!(%error, "the notification consumer could not be set up"),
    }
}

/// Every queue the notifier declares in `namespace`.
pub fn queue_names(namespace: &Namespace) -> Vec<String> {
    consumers::topology(namespace)
        .map(|topology| topology.queue_names())
        .unwrap_or_default()
}
