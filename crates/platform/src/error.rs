//! The error-code table: the gRPC canonical codes Mercato uses, their one mapping to `tonic::Code`
//! and to HTTP, and the rich `tonic::Status` builders every service uses at its boundary.
//!
//! A service keeps one `thiserror` enum, implements [`ServiceError`] on it with an exhaustive
//! `match` (no `_` arm, so a new variant cannot be mapped by accident), and converts with
//! [`into_status`]:
//!
//! ```
//! use mercato_platform::error::{ErrorCode, ServiceError, into_status};
//!
//! #[derive(Debug, thiserror::Error)]
//! enum CartError {
//!     #[error("quantity must be between 1 and 99")]
//!     BadQuantity,
//!     #[error("database failure")]
//!     Database(#[source] std::io::Error),
//! }
//!
//! impl ServiceError for CartError {
//!     fn code(&self) -> ErrorCode {
//!         match self {
//!             Self::BadQuantity => ErrorCode::InvalidArgument,
//!             Self::Database(_) => ErrorCode::Internal,
//!         }
//!     }
//!     fn reason(&self) -> &'static str {
//!         match self {
//!             Self::BadQuantity => "CART_BAD_QUANTITY",
//!             Self::Database(_) => "INTERNAL",
//!         }
//!     }
//! }
//!
//! impl From<CartError> for tonic::Status {
//!     fn from(err: CartError) -> Self {
//!         into_status(err)
//!     }
//! }
//!
//! let status = tonic::Status::from(CartError::BadQuantity);
//! assert_eq!(status.code(), tonic::Code::InvalidArgument);
//! ```
//!
//! Server-side failures (`INTERNAL`, `UNAVAILABLE`) are logged once, here, with their source
//! chain and a correlation id, and the client sees only a generic message plus that id, never the
//! detail (which may name hosts, SQL or upstream errors).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::time::Duration;

use http::StatusCode;
use opentelemetry::trace::TraceContextExt as _;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation, StatusExt as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `ErrorInfo.domain` of every Mercato error.
pub const DOMAIN: &str = "mercato";

/// `ErrorInfo.metadata` key carrying the correlation id of a masked error.
pub const CORRELATION_ID_KEY: &str = "correlation_id";

/// One invalid request field: its path relative to the request (`shipping_address.postal_code`)
/// and what is wrong with it, in lower case for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The gRPC canonical codes Mercato returns (a subset of `google.rpc.Code`).
///
/// `OK`, `UNKNOWN`, `OUT_OF_RANGE` and `DATA_LOSS` are deliberately absent: success is not an
/// error, unknown failures are `Internal`, ranges are `InvalidArgument` and we have no data-loss
/// path a client could act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The caller went away or the operation was cancelled.
    Cancelled,
    /// The request is malformed regardless of system state (bad field values).
    InvalidArgument,
    /// The deadline passed before the operation completed.
    DeadlineExceeded,
    /// The addressed resource does not exist (or the caller may not know it exists).
    NotFound,
    /// The resource the caller tried to create already exists.
    AlreadyExists,
    /// The caller is known but not allowed to do this.
    PermissionDenied,
    /// A quota or rate limit is exhausted; retry after the advertised delay.
    ResourceExhausted,
    /// The system is not in the state the operation needs (order already paid, stock too low).
    FailedPrecondition,
    /// A concurrency conflict (optimistic version mismatch); retry the read-modify-write.
    Aborted,
    /// The method is not implemented by this server.
    Unimplemented,
    /// A server-side bug or broken invariant; the detail is logged and masked.
    Internal,
    /// A dependency is down; transient, the client may retry with backoff. Masked like `Internal`.
    Unavailable,
    /// No valid credentials were presented.
    Unauthenticated,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 13] = [
        Self::Cancelled,
        Self::InvalidArgument,
        Self::DeadlineExceeded,
        Self::NotFound,
        Self::AlreadyExists,
        Self::PermissionDenied,
        Self::ResourceExhausted,
        Self::FailedPrecondition,
        Self::Aborted,
        Self::Unimplemented,
        Self::Internal,
        Self::Unavailable,
        Self::Unauthenticated,
    ];

    /// The gRPC status code.
    pub fn grpc(self) -> Code {
        match self {
            Self::Cancelled => Code::Cancelled,
            Self::InvalidArgument => Code::InvalidArgument,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::ResourceExhausted => Code::ResourceExhausted,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::Aborted => Code::Aborted,
            Self::Unimplemented => Code::Unimplemented,
            Self::Internal => Code::Internal,
            Self::Unavailable => Code::Unavailable,
            Self::Unauthenticated => Code::Unauthenticated,
        }
    }

    /// The HTTP status for gRPC-Web and plain HTTP clients (the `google.rpc.Code` mapping).
    pub fn http(self) -> StatusCode {
        http_status(self.grpc())
    }

    /// Whether the detail must be hidden from clients (server-side failures).
    pub fn is_masked(self) -> bool {
        match self {
            Self::Internal | Self::Unavailable => true,
            Self::Cancelled
            | Self::InvalidArgument
            | Self::DeadlineExceeded
            | Self::NotFound
            | Self::AlreadyExists
            | Self::PermissionDenied
            | Self::ResourceExhausted
            | Self::FailedPrecondition
            | Self::Aborted
            | Self::Unimplemented
            | Self::Unauthenticated => false,
        }
    }
}

/// HTTP status for any gRPC code, including those Mercato never sends itself but may receive from
/// a peer (the BFF maps downstream statuses for gRPC-Web clients with this).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        // 499 "client closed request" is the conventional mapping; it is a valid status number.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What a service's error enum tells the boundary.
pub trait ServiceError: StdError {
    /// The canonical code.
    fn code(&self) -> ErrorCode;

    /// A stable `UPPER_SNAKE_CASE` reason for `ErrorInfo` (`ORDER_ALREADY_PAID`); clients branch
    /// on it, so it never changes once shipped.
    fn reason(&self) -> &'static str;

    /// Rich details beyond `ErrorInfo` (field violations, precondition failures, resource info).
    /// `ErrorInfo` is added by [`into_status`] unless set here.
    fn details(&self) -> ErrorDetails {
        ErrorDetails::new()
    }
}

/// Converts a service error into the `Status` the client sees.
///
/// Masked codes ([`ErrorCode::is_masked`]) are logged here, once, with the full source chain, and
/// the client gets `internal error (correlation id …)` with the id in `ErrorInfo` metadata and
/// `RequestInfo`. Other errors carry their `Display` text, reason and details, and are logged at
/// debug level only: they are the client's business, not an operator's.
pub fn into_status<E: ServiceError>(err: E) -> Status {
    let code = err.code();
    let reason = err.reason();
    if code.is_masked() {
        let correlation_id = correlation_id();
        let chain = source_chain(&err);
        // Unavailable is usually a dependency blip an operator watches for trends; Internal is a
        // bug or broken invariant that deserves an error-level line.
        if code == ErrorCode::Unavailable {
            tracing::warn!(
                error = %chain, error.reason = reason, correlation_id = %correlation_id,
                "dependency unavailable"
            );
        } else {
            tracing::error!(
                error = %chain, error.reason = reason, correlation_id = %correlation_id,
                "internal error"
            );
        }
        return masked(code, &correlation_id);
    }
    tracing::debug!(error = %err, error.reason = reason, "request failed");
    let mut details = err.details();
    if details.error_info().is_none() {
        details.set_error_info(reason, DOMAIN, HashMap::new());
    }
    Status::with_error_details(code.grpc(), err.to_string(), details)
}

/// The masked status for a server-side failure that was already logged with `correlation_id`.
pub fn masked(code: ErrorCode, correlation_id: &str) -> Status {
    let (message, reason) = if code == ErrorCode::Unavailable {
        ("service unavailable, retry later", "UNAVAILABLE")
    } else {
        ("internal error", "INTERNAL")
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(
        reason,
        DOMAIN,
        HashMap::from([(CORRELATION_ID_KEY.to_owned(), correlation_id.to_owned())]),
    );
    details.set_request_info(correlation_id, "");
    Status::with_error_details(
        code.grpc(),
        format!("{message} (correlation id {correlation_id})"),
        details,
    )
}

/// The id an operator searches for: the current trace id when a trace is active (so the same id
/// opens the trace in Jaeger), otherwise a fresh random id.
pub fn correlation_id() -> String {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        span_context.trace_id().to_string()
    } else {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

/// `outer: cause: root cause`, for one log line.
fn source_chain(err: &dyn StdError) -> String {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(chain, ": {cause}");
        source = cause.source();
    }
    chain
}

/// `INVALID_ARGUMENT` with one `BadRequest` field violation per bad field.
///
/// `field` is the request field path (`shipping_address.postal_code`) so a browser can put the
/// message next to the right input.
pub fn invalid_argument(
    reason: &'static str,
    message: impl Into<String>,
    violations: impl IntoIterator<Item = FieldViolation>,
) -> Status {
    let mut details = ErrorDetails::with_bad_request(violations.into_iter().collect::<Vec<_>>());
    details.set_error_info(reason, DOMAIN, HashMap::new());
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// A field violation for [`invalid_argument`].
pub fn field_violation(field: impl Into<String>, description: impl Into<String>) -> FieldViolation {
    FieldViolation::new(field, description)
}

/// `NOT_FOUND` with `ResourceInfo` naming what was looked up.
pub fn not_found(
    reason: &'static str,
    resource_type: impl Into<String>,
    resource_name: impl Into<String>,
) -> Status {
    let resource_type = resource_type.into();
    let resource_name = resource_name.into();
    let message = format!("{resource_type} {resource_name} not found");
    let mut details =
        ErrorDetails::with_resource_info(resource_type, resource_name, "", "not found");
    details.set_error_info(reason, DOMAIN, HashMap::new());
    Status::with_error_details(Code::NotFound, message, details)
}

/// `FAILED_PRECONDITION` with `PreconditionFailure` violations (`type`, `subject`, `description`).
pub fn failed_precondition(
    reason: &'static str,
    message: impl Into<String>,
    violations: impl IntoIterator<Item = PreconditionViolation>,
) -> Status {
    let mut details =
        ErrorDetails::with_precondition_failure(violations.into_iter().collect::<Vec<_>>());
    details.set_error_info(reason, DOMAIN, HashMap::new());
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// A precondition violation for [`failed_precondition`].
pub fn precondition_violation(
    violation_type: impl Into<String>,
    subject: impl Into<String>,
    description: impl Into<String>,
) -> PreconditionViolation {
    PreconditionViolation::new(violation_type, subject, description)
}

/// `RESOURCE_EXHAUSTED` for a rate limit: `QuotaFailure` naming the subject (`user:…`, `ip:…`)
/// and `RetryInfo` telling the client when to come back.
pub fn rate_limited(
    reason: &'static str,
    subject: impl Into<String>,
    description: impl Into<String>,
    retry_after: Duration,
) -> Status {
    let mut details = ErrorDetails::with_quota_failure_violation(subject, description);
    details.set_retry_info(Some(retry_after));
    details.set_error_info(reason, DOMAIN, HashMap::new());
    Status::with_error_details(Code::ResourceExhausted, "rate limit exceeded", details)
}

/// Any code with an `ErrorInfo` reason and optional extra details.
pub fn status(
    code: ErrorCode,
    reason: &'static str,
    message: impl Into<String>,
    mut details: ErrorDetails,
) -> Status {
    if details.error_info().is_none() {
        details.set_error_info(reason, DOMAIN, HashMap::new());
    }
    Status::with_error_details(code.grpc(), message, details)
}
