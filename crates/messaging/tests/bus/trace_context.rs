//! W3C trace context across the bus: the consumer's span continues the producer's trace.

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use mercato_messaging::{
    Consumer, ConsumerConfig, ConsumerTopology, Handler, HandlerError, IncomingEvent, OutboxRelay,
    OutcomeKind, Publisher, outbox,
};
use opentelemetry::trace::{TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::support::{Fixture, PATIENCE, event, fast_relay_config};

/// Installs, once per process, what a service's telemetry set-up installs:
/// the W3C propagator and a tracing subscriber bridged to OpenTelemetry.
fn install_tracing() {
    static INSTALLED: OnceLock<SdkTracerProvider> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("messaging-tests")));
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        provider
    });
}

fn current_trace_id() -> TraceId {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
}

/// Records the trace id of the span each event is handled in.
#[derive(Clone, Default)]
struct TraceRecorder(Arc<Mutex<Vec<(String, TraceId)>>>);

impl Handler for TraceRecorder {
    async fn handle(
        &self,
        event: &IncomingEvent,
        _conn: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        self.0
            .lock()
            .expect("recorder lock")
            .push((event.envelope.event_id.clone(), current_trace_id()));
        Ok(())
    }
}

impl TraceRecorder {
    fn trace_of(&self, event_id: &str) -> Option<TraceId> {
        let seen = self.0.lock().expect("recorder lock");
        seen.iter()
            .find(|(id, _)| id == event_id)
            .map(|(_, trace)| *trace)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_continues_the_trace_of_the_publisher_and_of_the_outbox_writer() {
    install_tracing();
    let fixture = Fixture::new().await;
    let topology = ConsumerTopology::new(&fixture.namespace, "svc", "traced", ["test.#"])
        .expect("valid names");
    fixture.track(&topology);
    let recorder = TraceRecorder::default();
    let consumer = Consumer::new(
        fixture.connector("consumer"),
        topology.clone(),
        fixture.db.pool().clone(),
        recorder.clone(),
        ConsumerConfig::default(),
    );
    let mut outcomes = consumer.subscribe();
    let cancel = CancellationToken::new();
    // Stops the consumer before the fixture's guards delete its queues, even when an assertion fails.
    let _stop_on_exit = cancel.clone().drop_guard();
    {
        let admin = fixture.broker.connect().await.expect("connection");
        let channel = admin.create_channel().await.expect("channel");
        topology.declare(&channel).await.expect("declare");
    }
    let consumer = tokio::spawn(consumer.run(cancel.clone()));

    // Direct publish inside a request span.
    let publisher = Publisher::new(fixture.connector("publisher"), fixture.namespace.clone());
    let direct = event("test.direct");
    let request = tracing::info_span!("handle request");
    let direct_trace = async {
        publisher.publish(&direct).await.expect("publish");
        current_trace_id()
    }
    .instrument(request)
    .await;
    assert_ne!(
        direct_trace,
        TraceId::INVALID,
        "the test span has an OpenTelemetry context"
    );

    // Outbox: the context is captured at enqueue and carried by the relay.
    let stored = event("test.stored");
    let use_case = tracing::info_span!("place order");
    let stored_trace = async {
        let mut tx = fixture.db.pool().begin().await.expect("begin");
        outbox::enqueue(&mut tx, &stored).await.expect("enqueue");
        tx.commit().await.expect("commit");
        current_trace_id()
    }
    .instrument(use_case)
    .await;
    let relay = OutboxRelay::new(
        fixture.db.pool().clone(),
        Publisher::new(fixture.connector("relay"), fixture.namespace.clone()),
        fast_relay_config(),
    );
    // Relayed from a background task with no span of its own, like in a service.
    let relayed = tokio::spawn(async move { relay.publish_batch().await })
        .await
        .expect("relay task")
        .expect("relay batch");
    assert_eq!(relayed.published, 1);

    // The two events may be handled in either order: collect outcomes until both are seen.
    let wanted = [direct.event_id.clone(), stored.event_id.clone()];
    let collect = async {
        let mut seen = std::collections::HashMap::new();
        while !wanted.iter().all(|id| seen.contains_key(id)) {
            match outcomes.recv().await {
                Ok(outcome) => {
                    seen.insert(outcome.message_id.clone(), outcome.kind);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(error) => panic!("consumer stopped: {error}"),
            }
        }
        seen
    };
    let seen = tokio::time::timeout(PATIENCE, collect)
        .await
        .expect("both events consumed in time");
    for id in &wanted {
        assert_eq!(seen[id], OutcomeKind::Processed, "event {id}");
    }
    assert_eq!(recorder.trace_of(&direct.event_id), Some(direct_trace));
    assert_eq!(recorder.trace_of(&stored.event_id), Some(stored_trace));
    assert_ne!(direct_trace, stored_trace);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), consumer)
        .await
        .expect("consumer stops")
        .expect("consumer task");
}
