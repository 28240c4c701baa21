//! The stock part's error enum and its one exhaustive mapping to gRPC codes, reasons and rich
//! details (`mercato.common.v1.ErrorReason` names).

use std::collections::HashMap;

use mercato_platform::error::{DOMAIN, ErrorCode, ServiceError, into_status};
use mercato_proto::mercato::common::v1::StockShortage;
use prost::Message as _;
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation};
use uuid::Uuid;

use super::domain::{ReservationStatus, Violation};

/// One short SKU of a refused reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage {
    /// The SKU.
    pub sku_id: Uuid,
    /// Units asked for (after merging).
    pub requested: i64,
    /// Units available when the request was evaluated.
    pub available: i64,
}

/// Everything a stock RPC (or consumer) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    /// One or more request fields are invalid; nothing was written.
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<Violation>),
    /// A page token did not decode or belongs to other filters.
    #[error("invalid page token")]
    InvalidPageToken,
    /// No forwarded user and not an internal service.
    #[error("authentication required")]
    TokenMissing,
    /// The caller lacks the role (or is not the internal service) the RPC needs.
    #[error("requires the {0} role")]
    RoleRequired(&'static str),
    /// The SKU belongs to another seller.
    #[error("the sku belongs to another seller")]
    NotResourceOwner,
    /// The named resource does not exist (or is deleted).
    #[error("{resource_type} {resource_id} not found")]
    NotFound {
        /// `sku` or `reservation`.
        resource_type: &'static str,
        /// Its id (for reservations, the order id).
        resource_id: String,
    },
    /// The SKU is inactive or deleted, or its product is not PUBLISHED.
    #[error("sku {0} cannot be purchased")]
    SkuNotPurchasable(Uuid),
    /// Not enough units for one or more lines; nothing was reserved.
    #[error("insufficient stock for {} sku(s)", .0.len())]
    InsufficientStock(Vec<Shortage>),
    /// The order already has a reservation with different lines.
    #[error("order {0} already has a reservation with different lines")]
    ReservationConflict(Uuid),
    /// The reservation passed its expiry time.
    #[error("the reservation of order {0} has expired")]
    ReservationExpired(Uuid),
    /// The reservation's state does not allow the transition.
    #[error("reservation of order {order_id} is {current}, it cannot become {requested}")]
    IllegalTransition {
        /// The order.
        order_id: Uuid,
        /// Where the reservation is.
        current: ReservationStatus,
        /// Where the caller wanted it.
        requested: ReservationStatus,
    },
    /// `expected_version` is not the current version.
    #[error("the stock changed since it was read (current version {0})")]
    VersionMismatch(i64),
    /// The new on-hand quantity is below the reserved units.
    #[error("on hand may not go below the {0} reserved units")]
    StockBelowReserved(i64),
    /// The idempotency key was used for a different request.
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    /// PostgreSQL failed.
    #[error("database failure")]
    Database(#[from] sqlx::Error),
    /// Writing an event failed.
    #[error("outbox failure")]
    Outbox(#[from] mercato_messaging::Error),
    /// A stored value broke an invariant the code relies on.
    #[error("corrupt stock data: {0}")]
    Corrupt(String),
}

fn summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{} {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl StockError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Validation(vec![Violation::new(field, description)])
    }

    /// `NOT_FOUND` for a SKU.
    pub fn sku_not_found(sku_id: Uuid) -> Self {
        Self::NotFound {
            resource_type: "sku",
            resource_id: sku_id.to_string(),
        }
    }

    /// `NOT_FOUND` for an order's reservation.
    pub fn reservation_not_found(order_id: Uuid) -> Self {
        Self::NotFound {
            resource_type: "reservation",
            resource_id: order_id.to_string(),
        }
    }
}

impl From<Violation> for StockError {
    fn from(violation: Violation) -> Self {
        Self::Validation(vec![violation])
    }
}

/// Database errors that mean "PostgreSQL is unreachable" rather than a bug.
fn database_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
    )
}

fn info(reason: &'static str, metadata: &[(&str, String)]) -> ErrorDetails {
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

impl ServiceError for StockError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) | Self::InvalidPageToken => ErrorCode::InvalidArgument,
            Self::TokenMissing => ErrorCode::Unauthenticated,
            Self::RoleRequired(_) | Self::NotResourceOwner => ErrorCode::PermissionDenied,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::SkuNotPurchasable(_)
            | Self::InsufficientStock(_)
            | Self::ReservationConflict(_)
            | Self::ReservationExpired(_)
            | Self::IllegalTransition { .. }
            | Self::StockBelowReserved(_)
            | Self::IdempotencyKeyReused => ErrorCode::FailedPrecondition,
            Self::VersionMismatch(_) => ErrorCode::Aborted,
            Self::Database(err) if database_unavailable(err) => ErrorCode::Unavailable,
            Self::Database(_) | Self::Outbox(_) | Self::Corrupt(_) => ErrorCode::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::TokenMissing => "TOKEN_MISSING",
            Self::RoleRequired(_) => "ROLE_REQUIRED",
            Self::NotResourceOwner => "NOT_RESOURCE_OWNER",
            Self::NotFound { .. } => "RESOURCE_NOT_FOUND",
            Self::SkuNotPurchasable(_) => "SKU_NOT_PURCHASABLE",
            Self::InsufficientStock(_) => "INSUFFICIENT_STOCK",
            Self::ReservationConflict(_) => "RESERVATION_CONFLICT",
            Self::ReservationExpired(_) => "RESERVATION_EXPIRED",
            Self::IllegalTransition { .. } => "ILLEGAL_STATE_TRANSITION",
            Self::VersionMismatch(_) => "VERSION_MISMATCH",
            Self::StockBelowReserved(_) => "STOCK_BELOW_RESERVED",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::Database(err) if database_unavailable(err) => "UNAVAILABLE",
            Self::Database(_) | Self::Outbox(_) | Self::Corrupt(_) => "INTERNAL",
        }
    }

    fn details(&self) -> ErrorDetails {
        match self {
            Self::Validation(violations) => ErrorDetails::with_bad_request(
                violations
                    .iter()
                    .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                    .collect::<Vec<_>>(),
            ),
            Self::RoleRequired(role) => {
                info(self.reason(), &[("required_role", (*role).to_owned())])
            }
            Self::NotFound {
                resource_type,
                resource_id,
            } => {
                let mut details = ErrorDetails::with_resource_info(
                    *resource_type,
                    resource_id.clone(),
                    "",
                    "not found",
                );
                details.set_error_info(
                    self.reason(),
                    DOMAIN,
                    HashMap::from([
                        ("resource_type".to_owned(), (*resource_type).to_owned()),
                        ("resource_id".to_owned(), resource_id.clone()),
                    ]),
                );
                details
            }
            Self::SkuNotPurchasable(sku_id) => {
                let mut details = info(self.reason(), &[("sku_id", sku_id.to_string())]);
                details.set_precondition_failure(vec![PreconditionViolation::new(
                    "SKU",
                    sku_id.to_string(),
                    "the sku is inactive or its product is not published",
                )]);
                details
            }
            Self::InsufficientStock(shortages) => ErrorDetails::with_precondition_failure(
                shortages
                    .iter()
                    .map(|s| {
                        PreconditionViolation::new(
                            "STOCK",
                            s.sku_id.to_string(),
                            format!("requested {}, available {}", s.requested, s.available),
                        )
                    })
                    .collect::<Vec<_>>(),
            ),
            Self::ReservationExpired(order_id) => {
                ErrorDetails::with_precondition_failure(vec![PreconditionViolation::new(
                    "RESERVATION",
                    order_id.to_string(),
                    "the reservation passed its expiry time",
                )])
            }
            Self::ReservationConflict(order_id) => {
                ErrorDetails::with_precondition_failure(vec![PreconditionViolation::new(
                    "RESERVATION",
                    order_id.to_string(),
                    "a reservation with different lines exists for this order",
                )])
            }
            Self::IllegalTransition {
                order_id,
                current,
                requested,
            } => info(
                self.reason(),
                &[
                    ("resource_type", "reservation".to_owned()),
                    ("resource_id", order_id.to_string()),
                    ("current_state", current.as_str().to_owned()),
                    ("requested_state", requested.as_str().to_owned()),
                ],
            ),
            Self::VersionMismatch(current) => {
                info(self.reason(), &[("current_version", current.to_string())])
            }
            Self::StockBelowReserved(reserved) => {
                info(self.reason(), &[("reserved", reserved.to_string())])
            }
            Self::InvalidPageToken
            | Self::TokenMissing
            | Self::NotResourceOwner
            | Self::IdempotencyKeyReused
            | Self::Database(_)
            | Self::Outbox(_)
            | Self::Corrupt(_) => ErrorDetails::new(),
        }
    }
}

impl From<StockError> for tonic::Status {
    fn from(err: StockError) -> Self {
        let shortage = if let StockError::InsufficientStock(shortages) = &err {
            Some(StockShortage {
                lines: shortages
                    .iter()
                    .map(
                        |s| mercato_proto::mercato::common::v1::stock_shortage::Line {
                            sku_id: s.sku_id.to_string(),
                            requested_quantity: s.requested,
                            available_quantity: s.available,
                        },
                    )
                    .collect(),
            })
        } else {
            None
        };
        let status = into_status(err);
        match shortage {
            Some(shortage) => with_shortage(status, &shortage),
            None => status,
        }
    }
}

/// Appends the `StockShortage` detail (a Mercato type `tonic_types` does not know) to the
/// `google.rpc.Status` details of `status`.
fn with_shortage(status: tonic::Status, shortage: &StockShortage) -> tonic::Status {
    let Ok(mut rpc_status) = tonic_types::pb::Status::decode(status.details()) else {
        return status;
    };
    rpc_status.details.push(prost_types::Any {
        type_url: "type.googleapis.com/mercato.common.v1.StockShortage".to_owned(),
        value: shortage.encode_to_vec(),
    });
    tonic::Status::with_details(
        status.code(),
        status.message(),
        rpc_status.encode_to_vec().into(),
    )
}
