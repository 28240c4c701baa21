//! W3C trace context in gRPC metadata and the RPC spans on both ends of a call, named and
//! attributed per the OpenTelemetry RPC semantic conventions.
//!
//! The server layer extracts `traceparent`/`tracestate` from the request and makes the remote
//! span the parent of a `grpc.server` span; the client layer (see `grpc::client`) opens a
//! `grpc.client` span under the caller's current span and injects *its* context into the
//! outgoing metadata. One checkout is therefore one trace: BFF server span → BFF client span →
//! order server span → …
//!
//! The server span also records the caller's `x-request-id` as its `request_id` field and
//! scopes it as the call's current request id (see [`crate::request_id`]).
//!
//! Both spans stay open until the response body ends, because a gRPC call's outcome
//! (`grpc-status`) usually arrives in the trailers, after the last message.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::request_id::{self, RequestId};

/// Reads propagation fields from HTTP/2 headers (gRPC metadata).
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes propagation fields into HTTP/2 headers (gRPC metadata).
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(name) = http::HeaderName::from_bytes(key.as_bytes()) else {
            return;
        };
        let Ok(value) = http::HeaderValue::from_str(&value) else {
            return;
        };
        self.0.insert(name, value);
    }
}

/// The remote parent carried by `headers`, or an empty context (a new root) when there is none.
///
/// Mercato speaks W3C Trace Context on every hop, so this uses that propagator directly rather
/// than whatever is installed globally: propagation then works in tests and tools that never
/// initialised telemetry.
pub fn extract_context(headers: &HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new()
        .extract_with_context(&opentelemetry::Context::new(), &HeaderExtractor(headers))
}

/// Writes the W3C trace context of `context` into `headers` (nothing when it has no valid span).
pub fn inject_context(context: &opentelemetry::Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
}

/// `("mercato.order.v1.OrderService", "CreateOrder")` from `/mercato.order.v1.OrderService/CreateOrder`.
pub(crate) fn split_path(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("unknown", "unknown"))
}

/// Which end of the call a span describes; decides which status codes mark it as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanKind {
    Server,
    Client,
}

/// Records `rpc.grpc.status_code` and, for failures, `otel.status_code = "ERROR"` on `span`.
///
/// Per the RPC conventions a server span is an error only for codes that mean the *server*
/// failed; a client span is an error for any non-OK code.
pub(crate) fn record_status(span: &tracing::Span, kind: SpanKind, code: tonic::Code) {
    span.record("rpc.grpc.status_code", code as i32);
    let failed = match kind {
        SpanKind::Client => code != tonic::Code::Ok,
        SpanKind::Server => matches!(
            code,
            tonic::Code::Unknown
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unimplemented
                | tonic::Code::Internal
                | tonic::Code::Unavailable
                | tonic::Code::DataLoss
        ),
    };
    if failed {
        span.record("otel.status_code", "ERROR");
    }
}

/// The `grpc-status` in a header or trailer map, if present.
fn status_code(headers: &HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// Finishes a call's span from the response: trailers-only responses (errors) carry the status
/// in the headers; otherwise the body is wrapped so the span sees the trailers and lives until
/// the last frame.
pub(crate) fn observe_response(
    span: tracing::Span,
    kind: SpanKind,
    response: http::Response<Body>,
) -> http::Response<Body> {
    if let Some(code) = status_code(response.headers()) {
        record_status(&span, kind, code);
        return response;
    }
    response.map(|body| {
        Body::new(TracedBody {
            inner: body,
            span,
            kind,
        })
    })
}

/// A response body that records the trailing `grpc-status` on its span and keeps the span open
/// until the stream ends.
struct TracedBody {
    inner: Body,
    span: tracing::Span,
    kind: SpanKind,
}

impl HttpBody for TracedBody {
    type Data = <Body as HttpBody>::Data;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_code) {
                    record_status(&self.span, self.kind, code);
                }
            }
            Poll::Ready(Some(Err(status))) => record_status(&self.span, self.kind, status.code()),
            Poll::Ready(None) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Layer opening the `grpc.server` span with the extracted remote parent (outermost in the stack,
/// so everything below runs inside it).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTraceLayer;

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTraceService { inner }
    }
}

/// Service produced by [`ServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct ServerTraceService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Path prefix of the gRPC health service.
pub(crate) const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

impl<S> Service<http::Request<Body>> for ServerTraceService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        // Health checks arrive every few seconds from every orchestrator probe; tracing them
        // would bury real traffic, so they run without a span.
        if request.uri().path().starts_with(HEALTH_PREFIX) {
            return Box::pin(inner.call(request));
        }
        let span = server_span(&request);
        // The caller's request id: recorded on the span (every log line of the call carries
        // it) and scoped for the call, so client channels forward it to the next service.
        let request_id = RequestId::from_headers(request.headers());
        if let Some(id) = &request_id {
            span.record("request_id", id.as_str());
        }
        // `call` runs inside the span too: layers below record fields on `Span::current()`.
        let future = span.in_scope(|| inner.call(request));
        Box::pin(
            request_id::scope(request_id, async move {
                let response = future.await?;
                Ok(observe_response(
                    tracing::Span::current(),
                    SpanKind::Server,
                    response,
                ))
            })
            .instrument(span),
        )
    }
}

/// The server span for `request`, parented to the trace context the caller sent.
fn server_span(request: &http::Request<Body>) -> tracing::Span {
    let (service, method) = split_path(request.uri().path());
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
        user.id = tracing::field::Empty,
        request_id = tracing::field::Empty,
    );
    let parent = extract_context(request.headers());
    // Fails only when no OpenTelemetry layer is installed (plain logging), where there is no
    // trace to join; the span then simply has no remote parent.
    let _ = span.set_parent(parent);
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(split_path("/nonsense"), ("unknown", "unknown"));
    }

    #[test]
    fn a_traceparent_survives_inject_and_extract() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let context = extract_context(&headers);
        let mut out = HeaderMap::new();
        inject_context(&context, &mut out);
        assert_eq!(out.get("traceparent"), headers.get("traceparent"));
    }

    #[test]
    fn no_traceparent_means_no_remote_parent() {
        use opentelemetry::trace::TraceContextExt as _;
        let context = extract_context(&HeaderMap::new());
        assert!(!context.span().span_context().is_valid());
    }
}
