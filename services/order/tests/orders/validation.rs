//! Bad CreateOrder requests are refused with the field (or the SKU) named, and nothing is
//! written: no order, no reservation, no event, no idempotency record.

use mercato_proto::mercato::common::v1::PaymentMethod;
use mercato_proto::mercato::order::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::shop::{Shop, explicit, key, metadata};
use crate::support::{reason, resource, violated_fields};

/// Asserts that nothing at all was written by the refused requests.
async fn nothing_written(shop: &Shop) {
    assert_eq!(shop.order_count().await, 0, "no order");
    assert_eq!(shop.reservation_count().await, 0, "no reservation");
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(shop.pool())
        .await
        .expect("outbox count");
    assert_eq!(outbox, 0, "no event");
}

#[tokio::test]
async fn malformed_requests_name_every_bad_field_and_write_nothing() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let buyer = Uuid::now_v7();

    let many: Vec<String> = (0..101).map(|_| Uuid::now_v7().to_string()).collect();
    let many: Vec<(&str, i64)> = many.iter().map(|s| (s.as_str(), 1)).collect();
    let mut no_key = explicit(&key(), &[(&mug, 1)]);
    no_key.idempotency_key.clear();
    let mut long_key = explicit(&key(), &[(&mug, 1)]);
    long_key.idempotency_key = "k".repeat(129);
    let mut no_source = explicit(&key(), &[(&mug, 1)]);
    no_source.source = None;
    let mut no_method = explicit(&key(), &[(&mug, 1)]);
    no_method.payment_method = PaymentMethod::Unspecified as i32;
    let mut bad_postal = explicit(&key(), &[(&mug, 1)]);
    if let Some(address) = bad_postal.shipping_address.as_mut() {
        address.postal_code = "12-345".to_owned();
    }
    let mut bad_coupon = explicit(&key(), &[(&mug, 1)]);
    bad_coupon.user_coupon_id = "not-a-uuid".to_owned();

    let cases: Vec<(&str, pb::CreateOrderRequest, &str)> = vec![
        (
            "zero quantity",
            explicit(&key(), &[(&mug, 0)]),
            "explicit_lines.lines[0].quantity",
        ),
        (
            "negative quantity",
            explicit(&key(), &[(&mug, -3)]),
            "explicit_lines.lines[0].quantity",
        ),
        (
            "too many units",
            explicit(&key(), &[(&mug, 1_000)]),
            "explicit_lines.lines[0].quantity",
        ),
        ("no lines", explicit(&key(), &[]), "explicit_lines.lines"),
        ("101 lines", explicit(&key(), &many), "explicit_lines.lines"),
        (
            "a sku that is no uuid",
            explicit(&key(), &[("mug", 1)]),
            "explicit_lines.lines[0].sku_id",
        ),
        ("no idempotency key", no_key, "idempotency_key"),
        ("a key over 128 characters", long_key, "idempotency_key"),
        ("no source", no_source, "source"),
        ("no payment method", no_method, "payment_method"),
        (
            "a bad postal code",
            bad_postal,
            "shipping_address.postal_code",
        ),
        ("a coupon id that is no uuid", bad_coupon, "user_coupon_id"),
    ];
    for (what, request, field) in cases {
        let refused = shop
            .create(buyer, request)
            .await
            .expect_err(&format!("{what} is refused"));
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}: {refused:?}");
        assert_eq!(reason(&refused), "VALIDATION_FAILED", "{what}");
        assert!(
            violated_fields(&refused).iter().any(|f| f == field),
            "{what} names {field}: {:?}",
            violated_fields(&refused)
        );
    }
    let requests: i64 = sqlx::query_scalar("SELECT count(*) FROM order_requests")
        .fetch_one(shop.pool())
        .await
        .expect("count idempotency records");
    assert_eq!(requests, 0, "validation happens before the key is claimed");
    nothing_written(&shop).await;
    assert_eq!(shop.stock(&mug).await, (10, 0));
}

#[tokio::test]
async fn a_duplicated_line_is_refused_with_its_sku() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let refused = shop
        .create(Uuid::now_v7(), explicit(&key(), &[(&mug, 1), (&mug, 2)]))
        .await
        .expect_err("a SKU twice");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(reason(&refused), "DUPLICATE_LINE");
    assert_eq!(metadata(&refused, "sku_id").as_deref(), Some(mug.as_str()));
    nothing_written(&shop).await;
}

#[tokio::test]
async fn an_unknown_sku_is_refused_as_not_found_naming_it() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let ghost = Uuid::now_v7().to_string();
    let refused = shop
        .create(Uuid::now_v7(), explicit(&key(), &[(&mug, 1), (&ghost, 1)]))
        .await
        .expect_err("no such SKU");
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(reason(&refused), "RESOURCE_NOT_FOUND");
    assert_eq!(resource(&refused), ("sku".to_owned(), ghost));
    nothing_written(&shop).await;
    assert_eq!(shop.stock(&mug).await, (10, 0));
}

#[tokio::test]
async fn an_anonymous_caller_is_refused() {
    let shop = Shop::start().await;
    let mug = shop.sku(1_000, 10).await;
    let refused = shop
        .orders
        .clone()
        .create_order(tonic::Request::new(explicit(&key(), &[(&mug, 1)])))
        .await
        .expect_err("no principal");
    assert_eq!(refused.code(), Code::Unauthenticated);
    nothing_written(&shop).await;
}
