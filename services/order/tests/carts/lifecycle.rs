//! Add, increment, set, remove and clear; persistence across a restart; idempotent retries; no
//! lost update under concurrent adds.

use mercato_order::clock::Clock;
use mercato_proto::mercato::common::v1::CartLineStatus::{Available, Invalid};
use mercato_proto::mercato::order::v1 as pb;
use uuid::Uuid;

use crate::support::{Harness, as_buyer, reason, resource, subtotal, summary};

#[tokio::test]
async fn a_new_user_has_an_empty_cart() {
    let harness = Harness::start().await;
    let cart = harness.get(Uuid::now_v7()).await;
    assert!(cart.lines.is_empty());
    assert_eq!(subtotal(&cart), 0);
    assert_eq!(cart.item_count, 0);
    assert!(!cart.checkoutable);
    assert!(cart.update_time.is_none());
}

#[tokio::test]
async fn adding_creates_then_increments_a_line_and_persists_across_a_restart() {
    let mut harness = Harness::start().await;
    let (product_id, skus) = harness.published("Mug", &[(1200, 10), (1500, 10)]).await;
    let user = Uuid::now_v7();

    let cart = harness.add(user, &skus[0], 2).await.expect("added");
    assert_eq!(summary(&cart), [(skus[0].clone(), 2, Available)]);
    let cart = harness.add(user, &skus[1], 1).await.expect("added");
    let cart_after_increment = harness.add(user, &skus[0], 3).await.expect("incremented");
    assert_eq!(cart.lines.len(), 2);
    assert_eq!(
        summary(&cart_after_increment),
        [
            (skus[0].clone(), 5, Available),
            (skus[1].clone(), 1, Available)
        ],
        "lines keep the order they were first added in"
    );

    let line = &cart_after_increment.lines[0];
    assert_eq!(line.product_id, product_id);
    assert_eq!(line.product_name, "Mug");
    assert!(line.sku_code.ends_with("-V0"), "{}", line.sku_code);
    assert_eq!(
        line.option_values.get("Colour").map(String::as_str),
        Some("V0")
    );
    assert!(line.main_image_url.starts_with("https://cdn.example.com/"));
    assert_eq!(line.unit_price.as_ref().map(|m| m.amount_minor), Some(1200));
    assert_eq!(line.line_total.as_ref().map(|m| m.amount_minor), Some(6000));
    assert_eq!(line.available_quantity, 10);
    assert!(line.add_time.is_some());
    assert_eq!(subtotal(&cart_after_increment), 5 * 1200 + 1500);
    assert_eq!(cart_after_increment.item_count, 6);
    assert!(cart_after_increment.checkoutable);
    assert!(cart_after_increment.update_time.is_some());

    harness.restart_order().await;
    let reread = harness.get(user).await;
    assert_eq!(
        reread, cart_after_increment,
        "the cart survives a restart unchanged"
    );
}

#[tokio::test]
async fn set_remove_and_clear_change_exactly_what_they_say() {
    let harness = Harness::start().await;
    let (_, skus) = harness.published("Bowl", &[(800, 50), (900, 50)]).await;
    let user = Uuid::now_v7();
    harness.add(user, &skus[0], 4).await.expect("added");
    harness.add(user, &skus[1], 2).await.expect("added");
    let mut carts = harness.carts.clone();

    let cart = carts
        .set_cart_item_quantity(as_buyer(
            pb::SetCartItemQuantityRequest {
                sku_id: skus[0].clone(),
                quantity: 9,
            },
            user,
        ))
        .await
        .expect("quantity set")
        .into_inner()
        .cart
        .expect("a cart");
    assert_eq!(summary(&cart)[0].1, 9);

    let remove = |quantity: i64, key: &str| {
        as_buyer(
            pb::RemoveCartItemRequest {
                sku_id: skus[0].clone(),
                quantity,
                idempotency_key: key.to_owned(),
            },
            user,
        )
    };
    let cart = carts
        .remove_cart_item(remove(4, "remove-4"))
        .await
        .expect("partly removed")
        .into_inner()
        .cart
        .expect("a cart");
    assert_eq!(summary(&cart)[0].1, 5);
    // The retry with the same key removes nothing more.
    let cart = carts
        .remove_cart_item(remove(4, "remove-4"))
        .await
        .expect("replayed")
        .into_inner()
        .cart
        .expect("a cart");
    assert_eq!(summary(&cart)[0].1, 5);
    // Removing more than the line holds removes the line.
    let cart = carts
        .remove_cart_item(remove(6, ""))
        .await
        .expect("removed")
        .into_inner()
        .cart
        .expect("a cart");
    assert_eq!(summary(&cart), [(skus[1].clone(), 2, Available)]);

    let missing = carts
        .remove_cart_item(remove(0, ""))
        .await
        .expect_err("no such line");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(reason(&missing), "RESOURCE_NOT_FOUND");
    assert_eq!(
        resource(&missing),
        ("cart_line".to_owned(), skus[0].clone())
    );
    let missing = carts
        .set_cart_item_quantity(as_buyer(
            pb::SetCartItemQuantityRequest {
                sku_id: skus[0].clone(),
                quantity: 1,
            },
            user,
        ))
        .await
        .expect_err("no such line");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let cart = carts
        .clear_cart(as_buyer(pb::ClearCartRequest {}, user))
        .await
        .expect("cleared")
        .into_inner()
        .cart
        .expect("a cart");
    assert!(cart.lines.is_empty());
    assert!(
        cart.update_time.is_some(),
        "a used cart keeps its update time"
    );
    assert_eq!(harness.stored_lines().await, 0);
}

#[tokio::test]
async fn a_retried_add_with_the_same_key_adds_once() {
    let harness = Harness::start().await;
    let (product_id, skus) = harness.published("Cup", &[(500, 10)]).await;
    let user = Uuid::now_v7();
    let key = Uuid::new_v4().to_string();
    harness
        .add_keyed(user, &skus[0], 2, &key)
        .await
        .expect("added");
    let replay = harness
        .add_keyed(user, &skus[0], 2, &key)
        .await
        .expect("replayed");
    assert_eq!(summary(&replay)[0].1, 2);

    let reused = harness
        .add_keyed(user, &skus[0], 3, &key)
        .await
        .expect_err("same key, other request");
    assert_eq!(reused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");

    // Keys are scoped to the caller: another user's identical key is a fresh request.
    let other = Uuid::now_v7();
    let cart = harness
        .add_keyed(other, &skus[0], 3, &key)
        .await
        .expect("added");
    assert_eq!(summary(&cart)[0].1, 3);
    assert_eq!(summary(&harness.get(user).await)[0].1, 2);

    // A replay answers with the cart even once the SKU can no longer be bought.
    harness.hide(&product_id).await;
    let replay = harness
        .add_keyed(user, &skus[0], 2, &key)
        .await
        .expect("replayed");
    assert_eq!(summary(&replay), [(skus[0].clone(), 2, Invalid)]);
}

#[tokio::test]
async fn concurrent_adds_of_one_sku_lose_no_update() {
    let harness = Harness::start().await;
    let (_, skus) = harness.published("Plate", &[(300, 100)]).await;
    let user = Uuid::now_v7();
    let adds = (0..20).map(|_| harness.add(user, &skus[0], 1));
    for result in futures::future::join_all(adds).await {
        result.expect("every concurrent add succeeds");
    }
    let cart = harness.get(user).await;
    assert_eq!(summary(&cart), [(skus[0].clone(), 20, Available)]);
    assert_eq!(harness.stored_lines().await, 1);
}

#[tokio::test]
async fn an_idempotency_key_is_forgotten_after_a_day() {
    let start = chrono::Utc::now();
    let (clock, hand) = Clock::manual(start);
    let harness = Harness::start_with_clock(clock, |_| {}).await;
    let (_, skus) = harness.published("Jug", &[(900, 10)]).await;
    let user = Uuid::now_v7();
    harness
        .add_keyed(user, &skus[0], 1, "jug")
        .await
        .expect("added");
    hand.advance(chrono::Duration::hours(23));
    let cart = harness
        .add_keyed(user, &skus[0], 1, "jug")
        .await
        .expect("replayed");
    assert_eq!(
        summary(&cart)[0].1,
        1,
        "within 24 hours the key still replays"
    );
    hand.advance(chrono::Duration::hours(2));
    let cart = harness
        .add_keyed(user, &skus[0], 1, "jug")
        .await
        .expect("added");
    assert_eq!(
        summary(&cart)[0].1,
        2,
        "after 24 hours the key is a fresh request"
    );
}
