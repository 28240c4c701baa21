//! PLACEHOLDER until the coupon module merges (never committed).
pub mod apply;
use mercato_platform::error::{ErrorCode, ServiceError};
/// Placeholder.
#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    /// Placeholder.
    #[error("coupon {0} not found")]
    NotFound(String),
}
impl ServiceError for CouponError {
    fn code(&self) -> ErrorCode {
        ErrorCode::NotFound
    }
    fn reason(&self) -> &'static str {
        "RESOURCE_NOT_FOUND"
    }
}
impl From<CouponError> for tonic::Status {
    fn from(err: CouponError) -> Self {
        mercato_platform::error::into_status(err)
    }
}
