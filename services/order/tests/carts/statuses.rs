//! Live line statuses and their precedence, the subtotal and checkoutability, and an unreachable
//! catalog.

use mercato_proto::mercato::common::v1::CartLineStatus::{
    Available, Invalid, OutOfStock, OverStock,
};
use mercato_proto::mercato::order::v1 as pb;
use uuid::Uuid;

use crate::support::{Harness, as_buyer, reason, subtotal, summary};

#[tokio::test]
async fn every_status_is_computed_live_with_its_precedence() {
    let harness = Harness::start().await;
    let (_, plenty) = harness.published("Plenty", &[(1000, 10)]).await;
    let (_, sold_out) = harness.published("Sold out", &[(2000, 0)]).await;
    let (_, scarce) = harness.published("Scarce", &[(3000, 2)]).await;
    // Out of stock too, so INVALID must win over OUT_OF_STOCK once it is hidden.
    let (hidden_product, hidden) = harness.published("Hidden", &[(4000, 0)]).await;
    let (_, two_skus) = harness.published("Two", &[(5000, 5), (6000, 5)]).await;
    let user = Uuid::now_v7();
    harness.add(user, &plenty[0], 1).await.expect("added");
    harness.add(user, &sold_out[0], 1).await.expect("added");
    harness.add(user, &scarce[0], 3).await.expect("added");
    harness.add(user, &hidden[0], 1).await.expect("added");
    harness.add(user, &two_skus[1], 1).await.expect("added");
    harness.hide(&hidden_product).await;
    harness.delete_sku(&two_skus[1]).await;

    let cart = harness.get(user).await;
    assert_eq!(
        summary(&cart),
        [
            (plenty[0].clone(), 1, Available),
            (sold_out[0].clone(), 1, OutOfStock),
            (scarce[0].clone(), 3, OverStock),
            (hidden[0].clone(), 1, Invalid),
            (two_skus[1].clone(), 1, Invalid),
        ]
    );
    let by_sku = |id: &str| cart.lines.iter().find(|l| l.sku_id == id).expect("line");
    assert_eq!(by_sku(&scarce[0]).available_quantity, 2);
    assert_eq!(by_sku(&sold_out[0]).available_quantity, 0);
    let hidden_line = by_sku(&hidden[0]);
    assert!(hidden_line.unit_price.is_none() && hidden_line.line_total.is_none());
    assert_eq!(
        hidden_line.product_name, "Hidden",
        "a hidden product's facts still show"
    );
    let deleted_line = by_sku(&two_skus[1]);
    assert!(deleted_line.product_name.is_empty() && deleted_line.sku_code.is_empty());
    assert!(deleted_line.unit_price.is_none());
    // Subtotal per the contract: every line that is not INVALID, at current prices.
    assert_eq!(subtotal(&cart), 1000 + 2000 + 3 * 3000);
    assert_eq!(cart.item_count, 7);
    assert!(!cart.checkoutable);

    // Dropping the problem lines leaves a checkoutable cart.
    let mut carts = harness.carts.clone();
    for sku in [&sold_out[0], &hidden[0], &two_skus[1]] {
        carts
            .remove_cart_item(as_buyer(
                pb::RemoveCartItemRequest {
                    sku_id: sku.clone(),
                    quantity: 0,
                    idempotency_key: String::new(),
                },
                user,
            ))
            .await
            .expect("line removed");
    }
    let cart = carts
        .set_cart_item_quantity(as_buyer(
            pb::SetCartItemQuantityRequest {
                sku_id: scarce[0].clone(),
                quantity: 2,
            },
            user,
        ))
        .await
        .expect("quantity set")
        .into_inner()
        .cart
        .expect("a cart");
    assert_eq!(
        summary(&cart),
        [
            (plenty[0].clone(), 1, Available),
            (scarce[0].clone(), 2, Available)
        ]
    );
    assert_eq!(subtotal(&cart), 1000 + 2 * 3000);
    assert!(cart.checkoutable);
}

#[tokio::test]
async fn unknown_and_unpurchasable_skus_are_refused_before_anything_is_written() {
    let harness = Harness::start().await;
    let (hidden_product, hidden) = harness.published("Hidden", &[(100, 5)]).await;
    harness.hide(&hidden_product).await;
    let user = Uuid::now_v7();

    let unknown = Uuid::now_v7().to_string();
    let status = harness
        .add(user, &unknown, 1)
        .await
        .expect_err("unknown sku");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(reason(&status), "RESOURCE_NOT_FOUND");
    assert_eq!(
        crate::support::resource(&status),
        ("sku".to_owned(), unknown.clone())
    );

    let status = harness.add(user, &hidden[0], 1).await.expect_err("hidden");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&status), "SKU_NOT_PURCHASABLE");
    assert_eq!(harness.stored_lines().await, 0);
}

#[tokio::test]
async fn an_unreachable_catalog_answers_unavailable_instead_of_inventing_lines() {
    let mut harness = Harness::start().await;
    let (_, skus) = harness.published("Lamp", &[(700, 3)]).await;
    let user = Uuid::now_v7();
    harness.add(user, &skus[0], 1).await.expect("added");
    harness.stop_product().await;

    let status = harness
        .carts
        .clone()
        .get_cart(as_buyer(pb::GetCartRequest {}, user))
        .await
        .expect_err("no catalog");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let status = harness
        .add(user, &skus[0], 1)
        .await
        .expect_err("no catalog");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let quantity: i64 = sqlx::query_scalar("SELECT quantity FROM cart_lines")
        .fetch_one(harness.order_pool())
        .await
        .expect("the line");
    assert_eq!(quantity, 1, "a refused add writes nothing");
}
