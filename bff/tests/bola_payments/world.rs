//! The users of one case (registered through the BFF, one made an admin), each with a charged
//! wallet and an order paid from it and that order's shipment, and what their wallets,
//! payments, orders and shipments look like, seeded and read on the order, payment and process
//! services directly, as the BFF would forward the caller (shipments as an operator).

use std::time::Duration;

use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::order::v1 as order;
use mercato_proto::mercato::payment::v1 as payment;
use mercato_proto::mercato::process::v1 as process;
use mercato_proto::mercato::user::v1 as user;
use tonic::Request;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::support::shipping_address;
use crate::{PARTIES, Party};

const PASSWORD: &str = "correct horse battery";
/// What every user charges before the case.
pub(crate) const SEED_CHARGE: i64 = 5_000;
/// How long seeding waits for an order to be paid.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) user_id: Uuid,
    pub(crate) access_token: String,
    /// The one order this user paid with points.
    pub(crate) order_id: String,
    /// Its payment.
    pub(crate) payment_id: String,
    /// Its shipment (PREPARING: the manual carrier leaves it to an operator).
    pub(crate) shipment_id: String,
}

/// The users of one case.
pub(crate) struct World {
    members: [Member; 3],
}

impl World {
    pub(crate) fn member(&self, party: Party) -> &Member {
        &self.members[party.index()]
    }
}

/// A ledger entry as its owner may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryFacts {
    pub(crate) entry_id: String,
    pub(crate) kind: i32,
    pub(crate) amount: i64,
    pub(crate) balance_after: i64,
    pub(crate) order_id: String,
}

impl From<&payment::LedgerEntry> for EntryFacts {
    fn from(entry: &payment::LedgerEntry) -> Self {
        Self {
            entry_id: entry.entry_id.clone(),
            kind: entry.kind,
            amount: minor(entry.amount.as_ref()),
            balance_after: minor(entry.balance_after.as_ref()),
            order_id: entry.order_id.clone(),
        }
    }
}

impl From<&bff::LedgerEntry> for EntryFacts {
    fn from(entry: &bff::LedgerEntry) -> Self {
        Self {
            entry_id: entry.entry_id.clone(),
            kind: entry.kind,
            amount: minor(entry.amount.as_ref()),
            balance_after: minor(entry.balance_after.as_ref()),
            order_id: entry.order_id.clone(),
        }
    }
}

/// A payment as its payer may see it (times left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaymentFacts {
    pub(crate) payment_id: String,
    pub(crate) order_id: String,
    pub(crate) method: i32,
    pub(crate) status: i32,
    pub(crate) amount: i64,
    pub(crate) refunded_amount: i64,
    pub(crate) payment_url: String,
}

impl From<&payment::Payment> for PaymentFacts {
    fn from(found: &payment::Payment) -> Self {
        Self {
            payment_id: found.payment_id.clone(),
            order_id: found.order_id.clone(),
            method: found.method,
            status: found.status,
            amount: minor(found.amount.as_ref()),
            refunded_amount: minor(found.refunded_amount.as_ref()),
            payment_url: found.payment_url.clone(),
        }
    }
}

impl From<&bff::Payment> for PaymentFacts {
    fn from(found: &bff::Payment) -> Self {
        Self {
            payment_id: found.payment_id.clone(),
            order_id: found.order_id.clone(),
            method: found.method,
            status: found.status,
            amount: minor(found.amount.as_ref()),
            refunded_amount: minor(found.refunded_amount.as_ref()),
            payment_url: found.payment_url.clone(),
        }
    }
}

fn minor(money: Option<&common::Money>) -> i64 {
    let money = money.expect("every amount is set");
    assert_eq!(money.currency_code, "JPY", "points are yen");
    money.amount_minor
}

/// A shipment as the admin console may see it (times left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShipmentFacts {
    pub(crate) shipment_id: String,
    pub(crate) order_id: String,
    pub(crate) status: i32,
    pub(crate) carrier: String,
    pub(crate) tracking_number: String,
}

impl From<&process::Shipment> for ShipmentFacts {
    fn from(found: &process::Shipment) -> Self {
        Self {
            shipment_id: found.shipment_id.clone(),
            order_id: found.order_id.clone(),
            status: found.status,
            carrier: found.carrier.clone(),
            tracking_number: found.tracking_number.clone(),
        }
    }
}

impl From<&bff::Shipment> for ShipmentFacts {
    fn from(found: &bff::Shipment) -> Self {
        Self {
            shipment_id: found.shipment_id.clone(),
            order_id: found.order_id.clone(),
            status: found.status,
            carrier: found.carrier.clone(),
            tracking_number: found.tracking_number.clone(),
        }
    }
}

/// One user's wallet, payments, orders and shipments as the payment, order and process services
/// hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) balance: i64,
    /// Newest first.
    pub(crate) ledger: Vec<EntryFacts>,
    /// Newest first.
    pub(crate) payments: Vec<PaymentFacts>,
    /// `(order id, status)`, newest first.
    pub(crate) orders: Vec<(String, i32)>,
    /// The shipments of those orders, in the same order.
    pub(crate) shipments: Vec<ShipmentFacts>,
}

/// Seeds and reads users' data on the services directly, so what a case observes does not
/// depend on the BFF under test.
pub(crate) struct Observer {
    users: user::user_service_client::UserServiceClient<Channel>,
    orders: order::order_service_client::OrderServiceClient<Channel>,
    payments: payment::payment_service_client::PaymentServiceClient<Channel>,
    wallets: payment::wallet_service_client::WalletServiceClient<Channel>,
    shipments: process::shipment_service_client::ShipmentServiceClient<Channel>,
    /// The SKU every seeded order buys.
    sku_id: String,
}

impl Observer {
    pub(crate) fn new(
        user_uri: &str,
        order_uri: &str,
        payment_uri: &str,
        process_uri: &str,
        sku_id: String,
    ) -> Self {
        let lazy = |uri: &str| {
            Channel::from_shared(uri.to_owned())
                .expect("service uri")
                .connect_lazy()
        };
        let payment_channel = lazy(payment_uri);
        Self {
            users: user::user_service_client::UserServiceClient::new(lazy(user_uri)),
            orders: order::order_service_client::OrderServiceClient::new(lazy(order_uri)),
            payments: payment::payment_service_client::PaymentServiceClient::new(
                payment_channel.clone(),
            ),
            wallets: payment::wallet_service_client::WalletServiceClient::new(payment_channel),
            shipments: process::shipment_service_client::ShipmentServiceClient::new(lazy(
                process_uri,
            )),
            sku_id,
        }
    }

    /// Registers the three users through the BFF (the admin is granted the role and signs in
    /// again, so their token carries it), charges each wallet [`SEED_CHARGE`] and has each pay
    /// an order of one unit with points, whose shipment the process service then prepares.
    pub(crate) async fn world(
        &self,
        auth: &bff::auth_service_client::AuthServiceClient<Channel>,
        name: &str,
    ) -> World {
        let mut auth = auth.clone();
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
            let user_id = Uuid::parse_str(&registered.account.expect("account").user_id)
                .expect("user id is a uuid");
            let mut access_token = registered.tokens.expect("tokens").access_token;
            if party == Party::Admin {
                self.grant_admin(user_id, name).await;
                access_token = auth
                    .login(bff::LoginRequest {
                        email,
                        password: PASSWORD.to_owned(),
                    })
                    .await
                    .unwrap_or_else(|status| panic!("{name}: the admin signs in: {status:?}"))
                    .into_inner()
                    .tokens
                    .expect("tokens")
                    .access_token;
            }
            self.wallets
                .clone()
                .charge_points(as_user(
                    payment::ChargePointsRequest {
                        amount: yen(SEED_CHARGE),
                        idempotency_key: Uuid::new_v4().to_string(),
                    },
                    user_id,
                ))
                .await
                .unwrap_or_else(|status| panic!("{name}: charging {party:?}: {status:?}"));
            let order_id = self.paid_order(user_id, name).await;
            let shipment_id = self.prepared_shipment(&order_id, name).await;
            let payment_id = self
                .payments_of(user_id, name)
                .await
                .first()
                .map(|found| found.payment_id.clone())
                .unwrap_or_else(|| panic!("{name}: {party:?}'s order has a payment"));
            members.push(Member {
                user_id,
                access_token,
                order_id,
                payment_id,
                shipment_id,
            });
        }
        World {
            members: members.try_into().expect("one member per party"),
        }
    }

    /// Places an order of one unit paid with points for `user_id` and waits until it is PAID;
    /// its id.
    async fn paid_order(&self, user_id: Uuid, name: &str) -> String {
        let order_id = self
            .orders
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
                    shipping_address: Some(shipping_address("Buyer")),
                    payment_method: common::PaymentMethod::Points.into(),
                    user_coupon_id: String::new(),
                    expected_total: None,
                },
                user_id,
            ))
            .await
            .unwrap_or_else(|status| panic!("{name}: placing an order: {status:?}"))
            .into_inner()
            .order
            .expect("order")
            .order_id;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let orders = self.orders_of(user_id, name).await;
            if orders.contains(&(order_id.clone(), common::OrderStatus::Paid.into())) {
                return order_id;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: the seeded order stayed {orders:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the process service holds the PREPARING shipment of `order_id`; its id.
    async fn prepared_shipment(&self, order_id: &str, name: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let shipments = self.shipments_of(order_id, name).await;
            if let Some(shipment) = shipments.first()
                && shipment.status == i32::from(common::ShipmentStatus::Preparing)
            {
                return shipment.shipment_id.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: the seeded order's shipment is {shipments:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The shipments of `order_id`, read as an operator.
    async fn shipments_of(&self, order_id: &str, name: &str) -> Vec<ShipmentFacts> {
        let mut request = Request::new(process::ListShipmentsRequest {
            order_id: order_id.to_owned(),
            ..process::ListShipmentsRequest::default()
        });
        Principal::new(Uuid::new_v4(), [Role::Admin]).write_metadata(request.metadata_mut());
        self.shipments
            .clone()
            .list_shipments(request)
            .await
            .unwrap_or_else(|status| panic!("{name}: listing shipments: {status:?}"))
            .into_inner()
            .shipments
            .iter()
            .map(ShipmentFacts::from)
            .collect()
    }

    async fn orders_of(&self, user_id: Uuid, name: &str) -> Vec<(String, i32)> {
        self.orders
            .clone()
            .list_orders(as_user(order::ListOrdersRequest::default(), user_id))
            .await
            .unwrap_or_else(|status| panic!("{name}: listing orders: {status:?}"))
            .into_inner()
            .orders
            .into_iter()
            .map(|found| (found.order_id, found.status))
            .collect()
    }

    async fn payments_of(&self, user_id: Uuid, name: &str) -> Vec<PaymentFacts> {
        self.payments
            .clone()
            .list_payments(as_user(payment::ListPaymentsRequest::default(), user_id))
            .await
            .unwrap_or_else(|status| panic!("{name}: listing payments: {status:?}"))
            .into_inner()
            .payments
            .iter()
            .map(PaymentFacts::from)
            .collect()
    }

    /// Every party's data.
    pub(crate) async fn snapshot(&self, world: &World, name: &str) -> [Snapshot; 3] {
        let mut snapshots = Vec::new();
        for member in &world.members {
            let balance = self
                .wallets
                .clone()
                .get_wallet(as_user(payment::GetWalletRequest {}, member.user_id))
                .await
                .unwrap_or_else(|status| panic!("{name}: reading a wallet: {status:?}"))
                .into_inner()
                .wallet
                .expect("wallet");
            let ledger = self
                .wallets
                .clone()
                .list_ledger_entries(as_user(
                    payment::ListLedgerEntriesRequest {
                        page_size: 100,
                        ..payment::ListLedgerEntriesRequest::default()
                    },
                    member.user_id,
                ))
                .await
                .unwrap_or_else(|status| panic!("{name}: listing a ledger: {status:?}"))
                .into_inner()
                .entries
                .iter()
                .map(EntryFacts::from)
                .collect();
            let orders = self.orders_of(member.user_id, name).await;
            let mut shipments = Vec::new();
            for (order_id, _) in &orders {
                shipments.extend(self.shipments_of(order_id, name).await);
            }
            snapshots.push(Snapshot {
                balance: minor(balance.balance.as_ref()),
                ledger,
                payments: self.payments_of(member.user_id, name).await,
                orders,
                shipments,
            });
        }
        snapshots.try_into().expect("one snapshot per party")
    }

    /// Grants the admin role as an internal admin would.
    async fn grant_admin(&self, user_id: Uuid, name: &str) {
        let mut request = Request::new(user::GrantRoleRequest {
            user_id: user_id.to_string(),
            role: common::Role::Admin.into(),
        });
        Principal::new(Uuid::new_v4(), [Role::Buyer, Role::Admin])
            .write_metadata(request.metadata_mut());
        self.users
            .clone()
            .grant_role(request)
            .await
            .unwrap_or_else(|status| panic!("{name}: granting the admin role: {status:?}"));
    }
}

/// Yen.
pub(crate) fn yen(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

/// A request acting for `user_id`, as the BFF forwards it.
fn as_user<T>(message: T, user_id: Uuid) -> Request<T> {
    let mut request = Request::new(message);
    Principal::new(user_id, [Role::Buyer]).write_metadata(request.metadata_mut());
    request
}
