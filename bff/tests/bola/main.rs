//! BOLA (broken object-level authorization) through the BFF, table-driven: every public RPC that
//! touches user-owned data, called by the owner, another user, an anonymous caller and an admin,
//! against the real user, product and order services. Each case gets fresh users, each with an
//! order and a coupon of their own; what every user's data looks like, and the shop's coupon
//! definitions and campaigns, are read straight from the user and order services before and
//! after the call, so a case passes only if the call touched exactly the data it should have and
//! nothing else.
//!
//! Later RPCs that touch user-owned data (carts, orders, wallets, ...) extend [`CASES`] with a
//! row per caller, plus an [`Rpc`] variant saying how to call it and what it changes.

#[path = "../support/mod.rs"]
mod support;

mod call;
mod world;

use mercato_proto::mercato::bff::v1 as bff;
use support::{Services, reason, seed_sku};
use tonic::Code;
use tonic::transport::Channel;

use Caller::{Admin, Anonymous, OtherUser, Owner};
use Expected::{ActsOn, OnShop, Refused};
use call::{Reply, call};
use world::{CampaignFacts, HeldCoupon, Observer, OrderFacts, Profile, Shop, World};

/// An RPC under test, with the arguments the table gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    /// `AccountService/GetAccount`.
    GetAccount,
    /// `AccountService/UpdateAccount`, renaming the account.
    UpdateAccount,
    /// `AccountService/GetShippingAddress`.
    GetShippingAddress,
    /// `AccountService/UpdateShippingAddress`, replacing the whole address.
    UpdateShippingAddress,
    /// `AccountService/DeleteAccount`.
    DeleteAccount,
    /// `AuthService/Logout` with the caller's own refresh token (an anonymous caller has none and
    /// sends a made-up one).
    Logout,
    /// `AuthService/Logout` with the caller's own refresh token and `all_sessions` set.
    LogoutAllSessions,
    /// `AuthService/Logout` presenting the owner's refresh token, whatever access token the
    /// caller attaches. The refresh token is Logout's credential: whoever holds it ends that
    /// session (and could as well refresh it), so the owner's session ends and the caller's own
    /// sessions must not.
    LogoutWithOwnersRefreshToken,
    /// `AdminService/GetUser` naming the owner as `target_user_id`.
    AdminGetUser,
    /// `AdminService/GrantRole` giving the owner the seller role.
    AdminGrantSeller,
    /// `OrderService/GetOrder` naming the owner's order.
    GetOrder,
    /// `OrderService/ListOrders` (no filters).
    ListOrders,
    /// `OrderService/CancelOrder` naming the owner's order.
    CancelOrder,
    /// `OrderService/WatchOrder` naming the owner's order: its first message, then the stream
    /// is dropped.
    WatchOrder,
    /// `AdminService/LookupOrder` naming the owner's order.
    AdminLookupOrder,
    /// `AdminService/SearchOrders` naming the owner as `target_user_id`.
    AdminSearchOrders,
    /// `AdminService/CancelAnyOrder` naming the owner's order.
    AdminCancelAnyOrder,
    /// `OrderService/CreateOrder` without a shipping address: it ships to the caller's saved
    /// one.
    CreateOrderToSavedAddress,
    /// `CouponService/ListCampaigns` (public).
    ListCampaigns,
    /// `CouponService/GetCampaign` naming the shared campaign (public).
    GetCampaign,
    /// `CouponService/ClaimCoupon` from the shared campaign.
    ClaimCoupon,
    /// `CouponService/ListMyCoupons` (no filters).
    ListMyCoupons,
    /// `AdminService/CreateCoupon` of a new definition.
    AdminCreateCoupon,
    /// `AdminService/ListCoupons`.
    AdminListCoupons,
    /// `AdminService/CreateCampaign` for the shared coupon.
    AdminCreateCampaign,
    /// `AdminService/IssueCoupon` giving the owner the shared coupon.
    AdminIssueCoupon,
}

/// Who makes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// The user whose data the scenario is about.
    Owner,
    /// Another registered buyer.
    OtherUser,
    /// No access token.
    Anonymous,
    /// A user holding the admin role (granted, then signed in again so the token carries it).
    Admin,
}

impl Caller {
    /// The caller's own account, if it has one.
    fn party(self) -> Option<Party> {
        match self {
            Self::Owner => Some(Party::Owner),
            Self::OtherUser => Some(Party::OtherUser),
            Self::Admin => Some(Party::Admin),
            Self::Anonymous => None,
        }
    }
}

/// A user that exists in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Owner,
    OtherUser,
    Admin,
}

const PARTIES: [Party; 3] = [Party::Owner, Party::OtherUser, Party::Admin];

impl Party {
    fn index(self) -> usize {
        match self {
            Self::Owner => 0,
            Self::OtherUser => 1,
            Self::Admin => 2,
        }
    }
}

/// What a case must observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// The call succeeds, reads or changes this party's data, and leaves everyone else's alone.
    ActsOn(Party),
    /// The call fails with this code and `ErrorInfo` reason, and changes nothing.
    Refused(Code, &'static str),
    /// The call succeeds, reads or changes only the shop's coupon definitions and campaigns,
    /// and leaves every user's data alone.
    OnShop,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
struct Case {
    rpc: Rpc,
    caller: Caller,
    expected: Expected,
}

impl Case {
    fn name(&self) -> String {
        format!("{:?} as {:?}", self.rpc, self.caller)
    }
}

const fn case(rpc: Rpc, caller: Caller, expected: Expected) -> Case {
    Case {
        rpc,
        caller,
        expected,
    }
}

/// No request names a user: identity comes only from the access token, so every authenticated
/// caller reaches its own data and nobody else's. That includes admins: these RPCs are
/// owner-scoped, and an admin acts on another user only through AdminService, whose requests
/// name the target explicitly and which nobody but an admin may call (its rows close each
/// group). An order id names a resource but not whose it is: someone else's order is NOT_FOUND,
/// exactly like one that does not exist, for an admin using the buyer's API too.
const CASES: &[Case] = &[
    case(Rpc::GetAccount, Owner, ActsOn(Party::Owner)),
    case(Rpc::GetAccount, OtherUser, ActsOn(Party::OtherUser)),
    case(
        Rpc::GetAccount,
        Anonymous,
        Refused(Code::Unauthenticated, "TOKEN_MISSING"),
    ),
    case(Rpc::GetAccount, Admin, ActsOn(Party::Admin)),
    case(Rpc::UpdateAccount, Owner, ActsOn(Party::Owner)),
    case(Rpc::UpdateAccount, OtherUser, ActsOn(Party::OtherUser)),
    case(
        Rpc::UpdateAccount,
        Anonymous,
        Refused(Code::Unauthenticated, "TOKEN_MISSING"),
    ),
    case(Rpc::UpdateAccount, Admin, ActsOn(Party::Admin)),
    case(Rpc::GetShippingAddress, Owner, ActsOn(Party::Owner)),
    case(Rpc::GetShippingAddress, OtherUser, ActsOn(Party::OtherUser)),
    case(
        Rpc::GetShippingAddress,
        Anonymous,
        Refused(Code::Unauthenticated, "TOKEN_MISSING"),
    ),
    case(Rpc::GetShippingAddress, Admin, ActsOn(Party::Admin)),
    case(Rpc::UpdateShippingAddress, Owner, ActsOn(Party::Owner)),
    case(
        Rpc::UpdateShippingAddress,
        OtherUser,
        ActsOn(Party::OtherUser),
    ),
    case(
        Rpc::UpdateShippingAddress,
        Anonymous,
        Refused(Code::Unauthenticated, "TOKEN_MISSING"),
    ),
    case(Rpc::UpdateShippingAddress, Admin, ActsOn(Party::Admin)),
    case(Rpc::DeleteAccount, Owner, ActsOn(Party::Owner)),
    case(Rpc::DeleteAccount, OtherUser, ActsOn(Party::OtherUser)),
    case(
        Rpc::DeleteAccount,
        Anonymous,
        Refused(Code::Unauthenticated, "TOKEN_MISSING"),
    ),
    case(Rpc::DeleteAccount, Admin, ActsOn(Party::Admin)),
    case(Rpc::Logout, Owner, ActsOn(Party::Owner)),
    case(Rpc::Logout, OtherUser, ActsOn(Party::OtherUser)),
    case(
        Rpc::Logout,
        Anonymous,
        Refused(Code::Unauthenticated, "REFRESH_TOKEN_INVALID"),
    ),
    case(Rpc::Logout, Admin, ActsOn(Party::Admin)),
    case(Rpc::LogoutAllSessions, Owner, ActsOn(Party::Owner)),
    case(Rpc::LogoutAllSessions, OtherUser, ActsOn(Party::OtherUser)),
    case(
        Rpc::LogoutAllSessions,
        Anonymous,
        Refused(Code::Unauthenticated, "REFRESH_TOKEN_INVALID"),
    ),
    case(Rpc::LogoutAllSessions, Admin, ActsOn(Party::Admin)),
    case(
        Rpc::LogoutWithOwnersRefreshToken,
        Owner,
        ActsOn(Party::Owner),
    ),
    case(
        Rpc::LogoutWithOwnersRefreshToken,
        OtherUser,
        ActsOn(Party::Owner),
    ),
    case(
        Rpc::LogoutWithOwnersRefreshToken,
        Anonymous,
        ActsOn(Party::Owner),
    ),
    case(
        Rpc::LogoutWithOwnersRefreshToken,
        Admin,
        ActsOn(Party::Owner),
    ),
    case(
        Rpc::AdminGetUser,
        Owner,
        Refused(Code::PermissionDenied, "ROLE_REQUIRED"),
    ),
    case(
        Rpc::AdminGetUser,
        OtherUser,
        Refused(Code::PermissionDenied, "ROLE_REQUIRED"),
    ),
    case(
        Rpc::AdminGetUser,
        Anonymous,
        Refused(Code::Unauthenticated, "TOKEN_MISSING"),
    ),
    case(Rpc::AdminGetUser, Admin, ActsOn(Party::Owner)),
    case(
        Rpc::AdminGrantSeller,
        Owner,
        Refused(Code::PermissionDenied, "ROLE_REQUIRED"),
    ),
    case(
        Rpc::AdminGrantSeller,
        OtherUser,
        Refused(Code::PermissionDenied, "ROLE_REQUIRED"),
    ),
    case(
        Rpc::AdminGrantSeller,
        Anonymous,
        Refused(Code::Unauthenticated, "TOKEN_MISSING"),
    ),
    case(Rpc::AdminGrantSeller, Admin, ActsOn(Party::Owner)),
    case(Rpc::GetOrder, Owner, ActsOn(Party::Owner)),
    case(Rpc::GetOrder, OtherUser, NOT_THEIRS),
    case(Rpc::GetOrder, Anonymous, NO_TOKEN),
    case(Rpc::GetOrder, Admin, NOT_THEIRS),
    case(Rpc::ListOrders, Owner, ActsOn(Party::Owner)),
    case(Rpc::ListOrders, OtherUser, ActsOn(Party::OtherUser)),
    case(Rpc::ListOrders, Anonymous, NO_TOKEN),
    case(Rpc::ListOrders, Admin, ActsOn(Party::Admin)),
    case(Rpc::CancelOrder, Owner, ActsOn(Party::Owner)),
    case(Rpc::CancelOrder, OtherUser, NOT_THEIRS),
    case(Rpc::CancelOrder, Anonymous, NO_TOKEN),
    case(Rpc::CancelOrder, Admin, NOT_THEIRS),
    case(Rpc::WatchOrder, Owner, ActsOn(Party::Owner)),
    case(Rpc::WatchOrder, OtherUser, NOT_THEIRS),
    case(Rpc::WatchOrder, Anonymous, NO_TOKEN),
    case(Rpc::WatchOrder, Admin, NOT_THEIRS),
    case(Rpc::AdminLookupOrder, Owner, NO_ROLE),
    case(Rpc::AdminLookupOrder, OtherUser, NO_ROLE),
    case(Rpc::AdminLookupOrder, Anonymous, NO_TOKEN),
    case(Rpc::AdminLookupOrder, Admin, ActsOn(Party::Owner)),
    case(Rpc::AdminSearchOrders, Owner, NO_ROLE),
    case(Rpc::AdminSearchOrders, OtherUser, NO_ROLE),
    case(Rpc::AdminSearchOrders, Anonymous, NO_TOKEN),
    case(Rpc::AdminSearchOrders, Admin, ActsOn(Party::Owner)),
    case(Rpc::AdminCancelAnyOrder, Owner, NO_ROLE),
    case(Rpc::AdminCancelAnyOrder, OtherUser, NO_ROLE),
    case(Rpc::AdminCancelAnyOrder, Anonymous, NO_TOKEN),
    case(Rpc::AdminCancelAnyOrder, Admin, ActsOn(Party::Owner)),
    // The saved address filled in is the caller's own, whoever calls.
    case(Rpc::CreateOrderToSavedAddress, Owner, ActsOn(Party::Owner)),
    case(
        Rpc::CreateOrderToSavedAddress,
        OtherUser,
        ActsOn(Party::OtherUser),
    ),
    case(Rpc::CreateOrderToSavedAddress, Anonymous, NO_TOKEN),
    case(Rpc::CreateOrderToSavedAddress, Admin, ActsOn(Party::Admin)),
    // Campaigns belong to no user: public reads, the same for everyone.
    case(Rpc::ListCampaigns, Owner, OnShop),
    case(Rpc::ListCampaigns, OtherUser, OnShop),
    case(Rpc::ListCampaigns, Anonymous, OnShop),
    case(Rpc::ListCampaigns, Admin, OnShop),
    case(Rpc::GetCampaign, Owner, OnShop),
    case(Rpc::GetCampaign, OtherUser, OnShop),
    case(Rpc::GetCampaign, Anonymous, OnShop),
    case(Rpc::GetCampaign, Admin, OnShop),
    // A claim is the caller's (and takes one off the campaign).
    case(Rpc::ClaimCoupon, Owner, ActsOn(Party::Owner)),
    case(Rpc::ClaimCoupon, OtherUser, ActsOn(Party::OtherUser)),
    case(Rpc::ClaimCoupon, Anonymous, NO_TOKEN),
    case(Rpc::ClaimCoupon, Admin, ActsOn(Party::Admin)),
    case(Rpc::ListMyCoupons, Owner, ActsOn(Party::Owner)),
    case(Rpc::ListMyCoupons, OtherUser, ActsOn(Party::OtherUser)),
    case(Rpc::ListMyCoupons, Anonymous, NO_TOKEN),
    case(Rpc::ListMyCoupons, Admin, ActsOn(Party::Admin)),
    case(Rpc::AdminCreateCoupon, Owner, NO_ROLE),
    case(Rpc::AdminCreateCoupon, OtherUser, NO_ROLE),
    case(Rpc::AdminCreateCoupon, Anonymous, NO_TOKEN),
    case(Rpc::AdminCreateCoupon, Admin, OnShop),
    case(Rpc::AdminListCoupons, Owner, NO_ROLE),
    case(Rpc::AdminListCoupons, OtherUser, NO_ROLE),
    case(Rpc::AdminListCoupons, Anonymous, NO_TOKEN),
    case(Rpc::AdminListCoupons, Admin, OnShop),
    case(Rpc::AdminCreateCampaign, Owner, NO_ROLE),
    case(Rpc::AdminCreateCampaign, OtherUser, NO_ROLE),
    case(Rpc::AdminCreateCampaign, Anonymous, NO_TOKEN),
    case(Rpc::AdminCreateCampaign, Admin, OnShop),
    case(Rpc::AdminIssueCoupon, Owner, NO_ROLE),
    case(Rpc::AdminIssueCoupon, OtherUser, NO_ROLE),
    case(Rpc::AdminIssueCoupon, Anonymous, NO_TOKEN),
    case(Rpc::AdminIssueCoupon, Admin, ActsOn(Party::Owner)),
];

/// Another user's order, to anyone but its buyer.
const NOT_THEIRS: Expected = Refused(Code::NotFound, "RESOURCE_NOT_FOUND");
/// An admin RPC called without the role.
const NO_ROLE: Expected = Refused(Code::PermissionDenied, "ROLE_REQUIRED");
/// No access token.
const NO_TOKEN: Expected = Refused(Code::Unauthenticated, "TOKEN_MISSING");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_reaches_only_its_own_data_through_the_bff() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    // Every case orders one unit per user: stock for far more cases than the table has.
    let sku_id = seed_sku(&services.products.grpc_uri(), 1_000).await;
    let clients = Clients {
        auth: bff::auth_service_client::AuthServiceClient::new(channel.clone()),
        accounts: bff::account_service_client::AccountServiceClient::new(channel.clone()),
        orders: bff::order_service_client::OrderServiceClient::new(channel.clone()),
        coupons: bff::coupon_service_client::CouponServiceClient::new(channel.clone()),
        admin: bff::admin_service_client::AdminServiceClient::new(channel),
        observer: Observer::new(&services.users.grpc_uri(), &services.order_uri(), sku_id).await,
    };

    let mut failures = Vec::new();
    for case in CASES {
        failures.extend(run(&clients, case).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {} BOLA cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );

    drop(bff);
    services.stop().await;
}

struct Clients {
    auth: bff::auth_service_client::AuthServiceClient<Channel>,
    accounts: bff::account_service_client::AccountServiceClient<Channel>,
    orders: bff::order_service_client::OrderServiceClient<Channel>,
    coupons: bff::coupon_service_client::CouponServiceClient<Channel>,
    admin: bff::admin_service_client::AdminServiceClient<Channel>,
    observer: Observer,
}

/// Runs one case on fresh users; returns what went wrong, each line naming the case.
async fn run(clients: &Clients, case: &Case) -> Vec<String> {
    let name = case.name();
    let mut world = World::create(clients, &name).await;
    let before = clients.observer.snapshot(&mut world, &name).await;
    let shop_before = clients.observer.shop(&name).await;
    let outcome = call(clients, &world, case).await;
    let after = clients.observer.snapshot(&mut world, &name).await;
    let shop_after = clients.observer.shop(&name).await;

    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{name}: {what}"));
        }
    };
    match case.expected {
        Refused(code, expected_reason) => {
            match &outcome {
                Ok(reply) => expect(false, format!("expected {code:?}, got {reply:?}")),
                Err(status) => expect(
                    status.code() == code && reason(status) == expected_reason,
                    format!(
                        "expected {code:?} / {expected_reason}, got {:?} / {} ({})",
                        status.code(),
                        reason(status),
                        status.message()
                    ),
                ),
            }
            for party in PARTIES {
                let (was, is) = (&before[party.index()], &after[party.index()]);
                expect(
                    was == is,
                    format!("a refused call changed {party:?}'s data: {was:?} became {is:?}"),
                );
            }
            expect(
                shop_before == shop_after,
                format!("a refused call changed the shop: {shop_before:?} became {shop_after:?}"),
            );
        }
        OnShop => {
            match &outcome {
                Err(status) => expect(
                    false,
                    format!(
                        "expected success, got {:?} / {} ({})",
                        status.code(),
                        reason(status),
                        status.message()
                    ),
                ),
                Ok(reply) => {
                    let wanted = case.rpc.shop_effect(&clients.observer, &shop_before, reply);
                    expect(
                        shop_after == wanted,
                        format!("the shop should be {wanted:?}, is {shop_after:?}"),
                    );
                    expect_shop_reply(&mut expect, case, reply, &shop_before, &shop_after);
                }
            }
            for party in PARTIES {
                let (was, is) = (&before[party.index()], &after[party.index()]);
                expect(
                    was == is,
                    format!("a call on the shop changed {party:?}'s data: {was:?} became {is:?}"),
                );
            }
        }
        ActsOn(target) => {
            let target_before = &before[target.index()];
            let target_after = &after[target.index()];
            let wanted = case.rpc.effect(
                case.caller,
                target_before,
                outcome.as_ref().ok(),
                &clients.observer,
            );
            if let Ok(reply) = &outcome {
                let shop_wanted = case.rpc.shop_effect(&clients.observer, &shop_before, reply);
                expect(
                    shop_after == shop_wanted,
                    format!("the shop should be {shop_wanted:?}, is {shop_after:?}"),
                );
            }
            expect(
                *target_after == wanted,
                format!("{target:?}'s data should be {wanted:?}, is {target_after:?}"),
            );
            match outcome {
                Err(status) => expect(
                    false,
                    format!(
                        "expected success, got {:?} / {} ({})",
                        status.code(),
                        reason(&status),
                        status.message()
                    ),
                ),
                // Reads answer with the target's data as it was, writes with what it became.
                Ok(Reply::Account(account)) => {
                    let seen = if matches!(case.rpc, Rpc::GetAccount | Rpc::AdminGetUser) {
                        &target_before.account
                    } else {
                        &target_after.account
                    };
                    expect(
                        Ok(Profile::from(&account)) == *seen,
                        format!("answered {account:?}, {target:?}'s account is {seen:?}"),
                    );
                }
                Ok(Reply::Address(address)) => {
                    let seen = if case.rpc == Rpc::GetShippingAddress {
                        &target_before.address
                    } else {
                        &target_after.address
                    };
                    expect(
                        Ok(&address) == seen.as_ref(),
                        format!("answered {address:?}, {target:?}'s address is {seen:?}"),
                    );
                }
                Ok(Reply::Order(order)) => {
                    let answered = OrderFacts::from(order.as_ref());
                    if case.rpc == Rpc::CreateOrderToSavedAddress {
                        // The new order comes first; the one the party had stays.
                        expect(
                            target_after.orders.first() == Some(&answered),
                            format!(
                                "answered {answered:?}, {target:?}'s orders are {:?}",
                                target_after.orders
                            ),
                        );
                    } else {
                        let seen =
                            if matches!(case.rpc, Rpc::CancelOrder | Rpc::AdminCancelAnyOrder) {
                                &target_after.orders
                            } else {
                                &target_before.orders
                            };
                        expect(
                            seen.as_slice() == [answered.clone()],
                            format!("answered {answered:?}, {target:?}'s orders are {seen:?}"),
                        );
                    }
                    expect_buyer(&mut expect, case, world.member(target), &[*order]);
                }
                Ok(Reply::Orders(orders)) => {
                    let answered: Vec<OrderFacts> = orders.iter().map(OrderFacts::from).collect();
                    expect(
                        answered == target_before.orders,
                        format!(
                            "answered {answered:?}, {target:?}'s orders are {:?}",
                            target_before.orders
                        ),
                    );
                    expect_buyer(&mut expect, case, world.member(target), &orders);
                }
                Ok(Reply::UserCoupon(held)) => {
                    let answered = HeldCoupon::from(&held);
                    expect(
                        target_after.coupons.contains(&answered)
                            && !target_before.coupons.contains(&answered),
                        format!(
                            "answered {answered:?}, {target:?}'s coupons went from {:?} to {:?}",
                            target_before.coupons, target_after.coupons
                        ),
                    );
                }
                Ok(Reply::UserCoupons(held)) => {
                    let mut answered: Vec<HeldCoupon> = held.iter().map(HeldCoupon::from).collect();
                    answered.sort();
                    expect(
                        answered == target_before.coupons,
                        format!(
                            "answered {answered:?}, {target:?}'s coupons are {:?}",
                            target_before.coupons
                        ),
                    );
                }
                Ok(
                    reply @ (Reply::Coupon(_)
                    | Reply::Coupons(_)
                    | Reply::Campaign(_)
                    | Reply::Campaigns(_)),
                ) => expect(false, format!("a call on a user answered {reply:?}")),
                Ok(Reply::Empty) => {}
            }
            for party in PARTIES.into_iter().filter(|party| *party != target) {
                let (was, is) = (&before[party.index()], &after[party.index()]);
                expect(
                    was == is,
                    format!(
                        "a call acting on {target:?} changed {party:?}'s data: {was:?} became {is:?}"
                    ),
                );
            }
        }
    }
    problems
}

/// What a call on the shop answered must be the shop as it was (reads) or now is (creates).
fn expect_shop_reply(
    expect: &mut impl FnMut(bool, String),
    case: &Case,
    reply: &Reply,
    before: &Shop,
    after: &Shop,
) {
    match reply {
        Reply::Campaigns(campaigns) => {
            let mut answered: Vec<CampaignFacts> =
                campaigns.iter().map(CampaignFacts::from).collect();
            answered.sort();
            expect(
                answered == before.campaigns,
                format!(
                    "answered {answered:?}, the campaigns are {:?}",
                    before.campaigns
                ),
            );
        }
        Reply::Campaign(campaign) => {
            let answered = CampaignFacts::from(campaign);
            let shop = if case.rpc == Rpc::AdminCreateCampaign {
                after
            } else {
                before
            };
            expect(
                shop.campaigns.contains(&answered),
                format!(
                    "answered {answered:?}, the campaigns are {:?}",
                    shop.campaigns
                ),
            );
        }
        Reply::Coupons(coupons) => {
            let mut answered: Vec<(String, String)> = coupons
                .iter()
                .map(|coupon| (coupon.coupon_id.clone(), coupon.name.clone()))
                .collect();
            answered.sort();
            expect(
                answered == before.coupons,
                format!(
                    "answered {answered:?}, the coupons are {:?}",
                    before.coupons
                ),
            );
        }
        Reply::Coupon(coupon) => {
            let answered = (coupon.coupon_id.clone(), coupon.name.clone());
            expect(
                after.coupons.contains(&answered),
                format!("answered {answered:?}, the coupons are {:?}", after.coupons),
            );
        }
        other @ (Reply::Account(_)
        | Reply::Address(_)
        | Reply::Order(_)
        | Reply::Orders(_)
        | Reply::UserCoupon(_)
        | Reply::UserCoupons(_)
        | Reply::Empty) => expect(false, format!("a call on the shop answered {other:?}")),
    }
}

/// Admin views name the buyer of each order; the buyer's own views name nobody.
fn expect_buyer(
    expect: &mut impl FnMut(bool, String),
    case: &Case,
    target: &world::Member,
    orders: &[bff::Order],
) {
    let admin_view = matches!(
        case.rpc,
        Rpc::AdminLookupOrder | Rpc::AdminSearchOrders | Rpc::AdminCancelAnyOrder
    );
    let wanted = if admin_view {
        target.user_id.to_string()
    } else {
        String::new()
    };
    for order in orders {
        expect(
            order.buyer_user_id == wanted,
            format!(
                "order {} names buyer {:?}, expected {wanted:?}",
                order.order_id, order.buyer_user_id
            ),
        );
    }
}
