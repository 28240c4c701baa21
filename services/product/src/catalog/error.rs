//! The catalog's error enum and its one exhaustive mapping to gRPC codes, reasons and rich
//! details (`mercato.common.v1.ErrorReason` names).

use std::collections::HashMap;

use mercato_platform::error::{DOMAIN, ErrorCode, ServiceError, into_status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation};

use crate::catalog::domain::Violation;

/// Everything a catalog or ranking RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<Violation>),
    /// A Money value is not in the shop currency.
    #[error("{field} must be in {expected}")]
    CurrencyMismatch {
        /// Path of the offending field.
        field: String,
        /// The shop currency.
        expected: String,
    },
    /// A page token did not decode or belongs to other filters.
    #[error("invalid page token")]
    InvalidPageToken,
    /// No forwarded user on a write.
    #[error("authentication required")]
    TokenMissing,
    /// The caller lacks a role.
    #[error("requires the {0} role")]
    RoleRequired(&'static str),
    /// The product is visible to the caller but owned by another seller.
    #[error("only the owning seller or an admin may change this product")]
    NotResourceOwner,
    /// The named resource does not exist, is deleted, or is not visible to the caller.
    #[error("{resource_type} {resource_id} not found")]
    NotFound {
        /// `product` or `sku`.
        resource_type: &'static str,
        /// Its id.
        resource_id: String,
    },
    /// Another live SKU uses this code.
    #[error("sku code {0} is already taken")]
    SkuCodeTaken(String),
    /// `expected_version` differs from the product's version.
    #[error("the product changed, current version is {0}")]
    VersionMismatch(i64),
    /// The idempotency key was used with a different request.
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    /// The product cannot be published (or lose its last active SKU while published).
    #[error("product {product_id} needs at least one active sku")]
    ProductIncomplete {
        /// The product.
        product_id: String,
    },
    /// Reservations of the product's (or SKU's) stock are still pending.
    #[error("{resource_type} {resource_id} has pending stock reservations")]
    PendingReservations {
        /// `product` or `sku`.
        resource_type: &'static str,
        /// Its id.
        resource_id: String,
    },
    /// A lifecycle transition that is not allowed.
    #[error("product {product_id} cannot move from {current} to {requested}")]
    IllegalTransition {
        /// The product.
        product_id: String,
        /// Its status.
        current: &'static str,
        /// The status asked for.
        requested: &'static str,
    },
    /// PostgreSQL failed.
    #[error("database failure")]
    Database(#[from] sqlx::Error),
    /// Redis failed.
    #[error("redis failure")]
    Redis(#[from] redis::RedisError),
    /// Stored data does not decode (a broken invariant).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

fn summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{} {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl CatalogError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Validation(vec![Violation::new(field, description)])
    }

    /// `NOT_FOUND` for a product.
    pub fn product_not_found(id: impl ToString) -> Self {
        Self::NotFound {
            resource_type: "product",
            resource_id: id.to_string(),
        }
    }

    /// `NOT_FOUND` for a SKU.
    pub fn sku_not_found(id: impl ToString) -> Self {
        Self::NotFound {
            resource_type: "sku",
            resource_id: id.to_string(),
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

impl ServiceError for CatalogError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) | Self::CurrencyMismatch { .. } | Self::InvalidPageToken => {
                ErrorCode::InvalidArgument
            }
            Self::TokenMissing => ErrorCode::Unauthenticated,
            Self::RoleRequired(_) | Self::NotResourceOwner => ErrorCode::PermissionDenied,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::SkuCodeTaken(_) => ErrorCode::AlreadyExists,
            Self::VersionMismatch(_) => ErrorCode::Aborted,
            Self::IdempotencyKeyReused
            | Self::ProductIncomplete { .. }
            | Self::PendingReservations { .. }
            | Self::IllegalTransition { .. } => ErrorCode::FailedPrecondition,
            Self::Database(err) if database_unavailable(err) => ErrorCode::Unavailable,
            Self::Redis(_) => ErrorCode::Unavailable,
            Self::Database(_) | Self::Corrupt(_) => ErrorCode::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::CurrencyMismatch { .. } => "CURRENCY_MISMATCH",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::TokenMissing => "TOKEN_MISSING",
            Self::RoleRequired(_) => "ROLE_REQUIRED",
            Self::NotResourceOwner => "NOT_RESOURCE_OWNER",
            Self::NotFound { .. } => "RESOURCE_NOT_FOUND",
            Self::SkuCodeTaken(_) => "SKU_CODE_TAKEN",
            Self::VersionMismatch(_) => "VERSION_MISMATCH",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::ProductIncomplete { .. } => "PRODUCT_INCOMPLETE",
            Self::PendingReservations { .. } => "PRODUCT_HAS_PENDING_RESERVATIONS",
            Self::IllegalTransition { .. } => "ILLEGAL_STATE_TRANSITION",
            Self::Database(err) if database_unavailable(err) => "UNAVAILABLE",
            Self::Redis(_) => "UNAVAILABLE",
            Self::Database(_) | Self::Corrupt(_) => "INTERNAL",
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
                        ("field", field.clone()),
                    ],
                );
                details.set_bad_request(vec![FieldViolation::new(
                    field.clone(),
                    format!("must be in {expected}"),
                )]);
                details
            }
            Self::RoleRequired(role) => {
                error_info(reason, &[("required_role", (*role).to_owned())])
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
            Self::SkuCodeTaken(code) => error_info(reason, &[("sku_code", code.clone())]),
            Self::VersionMismatch(current) => {
                error_info(reason, &[("current_version", current.to_string())])
            }
            Self::ProductIncomplete { product_id } => {
                let mut details = error_info(reason, &[]);
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "PRODUCT",
                    product_id.clone(),
                    "the product needs at least one active sku",
                )]);
                details
            }
            Self::PendingReservations {
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
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "RESERVATION",
                    resource_id.clone(),
                    "pending reservations hold its stock; retry once they settle",
                )]);
                details
            }
            Self::IllegalTransition {
                product_id,
                current,
                requested,
            } => {
                let mut details = error_info(
                    reason,
                    &[
                        ("resource_type", "product".to_owned()),
                        ("resource_id", product_id.clone()),
                        ("current_state", (*current).to_owned()),
                        ("requested_state", (*requested).to_owned()),
                    ],
                );
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "STATE",
                    product_id.clone(),
                    format!("a {current} product cannot become {requested}"),
                )]);
                details
            }
            Self::InvalidPageToken
            | Self::TokenMissing
            | Self::NotResourceOwner
            | Self::IdempotencyKeyReused
            | Self::Database(_)
            | Self::Redis(_)
            | Self::Corrupt(_) => ErrorDetails::new(),
        }
    }
}

impl From<CatalogError> for tonic::Status {
    fn from(err: CatalogError) -> Self {
        into_status(err)
    }
}
