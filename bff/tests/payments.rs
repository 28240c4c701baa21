//! Payments and the points wallet through the BFF, end to end: the real user, product, order and
//! payment services in-process (the last three on one broker namespace, so every saga step
//! travels over the real bus), against real PostgreSQL, Redis and RabbitMQ.
//!
//! - POINTS: sign up → charge the wallet → claim a coupon → cart → checkout from the cart with
//!   the coupon → the order reaches PAID, watched through `WatchOrder` → the payment, the stock
//!   reservation, the coupon USED, the balance and the ledger.
//! - SANDBOX: checkout → `GetOrderPayment` gives the sandbox page → the page's Pay form posted as
//!   a browser would → PAID; the Fail form → CANCELLED with the stock released and the coupon
//!   restored.
//! - Refusals: `PAYMENT_NOT_READY` before the payment exists, someone else's order NOT_FOUND,
//!   bad charges naming their field and writing nothing, admin payment RPCs for admins only, and
//!   refused calls never reaching the payment service.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as product;
use support::{
    FakeUsers, JwksServer, RedisPrefix, SKU_PRICE, Services, TestKey, claims, counting_listener,
    press, reason, seed_sku, settings, shipping_address, sign_up, sign_up_admin, violated_fields,
    with_token,
};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

type Orders = bff::order_service_client::OrderServiceClient<Channel>;
type Wallets = bff::wallet_service_client::WalletServiceClient<Channel>;
type Admin = bff::admin_service_client::AdminServiceClient<Channel>;
type Coupons = bff::coupon_service_client::CouponServiceClient<Channel>;
type Carts = bff::cart_service_client::CartServiceClient<Channel>;

/// How long a saga step may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The discount of the coupon the checkouts use, in JPY.
const DISCOUNT: i64 = 300;

fn jpy(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

/// The BFF's clients on one channel.
struct Shop {
    auth: bff::auth_service_client::AuthServiceClient<Channel>,
    orders: Orders,
    wallets: Wallets,
    admin: Admin,
    coupons: Coupons,
    carts: Carts,
}

impl Shop {
    fn new(channel: Channel) -> Self {
        Self {
            auth: bff::auth_service_client::AuthServiceClient::new(channel.clone()),
            orders: Orders::new(channel.clone()),
            wallets: Wallets::new(channel.clone()),
            admin: Admin::new(channel.clone()),
            coupons: Coupons::new(channel.clone()),
            carts: Carts::new(channel),
        }
    }

    async fn charge(&mut self, token: &str, amount: i64, key: &str) -> bff::ChargePointsResponse {
        self.wallets
            .charge_points(with_token(
                bff::ChargePointsRequest {
                    amount: jpy(amount),
                    idempotency_key: key.to_owned(),
                },
                token,
            ))
            .await
            .expect("points charged")
            .into_inner()
    }

    async fn balance(&mut self, token: &str) -> i64 {
        self.wallets
            .get_wallet(with_token(bff::GetWalletRequest {}, token))
            .await
            .expect("wallet read")
            .into_inner()
            .wallet
            .expect("wallet")
            .balance
            .expect("balance")
            .amount_minor
    }

    async fn ledger(&mut self, token: &str) -> Vec<bff::LedgerEntry> {
        self.wallets
            .list_ledger_entries(with_token(bff::ListLedgerEntriesRequest::default(), token))
            .await
            .expect("ledger listed")
            .into_inner()
            .entries
    }

    async fn payment(&mut self, token: &str, order_id: &str) -> Result<bff::Payment, Status> {
        self.orders
            .get_order_payment(with_token(
                bff::GetOrderPaymentRequest {
                    order_id: order_id.to_owned(),
                },
                token,
            ))
            .await
            .map(|response| response.into_inner().payment.expect("payment"))
    }

    /// A coupon of [`DISCOUNT`] off, claimed by `shopper` from a campaign the admin opens.
    async fn claimed_coupon(&mut self, operator: &str, shopper: &str) -> bff::UserCoupon {
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
                operator,
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
                operator,
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
                shopper,
            ))
            .await
            .expect("coupon claimed")
            .into_inner()
            .user_coupon
            .expect("user coupon")
    }

    async fn coupon(&mut self, token: &str, user_coupon_id: &str) -> bff::UserCoupon {
        self.coupons
            .list_my_coupons(with_token(bff::ListMyCouponsRequest::default(), token))
            .await
            .expect("coupons listed")
            .into_inner()
            .user_coupons
            .into_iter()
            .find(|held| held.user_coupon_id == user_coupon_id)
            .expect("the coupon is held")
    }

    /// Puts `quantity` × `sku` in the cart and checks the cart out with `method` (and the
    /// coupon, when given).
    async fn checkout_cart(
        &mut self,
        token: &str,
        sku: &str,
        quantity: i64,
        method: common::PaymentMethod,
        coupon: Option<&bff::UserCoupon>,
    ) -> bff::Order {
        self.carts
            .add_cart_item(with_token(
                bff::AddCartItemRequest {
                    sku_id: sku.to_owned(),
                    quantity,
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                token,
            ))
            .await
            .expect("added to the cart");
        let discount = coupon.map_or(0, |_| DISCOUNT);
        self.orders
            .create_order(with_token(
                bff::CreateOrderRequest {
                    idempotency_key: Uuid::new_v4().to_string(),
                    source: Some(bff::create_order_request::Source::Cart(
                        bff::CartCheckout {},
                    )),
                    shipping_address: Some(shipping_address("Shopper")),
                    payment_method: method.into(),
                    user_coupon_id: coupon
                        .map(|held| held.user_coupon_id.clone())
                        .unwrap_or_default(),
                    expected_total: jpy(quantity * SKU_PRICE - discount),
                },
                token,
            ))
            .await
            .expect("checkout")
            .into_inner()
            .order
            .expect("order")
    }

    /// Watches the order until it is `want`; the order then. A watch the BFF ends before
    /// (UNAVAILABLE: watch again) is started again, as the storefront does.
    async fn watch_until(
        &mut self,
        token: &str,
        order_id: &str,
        want: common::OrderStatus,
    ) -> bff::Order {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let mut stream = self
                .orders
                .watch_order(with_token(
                    bff::WatchOrderRequest {
                        order_id: order_id.to_owned(),
                    },
                    token,
                ))
                .await
                .expect("watch starts")
                .into_inner();
            loop {
                let message = tokio::time::timeout_at(deadline, stream.message())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("order {order_id} went through {seen:?}, never {want:?}")
                    });
                match message {
                    Ok(Some(bff::WatchOrderResponse { order: Some(order) })) => {
                        let status = status_of(&order);
                        seen.push(status);
                        if status == want {
                            return order;
                        }
                    }
                    Ok(None) => panic!("order {order_id} ended after {seen:?}, never {want:?}"),
                    Ok(Some(bff::WatchOrderResponse { order: None })) => {
                        panic!("a watch message without its order")
                    }
                    Err(status) if status.code() == Code::Unavailable => break,
                    Err(status) => panic!("the watch failed: {status:?}"),
                }
            }
        }
    }
}

fn status_of(order: &bff::Order) -> common::OrderStatus {
    common::OrderStatus::try_from(order.status).expect("a known order status")
}

fn payment_status(payment: &bff::Payment) -> common::PaymentStatus {
    common::PaymentStatus::try_from(payment.status).expect("a known payment status")
}

fn kind_of(entry: &bff::LedgerEntry) -> common::LedgerEntryKind {
    common::LedgerEntryKind::try_from(entry.kind).expect("a known entry kind")
}

/// `(on_hand, reserved)` of a SKU, read from the product service as an internal admin.
async fn stock(product_uri: &str, sku_id: &str) -> (i64, i64) {
    let channel = Channel::from_shared(product_uri.to_owned())
        .expect("product uri")
        .connect_lazy();
    let mut request = Request::new(product::GetStockRequest {
        sku_id: sku_id.to_owned(),
    });
    Principal::new(Uuid::new_v4(), [Role::Admin]).write_metadata(request.metadata_mut());
    let level = product::stock_service_client::StockServiceClient::new(channel)
        .get_stock(request)
        .await
        .expect("stock read")
        .into_inner()
        .stock
        .expect("stock level");
    (level.on_hand, level.reserved)
}

/// Waits until the SKU's stock is `want`.
async fn wait_for_stock(product_uri: &str, sku_id: &str, want: (i64, i64)) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = stock(product_uri, sku_id).await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stock of {sku_id} stayed {now:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The order's payment once the payment service attached it (`PAYMENT_NOT_READY` before).
async fn attached_payment(shop: &mut Shop, token: &str, order_id: &str) -> bff::Payment {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match shop.payment(token, order_id).await {
            Ok(payment) => return payment,
            Err(status) if reason(&status) == "PAYMENT_NOT_READY" => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_points_checkout_through_the_bff_is_paid_from_the_wallet_and_uses_the_coupon() {
    let services = Services::start_with_payments().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::new(bff.channel().await);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let operator = sign_up_admin(&mut shop.auth, &services.users.grpc_uri()).await;
    let shopper = sign_up(&mut shop.auth).await;

    // A new wallet is empty; a charge is applied once per key.
    assert_eq!(shop.balance(&shopper).await, 0);
    assert!(shop.ledger(&shopper).await.is_empty());
    let key = Uuid::new_v4().to_string();
    let charged = shop.charge(&shopper, 10_000, &key).await;
    assert_eq!(
        charged.wallet.as_ref().and_then(|w| w.balance.clone()),
        jpy(10_000)
    );
    let entry = charged.entry.expect("the charge's entry");
    assert_eq!(kind_of(&entry), common::LedgerEntryKind::Charge);
    assert_eq!(
        (entry.amount.clone(), entry.balance_after.clone()),
        (jpy(10_000), jpy(10_000))
    );
    assert!(entry.order_id.is_empty());
    let replayed = shop.charge(&shopper, 10_000, &key).await;
    assert_eq!(
        replayed.entry.as_ref(),
        Some(&entry),
        "a replay answers the first entry"
    );
    assert_eq!(shop.balance(&shopper).await, 10_000, "and charges nothing");

    // Coupon, cart, checkout with POINTS.
    let held = shop.claimed_coupon(&operator, &shopper).await;
    let placed = shop
        .checkout_cart(
            &shopper,
            &sku,
            2,
            common::PaymentMethod::Points,
            Some(&held),
        )
        .await;
    let total = 2 * SKU_PRICE - DISCOUNT;
    assert_eq!(placed.total, jpy(total));
    assert_eq!(
        placed.payment_method,
        i32::from(common::PaymentMethod::Points)
    );

    // The payment service pays it from the wallet; the buyer watches it happen.
    let paid = shop
        .watch_until(&shopper, &placed.order_id, common::OrderStatus::Paid)
        .await;
    assert!(!paid.payment_id.is_empty());
    assert!(paid.payment_url.is_empty(), "points need no payment page");
    let payment = shop
        .payment(&shopper, &placed.order_id)
        .await
        .expect("the order's payment");
    assert_eq!(payment.payment_id, paid.payment_id);
    assert_eq!(payment.order_id, placed.order_id);
    assert_eq!(payment_status(&payment), common::PaymentStatus::Succeeded);
    assert_eq!(payment.method, i32::from(common::PaymentMethod::Points));
    assert_eq!(payment.amount, jpy(total));
    assert_eq!(payment.refunded_amount, jpy(0));
    assert!(payment.payment_url.is_empty() && payment.client_secret.is_empty());
    assert!(payment.publishable_key.is_empty() && payment.failure_message.is_empty());
    assert!(payment.create_time.is_some() && payment.settle_time.is_some());

    // The wallet paid exactly the total, and its ledger says so, newest first.
    assert_eq!(shop.balance(&shopper).await, 10_000 - total);
    let ledger = shop.ledger(&shopper).await;
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    assert_eq!(kind_of(&ledger[0]), common::LedgerEntryKind::Spend);
    assert_eq!(ledger[0].amount, jpy(-total));
    assert_eq!(ledger[0].balance_after, jpy(10_000 - total));
    assert_eq!(ledger[0].order_id, placed.order_id);
    assert_eq!(ledger[1], entry);
    let spends = shop
        .wallets
        .list_ledger_entries(with_token(
            bff::ListLedgerEntriesRequest {
                kinds: vec![common::LedgerEntryKind::Spend.into()],
                ..bff::ListLedgerEntriesRequest::default()
            },
            &shopper,
        ))
        .await
        .expect("spends listed")
        .into_inner()
        .entries;
    assert_eq!(spends, vec![ledger[0].clone()]);

    // The coupon was used by this order; the cart is empty; the two units stay reserved for
    // the order (fulfilment commits them).
    let used = shop.coupon(&shopper, &held.user_coupon_id).await;
    assert_eq!(used.status, i32::from(common::UserCouponStatus::Used));
    assert_eq!(used.order_id, placed.order_id);
    assert_eq!(stock(&services.products.grpc_uri(), &sku).await, (10, 2));

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_checkout_is_paid_on_the_payment_page_the_bff_points_to() {
    let services = Services::start_with_payments().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::new(bff.channel().await);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let operator = sign_up_admin(&mut shop.auth, &services.users.grpc_uri()).await;
    let shopper = sign_up(&mut shop.auth).await;
    let held = shop.claimed_coupon(&operator, &shopper).await;

    let placed = shop
        .checkout_cart(
            &shopper,
            &sku,
            1,
            common::PaymentMethod::Sandbox,
            Some(&held),
        )
        .await;
    let awaiting = shop
        .watch_until(
            &shopper,
            &placed.order_id,
            common::OrderStatus::AwaitingPayment,
        )
        .await;
    let payment = attached_payment(&mut shop, &shopper, &placed.order_id).await;
    assert_eq!(payment.payment_id, awaiting.payment_id);
    assert_eq!(
        payment_status(&payment),
        common::PaymentStatus::RequiresAction
    );
    assert_eq!(payment.method, i32::from(common::PaymentMethod::Sandbox));
    assert_eq!(payment.amount, jpy(SKU_PRICE - DISCOUNT));
    assert!(!payment.payment_url.is_empty());
    assert_eq!(
        payment.payment_url, awaiting.payment_url,
        "the order links the same page"
    );
    assert!(payment.client_secret.is_empty() && payment.publishable_key.is_empty());
    assert!(payment.settle_time.is_none());
    // Nothing is collected yet: the unit is reserved, the coupon used.
    assert_eq!(stock(&services.products.grpc_uri(), &sku).await, (10, 1));

    assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    let paid = shop
        .watch_until(&shopper, &placed.order_id, common::OrderStatus::Paid)
        .await;
    assert_eq!(paid.payment_id, payment.payment_id);
    let settled = shop
        .payment(&shopper, &placed.order_id)
        .await
        .expect("the payment");
    assert_eq!(payment_status(&settled), common::PaymentStatus::Succeeded);
    assert!(settled.settle_time.is_some());
    let used = shop.coupon(&shopper, &held.user_coupon_id).await;
    assert_eq!(used.status, i32::from(common::UserCouponStatus::Used));
    assert_eq!(used.order_id, placed.order_id);
    assert_eq!(stock(&services.products.grpc_uri(), &sku).await, (10, 1));
    // The page no longer takes a button press for a settled payment.
    let again = reqwest::Client::new()
        .post(format!("{}/pay", payment.payment_url))
        .send()
        .await
        .expect("the sandbox answers")
        .status()
        .as_u16();
    assert_eq!(again, 409);
    // The wallet was never involved.
    assert_eq!(shop.balance(&shopper).await, 0);

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sandbox_payment_cancels_the_order_and_gives_back_the_stock_and_the_coupon() {
    let services = Services::start_with_payments().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::new(bff.channel().await);
    let sku = seed_sku(&services.products.grpc_uri(), 5).await;
    let operator = sign_up_admin(&mut shop.auth, &services.users.grpc_uri()).await;
    let shopper = sign_up(&mut shop.auth).await;
    let held = shop.claimed_coupon(&operator, &shopper).await;

    let placed = shop
        .checkout_cart(
            &shopper,
            &sku,
            2,
            common::PaymentMethod::Sandbox,
            Some(&held),
        )
        .await;
    let payment = attached_payment(&mut shop, &shopper, &placed.order_id).await;
    assert_eq!(stock(&services.products.grpc_uri(), &sku).await, (5, 2));

    assert_eq!(press(&payment.payment_url, "Fail").await, 200);
    let cancelled = shop
        .watch_until(&shopper, &placed.order_id, common::OrderStatus::Cancelled)
        .await;
    assert_eq!(
        cancelled.cancellation_reason,
        i32::from(common::OrderCancellationReason::PaymentFailed)
    );
    let failed = shop
        .payment(&shopper, &placed.order_id)
        .await
        .expect("the failed payment is still readable");
    assert_eq!(payment_status(&failed), common::PaymentStatus::Failed);
    assert!(!failed.failure_message.is_empty());
    wait_for_stock(&services.products.grpc_uri(), &sku, (5, 0)).await;
    let restored = shop.coupon(&shopper, &held.user_coupon_id).await;
    assert_eq!(
        restored.status,
        i32::from(common::UserCouponStatus::Available)
    );

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_charges_and_other_peoples_orders_are_refused_precisely_and_write_nothing() {
    let services = Services::start_with_payments().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::new(bff.channel().await);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let shopper = sign_up(&mut shop.auth).await;
    let other = sign_up(&mut shop.auth).await;

    let charge = |amount: Option<common::Money>, key: &str| bff::ChargePointsRequest {
        amount,
        idempotency_key: key.to_owned(),
    };
    let key = Uuid::new_v4().to_string();
    let refusals = [
        (charge(jpy(0), &key), "amount.amount_minor"),
        (charge(jpy(-500), &key), "amount.amount_minor"),
        (charge(jpy(1_000_001), &key), "amount.amount_minor"),
        (charge(jpy(i64::MAX), &key), "amount.amount_minor"),
        (charge(None, &key), "amount"),
        (charge(jpy(500), ""), "idempotency_key"),
        (charge(jpy(500), &"k".repeat(129)), "idempotency_key"),
    ];
    for (request, field) in refusals {
        let shown = format!("{request:?}");
        let status = shop
            .wallets
            .charge_points(with_token(request, &shopper))
            .await
            .expect_err("a bad charge is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}: {status:?}");
        assert_eq!(reason(&status), "VALIDATION_FAILED", "{shown}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()], "{shown}");
    }
    let dollars = shop
        .wallets
        .charge_points(with_token(
            charge(
                Some(common::Money {
                    currency_code: "USD".to_owned(),
                    amount_minor: 500,
                }),
                &key,
            ),
            &shopper,
        ))
        .await
        .expect_err("points are yen");
    assert_eq!(dollars.code(), Code::InvalidArgument, "{dollars:?}");
    assert_eq!(reason(&dollars), "CURRENCY_MISMATCH");
    assert_eq!(
        shop.balance(&shopper).await,
        0,
        "no refused charge wrote anything"
    );
    assert!(shop.ledger(&shopper).await.is_empty());

    // The same key with another amount is a different request.
    shop.charge(&shopper, 500, &key).await;
    let reused = shop
        .wallets
        .charge_points(with_token(charge(jpy(600), &key), &shopper))
        .await
        .expect_err("a key is bound to its amount");
    assert_eq!(reused.code(), Code::FailedPrecondition, "{reused:?}");
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");
    // The wallet's maximum (10,000,000 by default) holds across charges.
    for _ in 0..9 {
        shop.charge(&shopper, 1_000_000, &Uuid::new_v4().to_string())
            .await;
    }
    let full = shop
        .wallets
        .charge_points(with_token(
            charge(jpy(1_000_000), &Uuid::new_v4().to_string()),
            &shopper,
        ))
        .await
        .expect_err("past the maximum balance");
    assert_eq!(full.code(), Code::FailedPrecondition, "{full:?}");
    assert_eq!(reason(&full), "WALLET_LIMIT_EXCEEDED");
    assert_eq!(shop.balance(&shopper).await, 9_000_500);
    assert_eq!(shop.ledger(&shopper).await.len(), 10);
    // Nobody else's wallet moved.
    assert_eq!(shop.balance(&other).await, 0);

    // Payments: someone else's order is NOT_FOUND, like an unknown one; a malformed id names
    // the field.
    let placed = shop
        .checkout_cart(&shopper, &sku, 1, common::PaymentMethod::Sandbox, None)
        .await;
    attached_payment(&mut shop, &shopper, &placed.order_id).await;
    for (token, order_id) in [
        (&other, placed.order_id.clone()),
        (&shopper, Uuid::new_v4().to_string()),
    ] {
        let status = shop
            .payment(token, &order_id)
            .await
            .expect_err("not the caller's order");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(reason(&status), "RESOURCE_NOT_FOUND");
    }
    let malformed = shop
        .payment(&shopper, "not-a-uuid")
        .await
        .expect_err("a malformed order id");
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    assert_eq!(violated_fields(&malformed), vec!["order_id".to_owned()]);

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_without_a_payment_yet_is_payment_not_ready() {
    // No payment service consumes order.created here: the order stays PENDING, so its payment
    // is deterministically not ready, and the BFF never asks the payment service.
    let services = Services::start().await;
    let (payment_uri, accepted) = counting_listener().await;
    let bff = services
        .bff(&[("PAYMENT_SERVICE_URL", payment_uri.as_str())])
        .await;
    let mut shop = Shop::new(bff.channel().await);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let shopper = sign_up(&mut shop.auth).await;
    let placed = shop
        .checkout_cart(&shopper, &sku, 1, common::PaymentMethod::Sandbox, None)
        .await;
    assert_eq!(status_of(&placed), common::OrderStatus::Pending);

    let status = shop
        .payment(&shopper, &placed.order_id)
        .await
        .expect_err("no payment yet");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status), "PAYMENT_NOT_READY");
    let details = status.get_error_details();
    let violation = &details
        .precondition_failure()
        .expect("a precondition failure")
        .violations[0];
    assert_eq!(violation.subject, format!("orders/{}", placed.order_id));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the payment service was not asked"
    );

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_searches_payments_and_refunds_one_into_the_buyers_wallet() {
    let services = Services::start_with_payments().await;
    let bff = services.bff(&[]).await;
    let mut shop = Shop::new(bff.channel().await);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let operator = sign_up_admin(&mut shop.auth, &services.users.grpc_uri()).await;
    let shopper = sign_up(&mut shop.auth).await;
    let shopper_id = bff::account_service_client::AccountServiceClient::new(bff.channel().await)
        .get_account(with_token(bff::GetAccountRequest {}, &shopper))
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account")
        .user_id;
    shop.charge(&shopper, 5_000, &Uuid::new_v4().to_string())
        .await;
    let placed = shop
        .checkout_cart(&shopper, &sku, 1, common::PaymentMethod::Points, None)
        .await;
    shop.watch_until(&shopper, &placed.order_id, common::OrderStatus::Paid)
        .await;
    let payment = shop
        .payment(&shopper, &placed.order_id)
        .await
        .expect("the payment");

    // The admin finds it by order, without any client secret.
    let found = shop
        .admin
        .search_payments(with_token(
            bff::SearchPaymentsRequest {
                order_id: placed.order_id.clone(),
                ..bff::SearchPaymentsRequest::default()
            },
            &operator,
        ))
        .await
        .expect("payments searched")
        .into_inner()
        .payments;
    assert_eq!(found, vec![payment.clone()]);
    let by_payer = shop
        .admin
        .search_payments(with_token(
            bff::SearchPaymentsRequest {
                target_user_id: shopper_id,
                statuses: vec![common::PaymentStatus::Succeeded.into()],
                ..bff::SearchPaymentsRequest::default()
            },
            &operator,
        ))
        .await
        .expect("payments searched")
        .into_inner()
        .payments;
    assert_eq!(by_payer, vec![payment.clone()]);
    let malformed = shop
        .admin
        .search_payments(with_token(
            bff::SearchPaymentsRequest {
                target_user_id: "someone".to_owned(),
                ..bff::SearchPaymentsRequest::default()
            },
            &operator,
        ))
        .await
        .expect_err("a malformed payer id");
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    assert_eq!(
        violated_fields(&malformed),
        vec!["target_user_id".to_owned()]
    );

    // A partial goodwill refund goes back to the wallet, once per key; the order stays PAID.
    let key = Uuid::new_v4().to_string();
    let refund = bff::RefundPaymentRequest {
        payment_id: payment.payment_id.clone(),
        amount: jpy(200),
        reason: "goodwill".to_owned(),
        idempotency_key: key.clone(),
    };
    let refunded = shop
        .admin
        .refund_payment(with_token(refund.clone(), &operator))
        .await
        .expect("refunded")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(
        payment_status(&refunded),
        common::PaymentStatus::PartiallyRefunded
    );
    assert_eq!(refunded.refunded_amount, jpy(200));
    assert!(refunded.client_secret.is_empty());
    let replayed = shop
        .admin
        .refund_payment(with_token(refund, &operator))
        .await
        .expect("replayed")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(
        replayed.refunded_amount,
        jpy(200),
        "a replay refunds nothing more"
    );
    assert_eq!(shop.balance(&shopper).await, 5_000 - SKU_PRICE + 200);
    let ledger = shop.ledger(&shopper).await;
    assert_eq!(kind_of(&ledger[0]), common::LedgerEntryKind::Refund);
    assert_eq!(ledger[0].amount, jpy(200));
    assert_eq!(ledger[0].order_id, placed.order_id);
    assert_eq!(ledger.len(), 3);
    let too_much = shop
        .admin
        .refund_payment(with_token(
            bff::RefundPaymentRequest {
                payment_id: payment.payment_id.clone(),
                amount: jpy(SKU_PRICE),
                reason: "too much".to_owned(),
                idempotency_key: Uuid::new_v4().to_string(),
            },
            &operator,
        ))
        .await
        .expect_err("more than is left");
    assert_eq!(too_much.code(), Code::FailedPrecondition, "{too_much:?}");
    assert_eq!(reason(&too_much), "REFUND_EXCEEDS_PAYMENT");
    let order = shop
        .orders
        .get_order(with_token(
            bff::GetOrderRequest {
                order_id: placed.order_id.clone(),
            },
            &shopper,
        ))
        .await
        .expect("order")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(status_of(&order), common::OrderStatus::Paid);

    drop(bff);
    services.stop().await;
}

#[tokio::test]
async fn refused_payment_calls_never_reach_the_payment_service() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let (payment_uri, accepted) = counting_listener().await;
    let (order_uri, orders_accepted) = counting_listener().await;
    let prefix = RedisPrefix::new();
    let bff = support::TestBff::start(settings(
        &jwks,
        &users_url,
        &prefix,
        &[
            ("PAYMENT_SERVICE_URL", &payment_uri),
            ("ORDER_SERVICE_URL", &order_uri),
        ],
    ))
    .await;
    let mut shop = Shop::new(bff.channel().await);
    let buyer = key.sign(&claims(
        &jwks.issuer(),
        &Uuid::new_v4().to_string(),
        &["buyer"],
    ));
    let id = Uuid::new_v4().to_string();

    let anonymous = [
        shop.wallets
            .get_wallet(bff::GetWalletRequest {})
            .await
            .map(drop),
        shop.wallets
            .charge_points(bff::ChargePointsRequest {
                amount: jpy(100),
                idempotency_key: id.clone(),
            })
            .await
            .map(drop),
        shop.wallets
            .list_ledger_entries(bff::ListLedgerEntriesRequest::default())
            .await
            .map(drop),
        shop.orders
            .get_order_payment(bff::GetOrderPaymentRequest {
                order_id: id.clone(),
            })
            .await
            .map(drop),
    ];
    for (i, outcome) in anonymous.into_iter().enumerate() {
        let status = outcome.expect_err("no token, no payment call");
        assert_eq!(status.code(), Code::Unauthenticated, "call {i}: {status:?}");
    }
    let not_admin = [
        shop.admin
            .search_payments(with_token(bff::SearchPaymentsRequest::default(), &buyer))
            .await
            .map(drop),
        shop.admin
            .refund_payment(with_token(
                bff::RefundPaymentRequest {
                    payment_id: id.clone(),
                    amount: None,
                    reason: "mine now".to_owned(),
                    idempotency_key: id.clone(),
                },
                &buyer,
            ))
            .await
            .map(drop),
    ];
    for (i, outcome) in not_admin.into_iter().enumerate() {
        let status = outcome.expect_err("a buyer is no admin");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "call {i}: {status:?}"
        );
        assert_eq!(reason(&status), "ROLE_REQUIRED", "call {i}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no refused call reached the payment service"
    );
    assert_eq!(
        orders_accepted.load(Ordering::SeqCst),
        0,
        "nor the order service"
    );
    assert_eq!(users.call_count(), 0, "nor the user service");

    // The control: a signed-in wallet read does reach it (and, since the stand-in speaks no
    // gRPC, fails UNAVAILABLE without internal detail).
    let reached = shop
        .wallets
        .get_wallet(with_token(bff::GetWalletRequest {}, &buyer))
        .await
        .expect_err("the stand-in answers nothing");
    assert_eq!(reached.code(), Code::Unavailable, "{reached:?}");
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the stand-in was called"
    );
}
