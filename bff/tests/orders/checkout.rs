//! Checkouts, history, detail and cancellation, and the saved address as the default.

use crate::support::{
    SKU_PRICE, Services, reason, seed_sku, shipping_address, sign_up, violated_fields, with_token,
};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use tonic::Code;
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::buyer::{Orders, cancel, explicit, from_cart, jpy, status_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_checks_out_and_reaches_only_their_own_orders() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut carts = bff::cart_service_client::CartServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;

    // Explicit lines: a PENDING order with the snapshot prices.
    let key = Uuid::new_v4().to_string();
    let created = orders
        .create_order(with_token(explicit(&key, &[(&sku, 2)]), &buyer))
        .await
        .expect("explicit checkout")
        .into_inner();
    assert!(!created.replayed);
    let placed = created.order.expect("order");
    assert_eq!(status_of(&placed), common::OrderStatus::Pending);
    assert_eq!(placed.lines.len(), 1);
    let line = &placed.lines[0];
    assert_eq!((line.sku_id.as_str(), line.quantity), (sku.as_str(), 2));
    assert_eq!(line.product_name, "Test mug");
    assert_eq!(line.unit_price, jpy(SKU_PRICE));
    assert_eq!(line.line_total, jpy(2 * SKU_PRICE));
    assert_eq!(placed.subtotal, jpy(2 * SKU_PRICE));
    assert_eq!(placed.discount, jpy(0));
    assert_eq!(placed.shipping_fee, jpy(0));
    assert_eq!(placed.total, jpy(2 * SKU_PRICE));
    assert_eq!(
        placed.payment_method,
        i32::from(common::PaymentMethod::Sandbox)
    );
    assert_eq!(placed.shipping_address, Some(shipping_address("Buyer")));
    assert!(placed.payment_id.is_empty() && placed.coupon.is_none());
    assert!(
        placed.buyer_user_id.is_empty(),
        "the buyer's view names no user"
    );
    assert_eq!(placed.history.len(), 1);
    assert_eq!(
        placed.history[0].to_status,
        i32::from(common::OrderStatus::Pending)
    );
    let seconds = |time: &Option<prost_types::Timestamp>| time.as_ref().expect("a time").seconds;
    assert!(seconds(&placed.payment_due_time) > seconds(&placed.create_time));

    // The same key and body replay the order; the same key with another body is refused.
    let replay = orders
        .create_order(with_token(explicit(&key, &[(&sku, 2)]), &buyer))
        .await
        .expect("replayed checkout")
        .into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.order.as_ref(), Some(&placed));
    let reused = orders
        .create_order(with_token(explicit(&key, &[(&sku, 3)]), &buyer))
        .await
        .expect_err("a key is bound to its request");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");

    // The cart: checked out whole, then empty.
    carts
        .add_cart_item(with_token(
            bff::AddCartItemRequest {
                sku_id: sku.clone(),
                quantity: 1,
                idempotency_key: Uuid::new_v4().to_string(),
            },
            &buyer,
        ))
        .await
        .expect("added to the cart");
    let from_cart = orders
        .create_order(with_token(from_cart(&Uuid::new_v4().to_string()), &buyer))
        .await
        .expect("cart checkout")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        from_cart
            .lines
            .iter()
            .map(|line| (line.sku_id.as_str(), line.quantity))
            .collect::<Vec<_>>(),
        vec![(sku.as_str(), 1)]
    );
    assert_eq!(from_cart.total, jpy(SKU_PRICE));
    let cart = carts
        .get_cart(with_token(bff::GetCartRequest {}, &buyer))
        .await
        .expect("cart")
        .into_inner()
        .cart
        .unwrap_or_default();
    assert!(cart.lines.is_empty(), "the checkout emptied the cart");

    // History newest first, and the detail.
    let listed = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &buyer))
        .await
        .expect("history")
        .into_inner();
    assert_eq!(listed.orders, vec![from_cart.clone(), placed.clone()]);
    assert!(listed.next_page_token.is_empty());
    let got = orders
        .get_order(with_token(
            bff::GetOrderRequest {
                order_id: placed.order_id.clone(),
            },
            &buyer,
        ))
        .await
        .expect("detail")
        .into_inner()
        .order;
    assert_eq!(got.as_ref(), Some(&placed));

    // Cancelling, then filtering the history by state.
    let cancelled = cancel(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(status_of(&cancelled), common::OrderStatus::Cancelled);
    assert_eq!(
        cancelled.cancellation_reason,
        i32::from(common::OrderCancellationReason::UserRequested)
    );
    assert_eq!(
        cancelled.history.last().map(|change| change.to_status),
        Some(i32::from(common::OrderStatus::Cancelled))
    );
    let only_cancelled = orders
        .list_orders(with_token(
            bff::ListOrdersRequest {
                statuses: vec![common::OrderStatus::Cancelled.into()],
                ..bff::ListOrdersRequest::default()
            },
            &buyer,
        ))
        .await
        .expect("filtered history")
        .into_inner()
        .orders;
    assert_eq!(only_cancelled, vec![cancelled]);

    // Another buyer sees none of it.
    let other = sign_up(&mut auth).await;
    let theirs = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &other))
        .await
        .expect("the other buyer's history")
        .into_inner()
        .orders;
    assert!(theirs.is_empty());
    let hidden = orders
        .get_order(with_token(
            bff::GetOrderRequest {
                order_id: from_cart.order_id.clone(),
            },
            &other,
        ))
        .await
        .expect_err("someone else's order");
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(reason(&hidden), "RESOURCE_NOT_FOUND");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checkouts_are_refused_naming_the_field() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;

    let no_lines = orders
        .create_order(with_token(
            explicit(&Uuid::new_v4().to_string(), &[]),
            &buyer,
        ))
        .await
        .expect_err("no lines");
    assert_eq!(no_lines.code(), Code::InvalidArgument);
    assert_eq!(reason(&no_lines), "VALIDATION_FAILED");
    assert_eq!(violated_fields(&no_lines), vec!["explicit_lines.lines"]);

    let no_key = orders
        .create_order(with_token(explicit("", &[(&sku, 1)]), &buyer))
        .await
        .expect_err("no idempotency key");
    assert_eq!(no_key.code(), Code::InvalidArgument);
    assert_eq!(reason(&no_key), "VALIDATION_FAILED");
    assert_eq!(violated_fields(&no_key), vec!["idempotency_key"]);

    let no_source = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                source: None,
                ..explicit(&Uuid::new_v4().to_string(), &[])
            },
            &buyer,
        ))
        .await
        .expect_err("nothing to order");
    assert_eq!(no_source.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&no_source), vec!["source"]);

    let wrong_total = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                expected_total: jpy(SKU_PRICE - 1),
                ..explicit(&Uuid::new_v4().to_string(), &[(&sku, 1)])
            },
            &buyer,
        ))
        .await
        .expect_err("the buyer saw another total");
    assert_eq!(wrong_total.code(), Code::FailedPrecondition);
    assert_eq!(reason(&wrong_total), "PRICE_CHANGED");

    let history = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &buyer))
        .await
        .expect("history")
        .into_inner()
        .orders;
    assert!(history.is_empty(), "no refused checkout created an order");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_without_an_address_ships_to_the_saved_one_or_is_refused_precisely() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut accounts = bff::account_service_client::AccountServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let without_address = |key: &str| bff::CreateOrderRequest {
        shipping_address: None,
        ..explicit(key, &[(&sku, 1)])
    };

    // Nothing saved: the order service's own refusal, and no order.
    let key = Uuid::new_v4().to_string();
    let refused = orders
        .create_order(with_token(without_address(&key), &buyer))
        .await
        .expect_err("no address given and none saved");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "SHIPPING_ADDRESS_REQUIRED");
    assert_eq!(
        refused
            .get_error_details()
            .precondition_failure()
            .map(|failure| failure.violations[0].subject.clone()),
        Some("shipping_address".to_owned())
    );
    let history = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &buyer))
        .await
        .expect("history")
        .into_inner()
        .orders;
    assert!(history.is_empty(), "the refused checkout wrote nothing");

    // Saved: the order ships there, and the same key and body replay it.
    let saved = shipping_address("Saved recipient");
    accounts
        .update_shipping_address(with_token(
            bff::UpdateShippingAddressRequest {
                shipping_address: Some(saved.clone()),
                update_mask: None,
            },
            &buyer,
        ))
        .await
        .expect("address saved");
    let created = orders
        .create_order(with_token(without_address(&key), &buyer))
        .await
        .expect("checkout to the saved address")
        .into_inner();
    assert!(!created.replayed, "the refusal left the key unbound");
    let placed = created.order.expect("order");
    assert_eq!(placed.shipping_address.as_ref(), Some(&saved));
    let replay = orders
        .create_order(with_token(without_address(&key), &buyer))
        .await
        .expect("replay")
        .into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.order.as_ref(), Some(&placed));
    // Sending the saved address explicitly is the same request.
    let explicit_replay = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                shipping_address: Some(saved.clone()),
                ..without_address(&key)
            },
            &buyer,
        ))
        .await
        .expect("replay with the address spelled out")
        .into_inner();
    assert!(explicit_replay.replayed);

    // An address in the request wins over the saved one.
    let given = shipping_address("Given recipient");
    let elsewhere = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                shipping_address: Some(given.clone()),
                ..without_address(&Uuid::new_v4().to_string())
            },
            &buyer,
        ))
        .await
        .expect("checkout to a given address")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(elsewhere.shipping_address, Some(given));

    // The saved address changed: replaying the first key is another request now.
    accounts
        .update_shipping_address(with_token(
            bff::UpdateShippingAddressRequest {
                shipping_address: Some(shipping_address("Moved recipient")),
                update_mask: None,
            },
            &buyer,
        ))
        .await
        .expect("address changed");
    let reused = orders
        .create_order(with_token(without_address(&key), &buyer))
        .await
        .expect_err("the filled address is part of the request");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");
    let history = orders
        .list_orders(with_token(bff::ListOrdersRequest::default(), &buyer))
        .await
        .expect("history")
        .into_inner()
        .orders;
    assert_eq!(history, vec![elsewhere, placed]);

    drop(bff);
    services.stop().await;
}
