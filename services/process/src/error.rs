//! The process service's error enum and its one exhaustive mapping to gRPC codes, reasons
//! (`mercato.common.v1.ErrorReason` names) and rich details.

use std::collections::HashMap;

pub use mercato_platform::error::Violation;
use mercato_platform::error::{DOMAIN, ErrorCode, ServiceError, into_status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation};

/// Everything a shipment or notification operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<Violation>),
    /// The named resource does not exist.
    #[error("{resource_type} {resource_id} not found")]
    NotFound {
        /// `shipment` or `notification`.
        resource_type: &'static str,
        /// Its id.
        resource_id: String,
    },
    /// The resource is not in a state that allows the operation.
    #[error("the {resource_type} is {current}: {why}")]
    IllegalState {
        /// `shipment` or `notification`.
        resource_type: &'static str,
        /// Its current state.
        current: &'static str,
        /// What the operation needed.
        why: String,
    },
    /// Another service refused a step for a reason waiting will not heal (the order is not
    /// shippable, the reservation is gone).
    #[error("the {service} service refused: {message}")]
    Refused {
        /// `order` or `product`.
        service: &'static str,
        /// Its message.
        message: String,
    },
    /// The caller lacks the role the RPC needs.
    #[error("this call needs the {0}")]
    RoleRequired(&'static str),
    /// A page token that this listing did not issue.
    #[error("the page token is invalid")]
    InvalidPageToken,
    /// The order or product service could not be reached (or answered with a transient error).
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL failed.
    #[error("database failure")]
    Database(#[from] sqlx::Error),
    /// The outbox write failed.
    #[error("outbox failure")]
    Outbox(#[from] mercato_messaging::Error),
    /// Stored data breaks an invariant.
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

impl ProcessError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Validation(vec![Violation::new(field, description)])
    }

    /// `NOT_FOUND` for a shipment.
    pub fn shipment_not_found(id: impl ToString) -> Self {
        Self::NotFound {
            resource_type: "shipment",
            resource_id: id.to_string(),
        }
    }

    /// `NOT_FOUND` for a notification.
    pub fn notification_not_found(id: impl ToString) -> Self {
        Self::NotFound {
            resource_type: "notification",
            resource_id: id.to_string(),
        }
    }

    /// Whether a retry of the same step might succeed (a dependency or the database is down).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Outbox(_) | Self::Database(_) => true,
            Self::Validation(_)
            | Self::NotFound { .. }
            | Self::IllegalState { .. }
            | Self::Refused { .. }
            | Self::RoleRequired(_)
            | Self::InvalidPageToken
            | Self::Corrupt(_) => false,
        }
    }
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

impl ServiceError for ProcessError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) | Self::InvalidPageToken => ErrorCode::InvalidArgument,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::IllegalState { .. } | Self::Refused { .. } => ErrorCode::FailedPrecondition,
            Self::RoleRequired(_) => ErrorCode::PermissionDenied,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Database(err) if database_unavailable(err) => ErrorCode::Unavailable,
            Self::Database(_) | Self::Outbox(_) | Self::Corrupt(_) => ErrorCode::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::NotFound { .. } => "RESOURCE_NOT_FOUND",
            Self::IllegalState { .. } => "ILLEGAL_STATE_TRANSITION",
            // The order or its reservation is not in a state that allows the step.
            Self::Refused { .. } => "ILLEGAL_STATE_TRANSITION",
            Self::RoleRequired(_) => "ROLE_REQUIRED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Database(err) if database_unavailable(err) => "UNAVAILABLE",
            Self::Database(_) | Self::Outbox(_) | Self::Corrupt(_) => "INTERNAL",
        }
    }

    fn details(&self) -> ErrorDetails {
        let reason = self.reason();
        match self {
            Self::Validation(violations) => {
                let mut details = error_info(reason, &[]);
                details.set_bad_request(
                    violations
                        .iter()
                        .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                        .collect::<Vec<_>>(),
                );
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
            Self::IllegalState {
                resource_type,
                current,
                why,
            } => {
                let mut details = error_info(
                    reason,
                    &[
                        ("resource_type", (*resource_type).to_owned()),
                        ("current_state", (*current).to_owned()),
                    ],
                );
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    format!("{}_STATUS", resource_type.to_uppercase()),
                    *current,
                    why.clone(),
                )]);
                details
            }
            Self::Refused { service, message } => {
                let mut details = error_info(reason, &[("service", (*service).to_owned())]);
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "UPSTREAM",
                    *service,
                    message.clone(),
                )]);
                details
            }
            Self::RoleRequired(role) => error_info(reason, &[("role", (*role).to_owned())]),
            Self::InvalidPageToken
            | Self::Unavailable(_)
            | Self::Database(_)
            | Self::Outbox(_)
            | Self::Corrupt(_) => error_info(reason, &[]),
        }
    }
}

impl From<ProcessError> for tonic::Status {
    fn from(err: ProcessError) -> Self {
        into_status(err)
    }
}
