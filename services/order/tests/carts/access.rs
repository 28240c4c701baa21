//! Who may use a cart: only an authenticated user, and only their own.

use mercato_proto::mercato::order::v1 as pb;
use uuid::Uuid;

use crate::support::{Harness, reason, summary};

#[tokio::test]
async fn anonymous_calls_are_unauthenticated() {
    let harness = Harness::start().await;
    let (_, skus) = harness.published("Fork", &[(100, 5)]).await;
    let mut carts = harness.carts.clone();
    let statuses = [
        carts.get_cart(pb::GetCartRequest {}).await.err(),
        carts
            .add_cart_item(pb::AddCartItemRequest {
                sku_id: skus[0].clone(),
                quantity: 1,
                idempotency_key: String::new(),
            })
            .await
            .err(),
        carts
            .set_cart_item_quantity(pb::SetCartItemQuantityRequest {
                sku_id: skus[0].clone(),
                quantity: 1,
            })
            .await
            .err(),
        carts
            .remove_cart_item(pb::RemoveCartItemRequest {
                sku_id: skus[0].clone(),
                quantity: 0,
                idempotency_key: String::new(),
            })
            .await
            .err(),
        carts.clear_cart(pb::ClearCartRequest {}).await.err(),
    ];
    for status in statuses {
        let status = status.expect("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(reason(&status), "TOKEN_MISSING");
    }
    assert_eq!(harness.stored_lines().await, 0);
}

#[tokio::test]
async fn one_user_never_sees_or_changes_another_users_cart() {
    let harness = Harness::start().await;
    let (_, skus) = harness.published("Knife", &[(100, 50), (200, 50)]).await;
    let alice = Uuid::now_v7();
    let bob = Uuid::now_v7();
    harness.add(alice, &skus[0], 2).await.expect("added");
    harness.add(bob, &skus[1], 7).await.expect("added");

    assert_eq!(summary(&harness.get(alice).await).len(), 1);
    assert_eq!(summary(&harness.get(alice).await)[0].0, skus[0]);
    assert_eq!(summary(&harness.get(bob).await)[0].0, skus[1]);

    // Bob cannot touch Alice's line: for him it does not exist.
    let status = harness
        .carts
        .clone()
        .set_cart_item_quantity(crate::support::as_buyer(
            pb::SetCartItemQuantityRequest {
                sku_id: skus[0].clone(),
                quantity: 9,
            },
            bob,
        ))
        .await
        .expect_err("not bob's line");
    assert_eq!(status.code(), tonic::Code::NotFound);
    harness
        .carts
        .clone()
        .clear_cart(crate::support::as_buyer(pb::ClearCartRequest {}, bob))
        .await
        .expect("bob clears his cart");
    assert_eq!(summary(&harness.get(alice).await)[0].1, 2);
    assert!(harness.get(bob).await.lines.is_empty());
}
