//! How statuses from internal services reach the browser: client errors pass through with their
//! details; anything that could carry internal detail is masked here, once.

use mercato_platform::error::{self as errors, ErrorCode};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// The status the browser sees for a failed downstream call.
///
/// A status the service already masked (its `ErrorInfo` says `INTERNAL` or `UNAVAILABLE` in our
/// domain) keeps its correlation id, so operators find the service's log line. Transport
/// failures and unmasked server errors are logged here and masked with a new correlation id.
pub fn downstream(status: Status) -> Status {
    let masked_code = match status.code() {
        Code::Internal | Code::Unknown | Code::DataLoss => ErrorCode::Internal,
        Code::Unavailable => ErrorCode::Unavailable,
        Code::Ok
        | Code::Cancelled
        | Code::InvalidArgument
        | Code::DeadlineExceeded
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Unauthenticated => return status,
    };
    let details = status.get_error_details();
    let already_masked = details.error_info().is_some_and(|info| {
        info.domain == errors::DOMAIN && matches!(info.reason.as_str(), "INTERNAL" | "UNAVAILABLE")
    });
    if already_masked {
        return Status::with_error_details(status.code(), status.message(), details);
    }
    let correlation_id = errors::correlation_id();
    tracing::warn!(
        code = ?status.code(), error = status.message(), correlation_id = %correlation_id,
        "downstream call failed"
    );
    errors::masked(masked_code, &correlation_id)
}

/// `INVALID_ARGUMENT` / `VALIDATION_FAILED` for a request the BFF can reject without a call.
pub fn missing_field(field: &str) -> Status {
    errors::invalid_argument(
        "VALIDATION_FAILED",
        format!("{field} is required"),
        [errors::field_violation(field, "required")],
    )
}

/// `INTERNAL` for a downstream response that broke its contract (a required message missing).
pub fn broken_contract(what: &str) -> Status {
    let correlation_id = errors::correlation_id();
    tracing::error!(what, correlation_id = %correlation_id, "downstream response broke its contract");
    errors::masked(ErrorCode::Internal, &correlation_id)
}
