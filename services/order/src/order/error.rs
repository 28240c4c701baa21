//! The order RPCs' error enum and its one mapping to gRPC statuses. Two kinds of error pass
//! through unchanged: refusals of the product service (INSUFFICIENT_STOCK with its per-SKU
//! `StockShortage` details, SKU_NOT_PURCHASABLE...) and the stored outcome of an earlier request
//! with the same idempotency key, which is replayed byte for byte.

use std::collections::HashMap;

use mercato_platform::error::{DOMAIN, ErrorCode, ServiceError, into_status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation};

use crate::cart::error::Violation;
use crate::coupon::CouponError;
use crate::order::state::{Command, Status};

/// Everything an order RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<Violation>),
    /// The same SKU appears on two lines of an explicit order.
    #[error("sku {0} appears on more than one line")]
    DuplicateLine(String),
    /// The named resource does not exist (or belongs to someone else).
    #[error("{resource_type} {resource_id} not found")]
    NotFound {
        /// `order` or `sku`.
        resource_type: &'static str,
        /// Its id.
        resource_id: String,
    },
    /// A SKU of the order is inactive or its product is not PUBLISHED.
    #[error("sku {0} cannot be bought")]
    SkuNotPurchasable(String),
    /// A cart checkout of an empty cart.
    #[error("the cart is empty")]
    CartEmpty,
    /// A cart checkout while some lines are not AVAILABLE: `(sku_id, status name)`.
    #[error("the cart cannot be checked out: {} line(s) are not available", .0.len())]
    CartNotCheckoutable(Vec<(String, String)>),
    /// No shipping address was given.
    #[error("a shipping address is required")]
    ShippingAddressRequired,
    /// The computed total differs from the one the client showed the buyer.
    #[error("the total changed: expected {expected}, now {actual}")]
    PriceChanged {
        /// What the client sent.
        expected: i64,
        /// What the order would cost.
        actual: i64,
    },
    /// The idempotency key was used with a different request.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// The first request with this key is still running after the bounded wait.
    #[error("a request with this idempotency key is still in progress; retry shortly")]
    RequestInProgress,
    /// The order's state does not allow the change.
    #[error("cannot {command:?} an order that is {}", .from.as_str())]
    IllegalTransition {
        /// The order's state.
        from: Status,
        /// What was asked.
        command: Command,
    },
    /// The caller lacks the role the RPC needs.
    #[error("this call needs the {0} role or an internal caller")]
    RoleRequired(&'static str),
    /// A page token that this listing did not issue (or issued for other filters).
    #[error("the page token is invalid")]
    InvalidPageToken,
    /// A coupon refused at checkout.
    #[error(transparent)]
    Coupon(#[from] CouponError),
    /// The product service refused the call with a status the client should see as is.
    #[error("the product service refused: {}", .0.message())]
    Upstream(tonic::Status),
    /// The stored outcome of the first request with this idempotency key.
    #[error("replayed outcome: {}", .0.message())]
    Replayed(tonic::Status),
    /// The product service could not answer.
    #[error("the product service is unavailable: {0}")]
    CatalogUnavailable(String),
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

impl OrderError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Validation(vec![Violation::new(field, description)])
    }

    /// `NOT_FOUND` for an order the caller may not see.
    pub fn order_not_found(id: impl ToString) -> Self {
        Self::NotFound {
            resource_type: "order",
            resource_id: id.to_string(),
        }
    }

    /// Whether the outcome is the request's final answer, to be replayed for the same key
    /// (client errors), rather than a transient failure that a retry with the same key should
    /// run again.
    pub fn is_final(&self) -> bool {
        match self {
            Self::Upstream(status) => matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::NotFound
                    | tonic::Code::FailedPrecondition
            ),
            // Every other variant answers its own code, which says whether it is final.
            Self::Coupon(_)
            | Self::Validation(_)
            | Self::DuplicateLine(_)
            | Self::NotFound { .. }
            | Self::SkuNotPurchasable(_)
            | Self::CartEmpty
            | Self::CartNotCheckoutable(_)
            | Self::ShippingAddressRequired
            | Self::PriceChanged { .. }
            | Self::IdempotencyKeyReused
            | Self::RequestInProgress
            | Self::IllegalTransition { .. }
            | Self::RoleRequired(_)
            | Self::InvalidPageToken
            | Self::Replayed(_)
            | Self::CatalogUnavailable(_)
            | Self::Database(_)
            | Self::Outbox(_)
            | Self::Corrupt(_) => matches!(
                self.code(),
                ErrorCode::InvalidArgument | ErrorCode::NotFound | ErrorCode::FailedPrecondition
            ),
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

fn precondition(reason: &str, kind: &str, subject: &str, description: &str) -> ErrorDetails {
    let mut details = error_info(reason, &[]);
    details.set_precondition_failure(vec![PreconditionViolation::new(kind, subject, description)]);
    details
}

impl ServiceError for OrderError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) | Self::DuplicateLine(_) | Self::InvalidPageToken => {
                ErrorCode::InvalidArgument
            }
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::SkuNotPurchasable(_)
            | Self::CartEmpty
            | Self::CartNotCheckoutable(_)
            | Self::ShippingAddressRequired
            | Self::PriceChanged { .. }
            | Self::IdempotencyKeyReused
            | Self::IllegalTransition { .. } => ErrorCode::FailedPrecondition,
            Self::RequestInProgress => ErrorCode::Aborted,
            Self::RoleRequired(_) => ErrorCode::PermissionDenied,
            Self::Coupon(err) => err.code(),
            Self::CatalogUnavailable(_) => ErrorCode::Unavailable,
            Self::Database(err) if database_unavailable(err) => ErrorCode::Unavailable,
            // Passed through by `From<OrderError> for Status` without this mapping.
            Self::Upstream(_) | Self::Replayed(_) => ErrorCode::Internal,
            Self::Database(_) | Self::Outbox(_) | Self::Corrupt(_) => ErrorCode::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::DuplicateLine(_) => "DUPLICATE_LINE",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::NotFound { .. } => "RESOURCE_NOT_FOUND",
            Self::SkuNotPurchasable(_) => "SKU_NOT_PURCHASABLE",
            Self::CartEmpty => "CART_EMPTY",
            Self::CartNotCheckoutable(_) => "CART_NOT_CHECKOUTABLE",
            Self::ShippingAddressRequired => "SHIPPING_ADDRESS_REQUIRED",
            Self::PriceChanged { .. } => "PRICE_CHANGED",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::IllegalTransition { .. } => "ILLEGAL_STATE_TRANSITION",
            Self::RequestInProgress => "IDEMPOTENT_REQUEST_IN_PROGRESS",
            Self::RoleRequired(_) => "ROLE_REQUIRED",
            Self::Coupon(err) => err.reason(),
            Self::CatalogUnavailable(_) => "UNAVAILABLE",
            Self::Database(err) if database_unavailable(err) => "UNAVAILABLE",
            Self::Upstream(_)
            | Self::Replayed(_)
            | Self::Database(_)
            | Self::Outbox(_)
            | Self::Corrupt(_) => "INTERNAL",
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
            Self::DuplicateLine(sku_id) => {
                let mut details = error_info(reason, &[("sku_id", sku_id.clone())]);
                details.set_bad_request(vec![FieldViolation::new(
                    "explicit_lines.lines",
                    format!("sku {sku_id} appears more than once"),
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
            Self::SkuNotPurchasable(sku_id) => {
                let mut details = precondition(
                    reason,
                    "SKU",
                    sku_id,
                    "the sku is inactive or its product is not published",
                );
                details.set_error_info(
                    reason,
                    DOMAIN,
                    HashMap::from([("sku_id".to_owned(), sku_id.clone())]),
                );
                details
            }
            Self::CartEmpty => precondition(reason, "CART", "lines", "the cart has no lines"),
            Self::CartNotCheckoutable(lines) => {
                let mut details = error_info(reason, &[]);
                details.set_precondition_failure(
                    lines
                        .iter()
                        .map(|(sku, status)| {
                            PreconditionViolation::new("CART_LINE", sku.clone(), status.clone())
                        })
                        .collect::<Vec<_>>(),
                );
                details
            }
            Self::ShippingAddressRequired => precondition(
                reason,
                "ADDRESS",
                "shipping_address",
                "no shipping address was given",
            ),
            Self::PriceChanged { expected, actual } => {
                let mut details = error_info(
                    reason,
                    &[
                        ("expected_total", expected.to_string()),
                        ("actual_total", actual.to_string()),
                    ],
                );
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "PRICE",
                    "expected_total",
                    format!("the order now costs {actual}, not {expected}"),
                )]);
                details
            }
            Self::IdempotencyKeyReused => precondition(
                reason,
                "IDEMPOTENCY_KEY",
                "idempotency_key",
                "the key was already used with a different request",
            ),
            Self::IllegalTransition { from, .. } => {
                let mut details = error_info(reason, &[("status", from.as_str().to_owned())]);
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "ORDER_STATUS",
                    from.as_str(),
                    self.to_string(),
                )]);
                details
            }
            Self::RoleRequired(role) => error_info(reason, &[("role", (*role).to_owned())]),
            Self::Coupon(err) => err.details(),
            Self::InvalidPageToken
            | Self::RequestInProgress
            | Self::Upstream(_)
            | Self::Replayed(_)
            | Self::CatalogUnavailable(_)
            | Self::Database(_)
            | Self::Outbox(_)
            | Self::Corrupt(_) => error_info(reason, &[]),
        }
    }
}

impl From<OrderError> for tonic::Status {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::Upstream(status) | OrderError::Replayed(status) => status,
            OrderError::Coupon(err) => err.into(),
            other @ (OrderError::Validation(_)
            | OrderError::DuplicateLine(_)
            | OrderError::NotFound { .. }
            | OrderError::SkuNotPurchasable(_)
            | OrderError::CartEmpty
            | OrderError::CartNotCheckoutable(_)
            | OrderError::ShippingAddressRequired
            | OrderError::PriceChanged { .. }
            | OrderError::IdempotencyKeyReused
            | OrderError::RequestInProgress
            | OrderError::IllegalTransition { .. }
            | OrderError::RoleRequired(_)
            | OrderError::InvalidPageToken
            | OrderError::CatalogUnavailable(_)
            | OrderError::Database(_)
            | OrderError::Outbox(_)
            | OrderError::Corrupt(_)) => into_status(other),
        }
    }
}
