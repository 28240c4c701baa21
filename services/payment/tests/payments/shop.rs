//! The fixture of the payment tests: the real product, order and payment services in-process on
//! one broker namespace, typed clients, HTTP helpers for the webhook and the sandbox page, and
//! readers of the databases.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::time::Duration;

use mercato_order::testing::{RunningOrder, TestEnv as OrderEnv};
use mercato_payment::settings::Settings;
use mercato_payment::signature;
use mercato_payment::testing::{RunningPayment, TEST_WEBHOOK_SECRET, TestEnv as PaymentEnv};
use mercato_platform::principal::{CALLER_HEADER, Principal, Role};
use mercato_product::testing::{RunningProduct, TestEnv as ProductEnv};
use mercato_proto::mercato::common::v1::{Money, OrderStatus, PaymentMethod, PostalAddress};
use mercato_proto::mercato::order::v1 as order_pb;
use mercato_proto::mercato::payment::v1 as pb;
use order_pb::order_service_client::OrderServiceClient;
use pb::payment_service_client::PaymentServiceClient;
use pb::wallet_service_client::WalletServiceClient;
use sqlx::PgPool;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::support::{Seeder, channel};

/// How long a saga effect may take before a test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A test's services and clients.
pub(crate) struct Shop {
    pub(crate) payment: Option<RunningPayment>,
    pub(crate) order: RunningOrder,
    pub(crate) product: RunningProduct,
    pub(crate) seed: Seeder,
    pub(crate) orders: OrderServiceClient<Channel>,
    pub(crate) payments: PaymentServiceClient<Channel>,
    pub(crate) wallets: WalletServiceClient<Channel>,
    pub(crate) http: reqwest::Client,
    /// Dropped last: dropping them deletes the databases and queues.
    pub(crate) payment_env: PaymentEnv,
    pub(crate) order_env: OrderEnv,
    pub(crate) product_env: ProductEnv,
}

impl Shop {
    /// The three services with test settings.
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The three services, the payment service's settings adjusted by `configure`.
    pub(crate) async fn start_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let product_env = ProductEnv::new().await.expect("product test resources");
        let product = product_env
            .start(|_| {})
            .await
            .expect("product service starts");
        let namespace = product_env.broker().namespace().to_owned();
        let order_env = OrderEnv::new(product.grpc_uri())
            .await
            .expect("order test resources");
        let order_namespace = namespace.clone();
        let order = order_env
            .start(|settings| settings.bus_namespace = order_namespace)
            .await
            .expect("order service starts");
        let payment_env = PaymentEnv::new(order.grpc_uri())
            .await
            .expect("payment test resources");
        let payment = payment_env
            .start(|settings| {
                settings.bus_namespace = namespace;
                configure(settings);
            })
            .await
            .expect("payment service starts");
        Self {
            seed: Seeder::new(product.grpc_uri()),
            orders: OrderServiceClient::new(channel(order.grpc_uri())),
            payments: PaymentServiceClient::new(channel(payment.grpc_uri())),
            wallets: WalletServiceClient::new(channel(payment.grpc_uri())),
            http: reqwest::Client::new(),
            payment: Some(payment),
            order,
            product,
            payment_env,
            order_env,
            product_env,
        }
    }

    /// The running payment service.
    pub(crate) fn payment(&self) -> &RunningPayment {
        self.payment.as_ref().expect("payment service running")
    }

    /// The payment service's database.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.payment().context.pool
    }

    /// The order service's database.
    pub(crate) fn order_pool(&self) -> &PgPool {
        &self.order.context.pool
    }

    /// A published SKU at `price` yen with `on_hand` units.
    pub(crate) async fn sku(&self, price: i64, on_hand: i64) -> String {
        let (_, skus) = self
            .seed
            .published("Payment test mug", &[(price, on_hand)])
            .await;
        skus.into_iter().next().expect("one sku")
    }

    /// Places an order of `quantity` × `sku` as `user`, paid with `method`.
    pub(crate) async fn place(
        &self,
        user: Uuid,
        sku: &str,
        quantity: i64,
        method: PaymentMethod,
    ) -> order_pb::Order {
        let request = order_pb::CreateOrderRequest {
            idempotency_key: Uuid::new_v4().to_string(),
            source: Some(order_pb::create_order_request::Source::ExplicitLines(
                order_pb::ExplicitLines {
                    lines: vec![order_pb::OrderLineInput {
                        sku_id: sku.to_owned(),
                        quantity,
                    }],
                },
            )),
            shipping_address: Some(tokyo()),
            payment_method: method as i32,
            user_coupon_id: String::new(),
            expected_total: None,
        };
        self.orders
            .clone()
            .create_order(as_buyer(request, user))
            .await
            .expect("order created")
            .into_inner()
            .order
            .expect("an order")
    }

    /// The order as its buyer sees it.
    pub(crate) async fn order_of(&self, user: Uuid, order_id: &str) -> order_pb::Order {
        self.orders
            .clone()
            .get_order(as_buyer(
                order_pb::GetOrderRequest {
                    order_id: order_id.to_owned(),
                },
                user,
            ))
            .await
            .expect("order readable")
            .into_inner()
            .order
            .expect("an order")
    }

    /// Waits until the order reaches `want`; the order then.
    pub(crate) async fn wait_for_order(
        &self,
        user: Uuid,
        order_id: &str,
        want: OrderStatus,
    ) -> order_pb::Order {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let order = self.order_of(user, order_id).await;
            if order.status == want as i32 {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} stayed {:?}, expected {want:?}",
                OrderStatus::try_from(order.status)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The order's payment as its payer lists it, waiting until it exists.
    pub(crate) async fn payment_of(&self, user: Uuid, order_id: &str) -> pb::Payment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let payments = self
                .payments
                .clone()
                .list_payments(as_buyer(
                    pb::ListPaymentsRequest {
                        order_id: order_id.to_owned(),
                        ..Default::default()
                    },
                    user,
                ))
                .await
                .expect("payments listed")
                .into_inner()
                .payments;
            if let Some(payment) = payments.into_iter().next() {
                return payment;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} got no payment"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the order's payment has a provider intent (REQUIRES_ACTION).
    pub(crate) async fn intent_of(&self, user: Uuid, order_id: &str) -> pb::Payment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let payment = self.payment_of(user, order_id).await;
            if !payment.provider_payment_id.is_empty() {
                return payment;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no intent for {order_id}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Charges `amount` points to `user`'s wallet.
    pub(crate) async fn charge(&self, user: Uuid, amount: i64) -> pb::ChargePointsResponse {
        self.wallets
            .clone()
            .charge_points(as_buyer(
                pb::ChargePointsRequest {
                    amount: yen(amount),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                user,
            ))
            .await
            .expect("points charged")
            .into_inner()
    }

    /// The user's balance.
    pub(crate) async fn balance(&self, user: Uuid) -> i64 {
        self.wallets
            .clone()
            .get_wallet(as_buyer(pb::GetWalletRequest {}, user))
            .await
            .expect("wallet read")
            .into_inner()
            .wallet
            .and_then(|w| w.balance)
            .map_or(0, |m| m.amount_minor)
    }

    /// POSTs `body` to the webhook endpoint with `signature` as `Stripe-Signature` (none when
    /// `None`); the HTTP status.
    pub(crate) async fn post_webhook(&self, body: Vec<u8>, signature: Option<String>) -> u16 {
        let mut request = self
            .http
            .post(format!("{}/webhooks/stripe", self.payment().http_uri()))
            .header("content-type", "application/json")
            .body(body);
        if let Some(value) = signature {
            request = request.header("stripe-signature", value);
        }
        request
            .send()
            .await
            .expect("webhook answered")
            .status()
            .as_u16()
    }

    /// POSTs a sandbox button (`pay` or `fail`); the HTTP status.
    pub(crate) async fn press(&self, payment_url: &str, button: &str) -> u16 {
        self.http
            .post(format!("{payment_url}/{button}"))
            .send()
            .await
            .expect("sandbox answered")
            .status()
            .as_u16()
    }

    /// Rows of the payment service's outbox of `event_type` for `payment_id`.
    pub(crate) async fn outbox(&self, payment_id: &str, event_type: &str) -> i64 {
        count_where(
            self.pool(),
            "SELECT count(*) FROM outbox WHERE event_type = $1 AND aggregate_id = $2",
            event_type,
            payment_id,
        )
        .await
    }

    /// Rows of the order service's outbox of `event_type` for `order_id`.
    pub(crate) async fn order_outbox(&self, order_id: &str, event_type: &str) -> i64 {
        count_where(
            self.order_pool(),
            "SELECT count(*) FROM outbox WHERE event_type = $1 AND aggregate_id = $2",
            event_type,
            order_id,
        )
        .await
    }

    /// Publishes an event on the test's bus, retrying until a consumer's queue is bound
    /// (publishes are mandatory).
    pub(crate) async fn publish(&self, envelope: &mercato_messaging::EventEnvelope) {
        let context = &self.payment().context;
        let publisher =
            mercato_messaging::Publisher::new(context.connector.clone(), context.namespace.clone());
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match publisher.publish(envelope).await {
                Ok(()) => return,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "publish failed: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Rows of `payments`.
    pub(crate) async fn payment_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM payments")
            .fetch_one(self.pool())
            .await
            .expect("count")
    }

    /// Asserts the wallet invariants over every wallet: balance = Σ ledger, never negative, and
    /// each entry's balance_after is the running sum.
    pub(crate) async fn assert_ledgers_consistent(&self) {
        let mismatched: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM wallets w \
             WHERE w.balance <> (SELECT COALESCE(SUM(amount), 0) FROM ledger_entries l \
                                 WHERE l.user_id = w.user_id) OR w.balance < 0",
        )
        .fetch_one(self.pool())
        .await
        .expect("wallet check");
        assert_eq!(mismatched, 0, "every wallet equals the sum of its ledger");
        let broken_running_sums: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT balance_after, \
                    SUM(amount) OVER (PARTITION BY user_id ORDER BY wallet_version) AS run \
                    FROM ledger_entries) e WHERE e.balance_after <> e.run OR e.run < 0",
        )
        .fetch_one(self.pool())
        .await
        .expect("ledger check");
        assert_eq!(broken_running_sums, 0, "balance_after is the running sum");
        let gaps: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM wallets w WHERE w.version <> \
                 (SELECT count(*) FROM ledger_entries l WHERE l.user_id = w.user_id)",
        )
        .fetch_one(self.pool())
        .await
        .expect("version check");
        assert_eq!(gaps, 0, "one wallet version per entry");
    }

    /// `(on_hand, reserved)` of a SKU.
    pub(crate) async fn stock(&self, sku_id: &str) -> (i64, i64) {
        sqlx::query_as("SELECT on_hand, reserved FROM stock_levels WHERE sku_id = $1")
            .bind(Uuid::parse_str(sku_id).expect("sku uuid"))
            .fetch_one(&self.product.context.pool)
            .await
            .expect("stock row")
    }

    /// Waits until a SKU's stock is `want`.
    pub(crate) async fn wait_for_stock(&self, sku_id: &str, want: (i64, i64)) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.stock(sku_id).await;
            if now == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "stock of {sku_id} stayed {now:?}, expected {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn count_where(pool: &PgPool, sql: &'static str, a: &str, b: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(a)
        .bind(b)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Waits until `check` holds.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request as `user` with `roles`.
pub(crate) fn as_user<T>(message: T, user: Uuid, roles: &[Role]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    Principal::new(user, roles.iter().copied()).write_metadata(request.metadata_mut());
    request
}

/// A request as buyer `user`.
pub(crate) fn as_buyer<T>(message: T, user: Uuid) -> tonic::Request<T> {
    as_user(message, user, &[Role::Buyer])
}

/// A request as an admin.
pub(crate) fn as_admin<T>(message: T) -> tonic::Request<T> {
    as_user(message, Uuid::now_v7(), &[Role::Buyer, Role::Admin])
}

/// A request as the internal service `caller`.
pub(crate) fn as_service<T>(message: T, caller: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(CALLER_HEADER, caller.parse().expect("ascii caller"));
    request
}

/// Yen.
pub(crate) fn yen(amount: i64) -> Option<Money> {
    Some(Money {
        currency_code: "JPY".to_owned(),
        amount_minor: amount,
    })
}

/// A valid Japanese shipping address.
pub(crate) fn tokyo() -> PostalAddress {
    PostalAddress {
        recipient_name: "山田 太郎".to_owned(),
        recipient_name_kana: "ヤマダ タロウ".to_owned(),
        country_code: "JP".to_owned(),
        postal_code: "150-0001".to_owned(),
        region: "東京都".to_owned(),
        locality: "渋谷区".to_owned(),
        address_line1: "神宮前1-2-3".to_owned(),
        address_line2: String::new(),
        phone_number: "090-1234-5678".to_owned(),
    }
}

/// A Stripe-format `payment_intent.*` event body for `intent_id`.
pub(crate) fn intent_event(event_id: &str, event_type: &str, intent_id: &str) -> Vec<u8> {
    serde_json::json!({
        "id": event_id,
        "object": "event",
        "type": event_type,
        "data": { "object": { "id": intent_id, "object": "payment_intent" } }
    })
    .to_string()
    .into_bytes()
}

/// A `Stripe-Signature` for `body` signed now with the test secret.
pub(crate) fn signed(body: &[u8]) -> String {
    signature::header(&[TEST_WEBHOOK_SECRET], chrono::Utc::now().timestamp(), body)
}

/// The gRPC status code and `ErrorInfo.reason` of an error.
pub(crate) fn reason(status: &tonic::Status) -> (tonic::Code, String) {
    use tonic_types::StatusExt as _;
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    (status.code(), reason)
}

/// The fields named by a status's BadRequest detail.
pub(crate) fn fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}
