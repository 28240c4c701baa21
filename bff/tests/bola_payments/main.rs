//! BOLA through the BFF for wallets, payments and shipments, table-driven: every public RPC that
//! reads or moves a user's points or payments, or reads or ships a user's parcel, called by the
//! owner, another user, an anonymous caller and an admin (the shipment RPCs also by the seller
//! whose product the orders bought), against the real user, product, order, payment and process
//! services (the last four on one broker namespace; the process service with the manual
//! carrier, so a paid order stays PAID with its shipment PREPARING until an operator ships it).
//! Each case gets fresh users, each with a charged wallet, an order paid from it and that
//! order's shipment; every user's balance, ledger, payments, orders and shipments are read
//! straight from the payment, order and process services before and after the call, so a case
//! passes only if the call touched exactly the data it should have and nothing else.
//!
//! This table is apart from `bff/tests/bola/` because its world needs the payment and process
//! services on the order service's bus, which move orders on their own; that table's orders must
//! stay as they were placed. RPCs that touch payments, wallets or shipments extend [`CASES`]
//! here.

#[path = "../support/mod.rs"]
mod support;

mod world;

use mercato_process::settings::CarrierMode;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use support::{FullStack, Services, reason, seed_sku_for, sign_up_with_role, with_token};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use Caller::{Admin, Anonymous, OtherUser, Owner, Seller};
use Expected::{ActsOn, Refused};
use world::{EntryFacts, Observer, PaymentFacts, ShipmentFacts, Snapshot, World, yen};

/// An RPC under test, with the arguments the table gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    /// `WalletService/GetWallet`.
    GetWallet,
    /// `WalletService/ChargePoints` of [`CHARGE`] points.
    ChargePoints,
    /// `WalletService/ListLedgerEntries` (no filters).
    ListLedgerEntries,
    /// `OrderService/GetOrderPayment` naming the owner's order.
    GetOrderPayment,
    /// `AdminService/SearchPayments` naming the owner as `target_user_id`.
    AdminSearchPayments,
    /// `AdminService/RefundPayment` of [`REFUND`] from the owner's payment.
    AdminRefundPayment,
    /// `AdminService/ListShipments` filtered by the owner's order.
    AdminListShipments,
    /// `AdminService/MarkShipmentShipped` of the owner's shipment, handed to [`CARRIER`] as
    /// [`TRACKING_NUMBER`].
    AdminMarkShipmentShipped,
}

/// Points a ChargePoints case adds.
const CHARGE: i64 = 700;
/// Yen an AdminRefundPayment case gives back.
const REFUND: i64 = 100;
/// The carrier and tracking number of an AdminMarkShipmentShipped case.
const CARRIER: &str = "yamato";
const TRACKING_NUMBER: &str = "YMT-BOLA-0001";

/// Who makes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Owner,
    OtherUser,
    Anonymous,
    Admin,
    /// The seller of the product every order bought (ROLE_SELLER, no orders of their own).
    Seller,
}

impl Caller {
    /// The case's user the caller is, if any (the seller is the same in every case).
    fn party(self) -> Option<Party> {
        match self {
            Self::Owner => Some(Party::Owner),
            Self::OtherUser => Some(Party::OtherUser),
            Self::Admin => Some(Party::Admin),
            Self::Anonymous | Self::Seller => None,
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
}

#[derive(Debug, Clone, Copy)]
struct Case {
    rpc: Rpc,
    caller: Caller,
    expected: Expected,
}

const fn case(rpc: Rpc, caller: Caller, expected: Expected) -> Case {
    Case {
        rpc,
        caller,
        expected,
    }
}

/// No request names a user: a wallet is always the caller's own, admins included, and an order
/// id names a resource but not whose it is, so someone else's order's payment is NOT_FOUND,
/// exactly like one that does not exist, for an admin on the buyer's API too. An admin acts on
/// another user's payment only through AdminService, which nobody else may call.
const CASES: &[Case] = &[
    case(Rpc::GetWallet, Owner, ActsOn(Party::Owner)),
    case(Rpc::GetWallet, OtherUser, ActsOn(Party::OtherUser)),
    case(Rpc::GetWallet, Anonymous, NO_TOKEN),
    case(Rpc::GetWallet, Admin, ActsOn(Party::Admin)),
    case(Rpc::ChargePoints, Owner, ActsOn(Party::Owner)),
    case(Rpc::ChargePoints, OtherUser, ActsOn(Party::OtherUser)),
    case(Rpc::ChargePoints, Anonymous, NO_TOKEN),
    case(Rpc::ChargePoints, Admin, ActsOn(Party::Admin)),
    case(Rpc::ListLedgerEntries, Owner, ActsOn(Party::Owner)),
    case(Rpc::ListLedgerEntries, OtherUser, ActsOn(Party::OtherUser)),
    case(Rpc::ListLedgerEntries, Anonymous, NO_TOKEN),
    case(Rpc::ListLedgerEntries, Admin, ActsOn(Party::Admin)),
    case(Rpc::GetOrderPayment, Owner, ActsOn(Party::Owner)),
    case(Rpc::GetOrderPayment, OtherUser, NOT_THEIRS),
    case(Rpc::GetOrderPayment, Anonymous, NO_TOKEN),
    case(Rpc::GetOrderPayment, Admin, NOT_THEIRS),
    case(Rpc::AdminSearchPayments, Owner, NO_ROLE),
    case(Rpc::AdminSearchPayments, OtherUser, NO_ROLE),
    case(Rpc::AdminSearchPayments, Anonymous, NO_TOKEN),
    case(Rpc::AdminSearchPayments, Admin, ActsOn(Party::Owner)),
    case(Rpc::AdminRefundPayment, Owner, NO_ROLE),
    case(Rpc::AdminRefundPayment, OtherUser, NO_ROLE),
    case(Rpc::AdminRefundPayment, Anonymous, NO_TOKEN),
    case(Rpc::AdminRefundPayment, Admin, ActsOn(Party::Owner)),
    // Shipments are the operator's: neither the buyer whose parcel it is, nor another buyer,
    // nor the seller who sold what is in it may list or ship it.
    case(Rpc::AdminListShipments, Owner, NO_ROLE),
    case(Rpc::AdminListShipments, OtherUser, NO_ROLE),
    case(Rpc::AdminListShipments, Seller, NO_ROLE),
    case(Rpc::AdminListShipments, Anonymous, NO_TOKEN),
    case(Rpc::AdminListShipments, Admin, ActsOn(Party::Owner)),
    case(Rpc::AdminMarkShipmentShipped, Owner, NO_ROLE),
    case(Rpc::AdminMarkShipmentShipped, OtherUser, NO_ROLE),
    case(Rpc::AdminMarkShipmentShipped, Seller, NO_ROLE),
    case(Rpc::AdminMarkShipmentShipped, Anonymous, NO_TOKEN),
    case(Rpc::AdminMarkShipmentShipped, Admin, ActsOn(Party::Owner)),
];

/// Another user's order, to anyone but its buyer.
const NOT_THEIRS: Expected = Refused(Code::NotFound, "RESOURCE_NOT_FOUND");
/// An admin RPC called without the role.
const NO_ROLE: Expected = Refused(Code::PermissionDenied, "ROLE_REQUIRED");
/// No access token.
const NO_TOKEN: Expected = Refused(Code::Unauthenticated, "TOKEN_MISSING");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_reaches_only_its_own_wallet_payments_and_shipments_through_the_bff() {
    let services = Services::start_full_with(FullStack {
        carrier: CarrierMode::Manual,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let (seller_id, seller_token) =
        sign_up_with_role(&mut auth, &services.users.grpc_uri(), common::Role::Seller).await;
    // Every case orders one unit of the seller's product per user: stock for far more cases
    // than the table has.
    let sku_id = seed_sku_for(&services.products.grpc_uri(), seller_id, 1_000).await;
    let clients = Clients {
        auth,
        seller_token,
        wallets: bff::wallet_service_client::WalletServiceClient::new(channel.clone()),
        orders: bff::order_service_client::OrderServiceClient::new(channel.clone()),
        admin: bff::admin_service_client::AdminServiceClient::new(channel),
        observer: Observer::new(
            &services.users.grpc_uri(),
            &services.order_uri(),
            &services.payment_uri(),
            &services.process_uri(),
            sku_id,
        ),
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
    /// The seller's access token (ROLE_SELLER).
    seller_token: String,
    wallets: bff::wallet_service_client::WalletServiceClient<Channel>,
    orders: bff::order_service_client::OrderServiceClient<Channel>,
    admin: bff::admin_service_client::AdminServiceClient<Channel>,
    observer: Observer,
}

/// What an RPC answered, reduced to what the checks compare.
#[derive(Debug)]
enum Reply {
    /// A balance, and (for a charge) the entry written.
    Wallet(i64, Option<EntryFacts>),
    Entries(Vec<EntryFacts>),
    Payment(PaymentFacts, bool),
    Payments(Vec<PaymentFacts>),
    Shipment(ShipmentFacts),
    Shipments(Vec<ShipmentFacts>),
}

/// Whether a payment as answered carries a client secret or a publishable key (none of these
/// POINTS payments may).
fn has_credentials(payment: &bff::Payment) -> bool {
    !payment.client_secret.is_empty() || !payment.publishable_key.is_empty()
}

/// Calls `case.rpc` through the BFF with the caller's credentials.
async fn call(clients: &Clients, world: &World, case: &Case) -> Result<Reply, Status> {
    let token = match case.caller {
        Caller::Seller => Some(clients.seller_token.clone()),
        Caller::Owner | Caller::OtherUser | Caller::Anonymous | Caller::Admin => case
            .caller
            .party()
            .map(|party| world.member(party).access_token.clone()),
    };
    let owner = world.member(Party::Owner);
    let mut wallets = clients.wallets.clone();
    let mut orders = clients.orders.clone();
    let mut admin = clients.admin.clone();
    let balance = |wallet: Option<bff::Wallet>| {
        wallet
            .and_then(|wallet| wallet.balance)
            .map_or(-1, |money| money.amount_minor)
    };
    match case.rpc {
        Rpc::GetWallet => wallets
            .get_wallet(as_caller(bff::GetWalletRequest {}, token.as_deref()))
            .await
            .map(|response| Reply::Wallet(balance(response.into_inner().wallet), None)),
        Rpc::ChargePoints => wallets
            .charge_points(as_caller(
                bff::ChargePointsRequest {
                    amount: yen(CHARGE),
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                },
                token.as_deref(),
            ))
            .await
            .map(|response| {
                let bff::ChargePointsResponse { wallet, entry } = response.into_inner();
                Reply::Wallet(balance(wallet), entry.as_ref().map(EntryFacts::from))
            }),
        Rpc::ListLedgerEntries => wallets
            .list_ledger_entries(as_caller(
                bff::ListLedgerEntriesRequest {
                    page_size: 100,
                    ..bff::ListLedgerEntriesRequest::default()
                },
                token.as_deref(),
            ))
            .await
            .map(|response| {
                Reply::Entries(
                    response
                        .into_inner()
                        .entries
                        .iter()
                        .map(EntryFacts::from)
                        .collect(),
                )
            }),
        Rpc::GetOrderPayment => orders
            .get_order_payment(as_caller(
                bff::GetOrderPaymentRequest {
                    order_id: owner.order_id.clone(),
                },
                token.as_deref(),
            ))
            .await
            .map(|response| {
                let payment = response.into_inner().payment.unwrap_or_default();
                Reply::Payment(PaymentFacts::from(&payment), has_credentials(&payment))
            }),
        Rpc::AdminSearchPayments => admin
            .search_payments(as_caller(
                bff::SearchPaymentsRequest {
                    target_user_id: owner.user_id.to_string(),
                    ..bff::SearchPaymentsRequest::default()
                },
                token.as_deref(),
            ))
            .await
            .map(|response| {
                let payments = response.into_inner().payments;
                assert!(
                    !payments.iter().any(has_credentials),
                    "admin views carry no client secret"
                );
                Reply::Payments(payments.iter().map(PaymentFacts::from).collect())
            }),
        Rpc::AdminRefundPayment => admin
            .refund_payment(as_caller(
                bff::RefundPaymentRequest {
                    payment_id: owner.payment_id.clone(),
                    amount: yen(REFUND),
                    reason: format!("goodwill from {:?}", case.caller),
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                },
                token.as_deref(),
            ))
            .await
            .map(|response| {
                let payment = response.into_inner().payment.unwrap_or_default();
                Reply::Payment(PaymentFacts::from(&payment), has_credentials(&payment))
            }),
        Rpc::AdminListShipments => admin
            .list_shipments(as_caller(
                bff::ListShipmentsRequest {
                    order_id: owner.order_id.clone(),
                    ..bff::ListShipmentsRequest::default()
                },
                token.as_deref(),
            ))
            .await
            .map(|response| {
                Reply::Shipments(
                    response
                        .into_inner()
                        .shipments
                        .iter()
                        .map(ShipmentFacts::from)
                        .collect(),
                )
            }),
        Rpc::AdminMarkShipmentShipped => admin
            .mark_shipment_shipped(as_caller(
                bff::MarkShipmentShippedRequest {
                    shipment_id: owner.shipment_id.clone(),
                    carrier: CARRIER.to_owned(),
                    tracking_number: TRACKING_NUMBER.to_owned(),
                    tracking_url: String::new(),
                },
                token.as_deref(),
            ))
            .await
            .map(|response| {
                Reply::Shipment(ShipmentFacts::from(
                    &response.into_inner().shipment.unwrap_or_default(),
                ))
            }),
    }
}

/// What the data of the party the call acts on must look like afterwards (what a write made
/// up, the new entry's id and time, is taken from the data after it).
fn effect(rpc: Rpc, before: &Snapshot, after: &Snapshot, owner_order: &str) -> Snapshot {
    let mut wanted = before.clone();
    let new_entry = |kind: common::LedgerEntryKind, amount: i64, order_id: &str| EntryFacts {
        entry_id: after
            .ledger
            .first()
            .map(|entry| entry.entry_id.clone())
            .unwrap_or_default(),
        kind: kind.into(),
        amount,
        balance_after: before.balance + amount,
        order_id: order_id.to_owned(),
    };
    match rpc {
        Rpc::GetWallet
        | Rpc::ListLedgerEntries
        | Rpc::GetOrderPayment
        | Rpc::AdminSearchPayments
        | Rpc::AdminListShipments => {}
        Rpc::ChargePoints => {
            wanted.balance += CHARGE;
            wanted
                .ledger
                .insert(0, new_entry(common::LedgerEntryKind::Charge, CHARGE, ""));
        }
        Rpc::AdminRefundPayment => {
            wanted.balance += REFUND;
            wanted.ledger.insert(
                0,
                new_entry(common::LedgerEntryKind::Refund, REFUND, owner_order),
            );
            for payment in &mut wanted.payments {
                if payment.order_id == owner_order {
                    payment.refunded_amount += REFUND;
                    payment.status = common::PaymentStatus::PartiallyRefunded.into();
                }
            }
        }
        // The parcel is on its way, and so is the order.
        Rpc::AdminMarkShipmentShipped => {
            for shipment in &mut wanted.shipments {
                if shipment.order_id == owner_order {
                    shipment.status = common::ShipmentStatus::Shipped.into();
                    CARRIER.clone_into(&mut shipment.carrier);
                    TRACKING_NUMBER.clone_into(&mut shipment.tracking_number);
                }
            }
            for (order_id, status) in &mut wanted.orders {
                if order_id == owner_order {
                    *status = common::OrderStatus::Shipped.into();
                }
            }
        }
    }
    wanted
}

/// Runs one case on fresh users; returns what went wrong, each line naming the case.
async fn run(clients: &Clients, case: &Case) -> Vec<String> {
    let name = format!("{:?} as {:?}", case.rpc, case.caller);
    let world = clients.observer.world(&clients.auth, &name).await;
    let before = clients.observer.snapshot(&world, &name).await;
    let outcome = call(clients, &world, case).await;
    let after = clients.observer.snapshot(&world, &name).await;

    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{name}: {what}"));
        }
    };
    let untouched = match case.expected {
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
            PARTIES.to_vec()
        }
        ActsOn(target) => {
            let (was, is) = (&before[target.index()], &after[target.index()]);
            let owner_order = &world.member(Party::Owner).order_id;
            let wanted = effect(case.rpc, was, is, owner_order);
            expect(
                *is == wanted,
                format!("{target:?}'s data should be {wanted:?}, is {is:?}"),
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
                Ok(Reply::Wallet(balance, entry)) => {
                    let seen = if case.rpc == Rpc::ChargePoints {
                        is
                    } else {
                        was
                    };
                    expect(
                        balance == seen.balance,
                        format!(
                            "answered a balance of {balance}, {target:?} has {}",
                            seen.balance
                        ),
                    );
                    expect(
                        entry.as_ref() == (case.rpc == Rpc::ChargePoints).then(|| &is.ledger[0]),
                        format!(
                            "answered the entry {entry:?}, {target:?}'s ledger is {:?}",
                            is.ledger
                        ),
                    );
                }
                Ok(Reply::Entries(entries)) => expect(
                    entries == was.ledger,
                    format!(
                        "answered {entries:?}, {target:?}'s ledger is {:?}",
                        was.ledger
                    ),
                ),
                Ok(Reply::Payment(payment, credentials)) => {
                    let seen = if case.rpc == Rpc::AdminRefundPayment {
                        is
                    } else {
                        was
                    };
                    expect(
                        seen.payments.contains(&payment) && payment.order_id == *owner_order,
                        format!(
                            "answered {payment:?}, {target:?}'s payments are {:?}",
                            seen.payments
                        ),
                    );
                    expect(
                        !credentials,
                        "a POINTS payment carries no credentials".to_owned(),
                    );
                }
                Ok(Reply::Payments(payments)) => expect(
                    payments == was.payments,
                    format!(
                        "answered {payments:?}, {target:?}'s payments are {:?}",
                        was.payments
                    ),
                ),
                // A listing answers the shipments as they were, a handover the one it shipped.
                Ok(Reply::Shipments(shipments)) => expect(
                    shipments == was.shipments,
                    format!(
                        "answered {shipments:?}, {target:?}'s shipments are {:?}",
                        was.shipments
                    ),
                ),
                Ok(Reply::Shipment(shipment)) => expect(
                    is.shipments.contains(&shipment) && shipment.order_id == *owner_order,
                    format!(
                        "answered {shipment:?}, {target:?}'s shipments are {:?}",
                        is.shipments
                    ),
                ),
            }
            PARTIES
                .into_iter()
                .filter(|party| *party != target)
                .collect()
        }
    };
    for party in untouched {
        let (was, is) = (&before[party.index()], &after[party.index()]);
        expect(
            was == is,
            format!("{party:?}'s data changed: {was:?} became {is:?}"),
        );
    }
    problems
}

fn as_caller<T>(message: T, access_token: Option<&str>) -> Request<T> {
    match access_token {
        Some(token) => with_token(message, token),
        None => Request::new(message),
    }
}
