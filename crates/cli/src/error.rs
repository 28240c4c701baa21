//! Why a command failed, as one line naming the field or the cause, and the exit code it maps
//! to (1 for refusals and failures, 2 for usage errors).
//!
//! A service's refusal keeps what its status carries ([`mercato_platform::error`]): the code, the
//! `ErrorInfo` reason, every `BadRequest` field violation, and the subject of a precondition or
//! the resource that was not found.

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Exit code of a refused or failed command.
pub const EXIT_FAILED: i32 = 1;
/// Exit code of a usage error (bad flags), as clap uses.
pub const EXIT_USAGE: i32 = 2;

/// Why a command did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A service refused an RPC or could not be reached.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A broker operation failed.
    #[error("{context}: {source}")]
    Broker {
        /// What was being done.
        context: String,
        /// The broker's error.
        #[source]
        source: mercato_messaging::Error,
    },
    /// The operation could not be done, e.g. a message id that is not in the DLQ.
    #[error("{0}")]
    Failed(String),
    /// The command line is unusable (a URL that does not parse, conflicting values).
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Rpc(_) | Self::Broker { .. } | Self::Failed(_) => EXIT_FAILED,
        }
    }

    /// The RPC refusal, if this is one.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            Self::Rpc(error) => Some(error),
            Self::Broker { .. } | Self::Failed(_) | Self::Usage(_) => None,
        }
    }

    /// A broker error with what was being done.
    pub fn broker(context: impl Into<String>, source: impl Into<mercato_messaging::Error>) -> Self {
        Self::Broker {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// One bad field as the server named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field path, e.g. `coupon.fixed_discount.amount_minor`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// A service's answer to a failed RPC.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.line())]
pub struct RpcError {
    /// `Service.Method`, e.g. `CouponService.CreateCoupon`.
    pub rpc: &'static str,
    /// The gRPC code.
    pub code: Code,
    /// The `ErrorInfo` reason (`VALIDATION_FAILED`), when the server sent one.
    pub reason: Option<String>,
    /// Field violations (`BadRequest`), in the server's order.
    pub violations: Vec<FieldViolation>,
    /// The precondition subject or the resource a refusal is about, when named.
    pub subject: Option<String>,
    /// The status message.
    pub message: String,
}

impl RpcError {
    /// Reads what `status` carries.
    pub fn from_status(rpc: &'static str, status: &Status) -> Self {
        let details = status.get_error_details();
        let reason = details.error_info().map(|info| info.reason.clone());
        let violations = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|violation| FieldViolation {
                        field: violation.field.clone(),
                        description: violation.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let subject = details
            .precondition_failure()
            .and_then(|failure| failure.violations.first())
            .map(|violation| violation.subject.clone())
            .or_else(|| {
                details.resource_info().map(|resource| {
                    format!("{} {}", resource.resource_type, resource.resource_name)
                })
            })
            .filter(|subject| !subject.trim().is_empty());
        Self {
            rpc,
            code: status.code(),
            reason,
            violations,
            subject,
            message: status.message().to_owned(),
        }
    }

    /// The fields the server named.
    pub fn fields(&self) -> Vec<&str> {
        self.violations
            .iter()
            .map(|violation| violation.field.as_str())
            .collect()
    }

    /// Whether the server refused (as opposed to not answering at all).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self.code,
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
        ) || self.reason.is_some()
    }

    /// The one-line description: `CouponService.CreateCoupon refused: INVALID_ARGUMENT
    /// VALIDATION_FAILED: coupon.name: is required`.
    fn line(&self) -> String {
        let verb = if self.is_refusal() {
            "refused"
        } else {
            "failed"
        };
        let mut line = format!("{} {verb}: {}", self.rpc, code_name(self.code));
        if let Some(reason) = &self.reason {
            line.push(' ');
            line.push_str(reason);
        }
        line.push_str(": ");
        if self.violations.is_empty() {
            if let Some(subject) = &self.subject {
                line.push_str(subject);
                line.push_str(": ");
            }
            line.push_str(&self.message);
        } else {
            let fields: Vec<String> = self
                .violations
                .iter()
                .map(|violation| format!("{}: {}", violation.field, violation.description))
                .collect();
            line.push_str(&fields.join("; "));
        }
        // One line, whatever the server put in its message.
        line.replace(['\n', '\r'], " ")
    }
}

/// The canonical upper-case name of a gRPC code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Turns a tonic answer into its message, or an [`RpcError`] naming the RPC.
pub(crate) trait Answer<T> {
    /// The response message, or the refusal of `rpc`.
    fn answer(self, rpc: &'static str) -> Result<T, CliError>;
}

impl<T> Answer<T> for Result<tonic::Response<T>, Status> {
    fn answer(self, rpc: &'static str) -> Result<T, CliError> {
        self.map(tonic::Response::into_inner)
            .map_err(|status| RpcError::from_status(rpc, &status).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mercato_platform::error::{field_violation, invalid_argument, not_found};

    #[test]
    fn a_validation_refusal_names_every_field_on_one_line() {
        let status = invalid_argument(
            "VALIDATION_FAILED",
            "invalid coupon",
            [
                field_violation("coupon.name", "is required"),
                field_violation("coupon.validity_days", "must be between 1 and 3650\nreally"),
            ],
        );
        let error = RpcError::from_status("CouponService.CreateCoupon", &status);
        assert_eq!(error.fields(), ["coupon.name", "coupon.validity_days"]);
        assert_eq!(
            error.to_string(),
            "CouponService.CreateCoupon refused: INVALID_ARGUMENT VALIDATION_FAILED: \
             coupon.name: is required; coupon.validity_days: must be between 1 and 3650 really"
        );
        assert_eq!(CliError::from(error).exit_code(), EXIT_FAILED);
    }

    #[test]
    fn a_not_found_names_the_resource() {
        let status = not_found("RESOURCE_NOT_FOUND", "order", "0190");
        let error = RpcError::from_status("OrderService.LookupOrder", &status);
        assert_eq!(error.subject.as_deref(), Some("order 0190"));
        assert!(
            error
                .to_string()
                .contains("NOT_FOUND RESOURCE_NOT_FOUND: order 0190:")
        );
    }

    #[test]
    fn an_unreachable_service_is_a_failure_not_a_refusal() {
        let error = RpcError::from_status(
            "PaymentService.ReconcilePayments",
            &Status::unavailable("tcp connect error"),
        );
        assert_eq!(
            error.to_string(),
            "PaymentService.ReconcilePayments failed: UNAVAILABLE: tcp connect error"
        );
    }
}
