//! ClaimCoupon: first come, first served, one per user.
//!
//! **The invariant:** exactly `min(total_quantity, claimants)` coupons are issued however many
//! claims race, and never two to one user. The database decides, in one transaction per claim:
//!
//! 1. `INSERT` the user coupon (with its ISSUED history entry), guarded by the unique
//!    `(campaign_id, user_id)` constraint. A second claim by the same user conflicts here — after
//!    waiting for the first one's transaction if it is still open — and so never reaches step 2:
//!    a repeat claim cannot consume a unit.
//! 2. Take a unit with one conditional `UPDATE … SET issued_quantity = issued_quantity + 1 WHERE
//!    issued_quantity < total_quantity AND <now in the window>`. Claims queue on the campaign
//!    row's lock and each re-checks the condition against the row its predecessor committed, so
//!    no more than `total_quantity` increments commit (a CHECK constraint backs this up). When
//!    no row is updated the transaction rolls back, taking the user coupon of step 1 with it.
//! 3. Commit. The campaign row lock is held only from step 2 to here.
//!
//! Before that transaction, one read (the campaign, its coupon and the coupon the caller already
//! holds) turns away unknown campaigns, repeat claims, inactive and sold-out campaigns without
//! queueing on the lock. In front of the database a Redis marker per sold-out campaign turns the
//! losers of a flash sale away without even that read's join — only a point lookup of the
//! caller's own coupon remains, so a client retrying after a lost response still learns it holds
//! one. The marker is only a hint: `issued_quantity` never decreases and `total_quantity` never
//! changes, so a campaign seen sold out stays sold out; a missing marker, or any Redis failure or
//! slowness, simply sends the claim to the database (fail open).

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands as _;
use uuid::Uuid;

use crate::context::OrderContext;
use crate::coupon::error::CouponError;
use crate::coupon::rules::{self, CampaignState};
use crate::coupon::store::{self, CampaignRow, HistoryRow, NewUserCoupon, UserCouponRow};

/// How long a sold-out marker lives. Sold out is permanent, so this only bounds the memory the
/// markers take; any value is correct.
pub const SOLD_OUT_MARKER_TTL: Duration = Duration::from_secs(30);

/// Longest a Redis call of a claim may take before the claim goes on without it.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The sold-out marker key of `campaign_id`. Its value is the campaign's `end_time` in
/// microseconds, so a marker never turns a claim on an ended campaign away as SOLD_OUT (that
/// claim hears CAMPAIGN_NOT_ACTIVE from the database instead).
pub fn marker_key(context: &OrderContext, campaign_id: Uuid) -> String {
    context.keys.key("coupon-campaign-sold-out", campaign_id)
}

/// Whether a live marker says `campaign_id` is sold out (and has not ended) at `now`. Any Redis
/// trouble answers `false`.
async fn marked_sold_out(context: &OrderContext, campaign_id: Uuid, now: DateTime<Utc>) -> bool {
    let mut redis = context.redis.clone();
    let key = marker_key(context, campaign_id);
    let lookup = tokio::time::timeout(REDIS_TIMEOUT, async {
        let value: redis::RedisResult<Option<String>> = redis.get(&key).await;
        value
    });
    match lookup.await {
        Ok(Ok(Some(end))) => end
            .parse::<i64>()
            .is_ok_and(|end_micros| now.timestamp_micros() < end_micros),
        Ok(Ok(None)) => false,
        Ok(Err(error)) => {
            tracing::warn!(%error, "sold-out marker lookup failed, asking the database");
            false
        }
        Err(_) => {
            tracing::warn!("sold-out marker lookup timed out, asking the database");
            false
        }
    }
}

/// Sets the sold-out marker of `campaign`. Failures are logged and ignored.
async fn mark_sold_out(context: &OrderContext, campaign_id: Uuid, end_time: DateTime<Utc>) {
    let mut redis = context.redis.clone();
    let millis = u64::try_from(SOLD_OUT_MARKER_TTL.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let options = redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(millis));
    let set = tokio::time::timeout(
        REDIS_TIMEOUT,
        redis.set_options::<_, _, ()>(
            marker_key(context, campaign_id),
            end_time.timestamp_micros().to_string(),
            options,
        ),
    );
    match set.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, %campaign_id, "setting a sold-out marker failed"),
        Err(_) => tracing::warn!(%campaign_id, "setting a sold-out marker timed out"),
    }
}

/// The refusal for a campaign that is not running at `now`, or `Ok` when it is.
fn refuse_unless_running(campaign: &CampaignRow, now: DateTime<Utc>) -> Result<(), CouponError> {
    let state = rules::campaign_state(
        campaign.start_time,
        campaign.end_time,
        campaign.issued_quantity,
        campaign.total_quantity,
        now,
    );
    match state {
        CampaignState::Running => Ok(()),
        CampaignState::SoldOut => Err(CouponError::SoldOut(campaign.campaign_id.to_string())),
        CampaignState::Upcoming | CampaignState::Ended => Err(CouponError::CampaignNotActive {
            campaign_id: campaign.campaign_id.to_string(),
            start_time: campaign.start_time,
            end_time: campaign.end_time,
        }),
    }
}

fn already_claimed(campaign_id: Uuid, held: Uuid) -> CouponError {
    CouponError::AlreadyClaimed {
        campaign_id: campaign_id.to_string(),
        user_coupon_id: held.to_string(),
    }
}

/// What the database said, and the end of the campaign when it was seen sold out (so the marker
/// can be set once the connection is back in the pool).
struct Attempt {
    outcome: Result<(UserCouponRow, Vec<HistoryRow>), CouponError>,
    sold_out_until: Option<DateTime<Utc>>,
}

impl Attempt {
    fn refused(error: CouponError) -> Self {
        Self {
            outcome: Err(error),
            sold_out_until: None,
        }
    }
}

/// Claims one coupon of `campaign_id` for `user_id` (see the module docs). Returns the new user
/// coupon with its history.
pub async fn claim(
    context: &OrderContext,
    user_id: Uuid,
    campaign_id: Uuid,
) -> Result<(UserCouponRow, Vec<HistoryRow>), CouponError> {
    let now = context.clock.now();
    // Redis is asked before a pooled connection is taken, so a slow Redis never holds one.
    if marked_sold_out(context, campaign_id, now).await {
        let mut conn = context.pool.acquire().await?;
        return match store::held_coupon(&mut conn, campaign_id, user_id).await? {
            Some(held) => Err(already_claimed(campaign_id, held)),
            None => Err(CouponError::SoldOut(campaign_id.to_string())),
        };
    }
    let attempt = match in_database(context, user_id, campaign_id, now).await {
        Ok(attempt) => attempt,
        Err(error) => Attempt::refused(error),
    };
    if let Some(end_time) = attempt.sold_out_until {
        mark_sold_out(context, campaign_id, end_time).await;
    }
    attempt.outcome
}

/// The database part of a claim: the read that turns claims away early, then the transaction.
async fn in_database(
    context: &OrderContext,
    user_id: Uuid,
    campaign_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Attempt, CouponError> {
    let mut conn = context.pool.acquire().await?;
    let view = store::claim_view(&mut conn, campaign_id, user_id)
        .await?
        .ok_or_else(|| CouponError::not_found("campaign", campaign_id))?;
    if let Some(held) = view.held {
        return Ok(Attempt::refused(already_claimed(campaign_id, held)));
    }
    let campaign = &view.campaign;
    if let Err(refusal) = refuse_unless_running(campaign, now) {
        let sold_out = matches!(refusal, CouponError::SoldOut(_));
        return Ok(Attempt {
            outcome: Err(refusal),
            sold_out_until: sold_out.then_some(campaign.end_time),
        });
    }

    let user_coupon_id = Uuid::now_v7();
    let new = NewUserCoupon {
        user_coupon_id,
        user_id,
        coupon_id: campaign.coupon_id,
        definition: &campaign.definition,
        coupon_create_time: campaign.coupon_create_time,
        campaign_id: Some(campaign_id),
        issue_time: now,
        expire_time: rules::expire_time(now, campaign.definition.validity_days),
    };
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Step 1: the user's row first, so a repeat claim stops here without touching the unit count.
    if !store::insert_user_coupon(&mut tx, &new).await? {
        tx.rollback().await?;
        let held = store::held_coupon(&mut conn, campaign_id, user_id)
            .await?
            .ok_or_else(|| {
                CouponError::Corrupt(format!(
                    "a claim of campaign {campaign_id} conflicted with no coupon"
                ))
            })?;
        return Ok(Attempt::refused(already_claimed(campaign_id, held)));
    }
    // Step 2: the conditional increment; from here to the commit this claim holds the row lock.
    let Some((issued, total)) = store::take_unit(&mut tx, campaign_id, now).await? else {
        tx.rollback().await?;
        let campaign = store::find_campaign(&mut conn, campaign_id)
            .await?
            .ok_or_else(|| CouponError::not_found("campaign", campaign_id))?;
        let refusal = refuse_unless_running(&campaign, now)
            .err()
            .unwrap_or_else(|| {
                CouponError::Corrupt(format!(
                    "campaign {campaign_id} is running with units left but gave none"
                ))
            });
        let sold_out = matches!(refusal, CouponError::SoldOut(_));
        return Ok(Attempt {
            outcome: Err(refusal),
            sold_out_until: sold_out.then_some(campaign.end_time),
        });
    };
    // Step 3.
    tx.commit().await?;
    tracing::debug!(%campaign_id, issued, total, "coupon claimed");
    let claimed = store::user_coupon_with_history(&mut conn, user_coupon_id)
        .await?
        .ok_or_else(|| CouponError::Corrupt(format!("claimed coupon {user_coupon_id} vanished")));
    Ok(Attempt {
        outcome: claimed,
        sold_out_until: (issued >= total).then_some(campaign.end_time),
    })
}
