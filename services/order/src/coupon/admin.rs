//! The admin creates — CreateCoupon, CreateCampaign, IssueCoupon — each one transaction that
//! first claims the caller's idempotency key: the same key with the same request replays the
//! resource created first, with another request it is IDEMPOTENCY_KEY_REUSED. A refusal (an
//! unknown coupon) rolls the key back with everything else, so nothing is written.

use uuid::Uuid;

use crate::context::OrderContext;
use crate::coupon::error::CouponError;
use crate::coupon::rules::{self, Campaign};
use crate::coupon::store::{
    self, CampaignRow, CouponRow, DefinitionRow, HistoryRow, IdempotencyKey, NewUserCoupon,
    UserCouponRow,
};

fn vanished(what: &str, id: Uuid) -> CouponError {
    CouponError::Corrupt(format!("{what} {id} named by an idempotency key vanished"))
}

/// Creates the coupon `definition` (or replays the one created first with `key`).
pub async fn create_coupon(
    context: &OrderContext,
    key: &IdempotencyKey<'_>,
    definition: &DefinitionRow,
) -> Result<CouponRow, CouponError> {
    let now = context.clock.now();
    let coupon_id = Uuid::now_v7();
    let mut tx = context.pool.begin().await?;
    if let Some(existing) = store::claim_key(&mut tx, key, coupon_id, now).await? {
        let coupon = store::find_coupon(&mut tx, existing)
            .await?
            .ok_or_else(|| vanished("coupon", existing))?;
        tx.commit().await?;
        return Ok(coupon);
    }
    let coupon = store::insert_coupon(&mut tx, coupon_id, definition, now).await?;
    tx.commit().await?;
    tracing::info!(coupon.id = %coupon_id, "coupon created");
    Ok(coupon)
}

/// Creates `campaign` for `coupon_id` (or replays the one created first with `key`).
pub async fn create_campaign(
    context: &OrderContext,
    key: &IdempotencyKey<'_>,
    coupon_id: Uuid,
    campaign: &Campaign,
) -> Result<CampaignRow, CouponError> {
    let now = context.clock.now();
    let campaign_id = Uuid::now_v7();
    let mut tx = context.pool.begin().await?;
    let id = match store::claim_key(&mut tx, key, campaign_id, now).await? {
        Some(existing) => existing,
        None => {
            if store::find_coupon(&mut tx, coupon_id).await?.is_none() {
                return Err(CouponError::not_found("coupon", coupon_id));
            }
            store::insert_campaign(&mut tx, campaign_id, coupon_id, campaign, now).await?;
            tracing::info!(campaign.id = %campaign_id, coupon.id = %coupon_id, "campaign created");
            campaign_id
        }
    };
    let row = store::find_campaign(&mut tx, id)
        .await?
        .ok_or_else(|| vanished("campaign", id))?;
    tx.commit().await?;
    Ok(row)
}

/// Issues a coupon of `coupon_id` to `user_id` outside any campaign (or replays the one issued
/// first with `key`, as it is now).
pub async fn issue_coupon(
    context: &OrderContext,
    key: &IdempotencyKey<'_>,
    coupon_id: Uuid,
    user_id: Uuid,
) -> Result<(UserCouponRow, Vec<HistoryRow>), CouponError> {
    let now = context.clock.now();
    let user_coupon_id = Uuid::now_v7();
    let mut tx = context.pool.begin().await?;
    let id = match store::claim_key(&mut tx, key, user_coupon_id, now).await? {
        Some(existing) => existing,
        None => {
            let coupon = store::find_coupon(&mut tx, coupon_id)
                .await?
                .ok_or_else(|| CouponError::not_found("coupon", coupon_id))?;
            let new = NewUserCoupon {
                user_coupon_id,
                user_id,
                coupon_id,
                definition: &coupon.definition,
                coupon_create_time: coupon.create_time,
                campaign_id: None,
                issue_time: now,
                expire_time: rules::expire_time(now, coupon.definition.validity_days),
            };
            if !store::insert_user_coupon(&mut tx, &new).await? {
                return Err(CouponError::Corrupt(
                    "a coupon issued outside a campaign conflicted".to_owned(),
                ));
            }
            tracing::info!(user_coupon.id = %user_coupon_id, coupon.id = %coupon_id,
                user.id = %user_id, "coupon issued");
            user_coupon_id
        }
    };
    let issued = store::user_coupon_with_history(&mut tx, id)
        .await?
        .ok_or_else(|| vanished("user coupon", id))?;
    tx.commit().await?;
    Ok(issued)
}
