//! The edge layer every browser request passes before a handler runs: strip client-supplied
//! internal headers, assign the request id, authenticate (public allow-list, bearer token,
//! external-subject mapping), rate limit, and hand the verified principal to the platform's
//! principal layer as forwarding headers. The request id is scoped for the call, so every call
//! to an internal service carries it (see `mercato_platform::request_id`). Every response leaves
//! with `x-request-id` and `x-trace-id`.
//!
//! Rejections happen here, before any service is called.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue};
use mercato_platform::error::{self as errors, ErrorCode};
use mercato_platform::grpc::ClientChannel;
use mercato_platform::principal::{self, Principal, Role};
use mercato_platform::request_id::{self, RequestId};
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::user::v1::ProvisionExternalUserRequest;
use mercato_proto::mercato::user::v1::user_service_client::UserServiceClient;
use opentelemetry::trace::TraceContextExt as _;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tonic_types::{ErrorDetails, StatusExt as _};
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

use crate::jwt::{IssuerKind, VerifiedToken, Verifier};
use crate::rate_limit::{Decision, RateLimiter, Subject};
use crate::routes::{self, RouteClass};

/// The request id header (taken from the client when well-formed, generated otherwise).
pub const REQUEST_ID_HEADER: &str = request_id::REQUEST_ID_HEADER;
/// The trace id header on every response.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// Upper bound on mapped external subjects kept in memory; the map is cleared when it fills,
/// which only costs one idempotent `ProvisionExternalUser` call per subject.
const MAX_MAPPED_SUBJECTS: usize = 100_000;

/// What the edge needs, shared by every request.
#[derive(Debug)]
pub struct EdgeState {
    verifier: Verifier,
    limiter: RateLimiter,
    users: UserServiceClient<ClientChannel>,
    client_ip_header: Option<HeaderName>,
    mapped: RwLock<HashMap<(String, String), Principal>>,
}

impl EdgeState {
    /// The edge's state. `client_ip_header` names the header a trusted proxy sets with the
    /// client address (its last entry is used); without it the peer address is the client.
    pub fn new(
        verifier: Verifier,
        limiter: RateLimiter,
        users: UserServiceClient<ClientChannel>,
        client_ip_header: Option<HeaderName>,
    ) -> Self {
        Self {
            verifier,
            limiter,
            users,
            client_ip_header,
            mapped: RwLock::new(HashMap::new()),
        }
    }

    /// Authenticates and rate limits one request; `Ok` carries the principal to forward.
    async fn admit(
        &self,
        path: &str,
        headers: &HeaderMap,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<Principal>, Status> {
        let route = routes::route(path);
        let principal = match bearer(headers) {
            Bearer::Token(token) => match self.verifier.verify(token).await {
                Ok(verified) => Some(self.principal(verified).await?),
                // A bad token on a public RPC is ignored rather than refused: the RPC needs no
                // identity, and a stale token in the browser must not block signing in again.
                Err(_) if route.public => None,
                Err(err) => {
                    tracing::info!(error = %err, rpc = path, "token rejected");
                    crate::metrics::token_refused(&err);
                    return Err(unauthenticated(err.reason(), "invalid access token"));
                }
            },
            Bearer::Missing if route.public => None,
            Bearer::Missing => {
                crate::metrics::auth_failed("token_missing");
                return Err(unauthenticated("TOKEN_MISSING", "access token required"));
            }
            Bearer::Malformed if route.public => None,
            Bearer::Malformed => {
                crate::metrics::auth_failed("not_bearer");
                return Err(unauthenticated(
                    "TOKEN_INVALID",
                    "authorization must be a bearer token",
                ));
            }
        };

        let mut subjects = Vec::with_capacity(2);
        if let Some(ip) = client_ip {
            subjects.push(Subject::Ip(ip.to_string()));
        }
        if let Some(principal) = &principal {
            subjects.push(Subject::User(principal.user_id.to_string()));
        }
        match self.limiter.check(route.class, &subjects).await {
            Decision::Allowed => Ok(principal),
            Decision::Limited {
                subject,
                retry_after,
            } => Err(errors::rate_limited(
                "RATE_LIMITED",
                subject.describe(),
                format!("{} requests over budget", route.class.as_str()),
                retry_after,
            )),
            // The documented Redis-down policy (see `rate_limit`): auth fails closed.
            Decision::Unavailable => match route.class {
                RouteClass::Auth => Err(errors::masked(
                    ErrorCode::Unavailable,
                    &errors::correlation_id(),
                )),
                RouteClass::Read | RouteClass::Write | RouteClass::Health => Ok(principal),
            },
        }
    }

    /// The principal of a verified token: the built-in issuer's `sub` is the user id; an
    /// external subject is mapped (and provisioned on first use) by the user service.
    async fn principal(&self, token: VerifiedToken) -> Result<Principal, Status> {
        match token.kind {
            IssuerKind::BuiltIn => {
                let user_id = Uuid::parse_str(&token.subject).map_err(|_| {
                    crate::metrics::auth_failed("invalid_subject");
                    unauthenticated("TOKEN_INVALID", "invalid access token")
                })?;
                let roles = token
                    .roles
                    .iter()
                    .filter_map(|role| Role::from_str(role).ok());
                Ok(Principal::new(user_id, roles))
            }
            IssuerKind::External => self.external_principal(token).await,
        }
    }

    async fn external_principal(&self, token: VerifiedToken) -> Result<Principal, Status> {
        let key = (token.issuer.clone(), token.subject.clone());
        if let Some(principal) = self
            .mapped
            .read()
            .ok()
            .and_then(|map| map.get(&key).cloned())
        {
            return Ok(principal);
        }
        let request = ProvisionExternalUserRequest {
            issuer: token.issuer,
            subject: token.subject,
            email: token.email.unwrap_or_default(),
            email_verified: token.email_verified,
            display_name: token.name.unwrap_or_default(),
        };
        // The BFF provisions as itself, not on behalf of a user: no principal is forwarded.
        let response = principal::scope(None, self.users.clone().provision_external_user(request))
            .await
            .map_err(crate::error::downstream)?
            .into_inner();
        let user = response
            .user
            .ok_or_else(|| errors::masked(ErrorCode::Internal, &errors::correlation_id()))?;
        let user_id = Uuid::parse_str(&user.user_id)
            .map_err(|_| errors::masked(ErrorCode::Internal, &errors::correlation_id()))?;
        let roles = user
            .roles
            .iter()
            .filter_map(|role| match common::Role::try_from(*role) {
                Ok(common::Role::Buyer) => Some(Role::Buyer),
                Ok(common::Role::Seller) => Some(Role::Seller),
                Ok(common::Role::Admin) => Some(Role::Admin),
                Ok(common::Role::Unspecified) | Err(_) => None,
            });
        let principal = Principal::new(user_id, roles);
        if let Ok(mut map) = self.mapped.write() {
            if map.len() >= MAX_MAPPED_SUBJECTS {
                map.clear();
            }
            map.insert(key, principal.clone());
        }
        Ok(principal)
    }

    fn client_ip(&self, request: &http::Request<Body>) -> Option<IpAddr> {
        if let Some(name) = &self.client_ip_header {
            // The trusted proxy appends the address it saw; earlier entries are client-supplied.
            let forwarded = request
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
                .next_back();
            if forwarded.is_some() {
                return forwarded;
            }
        }
        request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|addr| addr.ip())
    }
}

enum Bearer<'a> {
    Token(&'a str),
    Missing,
    Malformed,
}

fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Bearer::Missing;
    };
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Bearer::Token(token.trim())
        }
        _ => Bearer::Malformed,
    }
}

fn unauthenticated(reason: &'static str, message: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, errors::DOMAIN, HashMap::new());
    Status::with_error_details(tonic::Code::Unauthenticated, message, details)
}

/// The current trace id (from the server span), or a fresh id when tracing is not exporting.
fn trace_id() -> String {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        span_context.trace_id().to_string()
    } else {
        Uuid::new_v4().simple().to_string()
    }
}

/// Tower layer installing [`EdgeService`].
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    state: Arc<EdgeState>,
}

impl EdgeLayer {
    /// The layer over shared `state`.
    pub fn new(state: Arc<EdgeState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Service produced by [`EdgeLayer`].
#[derive(Debug, Clone)]
pub struct EdgeService<S> {
    inner: S,
    state: Arc<EdgeState>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<http::Request<Body>> for EdgeService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // Take the instance that was driven to readiness and leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();

        // First, before anything reads them: a browser must never pose as another user.
        principal::strip_internal_headers(request.headers_mut());
        let id = RequestId::from_headers(request.headers()).unwrap_or_else(RequestId::generate);
        id.write_headers(request.headers_mut());
        let request_id = id.header_value();
        let trace_id = HeaderValue::from_str(&trace_id())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));

        // The id is the call's current request id from here on: every call to a service (the
        // handler's, and the edge's own provisioning call) forwards it, and the server span
        // records it for the BFF's own log lines.
        let scoped = Some(id.clone());
        Box::pin(request_id::scope(scoped, async move {
            id.record_on_current_span();
            let path = request.uri().path().to_owned();
            let client_ip = state.client_ip(&request);
            let mut response = match state.admit(&path, request.headers(), client_ip).await {
                Ok(principal) => {
                    if let Some(principal) = principal {
                        // The platform's principal layer (next in the stack) parses these into
                        // the request extensions and the task's current principal.
                        principal.write_headers(request.headers_mut());
                    }
                    let mut response = inner.call(request).await?;
                    annotate_error(&mut response, &request_id, &trace_id);
                    response
                }
                Err(status) => with_request_info(status, &request_id, &trace_id).into_http(),
            };
            let headers = response.headers_mut();
            headers.insert(REQUEST_ID_HEADER, request_id);
            headers.insert(TRACE_ID_HEADER, trace_id);
            Ok(response)
        }))
    }
}

/// Adds `RequestInfo` (request id, and the trace id as serving data) to an error's details,
/// unless a service already set it (a masked error's correlation id stays).
fn with_request_info(status: Status, request_id: &HeaderValue, trace_id: &HeaderValue) -> Status {
    let mut details = status.get_error_details();
    if details.request_info().is_some() {
        return status;
    }
    details.set_request_info(
        request_id.to_str().unwrap_or_default(),
        format!("trace_id={}", trace_id.to_str().unwrap_or_default()),
    );
    Status::with_error_details(status.code(), status.message(), details)
}

/// Puts the ids into the details of a trailers-only error response from a handler (the shape
/// tonic gives every unary error), so the page finds them where it reads the error.
fn annotate_error(
    response: &mut http::Response<Body>,
    request_id: &HeaderValue,
    trace_id: &HeaderValue,
) {
    let failed = response
        .headers()
        .get("grpc-status")
        .is_some_and(|code| code.as_bytes() != b"0");
    if !failed {
        return;
    }
    let Some(status) = Status::from_header_map(response.headers()) else {
        return;
    };
    let annotated = with_request_info(status, request_id, trace_id);
    if annotated.add_header(response.headers_mut()).is_ok() {
        response.extensions_mut().insert(annotated);
    }
}
