//! Helpers of the ranking tests: a product service on a manual clock, products to rank, and
//! `order.paid` events published the way the payment service does.

use std::num::NonZeroU16;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato_messaging::envelope::new_envelope;
use mercato_messaging::{EventEnvelope, Publisher};
use mercato_platform::principal::{Principal, Role};
use mercato_product::catalog::ranking::events::best_sellers_topology;
use mercato_product::clock::{Clock, ManualClock};
use mercato_product::settings::Settings;
use mercato_product::testing::{RunningProduct, TestEnv};
use mercato_proto::mercato::common::v1::Money;
use mercato_proto::mercato::events::v1::{OrderLineSnapshot, OrderPaid};
use mercato_proto::mercato::product::v1::product_service_client::ProductServiceClient;
use mercato_proto::mercato::product::v1::ranking_service_client::RankingServiceClient;
use mercato_proto::mercato::product::v1::{
    CreateProductRequest, HideProductRequest, Product, PublishProductRequest, Sku,
};
use prost::Message as _;
use tonic::transport::Channel;
use uuid::Uuid;

pub(crate) fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc)
}

pub(crate) struct Harness {
    /// Kept alive: dropping it deletes the database, keys and queues.
    _env: TestEnv,
    pub(crate) service: RunningProduct,
    pub(crate) clock: ManualClock,
    pub(crate) products: ProductServiceClient<Channel>,
    pub(crate) ranking: RankingServiceClient<Channel>,
    publisher: Publisher,
    seller: Uuid,
}

impl Harness {
    /// A service on a manual clock; prefetch 1 so the consumer settles messages in order.
    pub(crate) async fn start(configure: impl FnOnce(&mut Settings)) -> Self {
        let env = TestEnv::new().await.expect("test resources");
        let (clock, hand) = Clock::manual(start_time());
        let service = env
            .start_with_clock(clock, |settings| {
                settings.amqp.prefetch = NonZeroU16::MIN;
                configure(settings);
            })
            .await
            .expect("service starts");
        let topology = best_sellers_topology(&service.context.namespace).expect("topology");
        for queue in topology.queue_names() {
            env.broker().track_queue(queue);
        }
        // Declared up front so that events published before the consumer is up are routed.
        let connection = env.broker().connect().await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        topology.declare(&channel).await.expect("declare");
        let publisher = Publisher::new(
            service.context.connector.clone(),
            service.context.namespace.clone(),
        );
        let channel = Channel::from_shared(service.grpc_uri())
            .expect("uri")
            .connect_lazy();
        Self {
            _env: env,
            service,
            clock: hand,
            products: ProductServiceClient::new(channel.clone()),
            ranking: RankingServiceClient::new(channel),
            publisher,
            seller: Uuid::new_v4(),
        }
    }

    fn as_seller<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        Principal::new(self.seller, [Role::Seller]).write_metadata(request.metadata_mut());
        request
    }

    /// A published product in `category` with one SKU priced `price`; returns (product, sku).
    pub(crate) async fn product(&self, name: &str, category: &str, price: i64) -> (String, String) {
        let code = format!("R-{}", Uuid::new_v4().simple());
        let created = self
            .products
            .clone()
            .create_product(self.as_seller(CreateProductRequest {
                product: Some(Product {
                    name: name.to_owned(),
                    category: category.to_owned(),
                    skus: vec![Sku {
                        sku_code: code,
                        price: Some(Money {
                            currency_code: "JPY".to_owned(),
                            amount_minor: price,
                        }),
                        active: true,
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                idempotency_key: Uuid::new_v4().to_string(),
                seller_id: String::new(),
            }))
            .await
            .expect("create")
            .into_inner()
            .product
            .expect("product");
        self.products
            .clone()
            .publish_product(self.as_seller(PublishProductRequest {
                product_id: created.product_id.clone(),
            }))
            .await
            .expect("publish");
        let sku = created.skus.first().expect("sku").sku_id.clone();
        (created.product_id, sku)
    }

    pub(crate) async fn hide(&self, product_id: &str) {
        self.products
            .clone()
            .hide_product(self.as_seller(HideProductRequest {
                product_id: product_id.to_owned(),
            }))
            .await
            .expect("hide");
    }

    /// Publishes `envelope` (as the payment service's relay would).
    pub(crate) async fn publish(&self, envelope: &EventEnvelope) {
        self.publisher.publish(envelope).await.expect("publish");
    }

    /// Waits until the consumer has recorded `rows` sales rows.
    pub(crate) async fn await_sales_rows(&self, rows: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM product_sales")
                .fetch_one(&self.service.context.pool)
                .await
                .expect("count");
            if count == rows {
                return;
            }
            assert!(count < rows, "more sales rows than expected: {count}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {count} of {rows} sales rows recorded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An `order.paid` envelope for one order: `lines` are (product, sku, quantity).
pub(crate) fn order_paid(paid_at: DateTime<Utc>, lines: &[(&str, &str, i64)]) -> EventEnvelope {
    let order_id = Uuid::now_v7().to_string();
    let paid = OrderPaid {
        order_id: order_id.clone(),
        user_id: Uuid::new_v4().to_string(),
        payment_id: Uuid::new_v4().to_string(),
        lines: lines
            .iter()
            .map(|(product, sku, quantity)| OrderLineSnapshot {
                sku_id: (*sku).to_owned(),
                product_id: (*product).to_owned(),
                quantity: *quantity,
                ..Default::default()
            })
            .collect(),
        paid_time: Some(prost_types::Timestamp {
            seconds: paid_at.timestamp(),
            nanos: 0,
        }),
        ..Default::default()
    };
    new_envelope(
        "order.paid",
        "order",
        order_id,
        3,
        "payment",
        Some(prost_types::Any {
            type_url: "type.googleapis.com/mercato.events.v1.OrderPaid".to_owned(),
            value: paid.encode_to_vec(),
        }),
    )
}

/// Units per product id in a ranking response.
pub(crate) fn units(
    response: &mercato_proto::mercato::product::v1::ListBestSellersResponse,
) -> Vec<(String, i64)> {
    response
        .best_sellers
        .iter()
        .map(|b| (b.product_id.clone(), b.units_sold))
        .collect()
}
