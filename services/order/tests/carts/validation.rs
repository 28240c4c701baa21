//! Bad input is INVALID_ARGUMENT naming the field, and writes nothing; the line limit is
//! FAILED_PRECONDITION / CART_FULL.

use mercato_proto::mercato::order::v1 as pb;
use uuid::Uuid;

use crate::support::{Harness, as_buyer, reason, summary, violated_fields};

fn assert_invalid(status: &tonic::Status, fields: &[&str]) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(status), "VALIDATION_FAILED");
    assert_eq!(violated_fields(status), fields);
}

#[tokio::test]
async fn bad_quantities_and_ids_name_the_field_and_write_nothing() {
    let harness = Harness::start().await;
    let (_, skus) = harness.published("Spoon", &[(100, 5)]).await;
    let user = Uuid::now_v7();
    for quantity in [0, -1, 1000, i64::MAX] {
        let status = harness
            .add(user, &skus[0], quantity)
            .await
            .expect_err("bad");
        assert_invalid(&status, &["quantity"]);
    }
    for sku in ["", "not-a-uuid", "123"] {
        let status = harness.add(user, sku, 1).await.expect_err("bad");
        assert_invalid(&status, &["sku_id"]);
    }
    let status = harness.add(user, "x", 0).await.expect_err("bad");
    assert_invalid(&status, &["sku_id", "quantity"]);
    let status = harness
        .add_keyed(user, &skus[0], 1, "key with spaces")
        .await
        .expect_err("bad");
    assert_invalid(&status, &["idempotency_key"]);
    assert_eq!(harness.stored_lines().await, 0);

    harness.add(user, &skus[0], 2).await.expect("added");
    let mut carts = harness.carts.clone();
    for quantity in [0, -5, 1000] {
        let status = carts
            .set_cart_item_quantity(as_buyer(
                pb::SetCartItemQuantityRequest {
                    sku_id: skus[0].clone(),
                    quantity,
                },
                user,
            ))
            .await
            .expect_err("bad");
        assert_invalid(&status, &["quantity"]);
    }
    for (sku_id, quantity, field) in [
        (skus[0].clone(), -1, "quantity"),
        (skus[0].clone(), 1000, "quantity"),
        ("nope".to_owned(), 1, "sku_id"),
    ] {
        let status = carts
            .remove_cart_item(as_buyer(
                pb::RemoveCartItemRequest {
                    sku_id,
                    quantity,
                    idempotency_key: String::new(),
                },
                user,
            ))
            .await
            .expect_err("bad");
        assert_invalid(&status, &[field]);
    }
    assert_eq!(summary(&harness.get(user).await)[0].1, 2, "nothing changed");
}

#[tokio::test]
async fn an_increment_past_999_units_is_refused() {
    let harness = Harness::start().await;
    let (_, skus) = harness.published("Pin", &[(10, 5)]).await;
    let user = Uuid::now_v7();
    harness
        .add(user, &skus[0], 999)
        .await
        .expect("the maximum fits");
    let status = harness.add(user, &skus[0], 1).await.expect_err("too many");
    assert_invalid(&status, &["quantity"]);
    assert_eq!(summary(&harness.get(user).await)[0].1, 999);
}

#[tokio::test]
async fn a_full_cart_refuses_new_lines_but_not_increments() {
    let harness = Harness::start_with(|settings| settings.cart.max_lines = 2).await;
    let (_, skus) = harness.published("Set", &[(10, 5), (20, 5), (30, 5)]).await;
    let user = Uuid::now_v7();
    harness.add(user, &skus[0], 1).await.expect("added");
    harness.add(user, &skus[1], 1).await.expect("added");
    let status = harness.add(user, &skus[2], 1).await.expect_err("full");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&status), "CART_FULL");
    let cart = harness.add(user, &skus[0], 1).await.expect("increment");
    assert_eq!(
        summary(&cart).iter().map(|l| l.1).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(harness.stored_lines().await, 2);
}
