//! The order service started through `mercato_testkit::TestSystem` next to the product service,
//! finding it as its `product` peer.

use mercato_order::testing::OrderService;
use mercato_product::testing::ProductService;
use mercato_proto::mercato::common::v1::CartLineStatus::Available;
use mercato_proto::mercato::order::v1 as pb;
use mercato_testkit::TestSystem;
use pb::cart_service_client::CartServiceClient;
use uuid::Uuid;

use crate::support::{Seeder, as_buyer, channel, summary};

#[tokio::test]
async fn the_order_service_finds_the_product_service_as_its_peer() {
    let system = TestSystem::builder()
        .with::<ProductService>()
        .with::<OrderService>()
        .start()
        .await
        .expect("system starts");
    // The relays declare the namespace's exchanges; delete them with the test.
    let broker = system.broker();
    broker.track_exchange(broker.name("mercato.events"));
    broker.track_exchange(broker.name("mercato.events.dlx"));
    let seed = Seeder::new(system.peers().uri("product").expect("product peer"));
    let (_, skus) = seed.published("Teapot", &[(4500, 3)]).await;
    let mut carts =
        CartServiceClient::new(channel(system.peers().uri("order").expect("order peer")));
    let user = Uuid::now_v7();
    let cart = carts
        .add_cart_item(as_buyer(
            pb::AddCartItemRequest {
                sku_id: skus[0].clone(),
                quantity: 2,
                idempotency_key: String::new(),
            },
            user,
        ))
        .await
        .expect("added")
        .into_inner()
        .cart
        .expect("a cart");
    assert_eq!(summary(&cart), [(skus[0].clone(), 2, Available)]);
    assert_eq!(cart.lines[0].product_name, "Teapot");
    let stored: i64 = sqlx::query_scalar("SELECT quantity FROM cart_lines")
        .fetch_one(system.pool("order"))
        .await
        .expect("the stored line");
    assert_eq!(stored, 2);
    system.shutdown().await.expect("both services stop cleanly");
}
