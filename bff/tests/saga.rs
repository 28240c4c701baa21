//! The whole checkout saga through the BFF, end to end: the real user, product, order, payment
//! and process services in-process (all but the user service on one broker namespace, so every
//! step travels over the real bus), against real PostgreSQL, Redis and RabbitMQ, and for STRIPE a
//! real localstripe.
//!
//! - Each method — POINTS (the wallet charged first), SANDBOX (the payment page's Pay form) and
//!   STRIPE (the PaymentIntent confirmed at localstripe with the Visa test card, settled by
//!   localstripe's signed webhook) — goes register → coupon claimed → cart → `CreateOrder` → paid
//!   → FINISHED, watched through the BFF's `WatchOrder`; the order then carries the shipment's
//!   tracking number (the same as the admin's `ListShipments` shows), its history went through
//!   PAID, SHIPPED and FINISHED, the stock reservation is COMMITTED with on hand reduced by the
//!   units bought, and the coupon is USED by the order.
//! - A paid order cancelled before it ships (by the buyer's `CancelOrder`, or the admin's
//!   `CancelAnyOrder`) is refunded once, its committed stock goes back on hand (the reservation
//!   RETURNED), its coupon is AVAILABLE again, and an operator can no longer ship it.
//! - With the manual carrier, an operator ships through the admin's `MarkShipmentShipped` and a
//!   buyer's `WatchOrder` sees SHIPPED (with the operator's tracking number) and then, once the
//!   carrier reports the delivery, FINISHED; the shipment RPCs' refusals name the public field.

mod support;

use std::time::Duration;

use mercato_platform::principal::{Principal, Role};
use mercato_process::settings::CarrierMode;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::process::v1 as process;
use mercato_proto::mercato::product::v1 as product;
use mercato_stripe::testing::TestCard;
use support::{
    FullStack, SKU_PRICE, STRIPE_PUBLISHABLE_KEY, Services, reason, seed_sku, shipping_address,
    sign_up, sign_up_admin, violated_fields, with_token,
};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use uuid::Uuid;

/// How long a saga step may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// The discount of the coupon each checkout uses, in JPY.
const DISCOUNT: i64 = 300;

/// Units every checkout buys, of a SKU stocked with [`ON_HAND`].
const UNITS: i64 = 2;
const ON_HAND: i64 = 10;

/// Points a POINTS buyer charges before checking out.
const CHARGE: i64 = 10_000;

fn jpy(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

fn total() -> i64 {
    UNITS * SKU_PRICE - DISCOUNT
}

fn status_of(order: &bff::Order) -> common::OrderStatus {
    common::OrderStatus::try_from(order.status).expect("a known order status")
}

fn shipment_status(shipment: &bff::Shipment) -> common::ShipmentStatus {
    common::ShipmentStatus::try_from(shipment.status).expect("a known shipment status")
}

/// A request as an internal admin (the tests' view of the services behind the BFF).
fn as_operator<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    Principal::new(Uuid::new_v4(), [Role::Admin]).write_metadata(request.metadata_mut());
    request
}

/// The BFF's clients on one channel, the tokens of one shopper and one operator, and the SKU
/// they buy.
struct Shop {
    orders: bff::order_service_client::OrderServiceClient<Channel>,
    wallets: bff::wallet_service_client::WalletServiceClient<Channel>,
    admin: bff::admin_service_client::AdminServiceClient<Channel>,
    coupons: bff::coupon_service_client::CouponServiceClient<Channel>,
    carts: bff::cart_service_client::CartServiceClient<Channel>,
    stock: product::stock_service_client::StockServiceClient<Channel>,
    shopper: String,
    operator: String,
    sku: String,
}

impl Shop {
    /// A shopper and an operator signed up through `bff`, and a SKU with [`ON_HAND`] units.
    async fn open(services: &Services, bff: &support::TestBff) -> Self {
        let channel = bff.channel().await;
        let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
        let operator = sign_up_admin(&mut auth, &services.users.grpc_uri()).await;
        let shopper = sign_up(&mut auth).await;
        let sku = seed_sku(&services.products.grpc_uri(), ON_HAND).await;
        let product_channel = Channel::from_shared(services.products.grpc_uri())
            .expect("product uri")
            .connect_lazy();
        Self {
            orders: bff::order_service_client::OrderServiceClient::new(channel.clone()),
            wallets: bff::wallet_service_client::WalletServiceClient::new(channel.clone()),
            admin: bff::admin_service_client::AdminServiceClient::new(channel.clone()),
            coupons: bff::coupon_service_client::CouponServiceClient::new(channel.clone()),
            carts: bff::cart_service_client::CartServiceClient::new(channel),
            stock: product::stock_service_client::StockServiceClient::new(product_channel),
            shopper,
            operator,
            sku,
        }
    }

    async fn charge(&mut self, amount: i64) {
        self.wallets
            .charge_points(with_token(
                bff::ChargePointsRequest {
                    amount: jpy(amount),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &self.shopper,
            ))
            .await
            .expect("points charged");
    }

    async fn balance(&mut self) -> i64 {
        self.wallets
            .get_wallet(with_token(bff::GetWalletRequest {}, &self.shopper))
            .await
            .expect("wallet read")
            .into_inner()
            .wallet
            .and_then(|wallet| wallet.balance)
            .expect("balance")
            .amount_minor
    }

    /// The shopper's ledger entries of `kind` for `order_id`.
    async fn entries(&mut self, kind: common::LedgerEntryKind, order_id: &str) -> Vec<i64> {
        self.wallets
            .list_ledger_entries(with_token(
                bff::ListLedgerEntriesRequest {
                    page_size: 100,
                    kinds: vec![kind.into()],
                    ..bff::ListLedgerEntriesRequest::default()
                },
                &self.shopper,
            ))
            .await
            .expect("ledger listed")
            .into_inner()
            .entries
            .into_iter()
            .filter(|entry| entry.order_id == order_id)
            .map(|entry| entry.amount.expect("amount").amount_minor)
            .collect()
    }

    /// A coupon of [`DISCOUNT`] off, claimed by the shopper from a campaign the operator opens.
    async fn claimed_coupon(&mut self) -> bff::UserCoupon {
        let coupon = self
            .admin
            .create_coupon(with_token(
                bff::CreateCouponRequest {
                    coupon: Some(bff::Coupon {
                        name: "300 yen off".to_owned(),
                        kind: common::CouponKind::Fixed.into(),
                        fixed_discount: jpy(DISCOUNT),
                        validity_days: 30,
                        ..bff::Coupon::default()
                    }),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &self.operator,
            ))
            .await
            .expect("coupon created")
            .into_inner()
            .coupon
            .expect("coupon");
        let now = std::time::SystemTime::now();
        let campaign = self
            .admin
            .create_campaign(with_token(
                bff::CreateCampaignRequest {
                    campaign: Some(bff::CouponCampaign {
                        coupon_id: coupon.coupon_id,
                        name: "Launch".to_owned(),
                        start_time: Some((now - Duration::from_secs(60)).into()),
                        end_time: Some((now + Duration::from_secs(3_600)).into()),
                        total_quantity: 10,
                        ..bff::CouponCampaign::default()
                    }),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &self.operator,
            ))
            .await
            .expect("campaign created")
            .into_inner()
            .campaign
            .expect("campaign");
        self.coupons
            .claim_coupon(with_token(
                bff::ClaimCouponRequest {
                    campaign_id: campaign.campaign_id,
                },
                &self.shopper,
            ))
            .await
            .expect("coupon claimed")
            .into_inner()
            .user_coupon
            .expect("user coupon")
    }

    async fn coupon_status(&mut self, user_coupon_id: &str) -> (common::UserCouponStatus, String) {
        let held = self
            .coupons
            .list_my_coupons(with_token(
                bff::ListMyCouponsRequest::default(),
                &self.shopper,
            ))
            .await
            .expect("coupons listed")
            .into_inner()
            .user_coupons
            .into_iter()
            .find(|held| held.user_coupon_id == user_coupon_id)
            .expect("the coupon is held");
        (
            common::UserCouponStatus::try_from(held.status).expect("a known coupon status"),
            held.order_id,
        )
    }

    /// Puts [`UNITS`] of the SKU in the cart and checks the cart out with `method` and `coupon`.
    async fn checkout(
        &mut self,
        method: common::PaymentMethod,
        coupon: &bff::UserCoupon,
    ) -> bff::Order {
        self.carts
            .add_cart_item(with_token(
                bff::AddCartItemRequest {
                    sku_id: self.sku.clone(),
                    quantity: UNITS,
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &self.shopper,
            ))
            .await
            .expect("added to the cart");
        let placed = self
            .orders
            .create_order(with_token(
                bff::CreateOrderRequest {
                    idempotency_key: Uuid::new_v4().to_string(),
                    source: Some(bff::create_order_request::Source::Cart(
                        bff::CartCheckout {},
                    )),
                    shipping_address: Some(shipping_address("Shopper")),
                    payment_method: method.into(),
                    user_coupon_id: coupon.user_coupon_id.clone(),
                    expected_total: jpy(total()),
                },
                &self.shopper,
            ))
            .await
            .expect("checkout")
            .into_inner()
            .order
            .expect("order");
        assert_eq!(placed.total, jpy(total()));
        placed
    }

    async fn order(&mut self, order_id: &str) -> bff::Order {
        self.orders
            .get_order(with_token(
                bff::GetOrderRequest {
                    order_id: order_id.to_owned(),
                },
                &self.shopper,
            ))
            .await
            .expect("order read")
            .into_inner()
            .order
            .expect("order")
    }

    async fn payment(&mut self, order_id: &str) -> Result<bff::Payment, Status> {
        self.orders
            .get_order_payment(with_token(
                bff::GetOrderPaymentRequest {
                    order_id: order_id.to_owned(),
                },
                &self.shopper,
            ))
            .await
            .map(|response| response.into_inner().payment.expect("payment"))
    }

    /// The order's payment once the payment service attached it (`PAYMENT_NOT_READY` before).
    async fn attached_payment(&mut self, order_id: &str) -> bff::Payment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.payment(order_id).await {
                Ok(payment) => return payment,
                Err(status) if reason(&status) == "PAYMENT_NOT_READY" => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "order {order_id} never got a payment"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("reading the payment failed: {status:?}"),
            }
        }
    }

    /// Waits until the payment is `want`; the payment then.
    async fn payment_until(&mut self, order_id: &str, want: common::PaymentStatus) -> bff::Payment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let payment = self.payment(order_id).await.expect("the payment");
            if payment.status == i32::from(want) {
                return payment;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the payment of {order_id} stayed {:?}, never {want:?}",
                payment.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Watches the order through the BFF until it is `want`; the order then, and every status
    /// the watches delivered (in order). A watch the BFF ends early (UNAVAILABLE) is started
    /// again, as the storefront does.
    async fn watch_until(
        &mut self,
        order_id: &str,
        want: common::OrderStatus,
    ) -> (bff::Order, Vec<common::OrderStatus>) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let mut stream = self.watch(order_id).await;
            loop {
                match next_message(&mut stream, deadline, &seen, want).await {
                    Ok(Some(order)) => {
                        let status = status_of(&order);
                        if seen.last() != Some(&status) {
                            seen.push(status);
                        }
                        if status == want {
                            return (order, seen);
                        }
                    }
                    Ok(None) => panic!("order {order_id} ended after {seen:?}, never {want:?}"),
                    Err(status) if status.code() == Code::Unavailable => break,
                    Err(status) => panic!("the watch failed: {status:?}"),
                }
            }
        }
    }

    async fn watch(&mut self, order_id: &str) -> tonic::Streaming<bff::WatchOrderResponse> {
        self.orders
            .watch_order(with_token(
                bff::WatchOrderRequest {
                    order_id: order_id.to_owned(),
                },
                &self.shopper,
            ))
            .await
            .expect("watch starts")
            .into_inner()
    }

    /// The shipments of `order_id` the admin console lists.
    async fn shipments(&mut self, order_id: &str) -> Vec<bff::Shipment> {
        self.admin
            .list_shipments(with_token(
                bff::ListShipmentsRequest {
                    order_id: order_id.to_owned(),
                    ..bff::ListShipmentsRequest::default()
                },
                &self.operator,
            ))
            .await
            .expect("shipments listed")
            .into_inner()
            .shipments
    }

    /// Waits until the order's one shipment is `want`; the shipment then.
    async fn shipment_until(
        &mut self,
        order_id: &str,
        want: common::ShipmentStatus,
    ) -> bff::Shipment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let shipments = self.shipments(order_id).await;
            assert!(
                shipments.len() <= 1,
                "one shipment per order: {shipments:?}"
            );
            if let Some(shipment) = shipments.first()
                && shipment_status(shipment) == want
            {
                return shipment.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the shipment of {order_id} is {shipments:?}, never {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `(on_hand, reserved)` of the SKU.
    async fn stock_level(&mut self) -> (i64, i64) {
        let level = self
            .stock
            .get_stock(as_operator(product::GetStockRequest {
                sku_id: self.sku.clone(),
            }))
            .await
            .expect("stock read")
            .into_inner()
            .stock
            .expect("stock level");
        (level.on_hand, level.reserved)
    }

    /// Waits until the SKU's stock is `want`.
    async fn stock_until(&mut self, want: (i64, i64)) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.stock_level().await;
            if now == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stock stayed {now:?}, expected {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn reservation(&mut self, order_id: &str) -> product::ReservationStatus {
        let reservation = self
            .stock
            .get_reservation(as_operator(product::GetReservationRequest {
                order_id: order_id.to_owned(),
            }))
            .await
            .expect("reservation read")
            .into_inner()
            .reservation
            .expect("reservation");
        product::ReservationStatus::try_from(reservation.status).expect("a known status")
    }
}

/// The next order of a watch, `None` at its end, or its error; fails the test at `deadline`.
async fn next_message(
    stream: &mut tonic::Streaming<bff::WatchOrderResponse>,
    deadline: tokio::time::Instant,
    seen: &[common::OrderStatus],
    want: common::OrderStatus,
) -> Result<Option<bff::Order>, Status> {
    let message = tokio::time::timeout_at(deadline, stream.message())
        .await
        .unwrap_or_else(|_| panic!("the order went through {seen:?}, never {want:?}"))?;
    Ok(message.map(|message| message.order.expect("a watch message carries its order")))
}

/// Reads one watch until the order is `want` (recording each new status in `seen`); the order
/// then. The watch must stay open until then.
async fn watch_to(
    stream: &mut tonic::Streaming<bff::WatchOrderResponse>,
    deadline: tokio::time::Instant,
    seen: &mut Vec<common::OrderStatus>,
    want: common::OrderStatus,
) -> bff::Order {
    loop {
        let order = next_message(stream, deadline, seen, want)
            .await
            .expect("the watch stays open")
            .unwrap_or_else(|| panic!("the watch ended after {seen:?}, before {want:?}"));
        let status = status_of(&order);
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        if status == want {
            return order;
        }
    }
}

/// What every fulfilled order must show: FINISHED with the shipment's tracking number (the one
/// the admin console lists, DELIVERED), a history through PAID, SHIPPED and FINISHED, the stock
/// committed and the coupon used by it.
async fn assert_fulfilled(
    shop: &mut Shop,
    finished: &bff::Order,
    watched: &[common::OrderStatus],
    coupon: &bff::UserCoupon,
) {
    let order_id = finished.order_id.as_str();
    assert_eq!(status_of(finished), common::OrderStatus::Finished);
    assert_eq!(
        watched.last(),
        Some(&common::OrderStatus::Finished),
        "{watched:?}"
    );
    let parcel = finished
        .shipment
        .as_ref()
        .expect("a finished order shows its parcel");
    assert!(
        !parcel.tracking_number.is_empty(),
        "the buyer sees a tracking number: {parcel:?}"
    );
    assert!(!parcel.carrier.is_empty(), "{parcel:?}");
    assert!(parcel.ship_time.is_some() && parcel.deliver_time.is_some());
    let history: Vec<i32> = finished
        .history
        .iter()
        .map(|change| change.to_status)
        .collect();
    let tail: Vec<i32> = [
        common::OrderStatus::Paid,
        common::OrderStatus::Shipped,
        common::OrderStatus::Finished,
    ]
    .map(i32::from)
    .to_vec();
    assert!(
        history.ends_with(&tail),
        "the history ends PAID, SHIPPED, FINISHED: {history:?}"
    );
    // The buyer's other views say the same.
    let read = shop.order(order_id).await;
    assert_eq!(read.shipment.as_ref(), Some(parcel));
    let listed = shop
        .orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &shop.shopper))
        .await
        .expect("orders listed")
        .into_inner()
        .orders;
    let listed = listed
        .iter()
        .find(|found| found.order_id == order_id)
        .expect("the order is listed");
    assert_eq!(listed.shipment.as_ref(), Some(parcel));

    // The admin console lists the one shipment, delivered, with the same tracking number.
    let shipments = shop.shipments(order_id).await;
    assert_eq!(shipments.len(), 1, "{shipments:?}");
    let shipment = &shipments[0];
    assert_eq!(shipment.order_id, order_id);
    assert_eq!(shipment_status(shipment), common::ShipmentStatus::Delivered);
    assert_eq!(shipment.tracking_number, parcel.tracking_number);
    assert_eq!(shipment.carrier, parcel.carrier);
    assert_eq!(shipment.ship_time, parcel.ship_time);
    assert_eq!(shipment.deliver_time, parcel.deliver_time);

    // The stock was committed: the units left on hand, nothing stays reserved.
    assert_eq!(shop.stock_level().await, (ON_HAND - UNITS, 0));
    assert_eq!(
        shop.reservation(order_id).await,
        product::ReservationStatus::Committed
    );
    assert_eq!(
        shop.coupon_status(&coupon.user_coupon_id).await,
        (common::UserCouponStatus::Used, order_id.to_owned())
    );

    // A delivered order can no longer be cancelled, and nothing is refunded.
    let refused = shop
        .orders
        .cancel_order(with_token(
            bff::CancelOrderRequest {
                order_id: order_id.to_owned(),
            },
            &shop.shopper,
        ))
        .await
        .expect_err("a finished order stays finished");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "ILLEGAL_STATE_TRANSITION");
    let payment = shop.payment(order_id).await.expect("the payment");
    assert_eq!(payment.status, i32::from(common::PaymentStatus::Succeeded));
    assert_eq!(payment.refunded_amount, jpy(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_points_order_is_paid_from_the_wallet_shipped_with_a_tracking_number_and_finished() {
    let services = Services::start_full().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    shop.charge(CHARGE).await;
    let coupon = shop.claimed_coupon().await;

    let placed = shop.checkout(common::PaymentMethod::Points, &coupon).await;
    let (finished, watched) = shop
        .watch_until(&placed.order_id, common::OrderStatus::Finished)
        .await;

    assert_fulfilled(&mut shop, &finished, &watched, &coupon).await;
    assert_eq!(shop.balance().await, CHARGE - total());
    assert_eq!(
        shop.entries(common::LedgerEntryKind::Spend, &placed.order_id)
            .await,
        vec![-total()]
    );

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_order_paid_on_its_page_is_shipped_with_a_tracking_number_and_finished() {
    let services = Services::start_full().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    let coupon = shop.claimed_coupon().await;

    let placed = shop.checkout(common::PaymentMethod::Sandbox, &coupon).await;
    let payment = shop.attached_payment(&placed.order_id).await;
    assert_eq!(
        payment.status,
        i32::from(common::PaymentStatus::RequiresAction)
    );
    assert!(!payment.payment_url.is_empty());
    // Nothing ships before it is paid.
    assert_eq!(shop.stock_level().await, (ON_HAND, UNITS));
    assert!(shop.shipments(&placed.order_id).await.is_empty());

    assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    let (finished, watched) = shop
        .watch_until(&placed.order_id, common::OrderStatus::Finished)
        .await;

    assert_fulfilled(&mut shop, &finished, &watched, &coupon).await;
    assert_eq!(shop.balance().await, 0, "the wallet was never involved");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_order_confirmed_at_localstripe_is_shipped_with_a_tracking_number_and_finished() {
    let services = Services::start_full_with(FullStack {
        stripe: true,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    let coupon = shop.claimed_coupon().await;

    let placed = shop.checkout(common::PaymentMethod::Stripe, &coupon).await;
    let payment = shop.attached_payment(&placed.order_id).await;
    // What Stripe.js needs, for the payer only: the intent's client secret and the key.
    assert_eq!(payment.method, i32::from(common::PaymentMethod::Stripe));
    assert_eq!(
        payment.status,
        i32::from(common::PaymentStatus::RequiresAction)
    );
    assert_eq!(payment.amount, jpy(total()));
    assert!(payment.payment_url.is_empty(), "{payment:?}");
    assert_eq!(payment.publishable_key, STRIPE_PUBLISHABLE_KEY);
    // A client secret is `{intent id}_secret_{random}` (Stripe.js reads the id from it too).
    let (intent_id, _) = payment
        .client_secret
        .split_once("_secret_")
        .unwrap_or_else(|| panic!("a client secret: {:?}", payment.client_secret));
    assert!(intent_id.starts_with("pi_"), "{intent_id}");
    let intent = services
        .stripe()
        .client()
        .retrieve_payment_intent(intent_id)
        .await
        .expect("the intent exists at localstripe");
    assert_eq!(intent.amount, total());
    assert_eq!(intent.order_id.as_deref(), Some(placed.order_id.as_str()));

    let confirmed = services
        .stripe()
        .confirm_payment_intent(intent_id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let (finished, watched) = shop
        .watch_until(&placed.order_id, common::OrderStatus::Finished)
        .await;

    assert_fulfilled(&mut shop, &finished, &watched, &coupon).await;
    let settled = shop.payment(&placed.order_id).await.expect("the payment");
    assert!(settled.settle_time.is_some());

    drop(bff);
    services.stop().await;
}

/// Who cancels the paid order.
#[derive(Debug, Clone, Copy)]
enum Canceller {
    Buyer,
    Admin,
}

/// Pays an order (points, or on the sandbox page), waits for the process service to commit its
/// stock (the manual carrier never ships it), cancels it as `canceller` and checks that it is
/// refunded once and gives back the stock and the coupon, and that it can no longer ship.
async fn cancel_after_payment(method: common::PaymentMethod, canceller: Canceller) {
    let services = Services::start_full_with(FullStack {
        carrier: CarrierMode::Manual,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    let points = method == common::PaymentMethod::Points;
    if points {
        shop.charge(CHARGE).await;
    }
    let coupon = shop.claimed_coupon().await;
    let placed = shop.checkout(method, &coupon).await;
    if !points {
        let payment = shop.attached_payment(&placed.order_id).await;
        assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    }
    shop.watch_until(&placed.order_id, common::OrderStatus::Paid)
        .await;
    // The process service took the order: its shipment waits for the carrier and the stock is
    // committed, so the cancellation has to give committed units back.
    let preparing = shop
        .shipment_until(&placed.order_id, common::ShipmentStatus::Preparing)
        .await;
    assert!(preparing.tracking_number.is_empty(), "{preparing:?}");
    shop.stock_until((ON_HAND - UNITS, 0)).await;
    assert_eq!(
        shop.reservation(&placed.order_id).await,
        product::ReservationStatus::Committed
    );

    let cancel = || bff::CancelOrderRequest {
        order_id: placed.order_id.clone(),
    };
    let (cancelled, expected_reason) = match canceller {
        Canceller::Buyer => (
            shop.orders
                .cancel_order(with_token(cancel(), &shop.shopper))
                .await
                .expect("the buyer cancels the paid order")
                .into_inner()
                .order
                .expect("order"),
            common::OrderCancellationReason::UserRequested,
        ),
        Canceller::Admin => (
            shop.admin
                .cancel_any_order(with_token(
                    bff::CancelAnyOrderRequest {
                        order_id: placed.order_id.clone(),
                    },
                    &shop.operator,
                ))
                .await
                .expect("the admin cancels the paid order")
                .into_inner()
                .order
                .expect("order"),
            common::OrderCancellationReason::AdminRequested,
        ),
    };
    assert_eq!(status_of(&cancelled), common::OrderStatus::Cancelled);
    assert_eq!(cancelled.cancellation_reason, i32::from(expected_reason));
    // Cancelling again changes nothing.
    let again = shop
        .orders
        .cancel_order(with_token(cancel(), &shop.shopper))
        .await
        .expect("a cancelled order cancels as a no-op")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(again.cancellation_reason, i32::from(expected_reason));

    // Refunded in full, once; the committed units are back on hand; the coupon is back; the
    // parcel can no longer be shipped.
    let refunded = shop
        .payment_until(&placed.order_id, common::PaymentStatus::Refunded)
        .await;
    assert_eq!(refunded.refunded_amount, jpy(total()));
    shop.stock_until((ON_HAND, 0)).await;
    assert_eq!(
        shop.reservation(&placed.order_id).await,
        product::ReservationStatus::Returned
    );
    // The manual carrier has no step due after the commit, so nothing withdraws the shipment
    // on its own (the process service learns of the cancellation only when a step is refused);
    // an operator's handover is refused by the order service, and nothing ships.
    let late = shop
        .admin
        .mark_shipment_shipped(with_token(
            bff::MarkShipmentShippedRequest {
                shipment_id: preparing.shipment_id.clone(),
                carrier: "yamato".to_owned(),
                tracking_number: "YMT-0001".to_owned(),
                tracking_url: String::new(),
            },
            &shop.operator,
        ))
        .await
        .expect_err("a cancelled order's shipment does not ship");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert_eq!(reason(&late), "ILLEGAL_STATE_TRANSITION");
    assert_eq!(reason(&late), "ILLEGAL_STATE_TRANSITION");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while shop.coupon_status(&coupon.user_coupon_id).await.0 != common::UserCouponStatus::Available
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the coupon never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if points {
        assert_eq!(
            shop.balance().await,
            CHARGE,
            "the wallet got the total back"
        );
        assert_eq!(
            shop.entries(common::LedgerEntryKind::Refund, &placed.order_id)
                .await,
            vec![total()],
            "one refund entry"
        );
    }
    let order = shop.order(&placed.order_id).await;
    assert_eq!(status_of(&order), common::OrderStatus::Cancelled);
    assert!(order.shipment.is_none(), "it never shipped: {order:?}");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_points_order_the_buyer_cancels_is_refunded_once_and_gives_everything_back() {
    cancel_after_payment(common::PaymentMethod::Points, Canceller::Buyer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_sandbox_order_an_admin_cancels_is_refunded_once_and_gives_everything_back() {
    cancel_after_payment(common::PaymentMethod::Sandbox, Canceller::Admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_ships_through_the_admin_console_and_the_buyers_watch_sees_shipped_then_finished()
 {
    let services = Services::start_full_with(FullStack {
        carrier: CarrierMode::Manual,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    shop.charge(CHARGE).await;
    let coupon = shop.claimed_coupon().await;
    let placed = shop.checkout(common::PaymentMethod::Points, &coupon).await;

    // One watch, held from before the payment to the end.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut stream = shop.watch(&placed.order_id).await;
    let mut seen = Vec::new();
    let paid = watch_to(&mut stream, deadline, &mut seen, common::OrderStatus::Paid).await;
    assert!(paid.shipment.is_none());
    let preparing = shop
        .shipment_until(&placed.order_id, common::ShipmentStatus::Preparing)
        .await;

    // The operator's handover, with the carrier's tracking number.
    let handover = bff::MarkShipmentShippedRequest {
        shipment_id: preparing.shipment_id.clone(),
        carrier: "yamato".to_owned(),
        tracking_number: "YMT-4242-0001".to_owned(),
        tracking_url: "https://track.example/YMT-4242-0001".to_owned(),
    };
    let shipped = shop
        .admin
        .mark_shipment_shipped(with_token(handover.clone(), &shop.operator))
        .await
        .expect("the operator ships it")
        .into_inner()
        .shipment
        .expect("shipment");
    assert_eq!(shipment_status(&shipped), common::ShipmentStatus::Shipped);
    assert_eq!(shipped.shipment_id, preparing.shipment_id);
    assert_eq!(shipped.order_id, placed.order_id);
    assert_eq!(
        (shipped.carrier.as_str(), shipped.tracking_number.as_str()),
        ("yamato", "YMT-4242-0001")
    );
    assert!(shipped.ship_time.is_some() && shipped.deliver_time.is_none());
    // The same handover again is a no-op; another tracking number is refused.
    let replayed = shop
        .admin
        .mark_shipment_shipped(with_token(handover.clone(), &shop.operator))
        .await
        .expect("a repeated handover")
        .into_inner()
        .shipment
        .expect("shipment");
    assert_eq!(replayed, shipped);
    let other = shop
        .admin
        .mark_shipment_shipped(with_token(
            bff::MarkShipmentShippedRequest {
                tracking_number: "YMT-4242-0002".to_owned(),
                ..handover.clone()
            },
            &shop.operator,
        ))
        .await
        .expect_err("shipped with another tracking number");
    assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");
    assert_eq!(reason(&other), "ILLEGAL_STATE_TRANSITION");

    let on_the_way = watch_to(
        &mut stream,
        deadline,
        &mut seen,
        common::OrderStatus::Shipped,
    )
    .await;
    let parcel = on_the_way.shipment.clone().expect("the parcel is shown");
    assert_eq!(parcel.carrier, "yamato");
    assert_eq!(parcel.tracking_number, "YMT-4242-0001");
    assert_eq!(parcel.tracking_url, "https://track.example/YMT-4242-0001");
    assert_eq!(parcel.ship_time, shipped.ship_time);
    assert!(parcel.deliver_time.is_none());
    // Shipped is too late to cancel.
    let refused = shop
        .orders
        .cancel_order(with_token(
            bff::CancelOrderRequest {
                order_id: placed.order_id.clone(),
            },
            &shop.shopper,
        ))
        .await
        .expect_err("a shipped order cannot be cancelled");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "ILLEGAL_STATE_TRANSITION");

    // The carrier reports the delivery (a carrier integration calls the process service; the
    // public API has no such RPC).
    let process_channel = Channel::from_shared(services.process_uri())
        .expect("process uri")
        .connect_lazy();
    process::shipment_service_client::ShipmentServiceClient::new(process_channel)
        .mark_shipment_delivered(as_operator(process::MarkShipmentDeliveredRequest {
            shipment_id: preparing.shipment_id.clone(),
            deliver_time: None,
        }))
        .await
        .expect("delivered");
    let finished = watch_to(
        &mut stream,
        deadline,
        &mut seen,
        common::OrderStatus::Finished,
    )
    .await;
    // The watch may have started PENDING or AWAITING_PAYMENT; from the payment on it saw
    // every step.
    let after_payment: Vec<_> = seen
        .iter()
        .copied()
        .skip_while(|status| *status != common::OrderStatus::Paid)
        .collect();
    assert_eq!(
        after_payment,
        [
            common::OrderStatus::Paid,
            common::OrderStatus::Shipped,
            common::OrderStatus::Finished
        ],
        "{seen:?}"
    );
    let delivered = finished.shipment.clone().expect("the parcel");
    assert_eq!(delivered.tracking_number, "YMT-4242-0001");
    assert!(delivered.deliver_time.is_some());
    let end = tokio::time::timeout_at(deadline, stream.message())
        .await
        .expect("the watch ends");
    assert!(
        matches!(end, Ok(None)),
        "a watch ends OK at FINISHED: {end:?}"
    );
    assert_eq!(shop.stock_level().await, (ON_HAND - UNITS, 0));
    assert_eq!(
        shop.coupon_status(&coupon.user_coupon_id).await,
        (common::UserCouponStatus::Used, placed.order_id.clone())
    );
    let listed = shop.shipments(&placed.order_id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        shipment_status(&listed[0]),
        common::ShipmentStatus::Delivered
    );

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipment_rpcs_refuse_bad_input_naming_the_public_field_and_non_admins() {
    let services = Services::start_full_with(FullStack {
        carrier: CarrierMode::Manual,
        ..FullStack::default()
    })
    .await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::open(&services, &bff).await;
    shop.charge(CHARGE).await;
    let coupon = shop.claimed_coupon().await;
    let placed = shop.checkout(common::PaymentMethod::Points, &coupon).await;
    let preparing = shop
        .shipment_until(&placed.order_id, common::ShipmentStatus::Preparing)
        .await;
    let handover = |tracking_number: &str, tracking_url: &str| bff::MarkShipmentShippedRequest {
        shipment_id: preparing.shipment_id.clone(),
        carrier: "yamato".to_owned(),
        tracking_number: tracking_number.to_owned(),
        tracking_url: tracking_url.to_owned(),
    };

    let bad_handovers = [
        (
            bff::MarkShipmentShippedRequest {
                shipment_id: String::new(),
                ..handover("YMT-1", "")
            },
            "shipment_id",
        ),
        (
            bff::MarkShipmentShippedRequest {
                shipment_id: "parcel-1".to_owned(),
                ..handover("YMT-1", "")
            },
            "shipment_id",
        ),
        (
            bff::MarkShipmentShippedRequest {
                carrier: String::new(),
                ..handover("YMT-1", "")
            },
            "carrier",
        ),
        (
            bff::MarkShipmentShippedRequest {
                carrier: "c".repeat(51),
                ..handover("YMT-1", "")
            },
            "carrier",
        ),
        (handover("", ""), "tracking_number"),
        (handover("YMT 1", ""), "tracking_number"),
        (handover(&"9".repeat(65), ""), "tracking_number"),
        (
            handover("YMT-1", "http://track.example/YMT-1"),
            "tracking_url",
        ),
    ];
    for (request, field) in bad_handovers {
        let shown = format!("{request:?}");
        let status = shop
            .admin
            .mark_shipment_shipped(with_token(request, &shop.operator))
            .await
            .expect_err("a bad handover is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}: {status:?}");
        assert_eq!(reason(&status), "VALIDATION_FAILED", "{shown}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()], "{shown}");
    }
    let unknown = shop
        .admin
        .mark_shipment_shipped(with_token(
            bff::MarkShipmentShippedRequest {
                shipment_id: Uuid::new_v4().to_string(),
                ..handover("YMT-1", "")
            },
            &shop.operator,
        ))
        .await
        .expect_err("no such shipment");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert_eq!(reason(&unknown), "RESOURCE_NOT_FOUND");

    let list = |order_id: &str, statuses: Vec<i32>, page_size: i32, page_token: &str| {
        bff::ListShipmentsRequest {
            page_size,
            page_token: page_token.to_owned(),
            order_id: order_id.to_owned(),
            statuses,
        }
    };
    let bad_lists = [
        (list("order-1", vec![], 0, ""), "order_id"),
        (
            list("", vec![common::ShipmentStatus::Unspecified.into()], 0, ""),
            "statuses[0]",
        ),
        (list("", vec![], -1, ""), "page_size"),
    ];
    for (request, field) in bad_lists {
        let shown = format!("{request:?}");
        let status = shop
            .admin
            .list_shipments(with_token(request, &shop.operator))
            .await
            .expect_err("a bad listing is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}: {status:?}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()], "{shown}");
    }
    let token = shop
        .admin
        .list_shipments(with_token(
            list("", vec![], 0, "not a token"),
            &shop.operator,
        ))
        .await
        .expect_err("a made-up page token");
    assert_eq!(token.code(), Code::InvalidArgument, "{token:?}");
    assert_eq!(reason(&token), "INVALID_PAGE_TOKEN");

    // Filters: by state, and another order's shipment is not this one.
    let preparing_ones = shop
        .admin
        .list_shipments(with_token(
            list("", vec![common::ShipmentStatus::Preparing.into()], 0, ""),
            &shop.operator,
        ))
        .await
        .expect("listed")
        .into_inner()
        .shipments;
    assert_eq!(preparing_ones, vec![preparing.clone()]);
    let shipped_ones = shop
        .admin
        .list_shipments(with_token(
            list("", vec![common::ShipmentStatus::Shipped.into()], 0, ""),
            &shop.operator,
        ))
        .await
        .expect("listed")
        .into_inner()
        .shipments;
    assert!(shipped_ones.is_empty(), "{shipped_ones:?}");
    assert!(shop.shipments(&Uuid::new_v4().to_string()).await.is_empty());

    // A buyer's token and no token are refused before the process service is asked; the
    // shipment is still PREPARING after all of it.
    let refusals = [
        shop.admin
            .list_shipments(with_token(list("", vec![], 0, ""), &shop.shopper))
            .await
            .map(drop),
        shop.admin
            .mark_shipment_shipped(with_token(handover("YMT-1", ""), &shop.shopper))
            .await
            .map(drop),
    ];
    for (i, outcome) in refusals.into_iter().enumerate() {
        let status = outcome.expect_err("a buyer is no admin");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "call {i}: {status:?}"
        );
        assert_eq!(reason(&status), "ROLE_REQUIRED");
    }
    let anonymous = shop
        .admin
        .mark_shipment_shipped(handover("YMT-1", ""))
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    assert_eq!(
        shop.shipments(&placed.order_id).await,
        vec![preparing],
        "no refusal shipped anything"
    );
    assert_eq!(
        status_of(&shop.order(&placed.order_id).await),
        common::OrderStatus::Paid
    );

    drop(bff);
    services.stop().await;
}

/// What a browser does on the sandbox page: loads it, finds the form whose button says
/// `button` and posts it (the form's action is a path on the page's origin). The HTTP status
/// of the post.
async fn press(payment_url: &str, button: &str) -> u16 {
    mercato_bff::app::install_crypto_provider();
    let http = reqwest::Client::new();
    let page = http
        .get(payment_url)
        .send()
        .await
        .expect("the sandbox page answers");
    assert_eq!(page.status().as_u16(), 200, "the sandbox page loads");
    let html = page.text().await.expect("the page's html");
    let action = html
        .split("<form")
        .skip(1)
        .find(|form| form.contains(&format!(">{button}</button>")))
        .and_then(|form| form.split("action=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the page has a {button} form: {html}"))
        .to_owned();
    let url = reqwest::Url::parse(payment_url)
        .expect("the payment url is a url")
        .join(&action)
        .expect("the form action resolves against the page");
    http.post(url)
        .send()
        .await
        .expect("the sandbox button answers")
        .status()
        .as_u16()
}
