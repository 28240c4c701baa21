//! Trace context across one gRPC hop: the client span injected by the channel is the remote
//! parent of the server span, and the handler's JSON log line carries the same trace.
//!
//! Alone in its binary on purpose: it installs a thread-local subscriber, and `tracing` caches
//! whether a span is enabled per call site for the whole process, so a concurrent test hitting
//! the same call sites without a subscriber could disable them here.

mod support;

use mercato_platform::settings::{LogFormat, TelemetrySettings};
use mercato_platform::telemetry;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use support::gate::{Captured, TestServer, call_gate, limits};
use support::within;
use tonic::Request;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

// Current-thread runtime: the server, its connections and the client all run on this thread,
// so the thread-local subscriber below sees every span.
#[tokio::test(flavor = "current_thread")]
async fn the_client_trace_context_is_the_parent_of_the_server_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let logs = Captured::default();
    let settings = TelemetrySettings {
        log_format: LogFormat::Json,
        ..TelemetrySettings::local("mercato-test")
    };
    let subscriber =
        telemetry::subscriber(&settings, &provider, logs.clone()).expect("subscriber builds");
    let _default = tracing::subscriber::set_default(subscriber);

    let mut server = TestServer::start(limits(8)).await;
    let root = tracing::info_span!("test.root");
    let root_trace_id = root.context().span().span_context().trace_id();
    server.open_gate(1);
    let channel = server.channel();
    within(
        "the traced call",
        call_gate(channel, Request::new(())).instrument(root.clone()),
    )
    .await
    .expect("gate call succeeds");
    server.next_arrival().await;
    drop(root);
    server.stop().await;
    provider.force_flush().expect("spans flushed");

    let spans = exporter.get_finished_spans().expect("spans recorded");
    let find = |kind: SpanKind| {
        spans
            .iter()
            .find(|s| s.span_kind == kind && s.name == "mercato.test.v1.Gate/Wait")
            .unwrap_or_else(|| {
                panic!(
                    "no {kind:?} span among {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            })
    };
    let client = find(SpanKind::Client);
    let server_span = find(SpanKind::Server);
    let root_span = spans
        .iter()
        .find(|s| s.name == "test.root")
        .expect("root span recorded");

    assert_eq!(client.span_context.trace_id(), root_trace_id);
    assert_eq!(client.parent_span_id, root_span.span_context.span_id());
    assert_eq!(
        server_span.span_context.trace_id(),
        root_trace_id,
        "one trace across the hop"
    );
    assert_eq!(server_span.parent_span_id, client.span_context.span_id());
    assert!(
        server_span.parent_span_is_remote,
        "the parent came through metadata"
    );

    assert_eq!(
        attribute(server_span, "rpc.system").map(|v| v.as_str().into_owned()),
        Some("grpc".into())
    );
    assert_eq!(
        attribute(server_span, "rpc.service").map(|v| v.as_str().into_owned()),
        Some("mercato.test.v1.Gate".into())
    );
    assert_eq!(
        attribute(server_span, "rpc.method").map(|v| v.as_str().into_owned()),
        Some("Wait".into())
    );
    assert_eq!(
        attribute(server_span, "rpc.grpc.status_code").map(|v| v.as_str().into_owned()),
        Some("0".into())
    );

    // The handler's log line carries the same trace, as JSON.
    let lines = logs.lines();
    let reached = lines
        .iter()
        .find(|line| line["message"] == "gate reached")
        .unwrap_or_else(|| panic!("no handler log line in {lines:?}"));
    assert_eq!(reached["trace_id"], root_trace_id.to_string());
    assert_eq!(reached["service"], "mercato-test");
    assert_eq!(
        reached["rpc.method"], "Wait",
        "span fields are flattened into the line"
    );
}
