//! The client channel every service uses to call another: lazy connection, timeouts, and an
//! outbound layer that opens a `grpc.client` span, injects its W3C trace context, forwards the
//! current principal and request id, and names the calling service.
//!
//! ```no_run
//! # fn build() -> Result<(), mercato_platform::grpc::ChannelError> {
//! use mercato_platform::grpc::{ChannelOptions, connect_lazy};
//!
//! let channel = connect_lazy("http://product:50052", &ChannelOptions::new("order"))?;
//! // let product = ProductServiceClient::new(channel);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use opentelemetry::trace::TraceContextExt as _;
use tonic::body::Body;
use tonic::transport::Endpoint;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::replicas::Backend;
use super::trace::{SpanKind, inject_context, observe_response, record_status, split_path};
use crate::principal::{self, CALLER_HEADER, USER_ID_HEADER};
use crate::request_id::{self, REQUEST_ID_HEADER};

/// How a client channel connects and whom it says it is.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// The calling service's name, sent as `x-mercato-caller`.
    pub caller: String,
    /// TCP + HTTP/2 connection establishment timeout, default 5s.
    pub connect_timeout: Duration,
    /// Client-side cap per call, default 30s; also sent to the server as `grpc-timeout` when the
    /// call sets none.
    pub request_timeout: Duration,
}

impl ChannelOptions {
    /// Defaults for a caller named `caller`.
    pub fn new(caller: impl Into<String>) -> Self {
        Self {
            caller: caller.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Errors building a channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The endpoint URI does not parse.
    #[error("invalid grpc endpoint {uri:?}")]
    InvalidUri {
        /// The rejected URI.
        uri: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The caller name is not a valid header value.
    #[error("invalid caller name {0:?}")]
    InvalidCaller(String),
}

/// The channel type generated clients are built on (`FooServiceClient::new(channel)`).
pub type ClientChannel = OutboundService<Backend>;

/// A channel to `uri` that connects on first use (and reconnects after failures), so services
/// can start in any order. Must be called inside a Tokio runtime.
///
/// `uri` may list several replicas of one backend separated by commas
/// (`http://order-0:50053,http://order-1:50053`): calls take turns over them. Whether one URL
/// or several, a call that provably never reached a server (a refused connect, a stream a
/// stopping server's `GOAWAY` turned away) is sent again, to another replica when there is one
/// (see [`Backend`]).
pub fn connect_lazy(uri: &str, options: &ChannelOptions) -> Result<ClientChannel, ChannelError> {
    let channels = uri
        .split(',')
        .map(str::trim)
        .filter(|replica| !replica.is_empty())
        .map(|replica| endpoint(replica, options).map(|endpoint| endpoint.connect_lazy()))
        .collect::<Result<Vec<_>, _>>()?;
    if channels.is_empty() {
        // Let the parser name what is wrong with the setting; a list of nothing but commas
        // parses as a URI, so it is refused as the empty one.
        endpoint(uri, options)?;
        endpoint("", options)?;
    }
    let layer = OutboundLayer::new(options)?;
    Ok(layer.layer(Backend::new(channels)))
}

fn endpoint(uri: &str, options: &ChannelOptions) -> Result<Endpoint, ChannelError> {
    Ok(Endpoint::from_shared(uri.to_owned())
        .map_err(|source| ChannelError::InvalidUri {
            uri: uri.to_owned(),
            source,
        })?
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .tcp_nodelay(true)
        // Keepalives notice a dead peer (pod killed without FIN) instead of hanging calls.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

/// Layer adding the outbound span, trace context, principal and caller to every call.
#[derive(Debug, Clone)]
pub struct OutboundLayer {
    caller: HeaderValue,
    deadline: HeaderValue,
}

impl OutboundLayer {
    /// A layer for calls made by `options.caller`.
    pub fn new(options: &ChannelOptions) -> Result<Self, ChannelError> {
        let caller = HeaderValue::from_str(&options.caller)
            .map_err(|_| ChannelError::InvalidCaller(options.caller.clone()))?;
        // grpc-timeout allows at most 8 digits; in milliseconds that is over 27 hours.
        let millis = options.request_timeout.as_millis().min(99_999_999);
        // Digits followed by `m` are always a valid header value; the fallback is never used.
        let deadline =
            HeaderValue::from_str(&format!("{millis}m")).unwrap_or(HeaderValue::from_static("30S"));
        Ok(Self { caller, deadline })
    }
}

impl<S> Layer<S> for OutboundLayer {
    type Service = OutboundService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OutboundService {
            inner,
            caller: self.caller.clone(),
            deadline: self.deadline.clone(),
        }
    }
}

/// Service produced by [`OutboundLayer`].
#[derive(Debug, Clone)]
pub struct OutboundService<S> {
    inner: S,
    caller: HeaderValue,
    deadline: HeaderValue,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<http::Request<Body>> for OutboundService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        // Created while the caller's span is current, so it becomes that span's child.
        let span = client_span(request.uri().path());
        let headers = request.headers_mut();
        // If the client span is disabled (filtered out), still continue the caller's trace.
        let mut context = span.context();
        if !context.span().span_context().is_valid() {
            context = tracing::Span::current().context();
        }
        inject_context(&context, headers);
        headers.insert(CALLER_HEADER, self.caller.clone());
        // Tell the server our deadline so it stops working when we stop waiting; a deadline set
        // on the request itself (`Request::set_timeout`) is kept.
        if !headers.contains_key("grpc-timeout") {
            headers.insert("grpc-timeout", self.deadline.clone());
        }
        // An explicitly set principal (the BFF building a request by hand) wins over the
        // task's current one.
        if !headers.contains_key(USER_ID_HEADER)
            && let Some(principal) = principal::current()
        {
            principal.write_headers(headers);
        }
        // The request id of the call being served travels on; one set by hand is kept.
        if !headers.contains_key(REQUEST_ID_HEADER)
            && let Some(request_id) = request_id::current()
        {
            request_id.write_headers(headers);
        }

        let future = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let span = tracing::Span::current();
                match future.await {
                    Ok(response) => Ok(observe_response(span, SpanKind::Client, response)),
                    Err(err) => {
                        // Transport failures never reached a server: the call is UNAVAILABLE.
                        record_status(&span, SpanKind::Client, tonic::Code::Unavailable);
                        tracing::debug!(error = %err, "grpc call failed in transport");
                        Err(err)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// The client span of a call to `path`.
fn client_span(path: &str) -> tracing::Span {
    let (service, method) = split_path(path);
    tracing::info_span!(
        "grpc.client",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}
