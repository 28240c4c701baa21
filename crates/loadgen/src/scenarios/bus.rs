//! The dead-letter queues of a broker namespace, for the invariant that a run dead-lettered
//! nothing: every `<namespace>.<service>.<consumer>.dlq` and how many messages it holds.
//!
//! `make bench` lists them with `rabbitmqctl` ([`Rabbitmqctl`]: the services run as separate
//! processes, so only the broker knows their queues); an in-process test can implement
//! [`DeadLetterProbe`] over the queues its services declared.

use std::fmt;

use anyhow::Context as _;
use futures::future::BoxFuture;

/// Lists dead-letter queues and their depths.
pub trait DeadLetterProbe: Send + Sync + fmt::Debug {
    /// Every dead-letter queue of the namespace under test with its message count.
    fn depths(&self) -> BoxFuture<'_, anyhow::Result<Vec<(String, u64)>>>;
}

/// `rabbitmqctl list_queues` (the command may be a wrapper such as
/// `docker compose exec -T rabbitmq rabbitmqctl`), filtered to `<namespace>.*.dlq`.
#[derive(Debug, Clone)]
pub struct Rabbitmqctl {
    /// The command and its leading arguments.
    pub command: Vec<String>,
    /// The broker namespace of the services (`mercato-bench`).
    pub namespace: String,
}

impl Rabbitmqctl {
    /// Every queue of the namespace with its depth.
    pub async fn queues(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let (program, args) = self
            .command
            .split_first()
            .context("an empty rabbitmqctl command")?;
        let output = tokio::process::Command::new(program)
            .args(args)
            .args([
                "-q",
                "list_queues",
                "--no-table-headers",
                "name",
                "messages",
            ])
            .output()
            .await
            .with_context(|| format!("running {}", self.command.join(" ")))?;
        anyhow::ensure!(
            output.status.success(),
            "{} list_queues failed: {}",
            self.command.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        let prefix = format!("{}.", self.namespace);
        let mut queues = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let mut fields = line.split_whitespace();
            let (Some(name), Some(messages)) = (fields.next(), fields.next()) else {
                continue;
            };
            if !name.starts_with(&prefix) {
                continue;
            }
            let messages = messages
                .parse()
                .with_context(|| format!("rabbitmqctl printed {line:?}"))?;
            queues.push((name.to_owned(), messages));
        }
        Ok(queues)
    }
}

impl DeadLetterProbe for Rabbitmqctl {
    fn depths(&self) -> BoxFuture<'_, anyhow::Result<Vec<(String, u64)>>> {
        Box::pin(async move {
            Ok(self
                .queues()
                .await?
                .into_iter()
                .filter(|(name, _)| name.ends_with(".dlq"))
                .collect())
        })
    }
}

/// `None` when every dead-letter queue is empty, else what each non-empty one holds. A
/// namespace without any dead-letter queue is an error: the consumers declare theirs on start,
/// so none means the probe looks in the wrong place.
pub async fn dead_letters(probe: &dyn DeadLetterProbe) -> anyhow::Result<Option<String>> {
    let depths = probe.depths().await?;
    anyhow::ensure!(
        !depths.is_empty(),
        "no dead-letter queue found ({probe:?}): wrong namespace or broker?"
    );
    let full: Vec<String> = depths
        .iter()
        .filter(|(_, messages)| *messages > 0)
        .map(|(name, messages)| format!("{name} holds {messages}"))
        .collect();
    Ok((!full.is_empty()).then(|| full.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Vec<(String, u64)>);

    impl DeadLetterProbe for Fixed {
        fn depths(&self) -> BoxFuture<'_, anyhow::Result<Vec<(String, u64)>>> {
            Box::pin(async move { Ok(self.0.clone()) })
        }
    }

    #[tokio::test]
    async fn only_non_empty_dead_letter_queues_are_reported_and_none_at_all_is_an_error() {
        let empty = Fixed(vec![("ns.payment.order-events.dlq".to_owned(), 0)]);
        assert_eq!(dead_letters(&empty).await.expect("probe works"), None);
        let full = Fixed(vec![
            ("ns.payment.order-events.dlq".to_owned(), 0),
            ("ns.process.order-paid.dlq".to_owned(), 3),
        ]);
        assert_eq!(
            dead_letters(&full).await.expect("probe works").as_deref(),
            Some("ns.process.order-paid.dlq holds 3")
        );
        assert!(dead_letters(&Fixed(Vec::new())).await.is_err());
    }
}
