//! Telemetry initialisation: spans reach a test-owned OTLP collector over gRPC, and a second
//! initialisation is harmless.
//!
//! One test per binary on purpose: `init` installs process-wide state.

mod support;

use mercato_platform::settings::{EnvSource, LogFormat, TelemetrySettings};
use mercato_platform::telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use support::within;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A minimal OTLP trace collector that hands every export request to the test.
struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_the_configured_collector_and_init_is_idempotent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (exports_tx, mut exports) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let collector = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(exports_tx)))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.clone().cancelled_owned(),
            ),
    );

    // Read the way a service reads it: from variables, with the standard OTLP endpoint.
    let source = EnvSource::from_pairs([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_SERVICE_NAME", "mercato-telemetry-test".to_owned()),
        ("MERCATO_TEST__LOG_FORMAT", "json".to_owned()),
    ]);
    let reader = source.service("test");
    let settings = TelemetrySettings::read(&reader);
    let settings = reader.finish(|| settings).expect("valid settings");
    assert_eq!(settings.log_format, LogFormat::Json);

    let guard = telemetry::init(&settings).expect("telemetry initialises");
    let again =
        telemetry::init(&TelemetrySettings::local("ignored")).expect("a second init is harmless");
    drop(again);

    tracing::info_span!("checkout.test", order.id = "o-1").in_scope(|| {
        tracing::info!("inside the exported span");
    });
    within("the flush", guard.shutdown()).await;

    let request = within("an export request", exports.recv())
        .await
        .expect("the collector received spans");
    let resource_spans = &request.resource_spans[0];
    let service_name = resource_spans
        .resource
        .as_ref()
        .expect("resource")
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value| value.value.clone());
    assert_eq!(
        service_name,
        Some(Value::StringValue("mercato-telemetry-test".into()))
    );
    let names: Vec<&str> = resource_spans
        .scope_spans
        .iter()
        .flat_map(|scope| scope.spans.iter().map(|span| span.name.as_str()))
        .collect();
    assert!(
        names.contains(&"checkout.test"),
        "exported spans: {names:?}"
    );

    stop.cancel();
    within("the collector stopping", collector)
        .await
        .expect("collector task not panicked")
        .expect("collector stopped cleanly");
}
