//! The storefront's coupons (`mercato.bff.v1.CouponService`), backed by the order service's
//! `CouponService`. `ListCampaigns` and `GetCampaign` are public (on the allow-list in
//! [`crate::routes`]) and act for nobody; `ClaimCoupon` and `ListMyCoupons` act on the token's
//! subject only: no request names a user, and the order service takes the holder from the
//! forwarded principal (without the admin role, as for orders, so an admin claims and lists as
//! the shopper they are here).
//!
//! The order service's refusals reach the browser with their details through
//! [`downstream`](crate::error::downstream): a second claim is `ALREADY_EXISTS` /
//! `COUPON_ALREADY_CLAIMED` with the held coupon's id in the `ErrorInfo` metadata
//! `user_coupon_id`, a sold-out or closed campaign `FAILED_PRECONDITION` / `COUPON_SOLD_OUT` or
//! `CAMPAIGN_NOT_ACTIVE`, a malformed id `INVALID_ARGUMENT` naming `campaign_id`.

use mercato_platform::grpc::ClientChannel;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::order::v1 as order;
use order::coupon_service_client::CouponServiceClient;
use tonic::{Request, Response, Status};

use crate::error::{broken_contract, downstream};
use crate::order::{as_buyer, buyer};

/// `mercato.bff.v1.CouponService`.
#[derive(Debug, Clone)]
pub struct CouponGrpc {
    coupons: CouponServiceClient<ClientChannel>,
}

impl CouponGrpc {
    /// The handler over an order-service channel.
    pub fn new(channel: ClientChannel) -> Self {
        Self {
            coupons: CouponServiceClient::new(channel),
        }
    }
}

/// A coupon definition as the public API shows it (every field is public).
pub(crate) fn public_coupon(coupon: order::Coupon) -> bff::Coupon {
    let order::Coupon {
        coupon_id,
        name,
        description,
        kind,
        fixed_discount,
        percent_off,
        max_discount,
        minimum_order_amount,
        validity_days,
        create_time,
    } = coupon;
    bff::Coupon {
        coupon_id,
        name,
        description,
        kind,
        fixed_discount,
        percent_off,
        max_discount,
        minimum_order_amount,
        validity_days,
        create_time,
    }
}

/// An admin's coupon definition as the order service takes it (output-only fields go along and
/// are ignored there).
pub(crate) fn internal_coupon(coupon: bff::Coupon) -> order::Coupon {
    let bff::Coupon {
        coupon_id,
        name,
        description,
        kind,
        fixed_discount,
        percent_off,
        max_discount,
        minimum_order_amount,
        validity_days,
        create_time,
    } = coupon;
    order::Coupon {
        coupon_id,
        name,
        description,
        kind,
        fixed_discount,
        percent_off,
        max_discount,
        minimum_order_amount,
        validity_days,
        create_time,
    }
}

/// A campaign as the public API shows it: how many were issued and when it was created stay
/// internal; what remains is public.
pub(crate) fn public_campaign(campaign: order::CouponCampaign) -> bff::CouponCampaign {
    let order::CouponCampaign {
        campaign_id,
        coupon_id,
        name,
        start_time,
        end_time,
        total_quantity,
        issued_quantity: _,
        remaining_quantity,
        coupon,
        create_time: _,
    } = campaign;
    bff::CouponCampaign {
        campaign_id,
        coupon_id,
        name,
        start_time,
        end_time,
        total_quantity,
        remaining_quantity,
        coupon: coupon.map(public_coupon),
    }
}

/// An admin's campaign as the order service takes it (output-only fields are left unset).
pub(crate) fn internal_campaign(campaign: bff::CouponCampaign) -> order::CouponCampaign {
    let bff::CouponCampaign {
        campaign_id,
        coupon_id,
        name,
        start_time,
        end_time,
        total_quantity,
        remaining_quantity: _,
        coupon: _,
    } = campaign;
    order::CouponCampaign {
        campaign_id,
        coupon_id,
        name,
        start_time,
        end_time,
        total_quantity,
        ..order::CouponCampaign::default()
    }
}

/// A held coupon as its holder sees it: the holder's id and the event history stay internal.
pub(crate) fn public_user_coupon(held: order::UserCoupon) -> bff::UserCoupon {
    let order::UserCoupon {
        user_coupon_id,
        user_id: _,
        coupon,
        campaign_id,
        status,
        issue_time,
        expire_time,
        order_id,
        history: _,
    } = held;
    bff::UserCoupon {
        user_coupon_id,
        coupon: coupon.map(public_coupon),
        campaign_id,
        status,
        issue_time,
        expire_time,
        order_id,
    }
}

/// The public campaign, or INTERNAL when the order service answered without one.
pub(crate) fn campaign_of(
    found: Option<order::CouponCampaign>,
    what: &str,
) -> Result<bff::CouponCampaign, Status> {
    found
        .map(public_campaign)
        .ok_or_else(|| broken_contract(what))
}

/// The public user coupon, or INTERNAL when the order service answered without one.
pub(crate) fn user_coupon_of(
    found: Option<order::UserCoupon>,
    what: &str,
) -> Result<bff::UserCoupon, Status> {
    found
        .map(public_user_coupon)
        .ok_or_else(|| broken_contract(what))
}

#[tonic::async_trait]
impl bff::coupon_service_server::CouponService for CouponGrpc {
    async fn list_campaigns(
        &self,
        request: Request<bff::ListCampaignsRequest>,
    ) -> Result<Response<bff::ListCampaignsResponse>, Status> {
        let bff::ListCampaignsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let order::ListCampaignsResponse {
            campaigns,
            next_page_token,
        } = self
            .coupons
            .clone()
            .list_campaigns(order::ListCampaignsRequest {
                page_size,
                page_token,
                // Ended campaigns are the admin console's, never the storefront's.
                include_ended: false,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListCampaignsResponse {
            campaigns: campaigns.into_iter().map(public_campaign).collect(),
            next_page_token,
        }))
    }

    async fn get_campaign(
        &self,
        request: Request<bff::GetCampaignRequest>,
    ) -> Result<Response<bff::GetCampaignResponse>, Status> {
        let bff::GetCampaignRequest { campaign_id } = request.into_inner();
        let order::GetCampaignResponse { campaign } = self
            .coupons
            .clone()
            .get_campaign(order::GetCampaignRequest { campaign_id })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GetCampaignResponse {
            campaign: Some(campaign_of(campaign, "GetCampaignResponse.campaign")?),
        }))
    }

    async fn claim_coupon(
        &self,
        request: Request<bff::ClaimCouponRequest>,
    ) -> Result<Response<bff::ClaimCouponResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::ClaimCouponRequest { campaign_id } = request.into_inner();
        let order::ClaimCouponResponse { user_coupon } = self
            .coupons
            .clone()
            .claim_coupon(as_buyer(&buyer, order::ClaimCouponRequest { campaign_id }))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ClaimCouponResponse {
            user_coupon: Some(user_coupon_of(
                user_coupon,
                "ClaimCouponResponse.user_coupon",
            )?),
        }))
    }

    async fn list_my_coupons(
        &self,
        request: Request<bff::ListMyCouponsRequest>,
    ) -> Result<Response<bff::ListMyCouponsResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::ListMyCouponsRequest {
            page_size,
            page_token,
            statuses,
        } = request.into_inner();
        let order::ListMyCouponsResponse {
            user_coupons,
            next_page_token,
        } = self
            .coupons
            .clone()
            .list_my_coupons(as_buyer(
                &buyer,
                order::ListMyCouponsRequest {
                    page_size,
                    page_token,
                    statuses,
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListMyCouponsResponse {
            user_coupons: user_coupons.into_iter().map(public_user_coupon).collect(),
            next_page_token,
        }))
    }
}
