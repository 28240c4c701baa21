//! The transactional outbox: events written with the state change, published later by a relay.
//!
//! [`enqueue`] inserts a row in the caller's transaction, so an event exists
//! if and only if the change it describes committed. [`OutboxRelay`] claims
//! unpublished rows with `FOR UPDATE SKIP LOCKED` (several replicas share the
//! work without coordination), publishes them with confirms, stamps
//! `published_at` and commits. If the broker fails mid-batch the transaction
//! rolls back and the rows stay unpublished: nothing is lost, though a row
//! whose confirm was lost with the connection may be published again (the
//! bus is at-least-once; consumers deduplicate with the inbox).

use std::{collections::HashMap, sync::Arc, time::Duration};

use lapin::types::FieldTable;
use mercato_proto::mercato::events::v1::EventEnvelope;
use opentelemetry::trace::TraceContextExt as _;
use prost::Message as _;
use sqlx::{PgConnection, PgPool, postgres::PgListener, types::Json};
use tokio::{
    sync::{Notify, OnceCell},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

use crate::{
    Backoff, Error, OutgoingMessage, Publisher, envelope::validate, headers, metrics,
    publisher::producer_span,
};

/// How often a running relay samples its backlog for `mercato_outbox_backlog` (a count over the
/// unpublished rows' partial index: cheap, but not worth doing on every batch).
const BACKLOG_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// The `LISTEN/NOTIFY` channel [`enqueue`] notifies so relays wake at once.
pub const NOTIFY_CHANNEL: &str = "mercato_outbox";

/// Writes `envelope` to the outbox within the caller's transaction, with the
/// current trace context, and notifies relays when the transaction commits
/// (PostgreSQL delivers notifications only on commit, and drops them on rollback).
pub async fn enqueue(conn: &mut PgConnection, envelope: &EventEnvelope) -> Result<(), Error> {
    let event_id = validate(envelope)?;
    let trace_headers = headers::capture_current_span();
    sqlx::query(
        "WITH inserted AS ( \
             INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, envelope, headers) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING 1 \
         ) \
         SELECT pg_notify($7, '') FROM inserted",
    )
    .bind(event_id)
    .bind(&envelope.event_type)
    .bind(&envelope.aggregate_type)
    .bind(&envelope.aggregate_id)
    .bind(envelope.encode_to_vec())
    .bind(Json(&trace_headers))
    .bind(NOTIFY_CHANNEL)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes published rows older than `retention`, in chunks so that a large
/// backlog never holds long locks. Returns the number of rows deleted.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, Error> {
    const CHUNK: i64 = 5_000;
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE id IN ( \
                 SELECT id FROM outbox \
                 WHERE published_at IS NOT NULL \
                   AND published_at < now() - make_interval(secs => $1) \
                 ORDER BY id LIMIT $2)",
        )
        .bind(retention.as_secs_f64())
        .bind(CHUNK)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// How a relay paces itself.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows claimed and published per transaction.
    pub batch_size: u32,
    /// Fallback poll period when no notification arrives (notifications are
    /// lost while the listener reconnects).
    pub poll_interval: Duration,
    /// Delay schedule after a failed batch (broker or database down).
    pub failure_backoff: Backoff,
    /// Delay schedule of a single row the broker refused (nack, unroutable);
    /// other rows keep flowing meanwhile.
    pub row_backoff: Backoff,
    /// How long published rows are kept (for audits and replays) before pruning.
    pub retention: Duration,
    /// How often pruning runs.
    pub prune_interval: Duration,
    /// Announcements: event types that may have no subscriber. A publish of one that no queue
    /// is bound for is recorded as published (heard by nobody, as an announcement with no
    /// listener is), instead of being retried forever and growing the backlog. Every other
    /// type stays unpublished and is retried while no queue takes it: its consumer may simply
    /// not have declared its queue yet.
    pub announcements: Vec<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            failure_backoff: Backoff::default(),
            row_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
            announcements: Vec::new(),
        }
    }
}

/// The result of one relay transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows confirmed by the broker and marked published.
    pub published: usize,
    /// Rows the broker refused; they back off and are retried.
    pub refused: usize,
}

/// Publishes outbox rows to the bus; run one or more per service.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    publisher: Publisher,
    config: RelayConfig,
    /// The database's name, the `database` label of the relay's series (read once).
    database: Arc<OnceCell<String>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    envelope: Vec<u8>,
    headers: Json<HashMap<String, String>>,
}

impl OutboxRelay {
    /// A relay over the outbox in `pool`, publishing with `publisher`.
    pub fn new(pool: PgPool, publisher: Publisher, config: RelayConfig) -> Self {
        Self {
            pool,
            publisher,
            config,
            database: Arc::default(),
        }
    }

    /// The `database` label: the outbox's database name, asked once.
    async fn database(&self) -> Result<&str, Error> {
        let name = self
            .database
            .get_or_try_init(|| async {
                let name = sqlx::query_scalar::<_, String>("SELECT current_database()")
                    .fetch_one(&self.pool)
                    .await?;
                metrics::register_outbox(&name);
                Ok::<_, sqlx::Error>(name)
            })
            .await?;
        Ok(name.as_str())
    }

    /// Samples the number of unpublished rows and the age of the oldest into the backlog gauges.
    pub async fn sample_backlog(&self) -> Result<(i64, i64), Error> {
        let (rows, oldest): (i64, i64) = sqlx::query_as(
            "SELECT count(*), \
                    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::bigint \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        metrics::record_backlog(self.database().await?, rows, oldest);
        Ok((rows, oldest))
    }

    /// Relays until `cancel` fires. A batch in progress is always finished
    /// (published and committed, or rolled back) before returning, so a
    /// stopping relay leaves no row half-handled.
    pub async fn run(self, cancel: CancellationToken) {
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(
            self.pool.clone(),
            Arc::clone(&wake),
            self.config.failure_backoff,
        ));
        let _stop_listener = AbortOnDrop(listener);

        let mut failures: u32 = 0;
        let mut last_prune: Option<Instant> = None;
        let mut last_sample: Option<Instant> = None;
        while !cancel.is_cancelled() {
            // Sampled on every path, failures included: a broker outage is when the backlog
            // grows, and the database usually still answers.
            if last_sample.is_none_or(|at| at.elapsed() >= BACKLOG_SAMPLE_INTERVAL) {
                last_sample = Some(Instant::now());
                if let Err(error) = self.sample_backlog().await {
                    tracing::debug!(%error, "outbox backlog sample failed");
                }
            }
            match self.publish_batch().await {
                Ok(outcome) => {
                    failures = 0;
                    if outcome.claimed >= self.config.batch_size as usize {
                        // A full batch: more rows are probably waiting.
                        continue;
                    }
                    if last_prune.is_none_or(|at| at.elapsed() >= self.config.prune_interval) {
                        last_prune = Some(Instant::now());
                        match prune(&self.pool, self.config.retention).await {
                            Ok(0) => {}
                            Ok(deleted) => tracing::info!(deleted, "pruned published outbox rows"),
                            Err(error) => tracing::warn!(%error, "outbox prune failed"),
                        }
                    }
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let delay = self.config.failure_backoff.jittered(failures);
                    tracing::warn!(
                        %error,
                        failures,
                        retry_in_ms = delay.as_millis() as u64,
                        "outbox batch failed, rows stay unpublished"
                    );
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::debug!("outbox relay stopped");
    }

    /// Claims up to `batch_size` due rows, publishes them and commits their
    /// new state in one transaction. On a broker or database failure the
    /// transaction rolls back and the error is returned.
    pub async fn publish_batch(&self) -> Result<BatchOutcome, Error> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, event_id, envelope, headers FROM outbox \
             WHERE published_at IS NULL \
               AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
             ORDER BY id \
             LIMIT $1 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(self.config.batch_size))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(BatchOutcome::default());
        }

        let mut outcome = BatchOutcome {
            claimed: rows.len(),
            ..BatchOutcome::default()
        };
        let mut messages = Vec::with_capacity(rows.len());
        let mut message_rows = Vec::with_capacity(rows.len());
        // Producer spans stay open until the confirms arrive, so their
        // duration is the publish latency.
        let mut spans = Vec::with_capacity(rows.len());
        let mut refused: Vec<(i64, String)> = Vec::new();
        for row in &rows {
            match self.prepare(row) {
                Ok((message, span)) => {
                    messages.push(message);
                    message_rows.push(row.id);
                    spans.push(span);
                }
                Err(error) => {
                    tracing::error!(outbox.id = row.id, event.id = %row.event_id, %error, "outbox row cannot be published");
                    refused.push((row.id, error.to_string()));
                }
            }
        }

        // Any channel-level failure returns here, dropping `tx` (rollback).
        let results = self.publisher.publish_batch(&messages).await?;
        drop(spans);

        let mut published = Vec::with_capacity(results.len());
        for (id, result) in message_rows.into_iter().zip(results) {
            match result {
                Ok(()) => published.push(id),
                Err(Error::Unroutable { routing_key, .. })
                    if self.config.announcements.contains(&routing_key) =>
                {
                    tracing::debug!(outbox.id = id, event.type = %routing_key,
                        "no queue is bound for this announcement; recorded as published");
                    published.push(id);
                }
                Err(error) => {
                    tracing::warn!(outbox.id = id, %error, "broker refused outbox row");
                    refused.push((id, error.to_string()));
                }
            }
        }
        sqlx::query("UPDATE outbox SET published_at = now(), last_error = NULL WHERE id = ANY($1)")
            .bind(&published)
            .execute(&mut *tx)
            .await?;
        for (id, error) in &refused {
            let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM outbox WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let delay = self
                .config
                .row_backoff
                .jittered(u32::try_from(attempts).unwrap_or(0).saturating_add(1));
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(delay.as_secs_f64())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        outcome.published = published.len();
        outcome.refused = refused.len();
        match self.database().await {
            Ok(database) => metrics::record_relayed(database, outcome.published, outcome.refused),
            Err(error) => tracing::debug!(%error, "outbox metrics skipped"),
        }
        Ok(outcome)
    }

    fn prepare(&self, row: &Row) -> Result<(OutgoingMessage, tracing::Span), Error> {
        let envelope = EventEnvelope::decode(row.envelope.as_slice())
            .map_err(|error| Error::InvalidEnvelope(format!("stored envelope: {error}")))?;
        // Continue the trace of the transaction that enqueued the event: the
        // producer span is a child of the stored context.
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&row.headers.0)
        });
        let span = producer_span(self.publisher.namespace(), &envelope);
        let _ = span.set_parent(parent);
        let mut amqp_headers = FieldTable::default();
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            headers::inject_context(&cx, &mut amqp_headers);
        } else {
            // No OpenTelemetry layer installed: forward what was captured.
            headers::extend_from_map(&mut amqp_headers, &row.headers.0);
        }
        let message = OutgoingMessage::event(self.publisher.namespace(), &envelope, amqp_headers)?;
        Ok((message, span))
    }
}

/// Forwards outbox notifications to `wake`, reconnecting after failures.
/// A separate task because `PgListener::recv` is not documented as
/// cancellation-safe, and the relay must be able to stop waiting at any time.
async fn listen(pool: PgPool, wake: Arc<Notify>, backoff: Backoff) {
    let mut failures: u32 = 0;
    loop {
        let result: Result<std::convert::Infallible, sqlx::Error> = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            // Rows may have been committed while we were not listening.
            wake.notify_one();
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
        }
        .await;
        let Err(error) = result;
        if matches!(error, sqlx::Error::PoolClosed) {
            return;
        }
        failures = failures.saturating_add(1);
        tracing::debug!(%error, "outbox listener failed, relay falls back to polling");
        tokio::time::sleep(backoff.jittered(failures)).await;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
