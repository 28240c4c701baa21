//! A unique RabbitMQ namespace per test, and deletion of what the test declared in it.
//!
//! AMQP cannot list queues, so the guard deletes the exchanges and queues it
//! was told about ([`TestBroker::track_queue`], [`TestBroker::track_exchange`]).
//! Names are unique per test, so even an untracked leftover never leaks into
//! another test; it only takes broker memory until someone deletes it.

use std::sync::Mutex;

use lapin::{
    Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};

use crate::{Error, cleanup::run_blocking, env};

/// A per-test broker namespace; declared entities it tracks are deleted at drop.
#[derive(Debug)]
pub struct TestBroker {
    url: String,
    namespace: String,
    queues: Mutex<Vec<String>>,
    exchanges: Mutex<Vec<String>>,
}

impl TestBroker {
    /// A new namespace on the broker from `MERCATO_TEST_AMQP_URL` (nothing is declared yet).
    pub fn new() -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            url: env::amqp_url(),
            namespace: format!("t{}", &random[..16]),
            queues: Mutex::default(),
            exchanges: Mutex::default(),
        }
    }

    /// The broker URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The unique prefix for every name this test declares.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `name` qualified by this test's namespace (`<namespace>.<name>`).
    pub fn name(&self, name: &str) -> String {
        format!("{}.{name}", self.namespace)
    }

    /// Deletes queue `name` when this guard drops.
    pub fn track_queue(&self, name: impl Into<String>) {
        lock(&self.queues).push(name.into());
    }

    /// Deletes exchange `name` when this guard drops.
    pub fn track_exchange(&self, name: impl Into<String>) {
        lock(&self.exchanges).push(name.into());
    }

    /// A new connection to the broker.
    pub async fn connect(&self) -> Result<Connection, Error> {
        Ok(Connection::connect(&self.url, ConnectionProperties::default()).await?)
    }
}

impl Default for TestBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let mut queues = std::mem::take(&mut *lock(&self.queues));
        // What services started in-process declared in this namespace (consumer queues, their
        // retry tiers and DLQs): quorum queues left behind by thousands of tests wear the broker
        // down.
        for queue in mercato_messaging::topology::take_declared_queues(&self.namespace) {
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        let exchanges = std::mem::take(&mut *lock(&self.exchanges));
        if queues.is_empty() && exchanges.is_empty() {
            return;
        }
        let url = self.url.clone();
        run_blocking("broker", async move {
            let connection = Connection::connect(&url, ConnectionProperties::default())
                .await
                .map_err(|e| format!("connect to delete test queues: {e}"))?;
            let mut failures = Vec::new();
            for queue in queues {
                // A failed operation closes the channel, so each gets its own.
                let outcome = async {
                    let channel = connection.create_channel().await?;
                    channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await?;
                    channel.close(200, "ok".into()).await
                }
                .await;
                if let Err(error) = outcome {
                    failures.push(format!("queue {queue}: {error}"));
                }
            }
            for exchange in exchanges {
                let outcome = async {
                    let channel = connection.create_channel().await?;
                    channel
                        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                        .await?;
                    channel.close(200, "ok".into()).await
                }
                .await;
                if let Err(error) = outcome {
                    failures.push(format!("exchange {exchange}: {error}"));
                }
            }
            let _ = connection.close(200, "ok".into()).await;
            if failures.is_empty() {
                Ok(())
            } else {
                Err(failures.join("; "))
            }
        });
    }
}

fn lock(names: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    names
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
