//! A test-owned OTLP/gRPC trace collector: every exported span is kept, flattened with its
//! ids, for the test to read; [`SpanSet`] walks them by parent and span ids.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One received span, with hex ids and its attributes as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The OpenTelemetry span name (`otel.name` when set).
    pub name: String,
    /// Server, client, producer, consumer or internal.
    pub kind: SpanKind,
    /// Attribute values rendered as strings (integers in decimal).
    pub attributes: HashMap<String, String>,
    /// `(trace id, span id)` of every link.
    pub links: Vec<(String, String)>,
}

impl CollectedSpan {
    /// An attribute's value.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Whether the span started its trace (no parent).
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// Whether `self` is a direct child of `parent`: same trace, and `parent`'s id as its parent.
    pub fn is_child_of(&self, parent: &CollectedSpan) -> bool {
        self.trace_id == parent.trace_id && self.parent_span_id == parent.span_id
    }

    /// One line naming the span: kind, name, ids.
    pub fn describe(&self) -> String {
        format!(
            "{:?} {:?} {}/{} (parent {:?}, links {:?})",
            self.kind, self.name, self.trace_id, self.span_id, self.parent_span_id, self.links
        )
    }
}

/// A set of collected spans, navigable by their ids.
#[derive(Debug, Clone)]
pub struct SpanSet {
    spans: Vec<CollectedSpan>,
}

impl SpanSet {
    /// A set over `spans`.
    pub fn new(spans: Vec<CollectedSpan>) -> Self {
        Self { spans }
    }

    /// Every span.
    pub fn all(&self) -> &[CollectedSpan] {
        &self.spans
    }

    /// The span `span_id` of trace `trace_id`.
    pub fn get(&self, trace_id: &str, span_id: &str) -> Option<&CollectedSpan> {
        self.spans
            .iter()
            .find(|span| span.trace_id == trace_id && span.span_id == span_id)
    }

    /// The parent of `span`, when it was collected.
    pub fn parent(&self, span: &CollectedSpan) -> Option<&CollectedSpan> {
        if span.is_root() {
            return None;
        }
        self.get(&span.trace_id, &span.parent_span_id)
    }

    /// The direct children of `span`.
    pub fn children<'a>(
        &'a self,
        span: &'a CollectedSpan,
    ) -> impl Iterator<Item = &'a CollectedSpan> {
        self.spans
            .iter()
            .filter(move |child| child.is_child_of(span))
    }

    /// The spans of trace `trace_id` as an indented tree (for failure messages).
    pub fn render_trace(&self, trace_id: &str) -> String {
        let mut out = String::new();
        let roots = self
            .spans
            .iter()
            .filter(|span| span.trace_id == trace_id && self.parent(span).is_none());
        for root in roots {
            self.render(root, 0, &mut out);
        }
        out
    }

    fn render(&self, span: &CollectedSpan, depth: usize, out: &mut String) {
        out.push_str(&"  ".repeat(depth));
        out.push_str(&span.describe());
        out.push('\n');
        for child in self.children(span) {
            self.render(child, depth + 1, out);
        }
    }
}

/// The collector; stops when dropped.
#[derive(Debug)]
pub struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
    stop: CancellationToken,
}

struct Service(Arc<Mutex<Vec<CollectedSpan>>>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    received.push(CollectedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        name: span.name,
                        attributes: span
                            .attributes
                            .into_iter()
                            .map(|kv| (kv.key, render(kv.value.and_then(|v| v.value))))
                            .collect(),
                        links: span
                            .links
                            .into_iter()
                            .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                            .collect(),
                    });
                }
            }
        }
        self.0.lock().expect("collector lock").extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn render(value: Option<Value>) -> String {
    match value {
        Some(Value::StringValue(text)) => text,
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(
            other @ (Value::ArrayValue(_)
            | Value::KvlistValue(_)
            | Value::BytesValue(_)
            | Value::StringValueStrindex(_)),
        ) => {
            format!("{other:?}")
        }
        None => String::new(),
    }
}

impl Collector {
    /// Serves the collector on 127.0.0.1:0.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let addr = listener.local_addr().expect("collector address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Service(Arc::clone(&spans))))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.clone().cancelled_owned(),
            );
        tokio::spawn(async move {
            server.await.expect("the collector serves");
        });
        Self { addr, spans, stop }
    }

    /// The OTLP endpoint URL (`http://127.0.0.1:port`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.lock().expect("collector lock").clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
