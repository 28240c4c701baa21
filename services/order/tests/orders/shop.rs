//! The fixture of the order tests: the product and order services on one broker namespace,
//! typed clients, principals for buyers and internal callers, and readers of both databases.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::time::Duration;

use mercato_messaging::{EventEnvelope, Publisher};
use mercato_order::clock::Clock;
use mercato_order::settings::Settings;
use mercato_order::testing::{RunningOrder, TestEnv as OrderEnv};
use mercato_platform::principal::CALLER_HEADER;
use mercato_product::testing::{RunningProduct, TestEnv as ProductEnv};
use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod, PostalAddress};
use mercato_proto::mercato::order::v1 as pb;
use mercato_testkit::{TcpProxy, env};
use pb::cart_service_client::CartServiceClient;
use pb::order_service_client::OrderServiceClient;
use secrecy::SecretString;
use sqlx::PgPool;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::support::{Seeder, as_buyer, channel};

/// How long a saga effect (an event consumed, a sweep) may take before a test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A test's product service, order service (on the product service's broker namespace) and
/// their clients.
pub(crate) struct Shop {
    pub(crate) order: Option<RunningOrder>,
    /// Between the order service and the product service: cut it to make the catalog
    /// unreachable.
    pub(crate) catalog: TcpProxy,
    /// Between the order service and the broker: cut it for a broker outage.
    pub(crate) broker: TcpProxy,
    pub(crate) product: RunningProduct,
    pub(crate) seed: Seeder,
    pub(crate) orders: OrderServiceClient<Channel>,
    pub(crate) carts: CartServiceClient<Channel>,
    /// Dropped last: dropping them deletes the databases, keys and queues.
    pub(crate) order_env: OrderEnv,
    pub(crate) product_env: ProductEnv,
}

impl Shop {
    /// Both services with test settings on the system clock.
    pub(crate) async fn start() -> Self {
        Self::start_with(Clock::system(), |_| {}).await
    }

    /// Both services, the order service on `clock` with its settings adjusted by `configure`.
    pub(crate) async fn start_with(clock: Clock, configure: impl FnOnce(&mut Settings)) -> Self {
        let product_env = ProductEnv::new().await.expect("product test resources");
        let product = product_env
            .start(|_| {})
            .await
            .expect("product service starts");
        let catalog = TcpProxy::start(product.grpc_addr.to_string())
            .await
            .expect("catalog proxy");
        let order_env = OrderEnv::new(format!("http://{}", catalog.addr()))
            .await
            .expect("order test resources");
        let broker_url = order_env.broker().url().to_owned();
        let broker = TcpProxy::start(env::authority(&broker_url).expect("broker host:port"))
            .await
            .expect("broker proxy");
        let proxied_broker = env::with_authority(&broker_url, &broker.addr().to_string())
            .expect("rewritable broker url");
        let namespace = product_env.broker().namespace().to_owned();
        let order = order_env
            .start_with_clock(clock, |settings| {
                settings.bus_namespace = namespace;
                settings.amqp.url = SecretString::from(proxied_broker);
                configure(settings);
            })
            .await
            .expect("order service starts");
        // The product service also consumes order.paid, so a mandatory publish can succeed before
        // the order service's own queue is bound and never reach it. Declaring that queue (the
        // same, idempotent declaration its consumer makes) closes the gap.
        let amqp = order
            .context
            .connector
            .try_channel()
            .await
            .expect("a broker channel");
        mercato_order::order::consumers::topology(&order.context.namespace)
            .expect("the order consumer's topology")
            .declare(&amqp)
            .await
            .expect("declaring the order consumer's queue");
        let _ = amqp.close(200, "declared".into()).await;
        let uri = order.grpc_uri();
        Self {
            seed: Seeder::new(product.grpc_uri()),
            orders: OrderServiceClient::new(channel(uri.clone())),
            carts: CartServiceClient::new(channel(uri)),
            order: Some(order),
            catalog,
            broker,
            product,
            order_env,
            product_env,
        }
    }

    /// The running order service.
    pub(crate) fn order(&self) -> &RunningOrder {
        self.order.as_ref().expect("order service running")
    }

    /// The order service's database.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.order().context.pool
    }

    /// The product service's database.
    pub(crate) fn product_pool(&self) -> &PgPool {
        &self.product.context.pool
    }

    /// A published product with one SKU at `price` yen and `on_hand` units; its SKU id.
    pub(crate) async fn sku(&self, price: i64, on_hand: i64) -> String {
        let (_, skus) = self
            .seed
            .published("Order test mug", &[(price, on_hand)])
            .await;
        skus.into_iter().next().expect("one sku")
    }

    /// CreateOrder as `user`.
    pub(crate) async fn create(
        &self,
        user: Uuid,
        request: pb::CreateOrderRequest,
    ) -> Result<pb::CreateOrderResponse, tonic::Status> {
        self.orders
            .clone()
            .create_order(as_buyer(request, user))
            .await
            .map(tonic::Response::into_inner)
    }

    /// CreateOrder as `user`, which must succeed; the order.
    pub(crate) async fn place(&self, user: Uuid, request: pb::CreateOrderRequest) -> pb::Order {
        self.create(user, request)
            .await
            .expect("order created")
            .order
            .expect("an order")
    }

    /// GetOrder as `user`.
    pub(crate) async fn get(&self, user: Uuid, order_id: &str) -> Result<pb::Order, tonic::Status> {
        self.orders
            .clone()
            .get_order(as_buyer(
                pb::GetOrderRequest {
                    order_id: order_id.to_owned(),
                },
                user,
            ))
            .await
            .map(|r| r.into_inner().order.expect("an order"))
    }

    /// The order's status as `user` sees it.
    pub(crate) async fn status(&self, user: Uuid, order_id: &str) -> OrderStatus {
        let order = self.get(user, order_id).await.expect("order readable");
        OrderStatus::try_from(order.status).expect("a known status")
    }

    /// Waits until the order reaches `want`.
    pub(crate) async fn wait_for(&self, user: Uuid, order_id: &str, want: OrderStatus) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.status(user, order_id).await;
            if now == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} stayed {now:?}, expected {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `(on_hand, reserved)` of a SKU, read from the product service's database.
    pub(crate) async fn stock(&self, sku_id: &str) -> (i64, i64) {
        sqlx::query_as("SELECT on_hand, reserved FROM stock_levels WHERE sku_id = $1")
            .bind(Uuid::parse_str(sku_id).expect("sku uuid"))
            .fetch_one(self.product_pool())
            .await
            .expect("stock row")
    }

    /// Waits until a SKU's `(on_hand, reserved)` is `want`.
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

    /// The status of the order's stock reservation on the product service, if it has one.
    pub(crate) async fn reservation(&self, order_id: &str) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1")
            .bind(Uuid::parse_str(order_id).expect("order uuid"))
            .fetch_optional(self.product_pool())
            .await
            .expect("reservation read")
    }

    /// Rows in `orders`.
    pub(crate) async fn order_count(&self) -> i64 {
        count(self.pool(), "SELECT count(*) FROM orders").await
    }

    /// Rows in `reservations` on the product service.
    pub(crate) async fn reservation_count(&self) -> i64 {
        count(self.product_pool(), "SELECT count(*) FROM reservations").await
    }

    /// Outbox rows of `event_type` for the order.
    pub(crate) async fn events(&self, order_id: &str, event_type: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE event_type = $1 AND aggregate_id = $2",
        )
        .bind(event_type)
        .bind(order_id)
        .fetch_one(self.pool())
        .await
        .expect("outbox count")
    }

    /// Publishes an event on the test's bus, as the payment service would, retrying until a
    /// consumer's queue is bound (publishes are mandatory).
    pub(crate) async fn publish(&self, envelope: &EventEnvelope) {
        let context = &self.order().context;
        let publisher = Publisher::new(context.connector.clone(), context.namespace.clone());
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
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// A request as an internal service (`caller`, e.g. "payment") makes it.
pub(crate) fn as_service<T>(message: T, caller: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(CALLER_HEADER, caller.parse().expect("ascii caller"));
    request
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

/// A CreateOrder of explicit `(sku, quantity)` lines, paid in the sandbox, shipped to Tokyo.
pub(crate) fn explicit(key: &str, lines: &[(&str, i64)]) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        idempotency_key: key.to_owned(),
        source: Some(pb::create_order_request::Source::ExplicitLines(
            pb::ExplicitLines {
                lines: lines
                    .iter()
                    .map(|(sku, quantity)| pb::OrderLineInput {
                        sku_id: (*sku).to_owned(),
                        quantity: *quantity,
                    })
                    .collect(),
            },
        )),
        shipping_address: Some(tokyo()),
        payment_method: PaymentMethod::Sandbox as i32,
        user_coupon_id: String::new(),
        expected_total: None,
    }
}

/// A CreateOrder of the caller's cart.
pub(crate) fn from_cart(key: &str) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        source: Some(pb::create_order_request::Source::Cart(pb::CartCheckout {})),
        ..explicit(key, &[])
    }
}

/// A fresh idempotency key.
pub(crate) fn key() -> String {
    Uuid::new_v4().to_string()
}

/// The order's status.
pub(crate) fn status_of(order: &pb::Order) -> OrderStatus {
    OrderStatus::try_from(order.status).expect("a known status")
}

/// The amount of an optional Money (asserted to be yen).
pub(crate) fn amount(money: Option<&mercato_proto::mercato::common::v1::Money>) -> i64 {
    let money = money.expect("an amount");
    assert_eq!(money.currency_code, "JPY");
    money.amount_minor
}

/// `(sku_id, requested, available)` of every line of a status's `StockShortage` detail.
pub(crate) fn shortage(status: &tonic::Status) -> Vec<(String, i64, i64)> {
    use prost::Message as _;
    let rpc = tonic_types::pb::Status::decode(status.details()).expect("google.rpc.Status details");
    rpc.details
        .iter()
        .filter(|any| any.type_url.ends_with("mercato.common.v1.StockShortage"))
        .flat_map(|any| {
            mercato_proto::mercato::common::v1::StockShortage::decode(any.value.as_slice())
                .expect("a StockShortage")
                .lines
        })
        .map(|l| (l.sku_id, l.requested_quantity, l.available_quantity))
        .collect()
}

/// One `ErrorInfo.metadata` value of a status.
pub(crate) fn metadata(status: &tonic::Status, key: &str) -> Option<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}

fn payment_envelope(
    event_type: &str,
    type_name: &str,
    order: &pb::Order,
    value: Vec<u8>,
) -> EventEnvelope {
    mercato_messaging::envelope::new_envelope(
        event_type,
        "payment",
        format!("pay-{}", order.order_id),
        1,
        "payment",
        Some(prost_types::Any {
            type_url: format!("type.googleapis.com/mercato.events.v1.{type_name}"),
            value,
        }),
    )
}

/// `order.paid` for `order`, as the payment service publishes it.
pub(crate) fn order_paid(order: &pb::Order) -> EventEnvelope {
    use prost::Message as _;
    let payload = mercato_proto::mercato::events::v1::OrderPaid {
        order_id: order.order_id.clone(),
        user_id: order.user_id.clone(),
        payment_id: format!("pay-{}", order.order_id),
        payment_method: order.payment_method,
        amount: order.total.clone(),
        lines: Vec::new(),
        shipping_address: order.shipping_address.clone(),
        paid_time: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp(),
            nanos: 0,
        }),
    };
    payment_envelope("order.paid", "OrderPaid", order, payload.encode_to_vec())
}

/// `payment.failed` for `order`, as the payment service publishes it.
pub(crate) fn payment_failed(order: &pb::Order) -> EventEnvelope {
    use prost::Message as _;
    let payload = mercato_proto::mercato::events::v1::PaymentFailed {
        payment_id: format!("pay-{}", order.order_id),
        order_id: order.order_id.clone(),
        user_id: order.user_id.clone(),
        payment_method: order.payment_method,
        amount: order.total.clone(),
        failure_code: "card_declined".to_owned(),
        failure_message: "Your card was declined.".to_owned(),
        fail_time: None,
    };
    payment_envelope(
        "payment.failed",
        "PaymentFailed",
        order,
        payload.encode_to_vec(),
    )
}
