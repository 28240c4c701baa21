//! The cart through the BFF, against the real user, product and order services: every shopper
//! reaches only their own cart — whoever adds, changes or clears, the other shopper's cart stays
//! as it was — and an anonymous caller is refused before any service is called.

mod support;

use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use support::{
    RedisPrefix, TestBff, real_services_settings, reason, seed_sku, sign_up, with_token,
};
use tonic::Code;
use uuid::Uuid;

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
    let sku = seed_sku(&products.grpc_uri(), 10).await;
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
    assert_eq!(added.lines[0].product_name, "Test mug");
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
