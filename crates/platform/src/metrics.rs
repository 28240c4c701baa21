//! Prometheus metrics: the process's registry, its text exposition on `/metrics` (see
//! [`crate::http::router`]), helpers that register a metric once, and the RED layer of the gRPC
//! server stack.
//!
//! Decisions worth knowing:
//!
//! * **One registry per process**, Prometheus's default one. Every crate that records metrics
//!   (this one, `mercato-messaging`, a service) registers into it, so a service's `/metrics`
//!   shows everything its process does. In production a process is one service, so the scrape
//!   target already says which; series also carry what tells them apart in a process that runs
//!   several (tests): the gRPC service, the queue, the database.
//! * **Labels are bounded.** Label values come from code (service and method names of served
//!   routes, queue names, outcome names), never from request data. A call to a method the server
//!   does not have (`UNIMPLEMENTED`, with a client-chosen path) is counted under `unknown`.
//! * **No exemplars, no protobuf exposition**: the text format is what every scraper reads, and
//!   trace ids belong in the traces.
//!
//! # RPC series (every gRPC server, the BFF's included)
//!
//! | series | type | labels |
//! |---|---|---|
//! | `grpc_server_handled_total` | counter | `grpc_service`, `grpc_method`, `grpc_code` |
//! | `grpc_server_handling_seconds` | histogram | `grpc_service`, `grpc_method` |
//! | `grpc_client_resent_total` | counter | `grpc_service`, `grpc_method`, `reason` |
//!
//! The names and labels are those of the Prometheus gRPC middlewares most dashboards expect;
//! `grpc_code` is the canonical upper-case code name (`OK`, `INVALID_ARGUMENT`). A call ends when
//! its response body ends (the status is usually in the trailers), so a server stream's duration
//! is the stream's; a call the client abandoned before the end is `CANCELLED`.
//!
//! `grpc_client_resent_total` counts the outgoing calls the client channel sent again because
//! their failure proved no server had them (`connect`, `refused_stream`, `goaway`, `unsent`; see
//! [`crate::grpc::Backend`]): it rises during a rolling update and with `MAX_CONNECTION_AGE`, and
//! steadily only when a backend keeps refusing connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus::core::Collector;
use prometheus::{Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::grpc::trace::{HEALTH_PREFIX, split_path};

/// The Prometheus client crate, for services that define their own series (the types of the
/// statics they keep).
pub use prometheus;

/// The path the HTTP side serves the exposition on.
pub const PATH: &str = "/metrics";

/// Latency buckets in seconds, from a cache hit to a slow checkout.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Registers `metric` in the process registry and returns it. Registering the same name twice
/// is a programming error (metrics live in statics, registered once); it is logged, and the
/// metric still counts, just unexported.
pub fn register<M: Collector + Clone + 'static>(metric: M) -> M {
    if let Err(error) = prometheus::register(Box::new(metric.clone())) {
        tracing::error!(%error, "metric not registered");
    }
    metric
}

/// A registered counter family.
///
/// # Panics
///
/// On an invalid name or label name. Both are literals in statics, so the first test that
/// touches the metric finds the mistake.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter definition"))
}

/// A registered gauge family (panics like [`counter_vec`]).
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge definition"))
}

/// A registered histogram family with `buckets` (seconds for durations; panics like
/// [`counter_vec`]).
pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(HistogramVec::new(opts, labels).expect("a valid histogram definition"))
}

/// The process registry in the Prometheus text exposition format.
pub fn render() -> String {
    let families = prometheus::gather();
    let mut buffer = Vec::new();
    if let Err(error) = prometheus::TextEncoder::new().encode(&families, &mut buffer) {
        tracing::warn!(%error, "metrics encoding failed");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// `GET /metrics`.
pub fn router() -> Router {
    Router::new().route(PATH, get(metrics))
}

async fn metrics() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        tokio::task::spawn_blocking(render)
            .await
            .unwrap_or_default(),
    )
}

static HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "grpc_server_handled_total",
        "gRPC calls completed by the server, by service, method and status code",
        &["grpc_service", "grpc_method", "grpc_code"],
    )
});

static HANDLING: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "grpc_server_handling_seconds",
        "Time from receiving a gRPC call to the end of its response, by service and method",
        &["grpc_service", "grpc_method"],
        LATENCY_BUCKETS,
    )
});

/// The canonical name of a gRPC status code, as `grpc_code` label values spell it.
pub fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One call being measured; records exactly once, when its outcome is known or it is dropped.
struct CallMetrics {
    service: String,
    method: String,
    started: Instant,
}

impl CallMetrics {
    fn finish(self, code: tonic::Code) {
        // The path is the client's choice; only methods the server has get their own series.
        let (service, method) = if code == tonic::Code::Unimplemented {
            ("unknown", "unknown")
        } else {
            (self.service.as_str(), self.method.as_str())
        };
        HANDLED
            .with_label_values(&[service, method, code_name(code)])
            .inc();
        HANDLING
            .with_label_values(&[service, method])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

fn status_code(headers: &HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// Layer recording [`HANDLED`] and [`HANDLING`] for every call but health checks. In the server
/// stack it sits inside the trace layer and outside the timeout and concurrency limit, so calls
/// that time out or are shed are counted too.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService { inner }
    }
}

/// Service produced by [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<http::Request<Body>> for RpcMetricsService<S>
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
        let path = request.uri().path();
        // Health checks arrive every few seconds from every probe and say nothing about traffic.
        if path.starts_with(HEALTH_PREFIX) {
            return Box::pin(inner.call(request));
        }
        let (service, method) = split_path(path);
        let call = CallMetrics {
            service: service.to_owned(),
            method: method.to_owned(),
            started: Instant::now(),
        };
        let future = inner.call(request);
        Box::pin(async move {
            let response = match future.await {
                Ok(response) => response,
                Err(error) => {
                    call.finish(tonic::Code::Unknown);
                    return Err(error);
                }
            };
            // Trailers-only responses (every unary error) carry the status in the headers.
            if let Some(code) = status_code(response.headers()) {
                call.finish(code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(MeteredBody {
                    inner: body,
                    call: Some(call),
                })
            }))
        })
    }
}

/// A response body that records its call when the trailing `grpc-status` arrives, or as
/// `CANCELLED` when it is dropped before the end (the client went away).
struct MeteredBody {
    inner: Body,
    call: Option<CallMetrics>,
}

impl MeteredBody {
    fn finish(&mut self, code: tonic::Code) {
        if let Some(call) = self.call.take() {
            call.finish(code);
        }
    }
}

impl HttpBody for MeteredBody {
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
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let code = status.code();
                self.finish(code);
            }
            // A body that ends without a status broke the protocol.
            Poll::Ready(None) => self.finish(tonic::Code::Unknown),
            Poll::Pending => {}
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

impl Drop for MeteredBody {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_the_canonical_upper_case_ones() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            code_name(tonic::Code::FailedPrecondition),
            "FAILED_PRECONDITION"
        );
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
    }

    #[test]
    fn helpers_register_series_that_render() {
        let counter = counter_vec(
            "mercato_unit_test_total",
            "a counter the unit test increments",
            &["kind"],
        );
        counter.with_label_values(&["a"]).inc_by(3);
        let text = render();
        assert!(
            text.contains("mercato_unit_test_total{kind=\"a\"} 3"),
            "{text}"
        );
    }
}
