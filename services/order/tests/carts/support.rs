//! Fixtures of the cart tests: the real product service (seeded through its own API), the order
//! service pointed at it, cart clients acting as a user, and error-detail accessors.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::collections::HashMap;

use mercato_order::clock::Clock;
use mercato_order::settings::Settings;
use mercato_order::testing::{RunningOrder, TestEnv as OrderEnv};
use mercato_platform::principal::{Principal, Role};
use mercato_product::testing::{RunningProduct, TestEnv as ProductEnv};
use mercato_proto::mercato::common::v1::{CartLineStatus, Money};
use mercato_proto::mercato::order::v1 as pb;
use mercato_proto::mercato::product::v1 as product;
use pb::cart_service_client::CartServiceClient;
use product::product_service_client::ProductServiceClient;
use product::stock_service_client::StockServiceClient;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;
use uuid::Uuid;

pub(crate) fn channel(uri: String) -> Channel {
    Channel::from_shared(uri).expect("valid uri").connect_lazy()
}

/// A test's product service, order service and their clients.
pub(crate) struct Harness {
    pub(crate) product: Option<RunningProduct>,
    pub(crate) order: Option<RunningOrder>,
    pub(crate) seed: Seeder,
    pub(crate) carts: CartServiceClient<Channel>,
    /// Dropped last: dropping them deletes the databases, keys and queues.
    pub(crate) order_env: OrderEnv,
    pub(crate) product_env: ProductEnv,
}

impl Harness {
    /// Both services with test settings.
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Both services, the order service's settings adjusted by `configure`.
    pub(crate) async fn start_with(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::start_with_clock(Clock::system(), configure).await
    }

    /// Both services, the order service on business time from `clock`.
    pub(crate) async fn start_with_clock(
        clock: Clock,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let product_env = ProductEnv::new().await.expect("product test resources");
        let product = product_env
            .start(|_| {})
            .await
            .expect("product service starts");
        let order_env = OrderEnv::new(product.grpc_uri())
            .await
            .expect("order test resources");
        let order = order_env
            .start_with_clock(clock, configure)
            .await
            .expect("order service starts");
        Self {
            seed: Seeder::new(product.grpc_uri()),
            carts: CartServiceClient::new(channel(order.grpc_uri())),
            product: Some(product),
            order: Some(order),
            order_env,
            product_env,
        }
    }

    /// Stops the order service and starts it again on the same database.
    pub(crate) async fn restart_order(&mut self) {
        if let Some(order) = self.order.take() {
            order.stop().await.expect("order service stops cleanly");
        }
        let order = self
            .order_env
            .start(|_| {})
            .await
            .expect("order service restarts");
        self.carts = CartServiceClient::new(channel(order.grpc_uri()));
        self.order = Some(order);
    }

    /// Stops the product service (the catalog becomes unreachable).
    pub(crate) async fn stop_product(&mut self) {
        if let Some(product) = self.product.take() {
            product.stop().await.expect("product service stops cleanly");
        }
    }

    /// The order service's database.
    pub(crate) fn order_pool(&self) -> &sqlx::PgPool {
        &self
            .order
            .as_ref()
            .expect("order service running")
            .context
            .pool
    }

    /// Rows in `cart_lines` of every user.
    pub(crate) async fn stored_lines(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM cart_lines")
            .fetch_one(self.order_pool())
            .await
            .expect("count cart lines")
    }

    /// See [`Seeder::published`].
    pub(crate) async fn published(&self, name: &str, skus: &[(i64, i64)]) -> (String, Vec<String>) {
        self.seed.published(name, skus).await
    }

    /// See [`Seeder::hide`].
    pub(crate) async fn hide(&self, product_id: &str) {
        self.seed.hide(product_id).await;
    }

    /// See [`Seeder::delete_sku`].
    pub(crate) async fn delete_sku(&self, sku_id: &str) {
        self.seed.delete_sku(sku_id).await;
    }

    /// The cart of `user`.
    pub(crate) async fn get(&self, user: Uuid) -> pb::Cart {
        self.carts
            .clone()
            .get_cart(as_buyer(pb::GetCartRequest {}, user))
            .await
            .expect("cart read")
            .into_inner()
            .cart
            .expect("a cart")
    }

    /// Adds `quantity` of `sku_id` for `user`.
    pub(crate) async fn add(
        &self,
        user: Uuid,
        sku_id: &str,
        quantity: i64,
    ) -> Result<pb::Cart, tonic::Status> {
        self.add_keyed(user, sku_id, quantity, "").await
    }

    /// Adds with an idempotency key.
    pub(crate) async fn add_keyed(
        &self,
        user: Uuid,
        sku_id: &str,
        quantity: i64,
        key: &str,
    ) -> Result<pb::Cart, tonic::Status> {
        self.carts
            .clone()
            .add_cart_item(as_buyer(
                pb::AddCartItemRequest {
                    sku_id: sku_id.to_owned(),
                    quantity,
                    idempotency_key: key.to_owned(),
                },
                user,
            ))
            .await
            .map(|r| r.into_inner().cart.expect("a cart"))
    }
}

/// Seeds the product service through its own API, as one seller.
pub(crate) struct Seeder {
    catalog: ProductServiceClient<Channel>,
    stock: StockServiceClient<Channel>,
    seller: Uuid,
}

impl Seeder {
    /// A seeder for the product service at `uri`, as a new seller.
    pub(crate) fn new(uri: String) -> Self {
        let channel = channel(uri);
        Self {
            catalog: ProductServiceClient::new(channel.clone()),
            stock: StockServiceClient::new(channel),
            seller: Uuid::now_v7(),
        }
    }

    /// Creates and publishes a product with one SKU per `(price, stock)`, returning the SKU ids
    /// in that order.
    pub(crate) async fn published(&self, name: &str, skus: &[(i64, i64)]) -> (String, Vec<String>) {
        let code = Uuid::now_v7().simple().to_string();
        let values: Vec<String> = (0..skus.len()).map(|i| format!("V{i}")).collect();
        let draft = product::Product {
            name: name.to_owned(),
            description: "a product of the cart tests".to_owned(),
            category: "kitchen".to_owned(),
            options: vec![product::ProductOption {
                name: "Colour".to_owned(),
                values: values.clone(),
            }],
            skus: skus
                .iter()
                .zip(&values)
                .map(|((price, _), value)| product::Sku {
                    sku_code: format!("C{}-{value}", &code[12..]),
                    option_values: HashMap::from([("Colour".to_owned(), value.clone())]),
                    price: yen(*price),
                    active: true,
                    ..Default::default()
                })
                .collect(),
            images: vec![product::ProductImage {
                url: format!("https://cdn.example.com/{code}.jpg"),
                alt_text: name.to_owned(),
                main: true,
            }],
            ..Default::default()
        };
        let created = self
            .catalog
            .clone()
            .create_product(as_user(
                product::CreateProductRequest {
                    product: Some(draft),
                    idempotency_key: Uuid::new_v4().to_string(),
                    seller_id: String::new(),
                },
                self.seller,
                &[Role::Buyer, Role::Seller],
            ))
            .await
            .expect("product created")
            .into_inner()
            .product
            .expect("a product");
        self.catalog
            .clone()
            .publish_product(self.as_seller(product::PublishProductRequest {
                product_id: created.product_id.clone(),
            }))
            .await
            .expect("product published");
        let mut ids = Vec::new();
        for (created_sku, (_, on_hand)) in created.skus.iter().zip(skus) {
            if *on_hand > 0 {
                self.stock
                    .clone()
                    .adjust_stock(self.as_seller(product::AdjustStockRequest {
                        sku_id: created_sku.sku_id.clone(),
                        on_hand: *on_hand,
                        expected_version: 0,
                        reason: "initial stock".to_owned(),
                        idempotency_key: Uuid::new_v4().to_string(),
                    }))
                    .await
                    .expect("stock set");
            }
            ids.push(created_sku.sku_id.clone());
        }
        (created.product_id, ids)
    }

    /// Hides a product (its SKUs stop being purchasable).
    pub(crate) async fn hide(&self, product_id: &str) {
        self.catalog
            .clone()
            .hide_product(self.as_seller(product::HideProductRequest {
                product_id: product_id.to_owned(),
            }))
            .await
            .expect("product hidden");
    }

    /// Soft-deletes a SKU.
    pub(crate) async fn delete_sku(&self, sku_id: &str) {
        self.catalog
            .clone()
            .delete_sku(self.as_seller(product::DeleteSkuRequest {
                sku_id: sku_id.to_owned(),
            }))
            .await
            .expect("sku deleted");
    }

    /// Sets a SKU's on-hand units (at its current stock version).
    pub(crate) async fn restock(&self, sku_id: &str, on_hand: i64) {
        let level = self
            .stock
            .clone()
            .get_stock(self.as_seller(product::GetStockRequest {
                sku_id: sku_id.to_owned(),
            }))
            .await
            .expect("stock read")
            .into_inner()
            .stock
            .expect("a stock level");
        self.stock
            .clone()
            .adjust_stock(self.as_seller(product::AdjustStockRequest {
                sku_id: sku_id.to_owned(),
                on_hand,
                expected_version: level.version,
                reason: "restocked".to_owned(),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .expect("stock set");
    }

    fn as_seller<T>(&self, message: T) -> tonic::Request<T> {
        as_user(message, self.seller, &[Role::Buyer, Role::Seller])
    }
}

pub(crate) fn as_user<T>(message: T, user: Uuid, roles: &[Role]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    Principal::new(user, roles.iter().copied()).write_metadata(request.metadata_mut());
    request
}

pub(crate) fn as_buyer<T>(message: T, user: Uuid) -> tonic::Request<T> {
    as_user(message, user, &[Role::Buyer])
}

pub(crate) fn yen(amount: i64) -> Option<Money> {
    Some(Money {
        currency_code: "JPY".to_owned(),
        amount_minor: amount,
    })
}

/// `(sku_id, quantity, status)` of every line, in cart order.
pub(crate) fn summary(cart: &pb::Cart) -> Vec<(String, i64, CartLineStatus)> {
    cart.lines
        .iter()
        .map(|l| {
            (
                l.sku_id.clone(),
                l.quantity,
                CartLineStatus::try_from(l.status).unwrap_or(CartLineStatus::Unspecified),
            )
        })
        .collect()
}

/// The subtotal's amount (the currency is asserted to be JPY).
pub(crate) fn subtotal(cart: &pb::Cart) -> i64 {
    let money = cart.subtotal.as_ref().expect("a subtotal");
    assert_eq!(money.currency_code, "JPY");
    money.amount_minor
}

pub(crate) fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
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

/// `(resource_type, resource_name)` of a status's `ResourceInfo`.
pub(crate) fn resource(status: &tonic::Status) -> (String, String) {
    status
        .get_error_details()
        .resource_info()
        .map(|info| (info.resource_type.clone(), info.resource_name.clone()))
        .unwrap_or_default()
}
