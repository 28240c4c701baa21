//! The forwarded principal: who a request acts for, as verified by the BFF and carried between
//! services in gRPC metadata.
//!
//! The BFF verifies the browser's JWT and then calls internal services with
//!
//! | metadata key | value |
//! |---|---|
//! | `x-mercato-user-id` | the user's UUID (the token's `sub`) |
//! | `x-mercato-roles` | comma-separated roles: `buyer`, `seller`, `admin` |
//! | `x-mercato-caller` | the calling service's name (`bff`, `order`), set by every client channel |
//!
//! **Only internal traffic may carry these headers.** Internal services are reachable only inside
//! the cluster network and trust them as-is; the BFF removes client-supplied copies with
//! [`strip_internal_headers`] before anything else looks at a request, so a browser can never
//! pose as another user. A user id always comes from the verified token, never from a request
//! field (BOLA).
//!
//! On the server, [`PrincipalLayer`] (part of the one gRPC stack) parses the headers into a
//! [`Principal`] in the request extensions, where handlers read it with [`require_user`] /
//! [`require_role`], and makes it the task's current principal so outgoing calls made while
//! handling the request forward it automatically (see `grpc::client`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};
use uuid::Uuid;

/// Metadata key of the forwarded user id.
pub const USER_ID_HEADER: &str = "x-mercato-user-id";
/// Metadata key of the forwarded roles.
pub const ROLES_HEADER: &str = "x-mercato-roles";
/// Metadata key naming the calling service (service identity marker).
pub const CALLER_HEADER: &str = "x-mercato-caller";

/// Every header that only internal traffic may carry.
pub const INTERNAL_HEADERS: [&str; 3] = [USER_ID_HEADER, ROLES_HEADER, CALLER_HEADER];

/// A role granted by the identity service and carried in the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Shops and places orders (every registered user).
    Buyer,
    /// Lists products and gets paid out.
    Seller,
    /// Operates the shop; scoped explicitly at each RPC that allows it.
    Admin,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buyer => "buyer",
            Self::Seller => "seller",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "buyer" => Ok(Self::Buyer),
            "seller" => Ok(Self::Seller),
            "admin" => Ok(Self::Admin),
            _ => Err(()),
        }
    }
}

/// The user a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The verified user id.
    pub user_id: Uuid,
    /// The user's roles, sorted and without duplicates.
    pub roles: Vec<Role>,
}

impl Principal {
    /// A principal with `roles` (sorted and deduplicated).
    pub fn new(user_id: Uuid, roles: impl IntoIterator<Item = Role>) -> Self {
        let mut roles: Vec<Role> = roles.into_iter().collect();
        roles.sort_unstable();
        roles.dedup();
        Self { user_id, roles }
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the principal is an admin.
    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }

    /// Writes the forwarding headers (replacing any already there).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        // A UUID's hyphenated form and our role names are plain ASCII, so both values are valid
        // header values; `from_str` cannot fail on them.
        if let Ok(value) = HeaderValue::from_str(&self.user_id.hyphenated().to_string()) {
            headers.insert(USER_ID_HEADER, value);
        }
        if let Ok(value) = HeaderValue::from_str(&self.roles_value()) {
            headers.insert(ROLES_HEADER, value);
        }
    }

    /// Writes the forwarding metadata on an outgoing tonic request (the BFF, after verifying the
    /// token). Inside [`scope`] client channels do this automatically.
    pub fn write_metadata(&self, metadata: &mut tonic::metadata::MetadataMap) {
        if let Ok(value) = self.user_id.hyphenated().to_string().parse() {
            metadata.insert(USER_ID_HEADER, value);
        }
        if let Ok(value) = self.roles_value().parse() {
            metadata.insert(ROLES_HEADER, value);
        }
    }

    /// `buyer,admin`.
    fn roles_value(&self) -> String {
        self.roles
            .iter()
            .map(|role| role.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads the forwarding headers: `Ok(None)` when no user is forwarded (anonymous or a
    /// service acting on its own behalf).
    ///
    /// Unknown role names are ignored rather than rejected, so the BFF can introduce a role before
    /// every service knows it; an unknown role grants nothing.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, PrincipalError> {
        let Some(user_id) = headers.get(USER_ID_HEADER) else {
            if headers.contains_key(ROLES_HEADER) {
                return Err(PrincipalError::RolesWithoutUser);
            }
            return Ok(None);
        };
        let user_id = user_id
            .to_str()
            .ok()
            .and_then(|value| Uuid::parse_str(value).ok())
            .ok_or(PrincipalError::MalformedUserId)?;
        let roles = match headers.get(ROLES_HEADER) {
            Some(value) => value
                .to_str()
                .map_err(|_| PrincipalError::MalformedRoles)?
                .split(',')
                .filter_map(|role| role.trim().parse::<Role>().ok())
                .collect::<Vec<_>>(),
            None => Vec::new(),
        };
        Ok(Some(Self::new(user_id, roles)))
    }
}

/// The service that made a call (`x-mercato-caller`), when it said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// Forwarding headers that do not parse. Only a bug in an internal caller produces these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// `x-mercato-user-id` is not a UUID.
    #[error("malformed forwarded user id")]
    MalformedUserId,
    /// `x-mercato-roles` is not ASCII.
    #[error("malformed forwarded roles")]
    MalformedRoles,
    /// Roles were forwarded without a user.
    #[error("forwarded roles without a user id")]
    RolesWithoutUser,
}

/// Removes every internal header (the BFF calls this on each incoming browser request before
/// verifying the token, so clients cannot forge a principal).
pub fn strip_internal_headers(headers: &mut HeaderMap) {
    for name in INTERNAL_HEADERS {
        headers.remove(name);
    }
}

/// The principal of a request, or `UNAUTHENTICATED` / `TOKEN_MISSING`.
pub fn require_user<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
    request.extensions().get::<Principal>().ok_or_else(|| {
        crate::error::status(
            crate::error::ErrorCode::Unauthenticated,
            "TOKEN_MISSING",
            "authentication required",
            tonic_types::ErrorDetails::new(),
        )
    })
}

/// The principal of a request if it holds `role`; `UNAUTHENTICATED` without a principal,
/// `PERMISSION_DENIED` / `ROLE_REQUIRED` without the role.
pub fn require_role<T>(request: &tonic::Request<T>, role: Role) -> Result<&Principal, Status> {
    let principal = require_user(request)?;
    if principal.has_role(role) {
        Ok(principal)
    } else {
        Err(crate::error::status(
            crate::error::ErrorCode::PermissionDenied,
            "ROLE_REQUIRED",
            format!("requires the {role} role"),
            tonic_types::ErrorDetails::new(),
        ))
    }
}

/// The calling service of a request, if it identified itself.
pub fn caller<T>(request: &tonic::Request<T>) -> Option<&Caller> {
    request.extensions().get::<Caller>()
}

/// The caller name of the public edge (the BFF's channels identify themselves with it).
pub const EDGE_CALLER: &str = "bff";

/// Whether a request comes from an internal service acting on its own behalf. The BFF names
/// itself too, but it relays browsers: a call from it is never internal, whatever it carries.
pub fn is_internal_service<T>(request: &tonic::Request<T>) -> bool {
    caller(request).is_some_and(|caller| caller.0 != EDGE_CALLER)
}

tokio::task_local! {
    static CURRENT: Option<Principal>;
}

/// Runs `future` with `principal` as the current principal, which client channels forward on
/// every outgoing call. The BFF wraps each handler in this after verifying the token; the server
/// stack does it for internal services.
///
/// Task-locals do not cross `tokio::spawn`: a spawned task that calls other services on the
/// user's behalf must be wrapped again.
pub async fn scope<F: Future>(principal: Option<Principal>, future: F) -> F::Output {
    CURRENT.scope(principal, future).await
}

/// The current principal set by [`scope`], if any.
pub fn current() -> Option<Principal> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Tower layer that extracts the forwarded principal into request extensions and scopes it for
/// the handler (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct PrincipalLayer;

impl<S> Layer<S> for PrincipalLayer {
    type Service = PrincipalService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PrincipalService { inner }
    }
}

/// Service produced by [`PrincipalLayer`].
#[derive(Debug, Clone)]
pub struct PrincipalService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<http::Request<Body>> for PrincipalService<S>
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

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // Take the instance that was driven to readiness and leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        let principal = match Principal::from_headers(request.headers()) {
            Ok(principal) => principal,
            Err(err) => {
                tracing::warn!(error = %err, "rejected request with malformed principal headers");
                let response = Status::unauthenticated(err.to_string()).into_http();
                return Box::pin(async move { Ok(response) });
            }
        };
        if let Some(Ok(name)) = request
            .headers()
            .get(CALLER_HEADER)
            .map(HeaderValue::to_str)
        {
            let caller = Caller(name.to_owned());
            request.extensions_mut().insert(caller);
        }
        if let Some(principal) = &principal {
            tracing::Span::current().record("user.id", tracing::field::display(principal.user_id));
            request.extensions_mut().insert(principal.clone());
        }
        Box::pin(scope(principal, inner.call(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_headers_round_trip() {
        let principal = Principal::new(Uuid::new_v4(), [Role::Admin, Role::Buyer, Role::Admin]);
        let mut headers = HeaderMap::new();
        principal.write_headers(&mut headers);
        assert_eq!(
            headers.get(ROLES_HEADER).map(|v| v.as_bytes()),
            Some(&b"buyer,admin"[..])
        );
        let parsed = Principal::from_headers(&headers).expect("headers parse");
        assert_eq!(parsed, Some(principal));
    }

    #[test]
    fn unknown_roles_grant_nothing() {
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_ID_HEADER,
            HeaderValue::from_static("0190a5b6-8d2c-7c4e-9f3a-2b1c0d9e8f7a"),
        );
        headers.insert(ROLES_HEADER, HeaderValue::from_static("buyer, superuser"));
        let parsed = Principal::from_headers(&headers)
            .expect("headers parse")
            .expect("a user is forwarded");
        assert_eq!(parsed.roles, vec![Role::Buyer]);
    }

    #[test]
    fn a_malformed_user_id_is_an_error_not_anonymous() {
        let mut headers = HeaderMap::new();
        headers.insert(USER_ID_HEADER, HeaderValue::from_static("not-a-uuid"));
        assert_eq!(
            Principal::from_headers(&headers),
            Err(PrincipalError::MalformedUserId)
        );
    }

    #[test]
    fn stripping_removes_every_internal_header() {
        let mut headers = HeaderMap::new();
        Principal::new(Uuid::new_v4(), [Role::Admin]).write_headers(&mut headers);
        headers.insert(CALLER_HEADER, HeaderValue::from_static("bff"));
        headers.insert("x-request-id", HeaderValue::from_static("keep"));
        strip_internal_headers(&mut headers);
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn require_role_distinguishes_anonymous_from_forbidden() {
        let anonymous = tonic::Request::new(());
        assert_eq!(
            require_role(&anonymous, Role::Admin)
                .map(|_| ())
                .map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );
        let mut buyer = tonic::Request::new(());
        buyer
            .extensions_mut()
            .insert(Principal::new(Uuid::new_v4(), [Role::Buyer]));
        assert_eq!(
            require_role(&buyer, Role::Admin)
                .map(|_| ())
                .map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        assert!(require_role(&buyer, Role::Buyer).is_ok());
    }
}
