//! The cart through the BFF, against the real user, product and order services: every shopper
//! reaches only their own cart — whoever adds, changes or clears, the other shopper's cart stays
//! as it was — and an anonymous caller is refused before any service is called.

mod support;

use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as product;
use support::{RedisPrefix, TestBff, real_services_settings, reason, with_token};
use tonic::transport::Channel;
use tonic::{Code, Request};
use uuid::Uuid;

/// A published product with one SKU and 10 units, seeded on the product service as its seller.
async fn seed_sku(product_uri: &str) -> String {
    let channel = Channel::from_shared(product_uri.to_owned())
        .expect("product uri")
        .connect_lazy();
    let seller = Principal::new(Uuid::new_v4(), [Role::Seller]);
    let as_seller = |message| {
        let mut request = Request::new(message);
        seller.write_metadata(request.metadata_mut());
        request
    };
    let mut products = product::product_service_client::ProductServiceClient::new(channel.clone());
    let created = products
        .create_product(as_seller(product::CreateProductRequest {
            product: Some(product::Product {
                name: "Cart test mug".to_owned(),
                category: "kitchen".to_owned(),
                skus: vec![product::Sku {
                    sku_code: format!("CART-{}", Uuid::new_v4().simple()),
                    price: Some(common::Money {
                        currency_code: "JPY".to_owned(),
                        amount_minor: 1_200,
                    }),
                    active: true,
                    ..product::Sku::default()
                }],
                ..product::Product::default()
            }),
            idempotency_key: Uuid::new_v4().to_string(),
            seller_id: String::new(),
        }))
        .await
        .expect("product created")
        .into_inner()
        .product
        .expect("product");
    let sku_id = created.skus[0].sku_id.clone();
    let mut publish = Request::new(product::PublishProductRequest {
        product_id: created.product_id,
    });
    seller.write_metadata(publish.metadata_mut());
    products.publish_product(publish).await.expect("published");
    let mut stock = product::stock_service_client::StockServiceClient::new(channel);
    let mut read = Request::new(product::GetStockRequest {
        sku_id: sku_id.clone(),
    });
    seller.write_metadata(read.metadata_mut());
    let version = stock
        .get_stock(read)
        .await
        .expect("stock")
        .into_inner()
        .stock
        .expect("stock level")
        .version;
    let mut adjust = Request::new(product::AdjustStockRequest {
        sku_id: sku_id.clone(),
        on_hand: 10,
        expected_version: version,
        reason: "cart test".to_owned(),
        idempotency_key: Uuid::new_v4().to_string(),
    });
    seller.write_metadata(adjust.metadata_mut());
    stock.adjust_stock(adjust).await.expect("stocked");
    sku_id
}

async fn sign_up(auth: &mut bff::auth_service_client::AuthServiceClient<Channel>) -> String {
    auth.register(bff::RegisterRequest {
        email: format!("shopper-{}@example.com", Uuid::new_v4().simple()),
        password: "correct horse battery".to_owned(),
        display_name: "Shopper".to_owned(),
    })
    .await
    .expect("registered")
    .into_inner()
    .tokens
    .expect("tokens")
    .access_token
}

/// (sku, quantity) of a cart's lines.
fn lines(cart: Option<bff::Cart>) -> Vec<(String, i64)> {
    cart.unwrap_or_default()
        .lines
        .into_iter()
        .map(|line| (line.sku_id, line.quantity))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shopper_reaches_only_their_own_cart() {
    let user_env = mercato_user::testing::TestEnv::new()
        .await
        .expect("user resources");
    let users = user_env.start(|_| {}).await.expect("user service starts");
    let product_env = mercato_product::testing::TestEnv::new()
        .await
        .expect("product resources");
    let products = product_env
        .start(|_| {})
        .await
        .expect("product service starts");
    let order_env = mercato_order::testing::TestEnv::new(products.grpc_uri())
        .await
        .expect("order resources");
    let orders = order_env.start(|_| {}).await.expect("order service starts");
    let prefix = RedisPrefix::new();
    let order_uri = orders.grpc_uri();
    let bff = TestBff::start(real_services_settings(
        &users,
        Some(&products.grpc_uri()),
        &prefix,
        &[("ORDER_SERVICE_URL", &order_uri)],
    ))
    .await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut carts = bff::cart_service_client::CartServiceClient::new(channel);
    let sku = seed_sku(&products.grpc_uri()).await;
    let alice = sign_up(&mut auth).await;
    let bob = sign_up(&mut auth).await;

    let added = carts
        .add_cart_item(with_token(
            bff::AddCartItemRequest {
                sku_id: sku.clone(),
                quantity: 2,
                idempotency_key: Uuid::new_v4().to_string(),
            },
            &alice,
        ))
        .await
        .expect("alice adds")
        .into_inner()
        .cart
        .expect("cart");
    assert_eq!(lines(Some(added.clone())), vec![(sku.clone(), 2)]);
    assert_eq!(added.lines[0].product_name, "Cart test mug");
    assert_eq!(
        added.lines[0].status,
        i32::from(common::CartLineStatus::Available)
    );
    assert!(added.checkoutable);

    let bobs = carts
        .get_cart(with_token(bff::GetCartRequest {}, &bob))
        .await
        .expect("bob reads his cart")
        .into_inner()
        .cart;
    assert!(lines(bobs).is_empty(), "bob never sees alice's lines");

    carts
        .add_cart_item(with_token(
            bff::AddCartItemRequest {
                sku_id: sku.clone(),
                quantity: 1,
                idempotency_key: Uuid::new_v4().to_string(),
            },
            &bob,
        ))
        .await
        .expect("bob adds");
    carts
        .clear_cart(with_token(bff::ClearCartRequest {}, &bob))
        .await
        .expect("bob clears his cart");
    let alices = carts
        .get_cart(with_token(bff::GetCartRequest {}, &alice))
        .await
        .expect("alice reads her cart")
        .into_inner()
        .cart;
    assert_eq!(
        lines(alices),
        vec![(sku.clone(), 2)],
        "bob's add and clear left alice's cart alone"
    );

    let refused = carts
        .get_cart(bff::GetCartRequest {})
        .await
        .expect_err("no token, no cart");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(reason(&refused), "TOKEN_MISSING");
    let refused = carts
        .clear_cart(bff::ClearCartRequest {})
        .await
        .expect_err("no token, no clearing");
    assert_eq!(refused.code(), Code::Unauthenticated);

    drop(bff);
    orders.stop().await.expect("order service stops cleanly");
    products
        .stop()
        .await
        .expect("product service stops cleanly");
    users.stop().await.expect("user service stops cleanly");
}
