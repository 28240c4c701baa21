//! The cart's error enum and its one exhaustive mapping to gRPC codes, reasons and rich details
//! (`mercato.common.v1.ErrorReason` names).

use std::collections::HashMap;

use mercato_platform::error::{DOMAIN, ErrorCode, ServiceError, into_status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation};

pub use mercato_platform::error::Violation;

/// Everything a cart RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<Violation>),
    /// The named resource does not exist.
    #[error("{resource_type} {resource_id} not found")]
    NotFound {
        /// `sku` or `cart_line`.
        resource_type: &'static str,
        /// Its id (for a cart line, the SKU id).
        resource_id: String,
    },
    /// The SKU is inactive or its product is not PUBLISHED.
    #[error("sku {0} cannot be bought")]
    SkuNotPurchasable(String),
    /// The cart already holds the maximum number of distinct lines.
    #[error("the cart already holds the maximum of {0} lines")]
    CartFull(usize),
    /// The idempotency key was used with a different request.
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    /// The product service could not answer, so line facts are unknown.
    #[error("the product service is unavailable: {0}")]
    CatalogUnavailable(String),
    /// The product service refused the call in a way that is a bug or a misconfiguration here.
    #[error("the product service refused the call: {0}")]
    CatalogFailed(String),
    /// PostgreSQL failed.
    #[error("database failure")]
    Database(#[from] sqlx::Error),
    /// Stored or received data breaks an invariant (overflow, mixed currencies).
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

impl CartError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Validation(vec![Violation::new(field, description)])
    }

    /// `NOT_FOUND` for a SKU the catalog does not know.
    pub fn sku_not_found(id: impl ToString) -> Self {
        Self::NotFound {
            resource_type: "sku",
            resource_id: id.to_string(),
        }
    }

    /// `NOT_FOUND` for a SKU the cart holds no line of.
    pub fn line_not_found(sku_id: impl ToString) -> Self {
        Self::NotFound {
            resource_type: "cart_line",
            resource_id: sku_id.to_string(),
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

impl ServiceError for CartError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) => ErrorCode::InvalidArgument,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::SkuNotPurchasable(_) | Self::CartFull(_) | Self::IdempotencyKeyReused => {
                ErrorCode::FailedPrecondition
            }
            Self::CatalogUnavailable(_) => ErrorCode::Unavailable,
            Self::Database(err) if database_unavailable(err) => ErrorCode::Unavailable,
            Self::Database(_) | Self::Corrupt(_) | Self::CatalogFailed(_) => ErrorCode::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::NotFound { .. } => "RESOURCE_NOT_FOUND",
            Self::SkuNotPurchasable(_) => "SKU_NOT_PURCHASABLE",
            Self::CartFull(_) => "CART_FULL",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::CatalogUnavailable(_) => "UNAVAILABLE",
            Self::Database(err) if database_unavailable(err) => "UNAVAILABLE",
            Self::Database(_) | Self::Corrupt(_) | Self::CatalogFailed(_) => "INTERNAL",
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
            Self::SkuNotPurchasable(sku_id) => {
                let mut details = error_info(reason, &[("sku_id", sku_id.clone())]);
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "SKU",
                    sku_id.clone(),
                    "the sku is inactive or its product is not published",
                )]);
                details
            }
            Self::CartFull(max) => {
                let mut details = error_info(reason, &[("max_lines", max.to_string())]);
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "CART",
                    "lines",
                    format!("the cart holds the maximum of {max} distinct lines"),
                )]);
                details
            }
            Self::IdempotencyKeyReused => {
                let mut details = error_info(reason, &[]);
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "IDEMPOTENCY_KEY",
                    "idempotency_key",
                    "the key was already used with a different request",
                )]);
                details
            }
            Self::CatalogUnavailable(_)
            | Self::CatalogFailed(_)
            | Self::Database(_)
            | Self::Corrupt(_) => error_info(reason, &[]),
        }
    }
}

impl From<CartError> for tonic::Status {
    fn from(err: CartError) -> Self {
        into_status(err)
    }
}
