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
///
/// `CANCELLED` is one of them: when the browser cancels, its handler is dropped and no status
/// reaches it, so a call that answers `CANCELLED` while the handler still runs was cut below the
/// BFF (hyper reports a connection closed under a request as "operation was canceled"). The
/// browser gets `UNAVAILABLE`, which tells it to retry, instead of a cancellation it never made.
pub fn downstream(status: Status) -> Status {
    let masked_code = match status.code() {
        Code::Internal | Code::Unknown | Code::DataLoss => ErrorCode::Internal,
        Code::Unavailable | Code::Cancelled => ErrorCode::Unavailable,
        Code::Ok
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_downstream_cancellation_reaches_the_browser_as_unavailable() {
        let status = downstream(Status::cancelled("operation was canceled"));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("canceled"), "{status:?}");
    }

    #[test]
    fn client_errors_pass_through_with_their_message() {
        let status = downstream(Status::not_found("order 1 not found"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "order 1 not found");
    }
}
