//! Helpers of the catalog tests: clients, forwarded principals, sample products, error-detail
//! accessors and row counts.

use std::collections::HashMap;

use mercato_platform::principal::{CALLER_HEADER, Principal, Role};
use mercato_product::testing::{RunningProduct, TestEnv};
use mercato_proto::mercato::common::v1::Money;
use mercato_proto::mercato::product::v1::product_service_client::ProductServiceClient;
use mercato_proto::mercato::product::v1::{
    CreateProductRequest, Product, ProductImage, ProductOption, PublishProductRequest, Sku,
};
use tonic::transport::Channel;
use tonic_types::StatusExt as _;
use uuid::Uuid;

/// One test's product service.
pub(crate) struct Harness {
    /// Kept alive: dropping it deletes the database, keys and queues.
    pub(crate) _env: TestEnv,
    pub(crate) service: RunningProduct,
    pub(crate) client: ProductServiceClient<Channel>,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        let env = TestEnv::new().await.expect("test resources");
        let service = env.start(|_| {}).await.expect("service starts");
        let channel = Channel::from_shared(service.grpc_uri())
            .expect("valid uri")
            .connect_lazy();
        Self {
            _env: env,
            service,
            client: ProductServiceClient::new(channel),
        }
    }

    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        &self.service.context.pool
    }

    pub(crate) async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(self.pool())
            .await
            .expect("count rows")
    }

    /// Creates `product` as `seller` and returns it.
    pub(crate) async fn create(&self, seller: Uuid, product: Product) -> Product {
        self.client
            .clone()
            .create_product(as_seller(
                CreateProductRequest {
                    product: Some(product),
                    idempotency_key: Uuid::new_v4().to_string(),
                    seller_id: String::new(),
                },
                seller,
            ))
            .await
            .expect("product created")
            .into_inner()
            .product
            .expect("a product")
    }

    /// Creates and publishes `product` as `seller`.
    pub(crate) async fn create_published(&self, seller: Uuid, product: Product) -> Product {
        let created = self.create(seller, product).await;
        self.client
            .clone()
            .publish_product(as_seller(
                PublishProductRequest {
                    product_id: created.product_id,
                },
                seller,
            ))
            .await
            .expect("product published")
            .into_inner()
            .product
            .expect("a product")
    }
}

pub(crate) fn with_principal<T>(message: T, user: Uuid, roles: &[Role]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    Principal::new(user, roles.iter().copied()).write_metadata(request.metadata_mut());
    request
}

pub(crate) fn as_seller<T>(message: T, user: Uuid) -> tonic::Request<T> {
    with_principal(message, user, &[Role::Buyer, Role::Seller])
}

pub(crate) fn as_buyer<T>(message: T, user: Uuid) -> tonic::Request<T> {
    with_principal(message, user, &[Role::Buyer])
}

pub(crate) fn as_admin<T>(message: T, user: Uuid) -> tonic::Request<T> {
    with_principal(message, user, &[Role::Admin])
}

/// A request from another service acting on its own behalf.
pub(crate) fn as_service<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(CALLER_HEADER, "order".parse().expect("ascii"));
    request
}

pub(crate) fn yen(amount: i64) -> Option<Money> {
    Some(Money {
        currency_code: "JPY".to_owned(),
        amount_minor: amount,
    })
}

pub(crate) fn sku(code: &str, colour: &str, price: i64) -> Sku {
    Sku {
        sku_code: code.to_owned(),
        option_values: HashMap::from([("Colour".to_owned(), colour.to_owned())]),
        price: yen(price),
        active: true,
        ..Default::default()
    }
}

/// A mug in red (price) and blue (price + 100), codes derived from `code`.
pub(crate) fn mug(name: &str, code: &str, price: i64) -> Product {
    Product {
        name: name.to_owned(),
        description: "a hand-thrown ceramic mug".to_owned(),
        category: "kitchen".to_owned(),
        tags: vec!["Handmade".to_owned(), "mug".to_owned()],
        attributes: HashMap::from([("material".to_owned(), "stoneware".to_owned())]),
        options: vec![ProductOption {
            name: "Colour".to_owned(),
            values: vec!["Red".to_owned(), "Blue".to_owned()],
        }],
        skus: vec![
            sku(&format!("{code}-R"), "Red", price),
            sku(&format!("{code}-B"), "Blue", price + 100),
        ],
        images: vec![ProductImage {
            url: format!("https://cdn.example.com/{code}.jpg"),
            alt_text: name.to_owned(),
            main: false,
        }],
        ..Default::default()
    }
}

pub(crate) fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

pub(crate) fn metadata(status: &tonic::Status, key: &str) -> String {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
        .unwrap_or_default()
}

/// The fields named by a status's `BadRequest`.
pub(crate) fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|br| {
            br.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}
