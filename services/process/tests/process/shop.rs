//! The fixture of the process tests: the real product, order and process services in-process on
//! one broker namespace, typed clients, the `order.paid` the payment service would publish, and
//! readers of the three databases.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::time::Duration;

use mercato_messaging::{EventEnvelope, Publisher};
use mercato_order::testing::{RunningOrder, TestEnv as OrderEnv};
use mercato_platform::principal::{CALLER_HEADER, Principal, Role};
use mercato_process::settings::Settings;
use mercato_process::testing::{RunningProcess, TestEnv as ProcessEnv};
use mercato_product::testing::{RunningProduct, TestEnv as ProductEnv};
use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod, PostalAddress};
use mercato_proto::mercato::events::v1::{OrderLineSnapshot, OrderPaid};
use mercato_proto::mercato::order::v1 as order_pb;
use mercato_proto::mercato::process::v1 as pb;
use mercato_testkit::TcpProxy;
use order_pb::order_service_client::OrderServiceClient;
use pb::notification_service_client::NotificationServiceClient;
use pb::shipment_service_client::ShipmentServiceClient;
use prost::Message as _;
use sqlx::PgPool;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::support::{Seeder, channel};

/// How long a saga effect may take before a test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A test's services and clients.
pub(crate) struct Shop {
    pub(crate) process: Option<RunningProcess>,
    pub(crate) order: RunningOrder,
    pub(crate) product: RunningProduct,
    /// Between the process service and the order service: cut it to make the order service
    /// unreachable for the process service alone.
    pub(crate) order_link: TcpProxy,
    pub(crate) seed: Seeder,
    pub(crate) orders: OrderServiceClient<Channel>,
    pub(crate) shipments: ShipmentServiceClient<Channel>,
    pub(crate) notifications: NotificationServiceClient<Channel>,
    /// Dropped last: dropping them deletes the databases and queues.
    pub(crate) process_env: ProcessEnv,
    pub(crate) order_env: OrderEnv,
    pub(crate) product_env: ProductEnv,
}

impl Shop {
    /// The three services with test settings.
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The three services, the process service's settings adjusted by `configure`.
    pub(crate) async fn start_with(configure: impl FnOnce(&mut Settings)) -> Self {
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
        let order_link = TcpProxy::start(order.grpc_addr.to_string())
            .await
            .expect("order link proxy");
        let process_env =
            ProcessEnv::new(format!("http://{}", order_link.addr()), product.grpc_uri())
                .await
                .expect("process test resources");
        let mut shop = Self {
            seed: Seeder::new(product.grpc_uri()),
            orders: OrderServiceClient::new(channel(order.grpc_uri())),
            shipments: ShipmentServiceClient::new(channel(order.grpc_uri())),
            notifications: NotificationServiceClient::new(channel(order.grpc_uri())),
            process: None,
            order,
            product,
            order_link,
            process_env,
            order_env,
            product_env,
        };
        shop.start_process(configure).await;
        shop
    }

    /// The broker namespace every service shares.
    pub(crate) fn namespace(&self) -> String {
        self.product_env.broker().namespace().to_owned()
    }

    /// The process service's settings for this shop, adjusted by `configure`.
    pub(crate) fn process_settings(&self, configure: impl FnOnce(&mut Settings)) -> Settings {
        let namespace = self.namespace();
        self.process_env.settings(|settings| {
            settings.bus_namespace = namespace;
            configure(settings);
        })
    }

    /// (Re)starts the process service and waits until its order.paid consumer listens.
    pub(crate) async fn start_process(&mut self, configure: impl FnOnce(&mut Settings)) {
        assert!(
            self.process.is_none(),
            "the process service is already running"
        );
        let namespace = self.namespace();
        let process = self
            .process_env
            .start(|settings| {
                settings.bus_namespace = namespace;
                configure(settings);
            })
            .await
            .expect("process service starts");
        self.shipments = ShipmentServiceClient::new(channel(process.grpc_uri()));
        self.notifications = NotificationServiceClient::new(channel(process.grpc_uri()));
        self.process = Some(process);
        self.wait_for_consumer("process.order-paid").await;
        self.wait_for_consumer("process.notification-requests")
            .await;
    }

    /// Stops the process service (a graceful stop: its in-flight work is abandoned at once, so
    /// for the shipments it is the same as a crash between two steps).
    pub(crate) async fn stop_process(&mut self) {
        self.process
            .take()
            .expect("the process service is running")
            .stop()
            .await
            .expect("the process service stops");
    }

    /// Waits until `queue` (in the shop's namespace) has a consumer.
    pub(crate) async fn wait_for_consumer(&self, queue: &str) {
        let name = mercato_messaging::Namespace::from_setting(&self.namespace())
            .expect("namespace")
            .qualify(queue);
        let connection = self
            .product_env
            .broker()
            .connect()
            .await
            .expect("broker connection");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let channel = connection.create_channel().await.expect("channel");
            let declared = channel
                .queue_declare(
                    name.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await;
            if declared.is_ok_and(|q| q.consumer_count() > 0) {
                let _ = connection.close(200, "done".into()).await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never got a consumer"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The running process service.
    pub(crate) fn process(&self) -> &RunningProcess {
        self.process.as_ref().expect("process service running")
    }

    /// The process service's database (also while it is stopped).
    pub(crate) fn pool(&self) -> &PgPool {
        self.process_env.database().pool()
    }

    /// The order service's database.
    pub(crate) fn order_pool(&self) -> &PgPool {
        &self.order.context.pool
    }

    /// A published SKU at `price` yen with `on_hand` units.
    pub(crate) async fn sku(&self, price: i64, on_hand: i64) -> String {
        let (_, skus) = self
            .seed
            .published("Process test mug", &[(price, on_hand)])
            .await;
        skus.into_iter().next().expect("one sku")
    }

    /// Places an order of `quantity` × `sku` as `user` (its stock reserved, PENDING).
    pub(crate) async fn place(&self, user: Uuid, sku: &str, quantity: i64) -> order_pb::Order {
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
            payment_method: PaymentMethod::Sandbox as i32,
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

    /// Publishes an event on the shop's bus, retrying until a queue is bound (publishes are
    /// mandatory).
    pub(crate) async fn publish(&self, envelope: &EventEnvelope) {
        let context = &self.order.context;
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

    /// `(status, stock_committed, tracking_number)` of the order's shipments, at most one.
    pub(crate) async fn shipments_of(&self, order_id: &str) -> Vec<(String, bool, String)> {
        sqlx::query_as(
            "SELECT status, stock_committed, tracking_number FROM shipments WHERE order_id = $1",
        )
        .bind(Uuid::parse_str(order_id).expect("order uuid"))
        .fetch_all(self.pool())
        .await
        .expect("shipments")
    }

    /// Waits until the order's shipment is `status`; its id.
    pub(crate) async fn wait_for_shipment(&self, order_id: &str, status: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let found: Option<(Uuid, String)> =
                sqlx::query_as("SELECT shipment_id, status FROM shipments WHERE order_id = $1")
                    .bind(Uuid::parse_str(order_id).expect("order uuid"))
                    .fetch_optional(self.pool())
                    .await
                    .expect("shipment");
            match found {
                Some((id, now)) if now == status => return id.to_string(),
                other => assert!(
                    tokio::time::Instant::now() < deadline,
                    "shipment of {order_id} is {other:?}, expected {status}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The order's status changes as `(from, to)` pairs, oldest first.
    pub(crate) async fn history(&self, user: Uuid, order_id: &str) -> Vec<(i32, i32)> {
        self.order_of(user, order_id)
            .await
            .history
            .iter()
            .map(|h| (h.from_status, h.to_status))
            .collect()
    }

    /// Rows of the order service's outbox of `event_type` for `order_id`.
    pub(crate) async fn order_events(&self, order_id: &str, event_type: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE event_type = $1 AND aggregate_id = $2",
        )
        .bind(event_type)
        .bind(order_id)
        .fetch_one(self.order_pool())
        .await
        .expect("count")
    }

    /// `(kind, status, attempt_count)` of the order's notifications, by kind.
    pub(crate) async fn notifications_of(&self, order_id: &str) -> Vec<(String, String, i32)> {
        sqlx::query_as(
            "SELECT kind, status, attempt_count FROM notifications WHERE order_id = $1 ORDER BY kind",
        )
        .bind(Uuid::parse_str(order_id).expect("order uuid"))
        .fetch_all(self.pool())
        .await
        .expect("notifications")
    }

    /// Waits until the order has the three buyer notifications, all SENT.
    pub(crate) async fn wait_for_notifications(&self, order_id: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.notifications_of(order_id).await;
            if now.len() == 3 && now.iter().all(|(_, status, _)| status == "SENT") {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "notifications of {order_id}: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `(on_hand, reserved)` of a SKU.
    pub(crate) async fn stock(&self, sku_id: &str) -> (i64, i64) {
        sqlx::query_as("SELECT on_hand, reserved FROM stock_levels WHERE sku_id = $1")
            .bind(Uuid::parse_str(sku_id).expect("sku uuid"))
            .fetch_one(&self.product.context.pool)
            .await
            .expect("stock row")
    }

    /// The reservation status of an order at the product service.
    pub(crate) async fn reservation_status(&self, order_id: &str) -> String {
        sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1")
            .bind(Uuid::parse_str(order_id).expect("order uuid"))
            .fetch_one(&self.product.context.pool)
            .await
            .expect("reservation row")
    }
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

/// `order.paid` for `order` as the payment service publishes it (lines and address from the
/// order, a fresh event id).
pub(crate) fn order_paid(order: &order_pb::Order) -> EventEnvelope {
    let payload = OrderPaid {
        order_id: order.order_id.clone(),
        user_id: order.user_id.clone(),
        payment_id: format!("pay-{}", order.order_id),
        payment_method: order.payment_method,
        amount: order.total.clone(),
        lines: order
            .lines
            .iter()
            .map(|l| OrderLineSnapshot {
                sku_id: l.sku_id.clone(),
                product_id: l.product_id.clone(),
                seller_id: l.seller_id.clone(),
                product_name: l.product_name.clone(),
                sku_code: l.sku_code.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price.clone(),
                line_total: l.line_total.clone(),
            })
            .collect(),
        shipping_address: order.shipping_address.clone(),
        paid_time: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp(),
            nanos: 0,
        }),
    };
    mercato_messaging::envelope::new_envelope(
        "order.paid",
        "payment",
        format!("pay-{}", order.order_id),
        1,
        "payment",
        Some(prost_types::Any {
            type_url: "type.googleapis.com/mercato.events.v1.OrderPaid".to_owned(),
            value: payload.encode_to_vec(),
        }),
    )
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
