//! Seller payouts end to end: real product, order and payment services, a real localstripe per
//! test for the payments (PaymentIntents, charges, refunds), and the Connect endpoints
//! localstripe lacks (accounts, links, transfers, reversals) answered by mercato-stripe's
//! stand-in behind the same proxy, whose transfers must name a real localstripe charge.
//!
//! Each test seeds its own sellers (one product each), connects some of them through
//! `PayoutService`, and checks what reached Stripe (the stand-in's transfers and reversals) and
//! what the service recorded.

use std::time::Duration;

use mercato_platform::principal::Role;
use mercato_proto::mercato::common::v1::{
    OrderStatus, PaymentMethod, PaymentStatus, PayoutStatus, SellerAccountStatus,
};
use mercato_proto::mercato::order::v1 as order_pb;
use mercato_proto::mercato::payment::v1 as pb;
use mercato_proto::mercato::product::v1 as product_pb;
use mercato_stripe::testing::{ConnectCall, Fault, LocalStripe, TEST_SECRET_KEY, TestCard};
use pb::payout_service_client::PayoutServiceClient;
use secrecy::SecretString;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::shop::{
    Shop, as_admin, as_buyer, as_user, eventually, fields, reason, signed, tokyo, yen,
};
use crate::support::{Seeder, channel};

/// The fee of these tests: 10 %.
const FEE_BPS: u16 = 1_000;

/// The three services with STRIPE and Connect on `stripe`, at [`FEE_BPS`].
async fn shop_on(stripe: &LocalStripe) -> Shop {
    let base_url = stripe.base_url();
    Shop::start_with(move |settings| {
        settings.payments.stripe_secret_key = Some(SecretString::from(TEST_SECRET_KEY));
        settings.payments.stripe_api_base_url = base_url;
        settings.payouts.platform_fee_bps = FEE_BPS;
    })
    .await
}

fn payouts_client(shop: &Shop) -> PayoutServiceClient<Channel> {
    PayoutServiceClient::new(channel(shop.payment().grpc_uri()))
}

/// A seller with one published SKU.
struct Seller {
    id: Uuid,
    sku: String,
}

impl Seller {
    /// A new seller whose SKU costs `price` yen, with plenty of stock.
    async fn new(shop: &Shop, price: i64) -> Self {
        let seeder = Seeder::new(shop.product.grpc_uri());
        let (product_id, skus) = seeder.published("Payout test mug", &[(price, 100)]).await;
        let product = product_pb::product_service_client::ProductServiceClient::new(channel(
            shop.product.grpc_uri(),
        ))
        .get_product(as_buyer(
            product_pb::GetProductRequest {
                product_id,
                show_deleted: false,
            },
            Uuid::now_v7(),
        ))
        .await
        .expect("the product is public")
        .into_inner()
        .product
        .expect("a product");
        Self {
            id: Uuid::parse_str(&product.seller_id).expect("seller uuid"),
            sku: skus.into_iter().next().expect("one sku"),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        as_user(message, self.id, &[Role::Buyer, Role::Seller])
    }

    /// Creates the seller's payout account through `PayoutService`; its Stripe id.
    async fn connect(&self, shop: &Shop) -> String {
        payouts_client(shop)
            .create_seller_account(self.request(create_request(&Uuid::new_v4().to_string())))
            .await
            .expect("the seller account is created")
            .into_inner()
            .seller_account
            .expect("an account")
            .provider_account_id
    }

    /// The seller's payouts, newest first.
    async fn payouts(&self, shop: &Shop) -> Vec<pb::Payout> {
        payouts_client(shop)
            .list_payouts(self.request(pb::ListPayoutsRequest {
                page_size: 100,
                ..Default::default()
            }))
            .await
            .expect("payouts listed")
            .into_inner()
            .payouts
    }

    /// Waits until the seller has a payout in `status`; it.
    async fn payout_in(&self, shop: &Shop, status: PayoutStatus) -> pb::Payout {
        let deadline = tokio::time::Instant::now() + crate::shop::PATIENCE;
        loop {
            let payouts = self.payouts(shop).await;
            if let Some(payout) = payouts.iter().find(|p| p.status == status as i32) {
                return payout.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {status:?} payout for seller {}: {payouts:?}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A request as seller `seller`.
fn as_seller<T>(seller: Uuid, message: T) -> tonic::Request<T> {
    as_user(message, seller, &[Role::Buyer, Role::Seller])
}

fn create_request(key: &str) -> pb::CreateSellerAccountRequest {
    pb::CreateSellerAccountRequest {
        country_code: "JP".to_owned(),
        return_url: "https://shop.example/seller/payouts".to_owned(),
        refresh_url: "https://shop.example/seller/payouts/refresh".to_owned(),
        idempotency_key: key.to_owned(),
    }
}

/// Places an order of `lines` (SKU, quantity) as `buyer`, paid with `method`.
async fn place(
    shop: &Shop,
    buyer: Uuid,
    lines: &[(&str, i64)],
    method: PaymentMethod,
) -> order_pb::Order {
    shop.orders
        .clone()
        .create_order(as_buyer(
            order_pb::CreateOrderRequest {
                idempotency_key: Uuid::new_v4().to_string(),
                source: Some(order_pb::create_order_request::Source::ExplicitLines(
                    order_pb::ExplicitLines {
                        lines: lines
                            .iter()
                            .map(|(sku, quantity)| order_pb::OrderLineInput {
                                sku_id: (*sku).to_owned(),
                                quantity: *quantity,
                            })
                            .collect(),
                    },
                )),
                shipping_address: Some(tokyo()),
                payment_method: method as i32,
                user_coupon_id: String::new(),
                expected_total: None,
            },
            buyer,
        ))
        .await
        .expect("order created")
        .into_inner()
        .order
        .expect("an order")
}

/// Places a STRIPE order of `lines`, confirms its PaymentIntent with the Visa test card at
/// localstripe and settles it by reconciliation; the order, the paid payment and the buyer.
async fn paid_stripe_order(
    shop: &Shop,
    stripe: &LocalStripe,
    lines: &[(&str, i64)],
) -> (order_pb::Order, pb::Payment, Uuid) {
    let buyer = Uuid::now_v7();
    let order = place(shop, buyer, lines, PaymentMethod::Stripe).await;
    let payment = shop.intent_of(buyer, &order.order_id).await;
    let confirmed = stripe
        .confirm_payment_intent(&payment.provider_payment_id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    shop.payments
        .clone()
        .reconcile_payments(as_admin(pb::ReconcilePaymentsRequest {
            older_than: Some(prost_types::Duration {
                seconds: 0,
                nanos: 0,
            }),
            limit: 0,
        }))
        .await
        .expect("reconciliation ran");
    shop.wait_for_order(buyer, &order.order_id, OrderStatus::Paid)
        .await;
    let payment = shop.payment_of(buyer, &order.order_id).await;
    assert_eq!(payment.status, PaymentStatus::Succeeded as i32);
    (order, payment, buyer)
}

/// The charge of a PaymentIntent at localstripe.
async fn charge_of(stripe: &LocalStripe, intent: &str) -> String {
    stripe
        .client()
        .retrieve_payment_intent(intent)
        .await
        .expect("the intent")
        .latest_charge
        .expect("a paid intent has a charge")
}

/// The stand-in's transfers to `account`.
fn transfers_to(stripe: &LocalStripe, account: &str) -> Vec<Value> {
    stripe
        .connect()
        .transfers()
        .into_iter()
        .filter(|t| t["destination"].as_str() == Some(account))
        .collect()
}

fn minor(money: Option<&mercato_proto::mercato::common::v1::Money>) -> i64 {
    let money = money.expect("an amount");
    assert_eq!(money.currency_code, "JPY");
    money.amount_minor
}

/// A signed `account.updated` webhook for `account`, as Stripe sends when onboarding ends.
async fn account_updated(shop: &Shop, account: &str) -> u16 {
    let body = serde_json::json!({
        "id": format!("evt_{}", Uuid::now_v7().simple()),
        "object": "event",
        "type": "account.updated",
        "data": { "object": { "id": account, "object": "account", "payouts_enabled": true } }
    })
    .to_string()
    .into_bytes();
    let signature = signed(&body);
    shop.post_webhook(body, Some(signature)).await
}

/// `(status, reversal_target, reversed_amount, attempts, transfer_requested)` of a payout.
async fn stored(shop: &Shop, payout_id: &str) -> (String, i64, i64, i32, bool) {
    sqlx::query_as(
        "SELECT status, reversal_target, reversed_amount, attempts, transfer_requested \
         FROM payouts WHERE payout_id = $1",
    )
    .bind(Uuid::parse_str(payout_id).expect("payout uuid"))
    .fetch_one(shop.pool())
    .await
    .expect("payout row")
}

async fn payouts_of_order(shop: &Shop, order_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payouts WHERE order_id = $1")
        .bind(Uuid::parse_str(order_id).expect("order uuid"))
        .fetch_one(shop.pool())
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_pays_each_connected_seller_its_lines_minus_the_fee_from_the_charge() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    let onboarded = Seller::new(&shop, 1_999).await;
    let onboarding = Seller::new(&shop, 1_200).await;
    let unconnected = Seller::new(&shop, 500).await;
    let onboarded_account = onboarded.connect(&shop).await;
    stripe.connect().complete_onboarding(&onboarded_account);
    let onboarding_account = onboarding.connect(&shop).await;

    let (order, payment, _) = paid_stripe_order(
        &shop,
        &stripe,
        &[
            (&onboarded.sku, 2),
            (&onboarding.sku, 1),
            (&unconnected.sku, 3),
        ],
    )
    .await;

    // 2 × 1,999 = 3,998; the fee ⌈399.8⌉ = 400; the seller gets 3,598, from the order's charge.
    let paid = onboarded.payout_in(&shop, PayoutStatus::Transferred).await;
    assert_eq!(paid.order_id, order.order_id);
    assert_eq!(paid.payment_id, payment.payment_id);
    assert_eq!(paid.seller_id, onboarded.id.to_string());
    assert_eq!(
        (
            minor(paid.gross_amount.as_ref()),
            minor(paid.platform_fee.as_ref()),
            minor(paid.net_amount.as_ref())
        ),
        (3_998, 400, 3_598)
    );
    assert!(paid.transfer_time.is_some());
    let sent = transfers_to(&stripe, &onboarded_account);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let transfer = &sent[0];
    assert_eq!(
        transfer["id"].as_str(),
        Some(paid.provider_transfer_id.as_str())
    );
    assert_eq!(transfer["amount"], 3_598);
    assert_eq!(transfer["currency"], "jpy");
    assert_eq!(
        transfer["transfer_group"].as_str(),
        Some(format!("order_{}", order.order_id).as_str())
    );
    assert_eq!(
        transfer["source_transaction"].as_str(),
        Some(
            charge_of(&stripe, &payment.provider_payment_id)
                .await
                .as_str()
        )
    );
    assert_eq!(
        transfer["metadata"]["payout_id"].as_str(),
        Some(paid.payout_id.as_str())
    );

    // The seller still onboarding waits, with nothing sent; the unconnected seller gets nothing.
    let waiting = onboarding.payout_in(&shop, PayoutStatus::Pending).await;
    assert_eq!(
        (
            minor(waiting.gross_amount.as_ref()),
            minor(waiting.platform_fee.as_ref()),
            minor(waiting.net_amount.as_ref())
        ),
        (1_200, 120, 1_080)
    );
    assert!(transfers_to(&stripe, &onboarding_account).is_empty());
    assert!(unconnected.payouts(&shop).await.is_empty());
    assert_eq!(payouts_of_order(&shop, &order.order_id).await, 2);

    // Onboarding finishes; Stripe says so with account.updated; the waiting payout goes out.
    stripe.connect().complete_onboarding(&onboarding_account);
    assert_eq!(account_updated(&shop, &onboarding_account).await, 200);
    let released = onboarding.payout_in(&shop, PayoutStatus::Transferred).await;
    assert_eq!(released.payout_id, waiting.payout_id);
    assert_eq!(transfers_to(&stripe, &onboarding_account).len(), 1);
    let account = payouts_client(&shop)
        .get_seller_account(onboarding.request(pb::GetSellerAccountRequest::default()))
        .await
        .expect("the account")
        .into_inner()
        .seller_account
        .expect("an account");
    assert_eq!(account.status, SellerAccountStatus::Active as i32);

    // Settling the payment again records nothing new.
    let again = crate::shop::intent_event(
        &format!("evt_{}", Uuid::now_v7().simple()),
        "payment_intent.succeeded",
        &payment.provider_payment_id,
    );
    let signature = signed(&again);
    assert_eq!(shop.post_webhook(again, Some(signature)).await, 200);
    assert_eq!(payouts_of_order(&shop, &order.order_id).await, 2);
    assert_eq!(stripe.connect().transfers().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_reverse_the_transfers_in_proportion_and_a_cancellation_the_rest() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    let seller = Seller::new(&shop, 1_000).await;
    let account = seller.connect(&shop).await;
    stripe.connect().complete_onboarding(&account);
    let (order, payment, buyer) = paid_stripe_order(&shop, &stripe, &[(&seller.sku, 3)]).await;
    let payout = seller.payout_in(&shop, PayoutStatus::Transferred).await;
    let net = minor(payout.net_amount.as_ref());
    assert_eq!(net, 2_700);
    let amount = minor(payment.amount.as_ref());

    // A third of the payment back: a third of the net, rounded down, goes back too.
    let part = amount / 3;
    shop.payments
        .clone()
        .refund_payment(as_admin(pb::RefundPaymentRequest {
            payment_id: payment.payment_id.clone(),
            amount: yen(part),
            reason: "one mug broke".to_owned(),
            idempotency_key: Uuid::new_v4().to_string(),
        }))
        .await
        .expect("partial refund");
    let share = net * part / amount;
    eventually("the refunded share is reversed", || async {
        transfers_to(&stripe, &account)[0]["amount_reversed"] == share
    })
    .await;
    eventually("the reversal is recorded", || async {
        stored(&shop, &payout.payout_id).await.2 == share
    })
    .await;
    assert_eq!(
        seller.payouts(&shop).await[0].status,
        PayoutStatus::Transferred as i32,
        "partly reversed is still transferred"
    );

    // The buyer cancels the paid order: the rest of the payment is refunded, and the rest of
    // the transfer reversed.
    shop.orders
        .clone()
        .cancel_order(as_buyer(
            order_pb::CancelOrderRequest {
                order_id: order.order_id.clone(),
            },
            buyer,
        ))
        .await
        .expect("paid order cancelled");
    let reversed = seller.payout_in(&shop, PayoutStatus::Reversed).await;
    assert!(reversed.reverse_time.is_some());
    let transfer = &transfers_to(&stripe, &account)[0];
    assert_eq!(transfer["amount_reversed"], net);
    assert_eq!(transfer["reversed"], true);
    assert_eq!(
        transfer["reversals"]["data"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(stripe.connect().calls(ConnectCall::ReverseTransfer), 2);
    assert_eq!(stored(&shop, &payout.payout_id).await.2, net);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_refunded_before_its_seller_onboarded_is_never_transferred() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    let seller = Seller::new(&shop, 800).await;
    let account = seller.connect(&shop).await;
    let (order, _, buyer) = paid_stripe_order(&shop, &stripe, &[(&seller.sku, 1)]).await;
    let waiting = seller.payout_in(&shop, PayoutStatus::Pending).await;

    shop.orders
        .clone()
        .cancel_order(as_buyer(
            order_pb::CancelOrderRequest {
                order_id: order.order_id.clone(),
            },
            buyer,
        ))
        .await
        .expect("paid order cancelled");
    let withdrawn = seller.payout_in(&shop, PayoutStatus::Reversed).await;
    assert_eq!(withdrawn.payout_id, waiting.payout_id);
    assert_eq!(withdrawn.provider_transfer_id, "");

    // Onboarding finishing later sends nothing for it: the webhook wakes only payouts still
    // waiting, and this one has nothing left to do.
    stripe.connect().complete_onboarding(&account);
    assert_eq!(account_updated(&shop, &account).await, 200);
    let due: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT next_attempt_time FROM payouts WHERE payout_id = $1")
            .bind(Uuid::parse_str(&withdrawn.payout_id).expect("payout uuid"))
            .fetch_one(shop.pool())
            .await
            .expect("payout row");
    assert_eq!(due, None);
    assert!(transfers_to(&stripe, &account).is_empty());
    assert_eq!(stripe.connect().calls(ConnectCall::CreateTransfer), 0);
}

/// A crash between the transfer at Stripe and our write looks, to the service, like a transfer
/// whose answer never came: Stripe made it, we recorded nothing. With Stripe honouring the key,
/// and with keys ignored (localstripe's behaviour, so only our own lookup stands between us and
/// a second transfer), the payout ends with exactly one transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_transfer_or_reversal_answer_never_moves_the_money_twice() {
    for ignore_keys in [false, true] {
        let stripe = LocalStripe::start().await;
        stripe.connect().ignore_idempotency_keys(ignore_keys);
        let shop = shop_on(&stripe).await;
        let seller = Seller::new(&shop, 1_500).await;
        let account = seller.connect(&shop).await;
        stripe.connect().complete_onboarding(&account);
        stripe
            .connect()
            .fail_next(ConnectCall::CreateTransfer, Fault::LoseAnswer);

        let (order, payment, buyer) = paid_stripe_order(&shop, &stripe, &[(&seller.sku, 2)]).await;
        let payout = seller.payout_in(&shop, PayoutStatus::Transferred).await;
        let sent = transfers_to(&stripe, &account);
        assert_eq!(sent.len(), 1, "keys ignored: {ignore_keys}: {sent:#?}");
        assert_eq!(
            sent[0]["id"].as_str(),
            Some(payout.provider_transfer_id.as_str())
        );
        assert_eq!(
            stripe.connect().calls(ConnectCall::CreateTransfer),
            1,
            "the retry found the transfer instead of asking again"
        );
        assert!(stripe.connect().calls(ConnectCall::ListTransfers) >= 1);
        let (_, _, _, _, requested) = stored(&shop, &payout.payout_id).await;
        assert!(requested);

        // The same for the reversal of a cancelled order.
        stripe
            .connect()
            .fail_next(ConnectCall::ReverseTransfer, Fault::LoseAnswer);
        shop.orders
            .clone()
            .cancel_order(as_buyer(
                order_pb::CancelOrderRequest {
                    order_id: order.order_id.clone(),
                },
                buyer,
            ))
            .await
            .expect("paid order cancelled");
        seller.payout_in(&shop, PayoutStatus::Reversed).await;
        let transfer = &transfers_to(&stripe, &account)[0];
        assert_eq!(transfer["amount_reversed"], transfer["amount"]);
        assert_eq!(
            transfer["reversals"]["data"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(stripe.connect().calls(ConnectCall::ReverseTransfer), 1);
        assert_eq!(
            shop.payment_of(buyer, &payment.order_id).await.status,
            PaymentStatus::Refunded as i32
        );
    }
}

/// Two replicas share the database: their workers never work on one payout at once, so every
/// payout of a burst of points orders is transferred exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_transfer_every_payout_exactly_once() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    let base_url = stripe.base_url();
    let namespace = shop.payment_env.broker().namespace().to_owned();
    let replica = shop
        .payment_env
        .start(move |settings| {
            settings.bus_namespace = namespace;
            settings.payments.stripe_secret_key = Some(SecretString::from(TEST_SECRET_KEY));
            settings.payments.stripe_api_base_url = base_url;
            settings.payouts.platform_fee_bps = FEE_BPS;
        })
        .await
        .expect("the replica starts");
    let seller = Seller::new(&shop, 700).await;
    let account = seller.connect(&shop).await;
    stripe.connect().complete_onboarding(&account);

    const ORDERS: usize = 12;
    let buyer = Uuid::now_v7();
    shop.charge(buyer, 700 * 20 + 10_000).await;
    for _ in 0..ORDERS {
        place(&shop, buyer, &[(&seller.sku, 1)], PaymentMethod::Points).await;
    }
    eventually("every payout is transferred", || async {
        let payouts = seller.payouts(&shop).await;
        payouts.len() == ORDERS
            && payouts
                .iter()
                .all(|p| p.status == PayoutStatus::Transferred as i32)
    })
    .await;
    let sent = transfers_to(&stripe, &account);
    assert_eq!(sent.len(), ORDERS);
    let mut payout_ids: Vec<&str> = sent
        .iter()
        .filter_map(|t| t["metadata"]["payout_id"].as_str())
        .collect();
    payout_ids.sort_unstable();
    payout_ids.dedup();
    assert_eq!(payout_ids.len(), ORDERS, "one transfer per payout");
    assert!(
        sent.iter().all(|t| t["source_transaction"].is_null()),
        "points: from the balance"
    );
    assert_eq!(stripe.connect().calls(ConnectCall::CreateTransfer), ORDERS);
    replica.stop().await.expect("the replica stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_created_once_per_seller_and_linked_to_onboarding_then_the_dashboard() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    let mut client = payouts_client(&shop);
    let seller = Uuid::now_v7();

    let missing = client
        .get_seller_account(as_seller(seller, pb::GetSellerAccountRequest::default()))
        .await
        .expect_err("no account yet");
    assert_eq!(
        reason(&missing),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );
    let missing = client
        .create_seller_account_link(as_seller(
            seller,
            pb::CreateSellerAccountLinkRequest {
                return_url: "https://shop.example/seller".to_owned(),
                refresh_url: "https://shop.example/seller/refresh".to_owned(),
            },
        ))
        .await
        .expect_err("no account yet");
    assert_eq!(missing.code(), Code::NotFound);

    let key = Uuid::new_v4().to_string();
    let created = client
        .create_seller_account(as_seller(seller, create_request(&key)))
        .await
        .expect("created")
        .into_inner();
    let account = created.seller_account.expect("an account");
    assert_eq!(account.seller_id, seller.to_string());
    assert!(account.provider_account_id.starts_with("acct_"));
    assert_eq!(account.status, SellerAccountStatus::Onboarding as i32);
    assert_eq!(account.country_code, "JP");
    assert!(
        created
            .onboarding_url
            .starts_with("https://connect.stripe.com/setup/")
    );
    assert!(created.onboarding_url_expire_time.is_some());
    let at_stripe = stripe.connect().accounts();
    assert_eq!(at_stripe.len(), 1);
    assert_eq!(
        at_stripe[0]["metadata"]["seller_id"].as_str(),
        Some(seller.to_string().as_str())
    );
    assert_eq!(
        at_stripe[0]["controller"]["stripe_dashboard"]["type"],
        "express"
    );

    // A replay returns the same account with a fresh link; the key with another request, or
    // another key, makes no second account.
    let replayed = client
        .create_seller_account(as_seller(seller, create_request(&key)))
        .await
        .expect("replayed")
        .into_inner();
    assert_eq!(replayed.seller_account, Some(account.clone()));
    assert_ne!(replayed.onboarding_url, created.onboarding_url);
    let reused = client
        .create_seller_account(as_seller(
            seller,
            pb::CreateSellerAccountRequest {
                country_code: "US".to_owned(),
                ..create_request(&key)
            },
        ))
        .await
        .expect_err("key reused");
    assert_eq!(
        reason(&reused),
        (
            Code::FailedPrecondition,
            "IDEMPOTENCY_KEY_REUSED".to_owned()
        )
    );
    let exists = client
        .create_seller_account(as_seller(seller, create_request("another-key")))
        .await
        .expect_err("one account per seller");
    assert_eq!(
        reason(&exists),
        (Code::AlreadyExists, "SELLER_ACCOUNT_EXISTS".to_owned())
    );
    assert_eq!(stripe.connect().accounts().len(), 1);
    assert_eq!(stripe.connect().calls(ConnectCall::CreateAccount), 1);

    let link = client
        .create_seller_account_link(as_seller(
            seller,
            pb::CreateSellerAccountLinkRequest {
                return_url: "http://localhost:5173/seller".to_owned(),
                refresh_url: "http://localhost:5173/seller/refresh".to_owned(),
            },
        ))
        .await
        .expect("an onboarding link")
        .into_inner();
    assert_eq!(link.status, SellerAccountStatus::Onboarding as i32);
    assert!(link.url.starts_with("https://connect.stripe.com/setup/"));
    assert!(link.expire_time.is_some());

    stripe
        .connect()
        .complete_onboarding(&account.provider_account_id);
    let link = client
        .create_seller_account_link(as_seller(
            seller,
            pb::CreateSellerAccountLinkRequest {
                return_url: "https://shop.example/seller".to_owned(),
                refresh_url: "https://shop.example/seller/refresh".to_owned(),
            },
        ))
        .await
        .expect("a dashboard link")
        .into_inner();
    assert_eq!(link.status, SellerAccountStatus::Active as i32);
    assert!(
        link.url.starts_with("https://connect.stripe.com/express/"),
        "{}",
        link.url
    );
    assert!(
        link.expire_time.is_none(),
        "Stripe gives dashboard links no expiry"
    );

    // Stripe restricts the account: account.updated makes it RESTRICTED.
    stripe.connect().restrict(&account.provider_account_id);
    assert_eq!(
        account_updated(&shop, &account.provider_account_id).await,
        200
    );
    let restricted = client
        .get_seller_account(as_seller(seller, pb::GetSellerAccountRequest::default()))
        .await
        .expect("the account")
        .into_inner()
        .seller_account
        .expect("an account");
    assert_eq!(restricted.status, SellerAccountStatus::Restricted as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_seller_make_one_account() {
    let stripe = LocalStripe::start().await;
    stripe.connect().ignore_idempotency_keys(true);
    let shop = shop_on(&stripe).await;
    let seller = Uuid::now_v7();
    let attempts = (0..8).map(|i| {
        let mut client = payouts_client(&shop);
        async move {
            client
                .create_seller_account(as_user(
                    create_request(&format!("key-{i}")),
                    seller,
                    &[Role::Seller],
                ))
                .await
        }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let created = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(created, 1, "{outcomes:?}");
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(
            reason(refused),
            (Code::AlreadyExists, "SELLER_ACCOUNT_EXISTS".to_owned())
        );
    }
    assert_eq!(stripe.connect().accounts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_their_fields_and_write_nothing() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    let mut client = payouts_client(&shop);
    let seller = Uuid::now_v7();

    let refused = client
        .create_seller_account(as_seller(
            seller,
            pb::CreateSellerAccountRequest {
                country_code: "JPN".to_owned(),
                return_url: "http://shop.example/seller".to_owned(),
                refresh_url: "seller/refresh".to_owned(),
                idempotency_key: String::new(),
            },
        ))
        .await
        .expect_err("invalid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&refused),
        [
            "country_code",
            "return_url",
            "refresh_url",
            "idempotency_key"
        ]
    );
    // A country Stripe does not support is Stripe's answer, named as our field.
    let unsupported = client
        .create_seller_account(as_seller(
            seller,
            pb::CreateSellerAccountRequest {
                country_code: "KP".to_owned(),
                ..create_request("kp")
            },
        ))
        .await
        .expect_err("unsupported");
    assert_eq!(unsupported.code(), Code::InvalidArgument);
    assert_eq!(fields(&unsupported), ["country_code"]);
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM seller_accounts")
        .fetch_one(shop.pool())
        .await
        .expect("count");
    assert_eq!(none, 0);
    assert!(stripe.connect().accounts().is_empty());

    let link = client
        .create_seller_account_link(as_seller(
            seller,
            pb::CreateSellerAccountLinkRequest {
                return_url: String::new(),
                refresh_url: "https://user@shop.example/".to_owned(),
            },
        ))
        .await
        .expect_err("invalid");
    assert_eq!(fields(&link), ["return_url", "refresh_url"]);
    let listing = client
        .list_payouts(as_seller(
            seller,
            pb::ListPayoutsRequest {
                page_size: -1,
                ..Default::default()
            },
        ))
        .await
        .expect_err("invalid");
    assert_eq!(fields(&listing), ["page_size"]);
    let listing = client
        .list_payouts(as_seller(
            seller,
            pb::ListPayoutsRequest {
                statuses: vec![PayoutStatus::Unspecified as i32, 42],
                ..Default::default()
            },
        ))
        .await
        .expect_err("invalid");
    assert_eq!(fields(&listing)[0], "statuses");
    let listing = client
        .list_payouts(as_seller(
            seller,
            pb::ListPayoutsRequest {
                page_token: "not-a-token".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("invalid");
    assert_eq!(
        reason(&listing),
        (Code::InvalidArgument, "INVALID_PAGE_TOKEN".to_owned())
    );
    let named = client
        .get_seller_account(as_admin(pb::GetSellerAccountRequest {
            seller_id: "someone".to_owned(),
        }))
        .await
        .expect_err("invalid");
    assert_eq!(fields(&named), ["seller_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sellers_see_only_their_own_and_admins_everyones() {
    let stripe = LocalStripe::start().await;
    let shop = shop_on(&stripe).await;
    let first = Seller::new(&shop, 900).await;
    let second = Seller::new(&shop, 400).await;
    for seller in [&first, &second] {
        let account = seller.connect(&shop).await;
        stripe.connect().complete_onboarding(&account);
    }
    let buyer = Uuid::now_v7();
    shop.charge(buyer, 10_000).await;
    for _ in 0..3 {
        place(
            &shop,
            buyer,
            &[(&first.sku, 1), (&second.sku, 1)],
            PaymentMethod::Points,
        )
        .await;
    }
    eventually("every payout is transferred", || async {
        let mut all = first.payouts(&shop).await;
        all.extend(second.payouts(&shop).await);
        all.len() == 6
            && all
                .iter()
                .all(|p| p.status == PayoutStatus::Transferred as i32)
    })
    .await;
    let mut client = payouts_client(&shop);

    // A seller's listing is their own; naming another seller is refused, as is a buyer.
    let own = first.payouts(&shop).await;
    assert!(own.iter().all(|p| p.seller_id == first.id.to_string()));
    let other = client
        .list_payouts(first.request(pb::ListPayoutsRequest {
            seller_id: second.id.to_string(),
            ..Default::default()
        }))
        .await
        .expect_err("someone else's");
    assert_eq!(
        reason(&other),
        (Code::PermissionDenied, "ROLE_REQUIRED".to_owned())
    );
    let other = client
        .get_seller_account(first.request(pb::GetSellerAccountRequest {
            seller_id: second.id.to_string(),
        }))
        .await
        .expect_err("someone else's");
    assert_eq!(other.code(), Code::PermissionDenied);
    let own_named = client
        .get_seller_account(first.request(pb::GetSellerAccountRequest {
            seller_id: first.id.to_string(),
        }))
        .await
        .expect("naming oneself is fine");
    assert_eq!(
        own_named.into_inner().seller_account.map(|a| a.seller_id),
        Some(first.id.to_string())
    );
    let buyer_call = client
        .list_payouts(as_buyer(pb::ListPayoutsRequest::default(), buyer))
        .await
        .expect_err("buyers have no payouts");
    assert_eq!(
        reason(&buyer_call),
        (Code::PermissionDenied, "ROLE_REQUIRED".to_owned())
    );
    let anonymous = client
        .list_payouts(tonic::Request::new(pb::ListPayoutsRequest::default()))
        .await
        .expect_err("anonymous");
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // An admin sees every seller's, one seller's, and pages through them.
    let everyone = client
        .list_payouts(as_admin(pb::ListPayoutsRequest {
            page_size: 100,
            ..Default::default()
        }))
        .await
        .expect("admin listing")
        .into_inner()
        .payouts;
    assert_eq!(everyone.len(), 6);
    let theirs = client
        .list_payouts(as_admin(pb::ListPayoutsRequest {
            seller_id: second.id.to_string(),
            ..Default::default()
        }))
        .await
        .expect("admin listing")
        .into_inner()
        .payouts;
    assert_eq!(theirs.len(), 3);
    assert!(theirs.iter().all(|p| p.seller_id == second.id.to_string()));
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_payouts(as_admin(pb::ListPayoutsRequest {
                page_size: 4,
                page_token: token.clone(),
                statuses: vec![PayoutStatus::Transferred as i32],
                ..Default::default()
            }))
            .await
            .expect("a page")
            .into_inner();
        seen.extend(page.payouts.into_iter().map(|p| p.payout_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = everyone.iter().map(|p| p.payout_id.clone()).collect();
    assert_eq!(
        seen, expected,
        "pages in order, newest first, nothing twice"
    );
    let everyones_token = token_for_everyone(&mut client).await;
    let reused = client
        .list_payouts(first.request(pb::ListPayoutsRequest {
            page_token: everyones_token,
            ..Default::default()
        }))
        .await
        .expect_err("a token of another listing");
    assert_eq!(
        reason(&reused),
        (Code::InvalidArgument, "INVALID_PAGE_TOKEN".to_owned())
    );
    let pending = client
        .list_payouts(as_admin(pb::ListPayoutsRequest {
            statuses: vec![PayoutStatus::Pending as i32],
            ..Default::default()
        }))
        .await
        .expect("filtered")
        .into_inner()
        .payouts;
    assert!(pending.is_empty());
    let account = client
        .get_seller_account(as_admin(pb::GetSellerAccountRequest {
            seller_id: second.id.to_string(),
        }))
        .await
        .expect("an admin reads any account")
        .into_inner()
        .seller_account
        .expect("an account");
    assert_eq!(account.seller_id, second.id.to_string());
}

/// A page token of the admin's every-seller listing.
async fn token_for_everyone(client: &mut PayoutServiceClient<Channel>) -> String {
    client
        .list_payouts(as_admin(pb::ListPayoutsRequest {
            page_size: 1,
            ..Default::default()
        }))
        .await
        .expect("admin listing")
        .into_inner()
        .next_page_token
}
