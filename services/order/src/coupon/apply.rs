//! Coupons at checkout and compensation, inside the order's own transaction: CreateOrder uses a
//! user coupon ([`use_for_order`]), a cancellation or expiry gives it back
//! ([`restore_for_order`]). Both lock the user coupon row first, so two checkouts racing for one
//! coupon serialise and the second sees it USED.

use chrono::{DateTime, Utc};
use mercato_proto::mercato::common::v1::CouponKind;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::coupon::error::CouponError;
use crate::coupon::rules::{self, Kind, Refusal, Status};
use crate::coupon::store::{self, EventKind};

/// The coupon an order used and what it took off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCoupon {
    /// The user coupon.
    pub user_coupon_id: Uuid,
    /// Its definition.
    pub coupon_id: Uuid,
    /// The definition's name when the coupon was issued.
    pub name: String,
    /// How the discount was computed.
    pub kind: CouponKind,
    /// The discount, in minor units (0 ≤ discount ≤ subtotal).
    pub discount: i64,
}

fn wire_kind(kind: Kind) -> CouponKind {
    match kind {
        Kind::Fixed => CouponKind::Fixed,
        Kind::Percent => CouponKind::Percent,
    }
}

/// Applies `user_coupon_id` to the order `order_id` of `user_id` with `subtotal`, on `conn`
/// (inside the order's transaction): locks the coupon, checks it belongs to the user (another
/// user's coupon is NOT_FOUND, so it stays invisible), is AVAILABLE, unexpired at `now` and that
/// the subtotal reaches its minimum, then marks it USED by the order with a USED history entry.
/// A refusal writes nothing.
pub async fn use_for_order(
    conn: &mut PgConnection,
    user_id: Uuid,
    user_coupon_id: Uuid,
    subtotal: i64,
    order_id: Uuid,
    now: DateTime<Utc>,
) -> Result<AppliedCoupon, CouponError> {
    let coupon = store::lock_user_coupon(conn, user_coupon_id)
        .await?
        .filter(|coupon| coupon.user_id == user_id)
        .ok_or_else(|| CouponError::not_found("user_coupon", user_coupon_id))?;
    let definition = &coupon.definition;
    let refusal = rules::check_use(
        coupon.status()?,
        coupon.expire_time,
        definition.minimum_order_amount,
        subtotal,
        now,
    );
    match refusal {
        Ok(()) => {}
        Err(Refusal::NotAvailable) => {
            return Err(CouponError::NotAvailable(user_coupon_id.to_string()));
        }
        Err(Refusal::Expired) => {
            return Err(CouponError::Expired {
                user_coupon_id: user_coupon_id.to_string(),
                expire_time: coupon.expire_time,
            });
        }
        Err(Refusal::MinimumNotMet { minimum }) => {
            return Err(CouponError::MinimumNotMet {
                minimum,
                currency: definition.currency.clone(),
            });
        }
    }
    let discount = definition.discount()?.amount_off(subtotal);
    store::set_status(conn, user_coupon_id, Status::Used, Some(order_id)).await?;
    store::add_history(conn, user_coupon_id, EventKind::Used, Some(order_id), now).await?;
    Ok(AppliedCoupon {
        user_coupon_id,
        coupon_id: coupon.coupon_id,
        name: definition.name.clone(),
        kind: wire_kind(definition.kind()?),
        discount,
    })
}

/// Gives `user_coupon_id` back from the cancelled or expired order `order_id`, on `conn` (inside
/// that transaction): if the order is using it, it becomes AVAILABLE again — or EXPIRED when its
/// own expiry passed meanwhile — with a RESTORED history entry (and an EXPIRED one in the second
/// case). Returns whether anything changed: a second call for the same order, or a coupon the
/// order is not using, changes nothing.
pub async fn restore_for_order(
    conn: &mut PgConnection,
    user_coupon_id: Uuid,
    order_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, CouponError> {
    let Some(coupon) = store::lock_user_coupon(conn, user_coupon_id).await? else {
        return Ok(false);
    };
    if coupon.status()? != Status::Used || coupon.order_id != Some(order_id) {
        return Ok(false);
    }
    let restored = rules::restored_status(coupon.expire_time, now);
    store::set_status(conn, user_coupon_id, restored, None).await?;
    store::add_history(
        conn,
        user_coupon_id,
        EventKind::Restored,
        Some(order_id),
        now,
    )
    .await?;
    match restored {
        Status::Expired => {
            store::add_history(conn, user_coupon_id, EventKind::Expired, None, now).await?;
        }
        Status::Available | Status::Used => {}
    }
    Ok(true)
}
