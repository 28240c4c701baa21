//! How each [`Rpc`] is called through the BFF as a given caller, what it answers, and what it
//! must change in the data of the party it acts on.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use tonic::{Code, Request, Status};

use crate::support::with_token;
use crate::world::{
    HeldCoupon, Observer, OrderFacts, REGISTERED, SESSIONS, SIGNED_IN, Shop, Snapshot, World,
};
use crate::{Caller, Case, Clients, Party, Rpc};

/// What an RPC answered, reduced to what the checks compare.
#[derive(Debug)]
pub(crate) enum Reply {
    Account(bff::Account),
    Address(common::PostalAddress),
    Order(Box<bff::Order>),
    Orders(Vec<bff::Order>),
    UserCoupon(bff::UserCoupon),
    UserCoupons(Vec<bff::UserCoupon>),
    Coupon(bff::Coupon),
    Coupons(Vec<bff::Coupon>),
    Campaign(bff::CouponCampaign),
    Campaigns(Vec<bff::CouponCampaign>),
    Empty,
}

/// Calls `case.rpc` through the BFF with the caller's credentials.
pub(crate) async fn call(clients: &Clients, world: &World, case: &Case) -> Result<Reply, Status> {
    let party = case.caller.party();
    let access_token = party.map(|party| world.member(party).sessions[SIGNED_IN].access.clone());
    let token = access_token.as_deref();
    let own_refresh_token = || match party {
        Some(party) => world.member(party).sessions[REGISTERED].refresh.clone(),
        None => URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
    };
    let mut auth = clients.auth.clone();
    let mut accounts = clients.accounts.clone();
    let mut admin = clients.admin.clone();
    let mut orders = clients.orders.clone();
    let mut coupons = clients.coupons.clone();
    let observer = &clients.observer;
    let owner_id = world.member(Party::Owner).user_id.to_string();
    let owners_order = world.member(Party::Owner).order_id.clone();
    let order = |response: Option<bff::Order>| Reply::Order(Box::new(response.unwrap_or_default()));
    match case.rpc {
        Rpc::GetAccount => accounts
            .get_account(as_caller(bff::GetAccountRequest {}, token))
            .await
            .map(|response| Reply::Account(response.into_inner().account.unwrap_or_default())),
        Rpc::UpdateAccount => accounts
            .update_account(as_caller(
                bff::UpdateAccountRequest {
                    display_name: renamed(case.caller),
                    description: String::new(),
                    // No mask: every non-empty field, so only the display name.
                    update_mask: None,
                },
                token,
            ))
            .await
            .map(|response| Reply::Account(response.into_inner().account.unwrap_or_default())),
        Rpc::GetShippingAddress => accounts
            .get_shipping_address(as_caller(bff::GetShippingAddressRequest {}, token))
            .await
            .map(|response| {
                Reply::Address(response.into_inner().shipping_address.unwrap_or_default())
            }),
        Rpc::UpdateShippingAddress => accounts
            .update_shipping_address(as_caller(
                bff::UpdateShippingAddressRequest {
                    shipping_address: Some(address(&written_by(case.caller))),
                    update_mask: None,
                },
                token,
            ))
            .await
            .map(|response| {
                Reply::Address(response.into_inner().shipping_address.unwrap_or_default())
            }),
        Rpc::DeleteAccount => accounts
            .delete_account(as_caller(bff::DeleteAccountRequest {}, token))
            .await
            .map(|_| Reply::Empty),
        Rpc::Logout | Rpc::LogoutAllSessions => auth
            .logout(as_caller(
                bff::LogoutRequest {
                    refresh_token: own_refresh_token(),
                    all_sessions: case.rpc == Rpc::LogoutAllSessions,
                },
                token,
            ))
            .await
            .map(|_| Reply::Empty),
        Rpc::LogoutWithOwnersRefreshToken => auth
            .logout(as_caller(
                bff::LogoutRequest {
                    refresh_token: world.member(Party::Owner).sessions[REGISTERED]
                        .refresh
                        .clone(),
                    all_sessions: false,
                },
                token,
            ))
            .await
            .map(|_| Reply::Empty),
        Rpc::AdminGetUser => admin
            .get_user(as_caller(
                bff::GetUserRequest {
                    target_user_id: owner_id,
                },
                token,
            ))
            .await
            .map(|response| Reply::Account(response.into_inner().account.unwrap_or_default())),
        Rpc::AdminGrantSeller => admin
            .grant_role(as_caller(
                bff::GrantRoleRequest {
                    target_user_id: owner_id,
                    role: common::Role::Seller.into(),
                },
                token,
            ))
            .await
            .map(|response| Reply::Account(response.into_inner().account.unwrap_or_default())),
        Rpc::GetOrder => orders
            .get_order(as_caller(
                bff::GetOrderRequest {
                    order_id: owners_order,
                },
                token,
            ))
            .await
            .map(|response| order(response.into_inner().order)),
        Rpc::ListOrders => orders
            .list_orders(as_caller(bff::ListOrdersRequest::default(), token))
            .await
            .map(|response| Reply::Orders(response.into_inner().orders)),
        Rpc::CancelOrder => orders
            .cancel_order(as_caller(
                bff::CancelOrderRequest {
                    order_id: owners_order,
                },
                token,
            ))
            .await
            .map(|response| order(response.into_inner().order)),
        Rpc::WatchOrder => {
            let mut stream = orders
                .watch_order(as_caller(
                    bff::WatchOrderRequest {
                        order_id: owners_order,
                    },
                    token,
                ))
                .await?
                .into_inner();
            // The first message is the order as it is; dropping the stream ends the watch.
            let first = stream.message().await?;
            Ok(order(first.and_then(|message| message.order)))
        }
        Rpc::AdminLookupOrder => admin
            .lookup_order(as_caller(
                bff::LookupOrderRequest {
                    order_id: owners_order,
                },
                token,
            ))
            .await
            .map(|response| order(response.into_inner().order)),
        Rpc::AdminSearchOrders => admin
            .search_orders(as_caller(
                bff::SearchOrdersRequest {
                    target_user_id: owner_id,
                    ..bff::SearchOrdersRequest::default()
                },
                token,
            ))
            .await
            .map(|response| Reply::Orders(response.into_inner().orders)),
        Rpc::AdminCancelAnyOrder => admin
            .cancel_any_order(as_caller(
                bff::CancelAnyOrderRequest {
                    order_id: owners_order,
                },
                token,
            ))
            .await
            .map(|response| order(response.into_inner().order)),
        Rpc::CreateOrderToSavedAddress => orders
            .create_order(as_caller(
                bff::CreateOrderRequest {
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                    source: Some(bff::create_order_request::Source::ExplicitLines(
                        bff::ExplicitLines {
                            lines: vec![bff::OrderLineInput {
                                sku_id: observer.sku_id.clone(),
                                quantity: 1,
                            }],
                        },
                    )),
                    shipping_address: None,
                    payment_method: common::PaymentMethod::Sandbox.into(),
                    user_coupon_id: String::new(),
                    expected_total: None,
                },
                token,
            ))
            .await
            .map(|response| order(response.into_inner().order)),
        Rpc::ListCampaigns => coupons
            .list_campaigns(as_caller(
                bff::ListCampaignsRequest {
                    page_size: 100,
                    page_token: String::new(),
                },
                token,
            ))
            .await
            .map(|response| Reply::Campaigns(response.into_inner().campaigns)),
        Rpc::GetCampaign => coupons
            .get_campaign(as_caller(
                bff::GetCampaignRequest {
                    campaign_id: observer.campaign_id.clone(),
                },
                token,
            ))
            .await
            .map(|response| Reply::Campaign(response.into_inner().campaign.unwrap_or_default())),
        Rpc::ClaimCoupon => coupons
            .claim_coupon(as_caller(
                bff::ClaimCouponRequest {
                    campaign_id: observer.campaign_id.clone(),
                },
                token,
            ))
            .await
            .map(|response| {
                Reply::UserCoupon(response.into_inner().user_coupon.unwrap_or_default())
            }),
        Rpc::ListMyCoupons => coupons
            .list_my_coupons(as_caller(
                bff::ListMyCouponsRequest {
                    page_size: 100,
                    ..bff::ListMyCouponsRequest::default()
                },
                token,
            ))
            .await
            .map(|response| Reply::UserCoupons(response.into_inner().user_coupons)),
        Rpc::AdminCreateCoupon => admin
            .create_coupon(as_caller(
                bff::CreateCouponRequest {
                    coupon: Some(bff::Coupon {
                        name: format!("created by {:?}", case.caller),
                        kind: common::CouponKind::Percent.into(),
                        percent_off: 10,
                        validity_days: 7,
                        ..bff::Coupon::default()
                    }),
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                },
                token,
            ))
            .await
            .map(|response| Reply::Coupon(response.into_inner().coupon.unwrap_or_default())),
        Rpc::AdminListCoupons => admin
            .list_coupons(as_caller(
                bff::ListCouponsRequest {
                    page_size: 100,
                    page_token: String::new(),
                },
                token,
            ))
            .await
            .map(|response| Reply::Coupons(response.into_inner().coupons)),
        Rpc::AdminCreateCampaign => {
            let now = std::time::SystemTime::now();
            admin
                .create_campaign(as_caller(
                    bff::CreateCampaignRequest {
                        campaign: Some(bff::CouponCampaign {
                            coupon_id: observer.coupon_id.clone(),
                            name: format!("created by {:?}", case.caller),
                            start_time: Some(now.into()),
                            end_time: Some((now + std::time::Duration::from_secs(7_200)).into()),
                            total_quantity: 5,
                            ..bff::CouponCampaign::default()
                        }),
                        idempotency_key: uuid::Uuid::new_v4().to_string(),
                    },
                    token,
                ))
                .await
                .map(|response| Reply::Campaign(response.into_inner().campaign.unwrap_or_default()))
        }
        Rpc::AdminIssueCoupon => admin
            .issue_coupon(as_caller(
                bff::IssueCouponRequest {
                    coupon_id: observer.coupon_id.clone(),
                    target_user_id: owner_id,
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                },
                token,
            ))
            .await
            .map(|response| {
                Reply::UserCoupon(response.into_inner().user_coupon.unwrap_or_default())
            }),
    }
}

impl Rpc {
    /// What the data of the party the call acts on must look like afterwards. What a create
    /// made up (the new order's or coupon's id) is taken from its `reply`; the rest is what
    /// the table knows.
    pub(crate) fn effect(
        self,
        caller: Caller,
        before: &Snapshot,
        reply: Option<&Reply>,
        observer: &Observer,
    ) -> Snapshot {
        let mut after = before.clone();
        match self {
            Self::CreateOrderToSavedAddress => {
                let order_id = match reply {
                    Some(Reply::Order(order)) => order.order_id.clone(),
                    _ => String::new(),
                };
                // Shipped to the party's own saved address, whoever else's exists.
                if let Ok(saved) = &before.address {
                    after.orders.insert(
                        0,
                        OrderFacts::placed(&order_id, &observer.sku_id, saved.clone()),
                    );
                }
            }
            Self::ClaimCoupon | Self::AdminIssueCoupon => {
                let user_coupon_id = match reply {
                    Some(Reply::UserCoupon(held)) => held.user_coupon_id.clone(),
                    _ => String::new(),
                };
                after.coupons.push(HeldCoupon {
                    user_coupon_id,
                    coupon_id: observer.coupon_id.clone(),
                    campaign_id: if self == Self::ClaimCoupon {
                        observer.campaign_id.clone()
                    } else {
                        String::new()
                    },
                    status: common::UserCouponStatus::Available.into(),
                    order_id: String::new(),
                });
                after.coupons.sort();
            }
            Self::ListCampaigns
            | Self::GetCampaign
            | Self::ListMyCoupons
            | Self::AdminCreateCoupon
            | Self::AdminListCoupons
            | Self::AdminCreateCampaign => {}
            Self::GetAccount
            | Self::GetShippingAddress
            | Self::AdminGetUser
            | Self::GetOrder
            | Self::ListOrders
            | Self::WatchOrder
            | Self::AdminLookupOrder
            | Self::AdminSearchOrders => {}
            Self::CancelOrder => {
                cancelled(&mut after, common::OrderCancellationReason::UserRequested)
            }
            Self::AdminCancelAnyOrder => {
                cancelled(&mut after, common::OrderCancellationReason::AdminRequested);
            }
            Self::AdminGrantSeller => {
                if let Ok(profile) = &mut after.account {
                    profile.roles.push(common::Role::Seller.into());
                    profile.roles.sort_unstable();
                    profile.roles.dedup();
                }
            }
            Self::UpdateAccount => {
                if let Ok(profile) = &mut after.account {
                    profile.display_name = renamed(caller);
                }
            }
            Self::UpdateShippingAddress => {
                after.address = Ok(address(&written_by(caller)));
                if let Ok(profile) = &mut after.account {
                    profile.has_shipping_address = true;
                }
            }
            Self::DeleteAccount => {
                after.account = Err(Code::NotFound);
                after.address = Err(Code::NotFound);
                after.sessions = [false; SESSIONS];
            }
            Self::Logout | Self::LogoutWithOwnersRefreshToken => {
                after.sessions[REGISTERED] = false;
            }
            Self::LogoutAllSessions => after.sessions = [false; SESSIONS],
        }
        after
    }
}

impl Rpc {
    /// What the shop's coupons and campaigns must look like after a successful call.
    pub(crate) fn shop_effect(self, observer: &Observer, before: &Shop, reply: &Reply) -> Shop {
        let mut after = before.clone();
        match (self, reply) {
            (Self::ClaimCoupon, _) => {
                for campaign in &mut after.campaigns {
                    if campaign.campaign_id == observer.campaign_id {
                        campaign.remaining_quantity -= 1;
                    }
                }
            }
            (Self::AdminCreateCoupon, Reply::Coupon(coupon)) => {
                after
                    .coupons
                    .push((coupon.coupon_id.clone(), coupon.name.clone()));
                after.coupons.sort();
            }
            (Self::AdminCreateCampaign, Reply::Campaign(campaign)) => {
                after.campaigns.push(campaign.into());
                after.campaigns.sort();
            }
            _ => {}
        }
        after
    }
}

/// Every order of the party cancelled for `reason` (each party has one).
fn cancelled(after: &mut Snapshot, reason: common::OrderCancellationReason) {
    for order in &mut after.orders {
        order.status = common::OrderStatus::Cancelled.into();
        order.cancellation_reason = reason.into();
    }
}

fn renamed(caller: Caller) -> String {
    format!("renamed by {caller:?}")
}

fn written_by(caller: Caller) -> String {
    format!("written by {caller:?}")
}

/// A Japanese address already in normal form, so what is saved equals what is sent.
pub(crate) fn address(recipient: &str) -> common::PostalAddress {
    common::PostalAddress {
        recipient_name: recipient.to_owned(),
        recipient_name_kana: String::new(),
        country_code: "JP".to_owned(),
        postal_code: "150-0001".to_owned(),
        region: "東京都".to_owned(),
        locality: "渋谷区".to_owned(),
        address_line1: "神宮前1-2-3".to_owned(),
        address_line2: String::new(),
        phone_number: "09012345678".to_owned(),
    }
}

fn as_caller<T>(message: T, access_token: Option<&str>) -> Request<T> {
    match access_token {
        Some(token) => with_token(message, token),
        None => Request::new(message),
    }
}
