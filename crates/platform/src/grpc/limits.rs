//! The protective layers of the server stack: a per-call deadline and a concurrency limit that
//! sheds excess calls immediately instead of queueing them.
//!
//! Both answer with a proper gRPC status (`DEADLINE_EXCEEDED`, `UNAVAILABLE`) built right here,
//! rather than returning a tower error for tonic to translate: tonic would report an expired
//! timeout as `CANCELLED`, which tells the client the wrong story.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic_types::ErrorDetails;
use tower::{Layer, Service};

use super::trace::HEALTH_PREFIX;
use crate::error::{self, ErrorCode};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How long a client should wait before retrying a shed call.
const SHED_RETRY_AFTER: Duration = Duration::from_millis(200);

/// Paths exempt from the concurrency limit: an overloaded server must still answer its health
/// checks (or an orchestrator would restart it exactly when it is busiest), and reflection is an
/// operator tool.
fn is_exempt(path: &str) -> bool {
    path.starts_with(HEALTH_PREFIX)
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// Parses the gRPC `grpc-timeout` header: up to 8 digits and a unit (`H M S m u n`).
pub(crate) fn parse_grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    if text.len() < 2 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    if digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    match unit {
        "H" => Some(Duration::from_secs(amount.saturating_mul(3600))),
        "M" => Some(Duration::from_secs(amount.saturating_mul(60))),
        "S" => Some(Duration::from_secs(amount)),
        "m" => Some(Duration::from_millis(amount)),
        "u" => Some(Duration::from_micros(amount)),
        "n" => Some(Duration::from_nanos(amount)),
        _ => None,
    }
}

/// Layer bounding each call by the server's request timeout or the client's `grpc-timeout`,
/// whichever is shorter.
///
/// The deadline covers the handler up to the response headers (for unary calls: the whole
/// handler). When it passes, the handler future is dropped, so an open transaction rolls back,
/// and the client gets `DEADLINE_EXCEEDED`. Streams already flowing are not cut.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// A layer with the server-side cap `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            timeout: self.timeout,
        }
    }
}

/// Service produced by [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<http::Request<Body>> for TimeoutService<S>
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

        let client_deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(parse_grpc_timeout);
        let deadline = client_deadline.map_or(self.timeout, |client| client.min(self.timeout));
        let future = inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(deadline, future).await {
                Ok(result) => result,
                Err(_elapsed) => {
                    tracing::warn!(
                        deadline_ms = deadline.as_millis(),
                        "request deadline exceeded"
                    );
                    Ok(error::status(
                        ErrorCode::DeadlineExceeded,
                        "DEADLINE_EXCEEDED",
                        "request deadline exceeded",
                        ErrorDetails::new(),
                    )
                    .into_http())
                }
            }
        })
    }
}

/// Layer admitting at most `limit` calls at once across all connections and shedding the rest
/// with `UNAVAILABLE` (plus `RetryInfo`) at once.
///
/// Shedding instead of queueing keeps latency bounded under overload and tells the client to
/// retry elsewhere or later: `UNAVAILABLE` is the code gRPC clients treat as safely retryable,
/// which is right because a shed call never reached its handler. A permit is held until the
/// response headers are ready (the whole handler for unary calls).
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    permits: Arc<Semaphore>,
}

impl ConcurrencyLimitLayer {
    /// A layer admitting `limit` concurrent calls.
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        // Every clone shares the one semaphore, so the limit is per server, not per connection.
        ConcurrencyLimitService {
            inner,
            permits: Arc::clone(&self.permits),
        }
    }
}

/// Service produced by [`ConcurrencyLimitLayer`].
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitService<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S> Service<http::Request<Body>> for ConcurrencyLimitService<S>
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

        if is_exempt(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        // `try_acquire` never waits: either a permit is free now or the call is shed.
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                let future = inner.call(request);
                Box::pin(async move {
                    let response = future.await;
                    drop(permit);
                    response
                })
            }
            Err(_) => {
                tracing::warn!("shed request at the concurrency limit");
                let status = error::status(
                    ErrorCode::Unavailable,
                    "SERVER_OVERLOADED",
                    "server is at its concurrency limit, retry later",
                    ErrorDetails::with_retry_info(Some(SHED_RETRY_AFTER)),
                );
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_headers_parse_per_the_spec() {
        let parse = |s: &'static str| parse_grpc_timeout(&http::HeaderValue::from_static(s));
        assert_eq!(parse("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse("123456789S"), None, "more than 8 digits");
        assert_eq!(parse("10x"), None);
        assert_eq!(parse("S"), None);
    }

    #[test]
    fn health_and_reflection_bypass_the_limit() {
        assert!(is_exempt("/grpc.health.v1.Health/Check"));
        assert!(is_exempt(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_exempt("/mercato.order.v1.OrderService/CreateOrder"));
    }
}
