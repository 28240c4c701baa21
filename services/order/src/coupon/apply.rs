//! PLACEHOLDER.
use super::CouponError;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
/// Placeholder.
#[derive(Debug, Clone)]
pub struct AppliedCoupon {
    /// x
    pub user_coupon_id: Uuid,
    /// x
    pub coupon_id: Uuid,
    /// x
    pub name: String,
    /// x
    pub kind: mercato_proto::mercato::common::v1::CouponKind,
    /// x
    pub discount: i64,
}
/// Placeholder.
pub async fn use_for_order(
    _conn: &mut PgConnection,
    _user_id: Uuid,
    user_coupon_id: Uuid,
    _subtotal: i64,
    _order_id: Uuid,
    _now: DateTime<Utc>,
) -> Result<AppliedCoupon, CouponError> {
    Err(CouponError::NotFound(user_coupon_id.to_string()))
}
/// Placeholder.
pub async fn restore_for_order(
    _conn: &mut PgConnection,
    _user_coupon_id: Uuid,
    _order_id: Uuid,
    _now: DateTime<Utc>,
) -> Result<bool, CouponError> {
    Ok(false)
}
