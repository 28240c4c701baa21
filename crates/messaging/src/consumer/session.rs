//! The consumer's connection loop: open a channel, declare the topology, consume with bounded
//! prefetch, spawn one task per delivery, and on shutdown or failure drain, requeue and reconnect.

use std::{sync::Arc, time::Duration};

use futures::StreamExt as _;
use lapin::{
    Acker, Channel,
    options::{
        BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
        ConfirmSelectOptions,
    },
    types::FieldTable,
};
use sqlx::PgPool;
use tokio::{sync::broadcast, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    Consumer, ConsumerConfig, Handler, Outcome, Pending, SETTLE_TIMEOUT, Shared, delivery::process,
    lock,
};
use crate::{Connector, ConsumerTopology, Error, topology::short};

enum SessionEnd {
    /// Cancellation was requested and the session drained.
    Shutdown,
    /// The channel or connection failed; reconnect.
    Interrupted,
}

/// The deliveries a consumer may hold at once on a pool of `max_connections`.
///
/// Each delivery holds a connection for its inbox transaction while its handler runs, and a
/// handler may take a second one from the same pool (the payment service's does). With as many
/// deliveries in flight as the pool has connections, a burst would take every connection for the
/// inbox, every handler would wait for a second one until its acquire timed out, and the retries
/// would repeat the stall; half the pool leaves room for the handlers and the RPCs.
fn bounded_prefetch(prefetch: u16, max_connections: u32) -> u16 {
    let room = u16::try_from(max_connections / 2)
        .unwrap_or(u16::MAX)
        .max(1);
    prefetch.clamp(1, room)
}

impl<H: Handler> Consumer<H> {
    /// A consumer of `topology`'s queue; nothing happens until [`Consumer::run`].
    pub fn new(
        connector: Connector,
        topology: ConsumerTopology,
        pool: PgPool,
        handler: H,
        mut config: ConsumerConfig,
    ) -> Self {
        config.prefetch = bounded_prefetch(config.prefetch, pool.options().get_max_connections());
        let (outcomes, _) = broadcast::channel(4_096);
        crate::metrics::register_queue(&topology.queue);
        Self {
            shared: Arc::new(Shared {
                connector,
                topology,
                pool,
                handler,
                config,
                outcomes,
            }),
        }
    }

    /// Outcomes of deliveries from now on (a slow receiver misses old ones).
    pub fn subscribe(&self) -> broadcast::Receiver<Outcome> {
        self.shared.outcomes.subscribe()
    }

    /// Consumes until `cancel` fires, then stops taking deliveries, lets
    /// in-flight handlers finish (up to `shutdown_grace`), requeues whatever
    /// is left, and closes its channels.
    pub async fn run(self, cancel: CancellationToken) {
        let queue = self.shared.topology.queue.clone();
        let mut failures: u32 = 0;
        loop {
            let channel = match self.shared.connector.channel(&cancel).await {
                Ok(channel) => channel,
                Err(Error::Cancelled) => break,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%queue, %error, "consumer cannot open a channel");
                    if sleep_or_cancel(self.backoff(failures), &cancel).await {
                        break;
                    }
                    continue;
                }
            };
            match self.session(&channel, &cancel).await {
                Ok(SessionEnd::Shutdown) => break,
                Ok(SessionEnd::Interrupted) => {
                    failures = 0;
                    tracing::warn!(%queue, "consumer interrupted, reconnecting");
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%queue, %error, failures, "consumer setup failed");
                    if sleep_or_cancel(self.backoff(failures), &cancel).await {
                        break;
                    }
                }
            }
        }
        tracing::debug!(%queue, "consumer stopped");
    }

    fn backoff(&self, failures: u32) -> Duration {
        self.shared
            .connector
            .config()
            .reconnect_backoff
            .jittered(failures)
    }

    async fn session(
        &self,
        channel: &Channel,
        cancel: &CancellationToken,
    ) -> Result<SessionEnd, Error> {
        let shared = &self.shared;
        shared.topology.declare(channel).await?;
        // Retries and dead letters are republished on a separate confirm-mode
        // channel so that waiting for their confirms never blocks deliveries.
        let publish_channel = shared.connector.try_channel().await?;
        publish_channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .basic_qos(shared.config.prefetch, BasicQosOptions::default())
            .await?;
        let mut stream = channel
            .basic_consume(
                short(&shared.topology.queue)?,
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %shared.topology.queue, "consumer started");

        let pending: Pending = Arc::default();
        let mut in_flight = JoinSet::new();
        let end = loop {
            tokio::select! {
                () = cancel.cancelled() => break SessionEnd::Shutdown,
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    log_join(joined);
                }
                next = stream.next() => match next {
                    Some(Ok(delivery)) => {
                        lock(&pending).insert(delivery.delivery_tag, delivery.acker.clone());
                        in_flight.spawn(process(
                            Arc::clone(shared),
                            publish_channel.clone(),
                            delivery,
                            Arc::clone(&pending),
                        ));
                    }
                    Some(Err(error)) => {
                        tracing::warn!(queue = %shared.topology.queue, %error, "consumer stream failed");
                        break SessionEnd::Interrupted;
                    }
                    None => {
                        tracing::warn!(queue = %shared.topology.queue, "consumer cancelled by the broker");
                        break SessionEnd::Interrupted;
                    }
                }
            }
        };

        if matches!(end, SessionEnd::Shutdown) {
            // Stop new deliveries first; the stream ends once the broker
            // confirms the cancel. Anything it pushed before that is handed
            // straight back.
            let tag = stream.tag();
            if let Err(error) = channel
                .basic_cancel(tag, BasicCancelOptions::default())
                .await
            {
                tracing::debug!(%error, "basic.cancel failed");
            }
            let drain = async {
                while let Some(Ok(delivery)) = stream.next().await {
                    let _ = delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        }

        // Let running handlers finish: on shutdown they settle normally; after
        // an interruption their acks fail and the broker redelivers, which the
        // inbox turns into no-ops for effects that did commit.
        let finished = tokio::time::timeout(shared.config.shutdown_grace, async {
            while let Some(joined) = in_flight.join_next().await {
                log_join(joined);
            }
        })
        .await
        .is_ok();
        if !finished {
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
            let leftovers: Vec<Acker> = lock(&pending).drain().map(|(_, a)| a).collect();
            tracing::warn!(
                queue = %shared.topology.queue,
                requeued = leftovers.len(),
                "handlers did not finish in time, requeueing their messages"
            );
            for acker in leftovers {
                let nack = acker.nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                });
                let _ = tokio::time::timeout(SETTLE_TIMEOUT, nack).await;
            }
        }
        drop(stream);
        for ch in [&publish_channel, channel] {
            if ch.status().connected() {
                let _ = ch.close(200, "consumer stopped".into()).await;
            }
        }
        Ok(end)
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "delivery task panicked");
    }
}

/// Sleeps for `delay`; true if cancelled first.
async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::bounded_prefetch;

    #[test]
    fn prefetch_leaves_half_the_pool_to_handlers_and_rpcs() {
        assert_eq!(bounded_prefetch(16, 10), 5);
        assert_eq!(bounded_prefetch(16, 4), 2);
        assert_eq!(bounded_prefetch(3, 100), 3);
        assert_eq!(bounded_prefetch(16, 1), 1);
        assert_eq!(bounded_prefetch(0, 10), 1);
    }
}
