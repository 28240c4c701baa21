//! The payment service's error enum and its one exhaustive mapping to gRPC codes, reasons
//! (`mercato.common.v1.ErrorReason` names) and rich details.

use std::collections::HashMap;

pub use mercato_platform::error::Violation;
use mercato_platform::error::{DOMAIN, ErrorCode, ServiceError, into_status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation};

use crate::domain::Status;
use crate::provider::ProviderError;
use crate::provider::connect::ConnectError;

/// Everything a payment or wallet operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<Violation>),
    /// A Money value in another currency than the shop's.
    #[error("{field} must be in {expected}")]
    CurrencyMismatch {
        /// The field.
        field: &'static str,
        /// The shop currency.
        expected: String,
    },
    /// The named resource does not exist (or belongs to someone else).
    #[error("{resource_type} {resource_id} not found")]
    NotFound {
        /// `payment`.
        resource_type: &'static str,
        /// Its id.
        resource_id: String,
    },
    /// The wallet holds fewer points than a spend needs.
    #[error("the wallet holds {balance} points, {required} are needed")]
    InsufficientBalance {
        /// The balance.
        balance: i64,
        /// What was asked.
        required: i64,
    },
    /// A charge would take the wallet above its maximum.
    #[error("the wallet may hold at most {max} points")]
    WalletLimitExceeded {
        /// The maximum balance.
        max: i64,
    },
    /// A refund larger than what is still refundable.
    #[error("at most {refundable} can still be refunded")]
    RefundExceedsPayment {
        /// What is left to refund.
        refundable: i64,
    },
    /// The payment is not in a state that allows the operation.
    #[error("the payment is {}", .0.as_str())]
    IllegalState(Status),
    /// The idempotency key was used with a different request.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// A write kept meeting lock or serialization conflicts.
    #[error("the wallet is busy; retry with the same idempotency key")]
    Conflict,
    /// The caller lacks the role the RPC needs.
    #[error("this call needs the {0} role or an internal caller")]
    RoleRequired(&'static str),
    /// A page token that this listing did not issue.
    #[error("the page token is invalid")]
    InvalidPageToken,
    /// The provider refused the operation.
    #[error("the payment provider refused: {code}: {message}")]
    ProviderRejected {
        /// The provider's code.
        code: String,
        /// Its explanation.
        message: String,
    },
    /// The seller already has a payout account (another CreateSellerAccount made it).
    #[error("the seller already has a payout account")]
    SellerAccountExists,
    /// Seller payouts need Stripe Connect, which this deployment does not configure.
    #[error("seller payouts are not enabled on this platform")]
    PayoutsNotConfigured,
    /// The provider (or the order service) could not be reached.
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL failed.
    #[error("database failure")]
    Database(#[from] sqlx::Error),
    /// The outbox write failed.
    #[error("outbox failure")]
    Outbox(#[from] mercato_messaging::Error),
    /// Stored or received data breaks an invariant.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

fn summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{} {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<ProviderError> for PaymentError {
    fn from(err: ProviderError) -> Self {
        match err {
            ProviderError::Unavailable(why) => Self::Unavailable(why),
            ProviderError::NotFound(what) => Self::ProviderRejected {
                code: "resource_missing".to_owned(),
                message: format!("the provider has no {what}"),
            },
            ProviderError::Rejected { code, message } => Self::ProviderRejected { code, message },
        }
    }
}

impl From<ConnectError> for PaymentError {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::Unavailable(why) => Self::Unavailable(why),
            ConnectError::NotFound(what) => Self::ProviderRejected {
                code: "resource_missing".to_owned(),
                message: format!("the provider has no {what}"),
            },
            ConnectError::Rejected { code, message, .. } => {
                Self::ProviderRejected { code, message }
            }
        }
    }
}

impl PaymentError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Validation(vec![Violation::new(field, description)])
    }

    /// `NOT_FOUND` for a payment the caller may not see.
    pub fn payment_not_found(id: impl ToString) -> Self {
        Self::NotFound {
            resource_type: "payment",
            resource_id: id.to_string(),
        }
    }

    /// Whether a retry of the same operation might succeed (lock conflicts, dependencies down).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(err) => is_retryable_database(err) || database_unavailable(err),
            Self::Unavailable(_) | Self::Outbox(_) | Self::Conflict => true,
            Self::Validation(_)
            | Self::CurrencyMismatch { .. }
            | Self::NotFound { .. }
            | Self::InsufficientBalance { .. }
            | Self::WalletLimitExceeded { .. }
            | Self::RefundExceedsPayment { .. }
            | Self::IllegalState(_)
            | Self::IdempotencyKeyReused
            | Self::RoleRequired(_)
            | Self::InvalidPageToken
            | Self::ProviderRejected { .. }
            | Self::SellerAccountExists
            | Self::PayoutsNotConfigured
            | Self::Corrupt(_) => false,
        }
    }
}

/// Serialization failures, deadlocks and lock timeouts: the transaction may simply be retried.
pub fn is_retryable_database(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01" | "55P03"))
}

/// Database errors that mean "PostgreSQL is unreachable" rather than a bug.
fn database_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
    )
}

fn error_info(reason: &str, metadata: &[(&str, String)]) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    details.set_error_info(
        reason,
        DOMAIN,
        metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>(),
    );
    details
}

fn precondition(
    reason: &str,
    metadata: &[(&str, String)],
    kind: &str,
    subject: &str,
    description: String,
) -> ErrorDetails {
    let mut details = error_info(reason, metadata);
    details.set_precondition_failure(vec![PreconditionViolation::new(kind, subject, description)]);
    details
}

impl ServiceError for PaymentError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) | Self::CurrencyMismatch { .. } | Self::InvalidPageToken => {
                ErrorCode::InvalidArgument
            }
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::InsufficientBalance { .. }
            | Self::WalletLimitExceeded { .. }
            | Self::RefundExceedsPayment { .. }
            | Self::IllegalState(_)
            | Self::IdempotencyKeyReused
            | Self::ProviderRejected { .. }
            | Self::PayoutsNotConfigured => ErrorCode::FailedPrecondition,
            Self::SellerAccountExists => ErrorCode::AlreadyExists,
            Self::Conflict => ErrorCode::Aborted,
            Self::RoleRequired(_) => ErrorCode::PermissionDenied,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Database(err) if database_unavailable(err) => ErrorCode::Unavailable,
            Self::Database(_) | Self::Outbox(_) | Self::Corrupt(_) => ErrorCode::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::CurrencyMismatch { .. } => "CURRENCY_MISMATCH",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::NotFound { .. } => "RESOURCE_NOT_FOUND",
            Self::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
            Self::WalletLimitExceeded { .. } => "WALLET_LIMIT_EXCEEDED",
            Self::RefundExceedsPayment { .. } => "REFUND_EXCEEDS_PAYMENT",
            Self::IllegalState(_) => "ILLEGAL_STATE_TRANSITION",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::ProviderRejected { .. } => "PAYMENT_DECLINED",
            Self::SellerAccountExists => "SELLER_ACCOUNT_EXISTS",
            Self::PayoutsNotConfigured => "SELLER_ACCOUNT_NOT_READY",
            Self::Conflict => "IDEMPOTENT_REQUEST_IN_PROGRESS",
            Self::RoleRequired(_) => "ROLE_REQUIRED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Database(err) if database_unavailable(err) => "UNAVAILABLE",
            Self::Database(_) | Self::Outbox(_) | Self::Corrupt(_) => "INTERNAL",
        }
    }

    fn details(&self) -> ErrorDetails {
        let reason = self.reason();
        match self {
            Self::Validation(violations) => ErrorDetails::with_bad_request(
                violations
                    .iter()
                    .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                    .collect::<Vec<_>>(),
            ),
            Self::CurrencyMismatch { field, expected } => {
                let mut details = error_info(
                    reason,
                    &[
                        ("expected_currency", expected.clone()),
                        ("field", (*field).to_owned()),
                    ],
                );
                details.set_bad_request(vec![FieldViolation::new(
                    *field,
                    format!("must be in {expected}"),
                )]);
                details
            }
            Self::NotFound {
                resource_type,
                resource_id,
            } => {
                let mut details = error_info(
                    reason,
                    &[
                        ("resource_type", (*resource_type).to_owned()),
                        ("resource_id", resource_id.clone()),
                    ],
                );
                details.set_resource_info(*resource_type, resource_id.clone(), "", "not found");
                details
            }
            Self::InsufficientBalance { balance, required } => precondition(
                reason,
                &[
                    ("balance_minor", balance.to_string()),
                    ("required_minor", required.to_string()),
                ],
                "WALLET",
                "balance",
                self.to_string(),
            ),
            Self::WalletLimitExceeded { max } => precondition(
                reason,
                &[("max_balance_minor", max.to_string())],
                "WALLET",
                "balance",
                self.to_string(),
            ),
            Self::RefundExceedsPayment { refundable } => precondition(
                reason,
                &[("refundable_minor", refundable.to_string())],
                "PAYMENT",
                "amount",
                self.to_string(),
            ),
            Self::IllegalState(status) => precondition(
                reason,
                &[
                    ("resource_type", "payment".to_owned()),
                    ("current_state", status.as_str().to_owned()),
                ],
                "PAYMENT_STATUS",
                status.as_str(),
                self.to_string(),
            ),
            Self::IdempotencyKeyReused => precondition(
                reason,
                &[],
                "IDEMPOTENCY_KEY",
                "idempotency_key",
                "the key was already used with a different request".to_owned(),
            ),
            Self::ProviderRejected { code, .. } => {
                error_info(reason, &[("decline_code", code.clone())])
            }
            Self::RoleRequired(role) => error_info(reason, &[("role", (*role).to_owned())]),
            Self::SellerAccountExists => {
                let mut details = error_info(reason, &[]);
                details.set_resource_info("seller_account", "", "", "already exists");
                details
            }
            Self::PayoutsNotConfigured => precondition(
                reason,
                &[],
                "PAYOUT_PROVIDER",
                "stripe_connect",
                self.to_string(),
            ),
            Self::InvalidPageToken
            | Self::Conflict
            | Self::Unavailable(_)
            | Self::Database(_)
            | Self::Outbox(_)
            | Self::Corrupt(_) => error_info(reason, &[]),
        }
    }
}

impl From<PaymentError> for tonic::Status {
    fn from(err: PaymentError) -> Self {
        into_status(err)
    }
}
