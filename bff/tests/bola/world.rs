//! The users of one case (registered through the BFF, one made an admin, each with an order and
//! a coupon of their own) and the shop's coupons and campaigns, and what all of it looks like,
//! read and seeded on the user and order services directly.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::order::v1 as order;
use mercato_proto::mercato::user::v1 as user;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use uuid::Uuid;

use crate::call::address;
use crate::support::SKU_PRICE;
use crate::{Clients, PARTIES, Party};

const PASSWORD: &str = "correct horse battery";
/// Every user has two sessions, so ending one session is told apart from ending all of them.
pub(crate) const SESSIONS: usize = 2;
/// The session started by registering; Logout cases end it.
pub(crate) const REGISTERED: usize = 0;
/// The session started by signing in again (after the admin grant, so the admin's access token
/// carries the role); its access token makes the calls.
pub(crate) const SIGNED_IN: usize = 1;

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) user_id: Uuid,
    pub(crate) sessions: [Session; SESSIONS],
    /// The one order this user placed.
    pub(crate) order_id: String,
}

/// The users of one case.
pub(crate) struct World {
    members: [Member; 3],
}

impl World {
    /// Registers the three users through the BFF, makes one of them an admin, signs each in a
    /// second time, saves a distinct shipping address for each, places an order for each and
    /// issues each a coupon.
    pub(crate) async fn create(clients: &Clients, name: &str) -> Self {
        let mut auth = clients.auth.clone();
        let mut members = Vec::new();
        for party in PARTIES {
            let email = format!("{party:?}-{}@example.com", Uuid::new_v4().simple()).to_lowercase();
            let registered = auth
                .register(bff::RegisterRequest {
                    email: email.clone(),
                    password: PASSWORD.to_owned(),
                    display_name: format!("{party:?}"),
                })
                .await
                .unwrap_or_else(|status| panic!("{name}: {party:?} registers: {status:?}"))
                .into_inner();
            let user_id = registered.account.expect("registered account").user_id;
            let user_id = Uuid::parse_str(&user_id).expect("user id is a uuid");
            if party == Party::Admin {
                clients.observer.grant_admin(user_id, name).await;
            }
            let signed_in = auth
                .login(bff::LoginRequest {
                    email,
                    password: PASSWORD.to_owned(),
                })
                .await
                .unwrap_or_else(|status| panic!("{name}: {party:?} signs in: {status:?}"))
                .into_inner();
            let session = |tokens: Option<bff::TokenPair>| {
                let tokens = tokens.expect("tokens");
                Session {
                    access: tokens.access_token,
                    refresh: tokens.refresh_token,
                }
            };
            let sessions = [session(registered.tokens), session(signed_in.tokens)];
            assert_eq!(
                token_roles(&sessions[SIGNED_IN].access).contains(&"admin".to_owned()),
                party == Party::Admin,
                "{name}: only the admin's access token carries the admin role"
            );
            clients
                .observer
                .save_address(user_id, &address(&format!("{party:?}'s own")), name)
                .await;
            let order_id = clients.observer.place_order(user_id, name).await;
            clients.observer.issue_coupon(user_id, name).await;
            members.push(Member {
                user_id,
                sessions,
                order_id,
            });
        }
        Self {
            members: members.try_into().expect("one member per party"),
        }
    }

    pub(crate) fn member(&self, party: Party) -> &Member {
        &self.members[party.index()]
    }
}

/// The roles claim of a JWT (read without verifying: the BFF does that).
fn token_roles(token: &str) -> Vec<String> {
    let payload = token.split('.').nth(1).expect("jwt payload");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url payload"))
            .expect("json claims");
    claims["roles"]
        .as_array()
        .expect("roles claim")
        .iter()
        .map(|role| role.as_str().expect("role name").to_owned())
        .collect()
}

/// The account fields a caller may see and change (timestamps left out: signing in moves them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    user_id: String,
    email: String,
    pub(crate) display_name: String,
    description: String,
    pub(crate) roles: Vec<i32>,
    pub(crate) has_shipping_address: bool,
}

impl From<&bff::Account> for Profile {
    fn from(account: &bff::Account) -> Self {
        Self {
            user_id: account.user_id.clone(),
            email: account.email.clone(),
            display_name: account.display_name.clone(),
            description: account.description.clone(),
            roles: account.roles.clone(),
            has_shipping_address: account.has_shipping_address,
        }
    }
}

impl From<&user::User> for Profile {
    fn from(user: &user::User) -> Self {
        Self {
            user_id: user.user_id.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            description: user.description.clone(),
            roles: user.roles.clone(),
            has_shipping_address: user.has_shipping_address,
        }
    }
}

/// The order fields a buyer may see and change (times left out: a change moves them; the
/// history is summed up by the state and the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderFacts {
    order_id: String,
    pub(crate) status: i32,
    pub(crate) cancellation_reason: i32,
    lines: Vec<(String, i64)>,
    total: Option<common::Money>,
    shipping_address: Option<common::PostalAddress>,
}

impl OrderFacts {
    /// A new PENDING order of one unit of `sku_id` shipped to `address`.
    pub(crate) fn placed(order_id: &str, sku_id: &str, address: common::PostalAddress) -> Self {
        Self {
            order_id: order_id.to_owned(),
            status: common::OrderStatus::Pending.into(),
            cancellation_reason: 0,
            lines: vec![(sku_id.to_owned(), 1)],
            total: Some(common::Money {
                currency_code: "JPY".to_owned(),
                amount_minor: SKU_PRICE,
            }),
            shipping_address: Some(address),
        }
    }
}

impl From<&bff::Order> for OrderFacts {
    fn from(order: &bff::Order) -> Self {
        Self {
            order_id: order.order_id.clone(),
            status: order.status,
            cancellation_reason: order.cancellation_reason,
            lines: order
                .lines
                .iter()
                .map(|line| (line.sku_id.clone(), line.quantity))
                .collect(),
            total: order.total.clone(),
            shipping_address: order.shipping_address.clone(),
        }
    }
}

impl From<&order::Order> for OrderFacts {
    fn from(order: &order::Order) -> Self {
        Self {
            order_id: order.order_id.clone(),
            status: order.status,
            cancellation_reason: order.cancellation_reason,
            lines: order
                .lines
                .iter()
                .map(|line| (line.sku_id.clone(), line.quantity))
                .collect(),
            total: order.total.clone(),
            shipping_address: order.shipping_address.clone(),
        }
    }
}

/// One user's data as the user and order services hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) account: Result<Profile, Code>,
    pub(crate) address: Result<common::PostalAddress, Code>,
    /// Whether each session can still be refreshed.
    pub(crate) sessions: [bool; SESSIONS],
    /// The user's orders, newest first.
    pub(crate) orders: Vec<OrderFacts>,
    /// The user's coupons, by id.
    pub(crate) coupons: Vec<HeldCoupon>,
}

/// What a holder may see of one of their coupons (times left out).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HeldCoupon {
    pub(crate) user_coupon_id: String,
    pub(crate) coupon_id: String,
    pub(crate) campaign_id: String,
    pub(crate) status: i32,
    pub(crate) order_id: String,
}

impl From<&bff::UserCoupon> for HeldCoupon {
    fn from(held: &bff::UserCoupon) -> Self {
        Self {
            user_coupon_id: held.user_coupon_id.clone(),
            coupon_id: held
                .coupon
                .as_ref()
                .map(|coupon| coupon.coupon_id.clone())
                .unwrap_or_default(),
            campaign_id: held.campaign_id.clone(),
            status: held.status,
            order_id: held.order_id.clone(),
        }
    }
}

impl From<&order::UserCoupon> for HeldCoupon {
    fn from(held: &order::UserCoupon) -> Self {
        Self {
            user_coupon_id: held.user_coupon_id.clone(),
            coupon_id: held
                .coupon
                .as_ref()
                .map(|coupon| coupon.coupon_id.clone())
                .unwrap_or_default(),
            campaign_id: held.campaign_id.clone(),
            status: held.status,
            order_id: held.order_id.clone(),
        }
    }
}

/// A campaign as the storefront sees it (times left out).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CampaignFacts {
    pub(crate) campaign_id: String,
    coupon_id: String,
    name: String,
    total_quantity: i64,
    pub(crate) remaining_quantity: i64,
}

impl From<&bff::CouponCampaign> for CampaignFacts {
    fn from(campaign: &bff::CouponCampaign) -> Self {
        Self {
            campaign_id: campaign.campaign_id.clone(),
            coupon_id: campaign.coupon_id.clone(),
            name: campaign.name.clone(),
            total_quantity: campaign.total_quantity,
            remaining_quantity: campaign.remaining_quantity,
        }
    }
}

impl From<&order::CouponCampaign> for CampaignFacts {
    fn from(campaign: &order::CouponCampaign) -> Self {
        Self {
            campaign_id: campaign.campaign_id.clone(),
            coupon_id: campaign.coupon_id.clone(),
            name: campaign.name.clone(),
            total_quantity: campaign.total_quantity,
            remaining_quantity: campaign.remaining_quantity,
        }
    }
}

/// The shop's coupon definitions (ids and names) and campaigns, each sorted by id. No user owns
/// them: only admins may change the definitions and campaigns, and a claim takes one coupon off
/// a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shop {
    pub(crate) coupons: Vec<(String, String)>,
    pub(crate) campaigns: Vec<CampaignFacts>,
}

/// Reads and seeds users' data on the user and order services directly, as the BFF would
/// forward it, so what a case observes does not depend on the BFF under test.
pub(crate) struct Observer {
    users: user::user_service_client::UserServiceClient<Channel>,
    auth: user::auth_service_client::AuthServiceClient<Channel>,
    orders: order::order_service_client::OrderServiceClient<Channel>,
    coupons: order::coupon_service_client::CouponServiceClient<Channel>,
    /// The SKU every seeded order buys.
    pub(crate) sku_id: String,
    /// The coupon every user is issued and the campaign claims come from (seeded once).
    pub(crate) coupon_id: String,
    pub(crate) campaign_id: String,
}

impl Observer {
    /// The observer, with the shared coupon and its campaign seeded as an internal admin would.
    pub(crate) async fn new(user_uri: &str, order_uri: &str, sku_id: String) -> Self {
        let channel = Channel::from_shared(user_uri.to_owned())
            .expect("user service uri")
            .connect_lazy();
        let order_channel = Channel::from_shared(order_uri.to_owned())
            .expect("order service uri")
            .connect_lazy();
        let mut coupons =
            order::coupon_service_client::CouponServiceClient::new(order_channel.clone());
        let coupon_id = coupons
            .create_coupon(as_internal_admin(order::CreateCouponRequest {
                coupon: Some(order::Coupon {
                    name: "BOLA coupon".to_owned(),
                    kind: common::CouponKind::Fixed.into(),
                    fixed_discount: Some(common::Money {
                        currency_code: "JPY".to_owned(),
                        amount_minor: 100,
                    }),
                    validity_days: 30,
                    ..order::Coupon::default()
                }),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .expect("the shared coupon is created")
            .into_inner()
            .coupon
            .expect("coupon")
            .coupon_id;
        let now = std::time::SystemTime::now();
        let campaign_id = coupons
            .create_campaign(as_internal_admin(order::CreateCampaignRequest {
                campaign: Some(order::CouponCampaign {
                    coupon_id: coupon_id.clone(),
                    name: "BOLA campaign".to_owned(),
                    start_time: Some((now - std::time::Duration::from_secs(60)).into()),
                    end_time: Some((now + std::time::Duration::from_secs(3_600)).into()),
                    // One claim per user per case: far more than the table needs.
                    total_quantity: 100_000,
                    ..order::CouponCampaign::default()
                }),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .expect("the shared campaign is created")
            .into_inner()
            .campaign
            .expect("campaign")
            .campaign_id;
        Self {
            users: user::user_service_client::UserServiceClient::new(channel.clone()),
            auth: user::auth_service_client::AuthServiceClient::new(channel),
            orders: order::order_service_client::OrderServiceClient::new(order_channel),
            coupons,
            sku_id,
            coupon_id,
            campaign_id,
        }
    }

    /// Issues the shared coupon to `user_id`.
    async fn issue_coupon(&self, user_id: Uuid, name: &str) {
        self.coupons
            .clone()
            .issue_coupon(as_internal_admin(order::IssueCouponRequest {
                coupon_id: self.coupon_id.clone(),
                user_id: user_id.to_string(),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .unwrap_or_else(|status| panic!("{name}: issuing a coupon: {status:?}"));
    }

    /// A user's coupons, by id.
    async fn coupons_of(&self, user_id: Uuid, name: &str) -> Vec<HeldCoupon> {
        let mut held: Vec<HeldCoupon> = self
            .coupons
            .clone()
            .list_my_coupons(as_user(
                order::ListMyCouponsRequest {
                    page_size: 100,
                    ..order::ListMyCouponsRequest::default()
                },
                user_id,
            ))
            .await
            .unwrap_or_else(|status| panic!("{name}: listing a user's coupons: {status:?}"))
            .into_inner()
            .user_coupons
            .iter()
            .map(HeldCoupon::from)
            .collect();
        held.sort();
        held
    }

    /// The shop's coupon definitions and campaigns (the table creates a handful: one page each).
    pub(crate) async fn shop(&self, name: &str) -> Shop {
        let mut coupons: Vec<(String, String)> = self
            .coupons
            .clone()
            .list_coupons(as_internal_admin(order::ListCouponsRequest {
                page_size: 100,
                page_token: String::new(),
            }))
            .await
            .unwrap_or_else(|status| panic!("{name}: listing coupons: {status:?}"))
            .into_inner()
            .coupons
            .into_iter()
            .map(|coupon| (coupon.coupon_id, coupon.name))
            .collect();
        coupons.sort();
        let mut campaigns: Vec<CampaignFacts> = self
            .coupons
            .clone()
            .list_campaigns(as_internal_admin(order::ListCampaignsRequest {
                page_size: 100,
                page_token: String::new(),
                include_ended: true,
            }))
            .await
            .unwrap_or_else(|status| panic!("{name}: listing campaigns: {status:?}"))
            .into_inner()
            .campaigns
            .iter()
            .map(CampaignFacts::from)
            .collect();
        campaigns.sort();
        Shop { coupons, campaigns }
    }

    /// Places one order of one unit for `user_id`; its id.
    async fn place_order(&self, user_id: Uuid, name: &str) -> String {
        self.orders
            .clone()
            .create_order(as_user(
                order::CreateOrderRequest {
                    idempotency_key: Uuid::new_v4().to_string(),
                    source: Some(order::create_order_request::Source::ExplicitLines(
                        order::ExplicitLines {
                            lines: vec![order::OrderLineInput {
                                sku_id: self.sku_id.clone(),
                                quantity: 1,
                            }],
                        },
                    )),
                    shipping_address: Some(address("Buyer")),
                    payment_method: common::PaymentMethod::Sandbox.into(),
                    user_coupon_id: String::new(),
                    expected_total: None,
                },
                user_id,
            ))
            .await
            .unwrap_or_else(|status| panic!("{name}: placing an order: {status:?}"))
            .into_inner()
            .order
            .expect("placed order")
            .order_id
    }

    /// A user's orders, newest first.
    async fn orders_of(&self, user_id: Uuid, name: &str) -> Vec<OrderFacts> {
        self.orders
            .clone()
            .list_orders(as_user(order::ListOrdersRequest::default(), user_id))
            .await
            .unwrap_or_else(|status| panic!("{name}: listing a user's orders: {status:?}"))
            .into_inner()
            .orders
            .iter()
            .map(OrderFacts::from)
            .collect()
    }

    /// Every party's data. Checking a session refreshes it (the only way to see whether it is
    /// alive), so the member keeps the rotated tokens.
    pub(crate) async fn snapshot(&self, world: &mut World, name: &str) -> [Snapshot; 3] {
        let mut snapshots = Vec::new();
        for member in &mut world.members {
            let account = self
                .users
                .clone()
                .get_current_user(as_user(user::GetCurrentUserRequest {}, member.user_id))
                .await
                .map(|response| Profile::from(&response.into_inner().user.unwrap_or_default()))
                .map_err(|status| expected_absence(status, name));
            let address = self
                .users
                .clone()
                .get_shipping_address(as_user(user::GetShippingAddressRequest {}, member.user_id))
                .await
                .map(|response| response.into_inner().shipping_address.unwrap_or_default())
                .map_err(|status| expected_absence(status, name));
            let mut sessions = [false; SESSIONS];
            for (alive, session) in sessions.iter_mut().zip(&mut member.sessions) {
                *alive = self.refresh(session, name).await;
            }
            let orders = self.orders_of(member.user_id, name).await;
            let coupons = self.coupons_of(member.user_id, name).await;
            snapshots.push(Snapshot {
                account,
                address,
                sessions,
                orders,
                coupons,
            });
        }
        snapshots.try_into().expect("one snapshot per party")
    }

    /// Refreshes `session` if it is alive, keeping the new tokens; whether it was.
    async fn refresh(&self, session: &mut Session, name: &str) -> bool {
        match self
            .auth
            .clone()
            .refresh_token(user::RefreshTokenRequest {
                refresh_token: session.refresh.clone(),
            })
            .await
        {
            Ok(response) => {
                let tokens = response.into_inner().tokens.expect("refreshed tokens");
                session.access = tokens.access_token;
                session.refresh = tokens.refresh_token;
                true
            }
            Err(status) if status.code() == Code::Unauthenticated => false,
            Err(status) => panic!("{name}: refreshing a session failed: {status:?}"),
        }
    }

    /// Grants the admin role as an internal admin would (GrantRole checks the forwarded
    /// principal's roles).
    async fn grant_admin(&self, user_id: Uuid, name: &str) {
        let mut request = Request::new(user::GrantRoleRequest {
            user_id: user_id.to_string(),
            role: common::Role::Admin as i32,
        });
        Principal::new(Uuid::new_v4(), [Role::Buyer, Role::Admin])
            .write_metadata(request.metadata_mut());
        self.users
            .clone()
            .grant_role(request)
            .await
            .unwrap_or_else(|status| panic!("{name}: granting the admin role: {status:?}"));
    }

    async fn save_address(&self, user_id: Uuid, address: &common::PostalAddress, name: &str) {
        let saved = self
            .users
            .clone()
            .update_shipping_address(as_user(
                user::UpdateShippingAddressRequest {
                    shipping_address: Some(address.clone()),
                    update_mask: None,
                },
                user_id,
            ))
            .await
            .unwrap_or_else(|status| panic!("{name}: saving an address: {status:?}"))
            .into_inner()
            .shipping_address;
        assert_eq!(
            saved.as_ref(),
            Some(address),
            "{name}: seed addresses are saved as sent"
        );
    }
}

/// A request acting for `user_id`, as the BFF forwards it.
fn as_user<T>(message: T, user_id: Uuid) -> Request<T> {
    let mut request = Request::new(message);
    Principal::new(user_id, [Role::Buyer]).write_metadata(request.metadata_mut());
    request
}

/// A request from an internal admin (a fresh one each time: admin idempotency keys are scoped to
/// their caller, and every key here is fresh anyway).
fn as_internal_admin<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    Principal::new(Uuid::new_v4(), [Role::Buyer, Role::Admin])
        .write_metadata(request.metadata_mut());
    request
}

/// The code of a read that found nothing (a deleted account, no saved address); anything else
/// means the observation itself failed.
fn expected_absence(status: Status, name: &str) -> Code {
    assert_eq!(
        status.code(),
        Code::NotFound,
        "{name}: reading a user's data failed: {status:?}"
    );
    status.code()
}
