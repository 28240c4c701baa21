//! A checkout snapshots prices, reserves the stock of every line, and writes the order with its
//! `order.created` event in one transaction; a cart checkout clears the cart only once the order
//! has committed, and a refused checkout leaves the cart, the stock and the orders as they were.

use mercato_proto::mercato::common::v1::{CartLineStatus, OrderStatus, PaymentMethod};
use mercato_proto::mercato::order::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::shop::{Shop, amount, explicit, from_cart, key, shortage, status_of};
use crate::support::{as_buyer, reason, summary, yen};

#[tokio::test]
async fn an_order_snapshots_prices_reserves_stock_and_writes_its_event() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_200, 10).await;
    let cup = shop.sku(800, 5).await;
    let buyer = Uuid::now_v7();

    let response = shop
        .create(buyer, explicit(&key(), &[(&mug, 2), (&cup, 3)]))
        .await
        .expect("order created");
    assert!(!response.replayed);
    let order = response.order.expect("an order");
    assert_eq!(status_of(&order), OrderStatus::Pending);
    assert_eq!(order.user_id, buyer.to_string());
    assert_eq!(order.version, 1);
    let lines: Vec<(String, i64, i64)> = order
        .lines
        .iter()
        .map(|l| (l.sku_id.clone(), l.quantity, amount(l.line_total.as_ref())))
        .collect();
    assert_eq!(lines, [(mug.clone(), 2, 2_400), (cup.clone(), 3, 2_400)]);
    assert_eq!(amount(order.subtotal.as_ref()), 4_800);
    assert_eq!(amount(order.discount.as_ref()), 0);
    assert_eq!(amount(order.total.as_ref()), 4_800);
    assert_eq!(order.payment_method, PaymentMethod::Sandbox as i32);
    assert_eq!(
        order
            .shipping_address
            .as_ref()
            .map(|a| a.postal_code.as_str()),
        Some("150-0001")
    );
    assert_eq!(
        order.history.len(),
        1,
        "the creation is the first history entry"
    );
    let seconds = |t: Option<&prost_types::Timestamp>| t.expect("a time").seconds;
    assert_eq!(
        seconds(order.payment_due_time.as_ref()) - seconds(order.create_time.as_ref()),
        30 * 60,
        "30 minutes to pay"
    );

    assert_eq!(shop.stock(&mug).await, (10, 2));
    assert_eq!(shop.stock(&cup).await, (5, 3));
    assert_eq!(
        shop.reservation(&order.order_id).await.as_deref(),
        Some("PENDING")
    );
    assert_eq!(shop.events(&order.order_id, "order.created").await, 1);

    // A price change later does not touch the snapshot.
    let read = shop.get(buyer, &order.order_id).await.expect("readable");
    assert_eq!(read.lines, order.lines);
    assert_eq!(read.total, order.total);
}

#[tokio::test]
async fn a_cart_checkout_orders_every_line_and_then_empties_the_cart() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let cup = shop.sku(500, 10).await;
    let buyer = Uuid::now_v7();
    for (sku, quantity) in [(&mug, 2), (&cup, 1)] {
        shop.carts
            .clone()
            .add_cart_item(as_buyer(
                pb::AddCartItemRequest {
                    sku_id: sku.clone(),
                    quantity,
                    idempotency_key: String::new(),
                },
                buyer,
            ))
            .await
            .expect("added to cart");
    }

    let order = shop.place(buyer, from_cart(&key())).await;
    let lines: Vec<(String, i64)> = order
        .lines
        .iter()
        .map(|l| (l.sku_id.clone(), l.quantity))
        .collect();
    assert_eq!(
        lines,
        [(mug.clone(), 2), (cup.clone(), 1)],
        "cart order kept"
    );
    assert_eq!(amount(order.total.as_ref()), 2_500);
    let cart = shop
        .carts
        .clone()
        .get_cart(as_buyer(pb::GetCartRequest {}, buyer))
        .await
        .expect("cart read")
        .into_inner()
        .cart
        .expect("a cart");
    assert!(cart.lines.is_empty(), "the cart is empty after the order");
}

#[tokio::test]
async fn a_refused_cart_checkout_leaves_the_cart_stock_and_orders_untouched() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let scarce = shop.sku(500, 1).await;
    let buyer = Uuid::now_v7();
    for (sku, quantity) in [(&mug, 2), (&scarce, 3)] {
        shop.carts
            .clone()
            .add_cart_item(as_buyer(
                pb::AddCartItemRequest {
                    sku_id: sku.clone(),
                    quantity,
                    idempotency_key: String::new(),
                },
                buyer,
            ))
            .await
            .expect("added to cart");
    }

    let refused = shop
        .create(buyer, from_cart(&key()))
        .await
        .expect_err("an over-stock line blocks the checkout");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "CART_NOT_CHECKOUTABLE");

    let cart = shop
        .carts
        .clone()
        .get_cart(as_buyer(pb::GetCartRequest {}, buyer))
        .await
        .expect("cart read")
        .into_inner()
        .cart
        .expect("a cart");
    assert_eq!(
        summary(&cart),
        [
            (mug.clone(), 2, CartLineStatus::Available),
            (scarce.clone(), 3, CartLineStatus::OverStock)
        ]
    );
    assert_eq!(shop.order_count().await, 0);
    assert_eq!(shop.reservation_count().await, 0);
    assert_eq!(shop.stock(&mug).await, (10, 0));

    let empty = shop
        .create(Uuid::now_v7(), from_cart(&key()))
        .await
        .expect_err("an empty cart cannot be checked out");
    assert_eq!(empty.code(), Code::FailedPrecondition);
    assert_eq!(reason(&empty), "CART_EMPTY");
}

#[tokio::test]
async fn insufficient_stock_refuses_the_whole_order_and_names_the_short_sku() {
    let shop = Shop::start().await;
    let plenty = shop.sku(1_000, 10).await;
    let short = shop.sku(500, 2).await;
    let buyer = Uuid::now_v7();

    let refused = shop
        .create(buyer, explicit(&key(), &[(&plenty, 1), (&short, 3)]))
        .await
        .expect_err("not enough units");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "INSUFFICIENT_STOCK");
    assert_eq!(
        shortage(&refused),
        [(short.clone(), 3, 2)],
        "only the short SKU is named, with what was asked and what is left"
    );
    assert_eq!(shop.order_count().await, 0);
    assert_eq!(shop.stock(&plenty).await, (10, 0), "all or nothing");
    assert_eq!(shop.stock(&short).await, (2, 0));
}

#[tokio::test]
async fn an_expected_total_that_differs_refuses_the_order_and_releases_the_stock() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();
    let mut request = explicit(&key(), &[(&mug, 2)]);
    request.expected_total = yen(1_500);

    let refused = shop
        .create(buyer, request)
        .await
        .expect_err("the buyer saw another total");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "PRICE_CHANGED");
    assert_eq!(shop.order_count().await, 0);
    shop.wait_for_stock(&mug, (10, 0)).await;

    let mut request = explicit(&key(), &[(&mug, 2)]);
    request.expected_total = yen(2_000);
    let order = shop.place(buyer, request).await;
    assert_eq!(amount(order.total.as_ref()), 2_000);
}

#[tokio::test]
async fn a_hidden_product_cannot_be_ordered() {
    let shop = Shop::start().await;
    let (product_id, skus) = shop.seed.published("Soon hidden", &[(700, 5)]).await;
    shop.seed.hide(&product_id).await;

    let refused = shop
        .create(Uuid::now_v7(), explicit(&key(), &[(&skus[0], 1)]))
        .await
        .expect_err("hidden products are not for sale");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "SKU_NOT_PURCHASABLE");
    assert_eq!(shop.order_count().await, 0);
    assert_eq!(shop.reservation_count().await, 0);
}
