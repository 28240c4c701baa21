//! The gRPC surface of `CouponService`: who may call what (admin RPCs check ROLE_ADMIN before
//! reading the request), request parsing into the rules' inputs (every invalid field named,
//! nothing written), and the wire form of coupons, campaigns and user coupons.

use chrono::{DateTime, Utc};
use mercato_platform::principal::{self, Role};
use mercato_proto::mercato::common::v1::{CouponKind, Money, UserCouponStatus};
use mercato_proto::mercato::order::v1 as pb;
use pb::coupon_service_server::CouponService;
use sha2::{Digest as _, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cart::view::timestamp;
use crate::context::OrderContext;
use crate::coupon::error::CouponError;
use crate::coupon::rules::{self, Amount, CampaignInput, DefinitionInput, Invalid, Kind};
use crate::coupon::store::{
    self, CampaignRow, CouponRow, Cursor, DefinitionRow, EventKind, HistoryRow, IdempotencyKey,
    UserCouponRow,
};
use crate::coupon::{admin, claim};
use mercato_platform::error::Violation;

type GrpcResult<T> = Result<Response<T>, Status>;

/// Implements `CouponService` over the shared context.
#[derive(Debug, Clone)]
pub struct CouponGrpc {
    context: OrderContext,
}

impl CouponGrpc {
    /// The service over `context`.
    pub fn new(context: OrderContext) -> Self {
        Self { context }
    }

    fn currency(&self) -> &str {
        &self.context.settings.cart.currency
    }
}

// --- parsing

fn uuid_field(raw: &str, field: &str, violations: &mut Vec<Violation>) -> Option<Uuid> {
    if raw.is_empty() {
        violations.push(Violation::new(field, "is required"));
        return None;
    }
    Uuid::parse_str(raw)
        .map_err(|_| violations.push(Violation::new(field, "must be a uuid")))
        .ok()
}

fn required_id(raw: &str, field: &str) -> Result<Uuid, CouponError> {
    let mut violations = Vec::new();
    uuid_field(raw, field, &mut violations).ok_or(CouponError::Validation(violations))
}

/// A required idempotency key: 1-128 printable ASCII characters.
fn idempotency_key(raw: &str, violations: &mut Vec<Violation>) {
    if raw.is_empty() {
        violations.push(Violation::new("idempotency_key", "is required"));
    } else if raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        violations.push(Violation::new(
            "idempotency_key",
            "must be 1-128 printable ascii characters",
        ));
    }
}

/// Merges violations found here with the rules' verdict.
fn merge<T>(result: Result<T, Invalid>, mut violations: Vec<Violation>) -> Result<T, CouponError> {
    match result {
        Ok(value) if violations.is_empty() => Ok(value),
        Ok(_) => Err(CouponError::Validation(violations)),
        Err(Invalid::Fields(more)) => {
            violations.extend(more);
            Err(CouponError::Validation(violations))
        }
        Err(Invalid::CurrencyMismatch { field, expected }) if violations.is_empty() => {
            Err(CouponError::CurrencyMismatch { field, expected })
        }
        Err(Invalid::CurrencyMismatch { field, expected }) => {
            violations.push(Violation::new(
                field,
                format!("must be the shop currency {expected}"),
            ));
            Err(CouponError::Validation(violations))
        }
    }
}

fn page_limit(page_size: i32) -> Result<usize, CouponError> {
    match page_size {
        n if n < 0 => Err(CouponError::field("page_size", "must not be negative")),
        0 => Ok(20),
        n => Ok(usize::try_from(n.min(100)).unwrap_or(100)),
    }
}

fn cursor(page_token: &str, filter: &str) -> Result<Option<Cursor>, CouponError> {
    if page_token.is_empty() {
        Ok(None)
    } else {
        Cursor::decode(page_token, filter).map(Some)
    }
}

fn amount(money: Option<&Money>) -> Option<Amount<'_>> {
    money.map(|m| Amount {
        currency: &m.currency_code,
        minor: m.amount_minor,
    })
}

fn time(raw: Option<&prost_types::Timestamp>) -> Option<Result<DateTime<Utc>, ()>> {
    raw.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
            .ok_or(())
    })
}

fn kind(raw: i32) -> Option<Kind> {
    match CouponKind::try_from(raw).ok()? {
        CouponKind::Fixed => Some(Kind::Fixed),
        CouponKind::Percent => Some(Kind::Percent),
        CouponKind::Unspecified => None,
    }
}

fn statuses(raw: &[i32]) -> Result<Vec<rules::Status>, CouponError> {
    let mut parsed = Vec::with_capacity(raw.len());
    for value in raw {
        let status = match UserCouponStatus::try_from(*value) {
            Ok(UserCouponStatus::Available) => rules::Status::Available,
            Ok(UserCouponStatus::Used) => rules::Status::Used,
            Ok(UserCouponStatus::Expired) => rules::Status::Expired,
            Ok(UserCouponStatus::Unspecified) | Err(_) => {
                return Err(CouponError::field(
                    "statuses",
                    format!("{value} is not a user coupon status"),
                ));
            }
        };
        if !parsed.contains(&status) {
            parsed.push(status);
        }
    }
    parsed.sort_by_key(|s| s.as_str());
    Ok(parsed)
}

/// SHA-256 of a request's encoding (the caller clears the key and output-only fields first).
fn request_hash(message: &impl prost::Message) -> Vec<u8> {
    Sha256::digest(message.encode_to_vec()).to_vec()
}

// --- wire forms

fn money(currency: &str, minor: i64) -> Money {
    Money {
        currency_code: currency.to_owned(),
        amount_minor: minor,
    }
}

fn coupon_proto(
    coupon_id: Uuid,
    definition: &DefinitionRow,
    create_time: DateTime<Utc>,
) -> Result<pb::Coupon, CouponError> {
    let currency = definition.currency.as_str();
    let kind = match definition.kind()? {
        Kind::Fixed => CouponKind::Fixed,
        Kind::Percent => CouponKind::Percent,
    };
    Ok(pb::Coupon {
        coupon_id: coupon_id.to_string(),
        name: definition.name.clone(),
        description: definition.description.clone(),
        kind: kind as i32,
        fixed_discount: definition.fixed_discount.map(|a| money(currency, a)),
        percent_off: definition.percent_off.unwrap_or_default(),
        max_discount: definition.max_discount.map(|a| money(currency, a)),
        minimum_order_amount: definition.minimum_order_amount.map(|a| money(currency, a)),
        validity_days: definition.validity_days,
        create_time: Some(timestamp(create_time)),
    })
}

fn coupon_row_proto(row: &CouponRow) -> Result<pb::Coupon, CouponError> {
    coupon_proto(row.coupon_id, &row.definition, row.create_time)
}

fn campaign_proto(row: &CampaignRow) -> Result<pb::CouponCampaign, CouponError> {
    Ok(pb::CouponCampaign {
        campaign_id: row.campaign_id.to_string(),
        coupon_id: row.coupon_id.to_string(),
        name: row.campaign_name.clone(),
        start_time: Some(timestamp(row.start_time)),
        end_time: Some(timestamp(row.end_time)),
        total_quantity: row.total_quantity,
        issued_quantity: row.issued_quantity,
        remaining_quantity: row.total_quantity - row.issued_quantity,
        coupon: Some(coupon_proto(
            row.coupon_id,
            &row.definition,
            row.coupon_create_time,
        )?),
        create_time: Some(timestamp(row.campaign_create_time)),
    })
}

fn event_proto(row: &HistoryRow) -> Result<pb::UserCouponEvent, CouponError> {
    let kind = match EventKind::parse(&row.kind) {
        Some(EventKind::Issued) => pb::UserCouponEventKind::Issued,
        Some(EventKind::Used) => pb::UserCouponEventKind::Used,
        Some(EventKind::Restored) => pb::UserCouponEventKind::Restored,
        Some(EventKind::Expired) => pb::UserCouponEventKind::Expired,
        None => {
            return Err(CouponError::Corrupt(format!(
                "unknown coupon event kind {}",
                row.kind
            )));
        }
    };
    Ok(pb::UserCouponEvent {
        kind: kind as i32,
        order_id: row.order_id.map(|id| id.to_string()).unwrap_or_default(),
        event_time: Some(timestamp(row.event_time)),
    })
}

/// A user coupon as the caller sees it at `now`: an AVAILABLE coupon past its expiry shows
/// EXPIRED, with the EXPIRED history entry the sweeper will write (dated at the expiry).
fn user_coupon_proto(
    row: &UserCouponRow,
    history: &[HistoryRow],
    now: DateTime<Utc>,
) -> Result<pb::UserCoupon, CouponError> {
    let stored = row.status()?;
    let shown = stored.at(row.expire_time, now);
    let status = match shown {
        rules::Status::Available => UserCouponStatus::Available,
        rules::Status::Used => UserCouponStatus::Used,
        rules::Status::Expired => UserCouponStatus::Expired,
    };
    let mut events = history
        .iter()
        .filter(|h| h.user_coupon_id == row.user_coupon_id)
        .map(event_proto)
        .collect::<Result<Vec<_>, _>>()?;
    if shown != stored {
        events.push(pb::UserCouponEvent {
            kind: pb::UserCouponEventKind::Expired as i32,
            order_id: String::new(),
            event_time: Some(timestamp(row.expire_time)),
        });
    }
    Ok(pb::UserCoupon {
        user_coupon_id: row.user_coupon_id.to_string(),
        user_id: row.user_id.to_string(),
        coupon: Some(coupon_proto(
            row.coupon_id,
            &row.definition,
            row.coupon_create_time,
        )?),
        campaign_id: row.campaign_id.map(|id| id.to_string()).unwrap_or_default(),
        status: status as i32,
        issue_time: Some(timestamp(row.issue_time)),
        expire_time: Some(timestamp(row.expire_time)),
        order_id: row.order_id.map(|id| id.to_string()).unwrap_or_default(),
        history: events,
    })
}

#[tonic::async_trait]
impl CouponService for CouponGrpc {
    #[tracing::instrument(name = "coupon.create_coupon", skip_all, fields(coupon.id))]
    async fn create_coupon(
        &self,
        request: Request<pb::CreateCouponRequest>,
    ) -> GrpcResult<pb::CreateCouponResponse> {
        let caller = principal::require_role(&request, Role::Admin)?.user_id;
        let pb::CreateCouponRequest {
            coupon,
            idempotency_key: key,
        } = request.into_inner();
        let mut violations = Vec::new();
        idempotency_key(&key, &mut violations);
        let Some(mut coupon) = coupon else {
            violations.push(Violation::new("coupon", "is required"));
            return Err(CouponError::Validation(violations).into());
        };
        let input = DefinitionInput {
            name: &coupon.name,
            description: &coupon.description,
            kind: kind(coupon.kind),
            fixed_discount: amount(coupon.fixed_discount.as_ref()),
            percent_off: coupon.percent_off,
            max_discount: amount(coupon.max_discount.as_ref()),
            minimum_order_amount: amount(coupon.minimum_order_amount.as_ref()),
            validity_days: coupon.validity_days,
        };
        let definition = merge(
            rules::validate_definition(&input, "coupon", self.currency()),
            violations,
        )?;
        // Output-only fields do not make a request different.
        coupon.coupon_id.clear();
        coupon.create_time = None;
        let key = IdempotencyKey {
            caller_id: caller,
            rpc: "CreateCoupon",
            key: &key,
            request_hash: request_hash(&coupon),
        };
        let row = DefinitionRow::new(&definition, self.currency());
        let created = admin::create_coupon(&self.context, &key, &row).await?;
        tracing::Span::current().record("coupon.id", created.coupon_id.to_string());
        Ok(Response::new(pb::CreateCouponResponse {
            coupon: Some(coupon_row_proto(&created)?),
        }))
    }

    #[tracing::instrument(name = "coupon.get_coupon", skip_all)]
    async fn get_coupon(
        &self,
        request: Request<pb::GetCouponRequest>,
    ) -> GrpcResult<pb::GetCouponResponse> {
        principal::require_role(&request, Role::Admin)?;
        let id = required_id(&request.get_ref().coupon_id, "coupon_id")?;
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(CouponError::from)?;
        let coupon = store::find_coupon(&mut conn, id)
            .await?
            .ok_or_else(|| CouponError::not_found("coupon", id))?;
        Ok(Response::new(pb::GetCouponResponse {
            coupon: Some(coupon_row_proto(&coupon)?),
        }))
    }

    #[tracing::instrument(name = "coupon.list_coupons", skip_all)]
    async fn list_coupons(
        &self,
        request: Request<pb::ListCouponsRequest>,
    ) -> GrpcResult<pb::ListCouponsResponse> {
        principal::require_role(&request, Role::Admin)?;
        let r = request.get_ref();
        let limit = page_limit(r.page_size)?;
        let filter = store::filter_hash(&["ListCoupons"]);
        let after = cursor(&r.page_token, &filter)?;
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(CouponError::from)?;
        let (rows, more) = store::list_coupons(&mut conn, after.as_ref(), limit).await?;
        let next_page_token = match rows.last() {
            Some(last) if more => Cursor::after(last.create_time, last.coupon_id, &filter).encode(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListCouponsResponse {
            coupons: rows
                .iter()
                .map(coupon_row_proto)
                .collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "coupon.create_campaign", skip_all, fields(campaign.id))]
    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> GrpcResult<pb::CreateCampaignResponse> {
        let caller = principal::require_role(&request, Role::Admin)?.user_id;
        let pb::CreateCampaignRequest {
            campaign,
            idempotency_key: key,
        } = request.into_inner();
        let mut violations = Vec::new();
        idempotency_key(&key, &mut violations);
        let Some(mut campaign) = campaign else {
            violations.push(Violation::new("campaign", "is required"));
            return Err(CouponError::Validation(violations).into());
        };
        let coupon_id = uuid_field(&campaign.coupon_id, "campaign.coupon_id", &mut violations);
        let input = CampaignInput {
            name: &campaign.name,
            start_time: time(campaign.start_time.as_ref()),
            end_time: time(campaign.end_time.as_ref()),
            total_quantity: campaign.total_quantity,
        };
        let validated = merge(rules::validate_campaign(&input, "campaign"), violations)?;
        let Some(coupon_id) = coupon_id else {
            return Err(CouponError::field("campaign.coupon_id", "is required").into());
        };
        campaign.campaign_id.clear();
        campaign.issued_quantity = 0;
        campaign.remaining_quantity = 0;
        campaign.coupon = None;
        campaign.create_time = None;
        let key = IdempotencyKey {
            caller_id: caller,
            rpc: "CreateCampaign",
            key: &key,
            request_hash: request_hash(&campaign),
        };
        let created = admin::create_campaign(&self.context, &key, coupon_id, &validated).await?;
        tracing::Span::current().record("campaign.id", created.campaign_id.to_string());
        Ok(Response::new(pb::CreateCampaignResponse {
            campaign: Some(campaign_proto(&created)?),
        }))
    }

    #[tracing::instrument(name = "coupon.get_campaign", skip_all)]
    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> GrpcResult<pb::GetCampaignResponse> {
        let id = required_id(&request.get_ref().campaign_id, "campaign_id")?;
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(CouponError::from)?;
        let campaign = store::find_campaign(&mut conn, id)
            .await?
            .ok_or_else(|| CouponError::not_found("campaign", id))?;
        Ok(Response::new(pb::GetCampaignResponse {
            campaign: Some(campaign_proto(&campaign)?),
        }))
    }

    #[tracing::instrument(name = "coupon.list_campaigns", skip_all)]
    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> GrpcResult<pb::ListCampaignsResponse> {
        let r = request.get_ref();
        if r.include_ended {
            principal::require_role(&request, Role::Admin)?;
        }
        let limit = page_limit(r.page_size)?;
        let filter = store::filter_hash(&[
            "ListCampaigns",
            if r.include_ended { "ended" } else { "live" },
        ]);
        let after = cursor(&r.page_token, &filter)?;
        let ending_after = (!r.include_ended).then(|| self.context.clock.now());
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(CouponError::from)?;
        let (rows, more) =
            store::list_campaigns(&mut conn, ending_after, after.as_ref(), limit).await?;
        let next_page_token = match rows.last() {
            Some(last) if more => Cursor::after(last.end_time, last.campaign_id, &filter).encode(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns: rows.iter().map(campaign_proto).collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "coupon.claim_coupon", skip_all, fields(campaign.id, user_coupon.id))]
    async fn claim_coupon(
        &self,
        request: Request<pb::ClaimCouponRequest>,
    ) -> GrpcResult<pb::ClaimCouponResponse> {
        let user_id = principal::require_user(&request)?.user_id;
        let campaign_id = required_id(&request.get_ref().campaign_id, "campaign_id")?;
        tracing::Span::current().record("campaign.id", campaign_id.to_string());
        let (row, history) = claim::claim(&self.context, user_id, campaign_id).await?;
        tracing::Span::current().record("user_coupon.id", row.user_coupon_id.to_string());
        Ok(Response::new(pb::ClaimCouponResponse {
            user_coupon: Some(user_coupon_proto(&row, &history, self.context.clock.now())?),
        }))
    }

    #[tracing::instrument(name = "coupon.list_my_coupons", skip_all)]
    async fn list_my_coupons(
        &self,
        request: Request<pb::ListMyCouponsRequest>,
    ) -> GrpcResult<pb::ListMyCouponsResponse> {
        let user_id = principal::require_user(&request)?.user_id;
        let r = request.get_ref();
        let limit = page_limit(r.page_size)?;
        let statuses = statuses(&r.statuses)?;
        let user = user_id.to_string();
        let mut parts = vec!["ListMyCoupons", user.as_str()];
        parts.extend(statuses.iter().map(|s| s.as_str()));
        let filter = store::filter_hash(&parts);
        let after = cursor(&r.page_token, &filter)?;
        let now = self.context.clock.now();
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(CouponError::from)?;
        let (rows, more) =
            store::list_user_coupons(&mut conn, user_id, &statuses, now, after.as_ref(), limit)
                .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.user_coupon_id).collect();
        let history = store::history_of(&mut conn, &ids).await?;
        let next_page_token = match rows.last() {
            Some(last) if more => {
                Cursor::after(last.expire_time, last.user_coupon_id, &filter).encode()
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListMyCouponsResponse {
            user_coupons: rows
                .iter()
                .map(|row| user_coupon_proto(row, &history, now))
                .collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "coupon.issue_coupon", skip_all, fields(user_coupon.id))]
    async fn issue_coupon(
        &self,
        request: Request<pb::IssueCouponRequest>,
    ) -> GrpcResult<pb::IssueCouponResponse> {
        let caller = principal::require_role(&request, Role::Admin)?.user_id;
        let mut message = request.into_inner();
        let mut violations = Vec::new();
        let coupon_id = uuid_field(&message.coupon_id, "coupon_id", &mut violations);
        let user_id = uuid_field(&message.user_id, "user_id", &mut violations);
        idempotency_key(&message.idempotency_key, &mut violations);
        let (Some(coupon_id), Some(user_id), true) = (coupon_id, user_id, violations.is_empty())
        else {
            return Err(CouponError::Validation(violations).into());
        };
        let key = std::mem::take(&mut message.idempotency_key);
        let key = IdempotencyKey {
            caller_id: caller,
            rpc: "IssueCoupon",
            key: &key,
            request_hash: request_hash(&message),
        };
        let (row, history) = admin::issue_coupon(&self.context, &key, coupon_id, user_id).await?;
        tracing::Span::current().record("user_coupon.id", row.user_coupon_id.to_string());
        Ok(Response::new(pb::IssueCouponResponse {
            user_coupon: Some(user_coupon_proto(&row, &history, self.context.clock.now())?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_deduplicated_sorted_and_checked() {
        let parsed = statuses(&[
            UserCouponStatus::Used as i32,
            UserCouponStatus::Available as i32,
            UserCouponStatus::Used as i32,
        ])
        .expect("valid");
        assert_eq!(parsed, [rules::Status::Available, rules::Status::Used]);
        assert!(statuses(&[UserCouponStatus::Unspecified as i32]).is_err());
        assert!(statuses(&[42]).is_err());
    }

    #[test]
    fn a_missing_idempotency_key_is_named() {
        let mut violations = Vec::new();
        idempotency_key("", &mut violations);
        idempotency_key(&"k".repeat(129), &mut violations);
        idempotency_key("has space", &mut violations);
        idempotency_key("ok-key", &mut violations);
        assert_eq!(violations.len(), 3);
        assert!(violations.iter().all(|v| v.field == "idempotency_key"));
    }

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        assert_eq!(page_limit(0).expect("default"), 20);
        assert_eq!(page_limit(1_000).expect("capped"), 100);
        assert!(page_limit(-1).is_err());
    }
}
