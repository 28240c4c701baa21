//! The coupon module's error enum and its one exhaustive mapping to gRPC codes, reasons and rich
//! details (`mercato.common.v1.ErrorReason` names). Refusals are INVALID_ARGUMENT, NOT_FOUND,
//! ALREADY_EXISTS or FAILED_PRECONDITION; database failures are UNAVAILABLE or INTERNAL, so a
//! checkout that met one is retried rather than replayed (`OrderError::is_final`).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use mercato_platform::error::{DOMAIN, ErrorCode, ServiceError, Violation, into_status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation};

use crate::coupon::rules::Invalid;

/// Everything a coupon operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<Violation>),
    /// An amount is in a currency other than the shop's.
    #[error("{field} must be in the shop currency {expected}")]
    CurrencyMismatch {
        /// The field path.
        field: String,
        /// The shop currency.
        expected: String,
    },
    /// A page token this listing did not issue, or issued for other filters.
    #[error("the page token is invalid")]
    InvalidPageToken,
    /// The named resource does not exist (or, for a user coupon, belongs to someone else).
    #[error("{resource_type} {resource_id} not found")]
    NotFound {
        /// `coupon`, `campaign` or `user_coupon`.
        resource_type: &'static str,
        /// Its id.
        resource_id: String,
    },
    /// The user coupon was already used.
    #[error("coupon {0} is not available")]
    NotAvailable(String),
    /// The user coupon expired.
    #[error("coupon {user_coupon_id} expired")]
    Expired {
        /// The user coupon.
        user_coupon_id: String,
        /// When it expired.
        expire_time: DateTime<Utc>,
    },
    /// The order subtotal is below the coupon's minimum.
    #[error("the order subtotal is below the coupon's minimum of {minimum} {currency}")]
    MinimumNotMet {
        /// The minimum, in minor units.
        minimum: i64,
        /// Its currency.
        currency: String,
    },
    /// Every coupon of the campaign has been issued.
    #[error("campaign {0} is sold out")]
    SoldOut(String),
    /// The campaign has not started yet or has ended.
    #[error("campaign {campaign_id} is not active")]
    CampaignNotActive {
        /// The campaign.
        campaign_id: String,
        /// Start of its window.
        start_time: DateTime<Utc>,
        /// End of its window.
        end_time: DateTime<Utc>,
    },
    /// The caller already holds a coupon of this campaign.
    #[error("a coupon of campaign {campaign_id} was already claimed")]
    AlreadyClaimed {
        /// The campaign.
        campaign_id: String,
        /// The coupon the caller holds.
        user_coupon_id: String,
    },
    /// The idempotency key was used with a different request.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// PostgreSQL failed.
    #[error("database failure")]
    Database(#[from] sqlx::Error),
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

impl CouponError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Validation(vec![Violation::new(field, description)])
    }

    /// `NOT_FOUND` for a resource of `resource_type`.
    pub fn not_found(resource_type: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            resource_type,
            resource_id: id.to_string(),
        }
    }
}

impl From<Invalid> for CouponError {
    fn from(invalid: Invalid) -> Self {
        match invalid {
            Invalid::Fields(violations) => Self::Validation(violations),
            Invalid::CurrencyMismatch { field, expected } => {
                Self::CurrencyMismatch { field, expected }
            }
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

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
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
    description: &str,
) -> ErrorDetails {
    let mut details = error_info(reason, metadata);
    details.set_precondition_failure(vec![PreconditionViolation::new(kind, subject, description)]);
    details
}

impl ServiceError for CouponError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) | Self::CurrencyMismatch { .. } | Self::InvalidPageToken => {
                ErrorCode::InvalidArgument
            }
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::AlreadyClaimed { .. } => ErrorCode::AlreadyExists,
            Self::NotAvailable(_)
            | Self::Expired { .. }
            | Self::MinimumNotMet { .. }
            | Self::SoldOut(_)
            | Self::CampaignNotActive { .. }
            | Self::IdempotencyKeyReused => ErrorCode::FailedPrecondition,
            Self::Database(err) if database_unavailable(err) => ErrorCode::Unavailable,
            Self::Database(_) | Self::Corrupt(_) => ErrorCode::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::CurrencyMismatch { .. } => "CURRENCY_MISMATCH",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::NotFound { .. } => "RESOURCE_NOT_FOUND",
            Self::NotAvailable(_) => "COUPON_NOT_AVAILABLE",
            Self::Expired { .. } => "COUPON_EXPIRED",
            Self::MinimumNotMet { .. } => "COUPON_MINIMUM_NOT_MET",
            Self::SoldOut(_) => "COUPON_SOLD_OUT",
            Self::CampaignNotActive { .. } => "CAMPAIGN_NOT_ACTIVE",
            Self::AlreadyClaimed { .. } => "COUPON_ALREADY_CLAIMED",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::Database(err) if database_unavailable(err) => "UNAVAILABLE",
            Self::Database(_) | Self::Corrupt(_) => "INTERNAL",
        }
    }

    fn details(&self) -> ErrorDetails {
        let reason = self.reason();
        match self {
            Self::Validation(violations) => {
                let mut details = ErrorDetails::with_bad_request(
                    violations
                        .iter()
                        .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                        .collect::<Vec<_>>(),
                );
                details.set_error_info(reason, DOMAIN, HashMap::new());
                details
            }
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
                    format!("must be the shop currency {expected}"),
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
            Self::NotAvailable(id) => precondition(
                reason,
                &[("user_coupon_id", id.clone())],
                "USER_COUPON",
                id,
                "the coupon was already used",
            ),
            Self::Expired {
                user_coupon_id,
                expire_time,
            } => precondition(
                reason,
                &[
                    ("user_coupon_id", user_coupon_id.clone()),
                    ("expire_time", rfc3339(*expire_time)),
                ],
                "USER_COUPON",
                user_coupon_id,
                "the coupon expired",
            ),
            Self::MinimumNotMet { minimum, currency } => precondition(
                reason,
                &[
                    ("minimum_order_amount_minor", minimum.to_string()),
                    ("currency_code", currency.clone()),
                ],
                "ORDER_SUBTOTAL",
                "subtotal",
                &format!("the subtotal must be at least {minimum} {currency}"),
            ),
            Self::SoldOut(campaign_id) => precondition(
                reason,
                &[("campaign_id", campaign_id.clone())],
                "CAMPAIGN",
                campaign_id,
                "every coupon of the campaign has been issued",
            ),
            Self::CampaignNotActive {
                campaign_id,
                start_time,
                end_time,
            } => precondition(
                reason,
                &[
                    ("campaign_id", campaign_id.clone()),
                    ("start_time", rfc3339(*start_time)),
                    ("end_time", rfc3339(*end_time)),
                ],
                "CAMPAIGN",
                campaign_id,
                "the campaign has not started yet or has ended",
            ),
            Self::AlreadyClaimed {
                campaign_id,
                user_coupon_id,
            } => error_info(
                reason,
                &[
                    ("campaign_id", campaign_id.clone()),
                    ("user_coupon_id", user_coupon_id.clone()),
                ],
            ),
            Self::IdempotencyKeyReused => precondition(
                reason,
                &[],
                "IDEMPOTENCY_KEY",
                "idempotency_key",
                "the key was already used with a different request",
            ),
            Self::InvalidPageToken | Self::Database(_) | Self::Corrupt(_) => {
                error_info(reason, &[])
            }
        }
    }
}

impl From<CouponError> for tonic::Status {
    fn from(err: CouponError) -> Self {
        into_status(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_codes_that_checkout_replays() {
        let final_codes = [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::FailedPrecondition,
        ];
        let refusals = [
            CouponError::not_found("user_coupon", "x"),
            CouponError::NotAvailable("x".to_owned()),
            CouponError::Expired {
                user_coupon_id: "x".to_owned(),
                expire_time: Utc::now(),
            },
            CouponError::MinimumNotMet {
                minimum: 1,
                currency: "JPY".to_owned(),
            },
        ];
        for refusal in refusals {
            assert!(final_codes.contains(&refusal.code()), "{refusal:?}");
        }
    }

    #[test]
    fn database_failures_are_never_final() {
        for err in [
            CouponError::Database(sqlx::Error::PoolTimedOut),
            CouponError::Database(sqlx::Error::RowNotFound),
            CouponError::Corrupt("bad".to_owned()),
        ] {
            assert!(
                matches!(err.code(), ErrorCode::Unavailable | ErrorCode::Internal),
                "{err:?}"
            );
        }
    }

    #[test]
    fn an_already_claimed_status_names_the_coupon_held() {
        let status = tonic::Status::from(CouponError::AlreadyClaimed {
            campaign_id: "c".to_owned(),
            user_coupon_id: "u".to_owned(),
        });
        assert_eq!(status.code(), tonic::Code::AlreadyExists);
        let details = tonic_types::StatusExt::get_error_details(&status);
        let info = details.error_info().expect("error info");
        assert_eq!(info.reason, "COUPON_ALREADY_CLAIMED");
        assert_eq!(
            info.metadata.get("user_coupon_id").map(String::as_str),
            Some("u")
        );
    }
}
