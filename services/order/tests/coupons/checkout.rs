//! Coupons applied by the real OrderService.CreateOrder (the product service prices and reserves
//! the lines): fixed, percent floored, percent capped, a discount larger than the subtotal, and
//! every refusal — minimum not met, expired, someone else's, unknown, used twice — writing
//! nothing.

use chrono::{Duration, Utc};
use mercato_order::clock::Clock;
use mercato_proto::mercato::common::v1::{CouponKind, UserCouponStatus};
use mercato_proto::mercato::order::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    Shop, fixed, history_kinds, metadata, percent, refusal, stored, stored_history,
};

const SHIPPING_FEE: i64 = 300;

fn amount(money: Option<&mercato_proto::mercato::common::v1::Money>) -> i64 {
    let money = money.expect("an amount");
    assert_eq!(money.currency_code, "JPY");
    money.amount_minor
}

/// Units of `sku_id` still available, as the cart shows them live from the product service.
async fn available(shop: &Shop, sku_id: &str) -> i64 {
    let probe = Uuid::now_v7();
    let cart = shop
        .harness
        .add(probe, sku_id, 1)
        .await
        .expect("probe cart");
    cart.lines[0].available_quantity
}

#[tokio::test]
async fn discounts_are_computed_floored_capped_and_never_above_the_subtotal() {
    let shop = Shop::start_with_clock(Clock::system(), |settings| {
        settings.orders.shipping_fee = SHIPPING_FEE;
    })
    .await;
    let (_, skus) = shop
        .harness
        .published(
            "Kettle",
            &[(3_000, 50), (999, 50), (2_000, 50), (1_200, 50)],
        )
        .await;
    // (what, definition, sku, expected discount, expected kind)
    let cases = [
        (
            "fixed, minimum met exactly",
            fixed("500 yen off", 500, Some(3_000)),
            &skus[0],
            500,
            CouponKind::Fixed,
        ),
        (
            "percent, floored (999 × 15% = 149.85)",
            percent("15% off", 15, None),
            &skus[1],
            149,
            CouponKind::Percent,
        ),
        (
            "percent, capped (2000 × 50% = 1000 > 300)",
            percent("Half off up to 300", 50, Some(300)),
            &skus[2],
            300,
            CouponKind::Percent,
        ),
        (
            "fixed above the subtotal: the total is the shipping fee",
            fixed("5000 yen off", 5_000, None),
            &skus[3],
            1_200,
            CouponKind::Fixed,
        ),
    ];
    for (what, definition, sku, discount, kind) in cases {
        let user = Uuid::now_v7();
        let coupon = shop.api.create(definition).await;
        let held = shop.api.issue(&coupon.coupon_id, user).await;
        let order = shop
            .order(user, &[(sku.as_str(), 1)], Some(&held.user_coupon_id))
            .await
            .unwrap_or_else(|status| panic!("{what}: {status:?}"));
        let subtotal = amount(order.subtotal.as_ref());
        assert_eq!(amount(order.discount.as_ref()), discount, "{what}");
        assert_eq!(
            amount(order.total.as_ref()),
            subtotal - discount + SHIPPING_FEE,
            "{what}"
        );
        assert!(amount(order.total.as_ref()) >= SHIPPING_FEE, "{what}");
        let applied = order.coupon.as_ref().expect("the applied coupon");
        assert_eq!(
            (
                applied.user_coupon_id.as_str(),
                applied.coupon_id.as_str(),
                applied.name.as_str(),
                applied.kind,
                amount(applied.discount.as_ref()),
            ),
            (
                held.user_coupon_id.as_str(),
                coupon.coupon_id.as_str(),
                coupon.name.as_str(),
                kind as i32,
                discount,
            ),
            "{what}"
        );

        let order_id = Uuid::parse_str(&order.order_id).expect("a uuid");
        assert_eq!(
            stored(shop.pool(), &held.user_coupon_id).await,
            ("USED".to_owned(), Some(order_id)),
            "{what}"
        );
        assert_eq!(
            stored_history(shop.pool(), &held.user_coupon_id).await,
            [
                ("ISSUED".to_owned(), None),
                ("USED".to_owned(), Some(order_id))
            ],
            "{what}"
        );
        let shown = shop.api.mine_one(user, &held.user_coupon_id).await;
        assert_eq!(shown.status, UserCouponStatus::Used as i32, "{what}");
        assert_eq!(shown.order_id, order.order_id, "{what}");
        assert_eq!(
            history_kinds(&shown),
            [
                pb::UserCouponEventKind::Issued,
                pb::UserCouponEventKind::Used
            ],
            "{what}"
        );
    }
}

#[tokio::test]
async fn refused_coupons_write_nothing() {
    let shop = Shop::start_with_clock(Clock::system(), |_| {}).await;
    let (_, skus) = shop.harness.published("Teapot", &[(1_000, 50)]).await;
    let sku = skus[0].as_str();
    let buyer = Uuid::now_v7();
    let someone = Uuid::now_v7();
    let minimum = shop.api.create(fixed("From 5000", 100, Some(5_000))).await;
    let below_minimum = shop.api.issue(&minimum.coupon_id, buyer).await;
    let plain = shop.api.create(fixed("100 off", 100, None)).await;
    let theirs = shop.api.issue(&plain.coupon_id, someone).await;
    let unknown = Uuid::now_v7().to_string();

    let key = Uuid::new_v4().to_string();
    let status = shop
        .order_keyed(
            buyer,
            &[(sku, 1)],
            Some(&below_minimum.user_coupon_id),
            &key,
        )
        .await
        .expect_err("the subtotal is below the minimum");
    assert_eq!(
        refusal(&status),
        (
            Code::FailedPrecondition,
            "COUPON_MINIMUM_NOT_MET".to_owned()
        )
    );
    assert_eq!(
        metadata(&status, "minimum_order_amount_minor").as_deref(),
        Some("5000")
    );
    assert_eq!(metadata(&status, "currency_code").as_deref(), Some("JPY"));
    let replayed = shop
        .order_keyed(
            buyer,
            &[(sku, 1)],
            Some(&below_minimum.user_coupon_id),
            &key,
        )
        .await
        .expect_err("a refusal is final for its key");
    assert_eq!(refusal(&replayed), refusal(&status));

    let status = shop
        .order(buyer, &[(sku, 1)], Some(&theirs.user_coupon_id))
        .await
        .expect_err("another user's coupon");
    assert_eq!(
        refusal(&status),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned()),
        "someone else's coupon is invisible"
    );
    assert_eq!(
        metadata(&status, "resource_type").as_deref(),
        Some("user_coupon")
    );
    let status = shop
        .order(buyer, &[(sku, 1)], Some(&unknown))
        .await
        .expect_err("an unknown coupon");
    assert_eq!(
        refusal(&status),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );

    assert_eq!(shop.order_count().await, 0, "no refusal wrote an order");
    for held in [&below_minimum, &theirs] {
        assert_eq!(
            stored(shop.pool(), &held.user_coupon_id).await,
            ("AVAILABLE".to_owned(), None)
        );
        assert_eq!(
            stored_history(shop.pool(), &held.user_coupon_id).await,
            [("ISSUED".to_owned(), None)]
        );
    }
    assert_eq!(
        available(&shop, sku).await,
        50,
        "every reservation was released"
    );

    // Used twice: the second order is refused and the coupon stays with the first.
    let once = shop.api.issue(&plain.coupon_id, buyer).await;
    let first = shop
        .order(buyer, &[(sku, 1)], Some(&once.user_coupon_id))
        .await
        .expect("the first order uses it");
    let status = shop
        .order(buyer, &[(sku, 2)], Some(&once.user_coupon_id))
        .await
        .expect_err("already used");
    assert_eq!(
        refusal(&status),
        (Code::FailedPrecondition, "COUPON_NOT_AVAILABLE".to_owned())
    );
    assert_eq!(shop.order_count().await, 1);
    assert_eq!(
        stored(shop.pool(), &once.user_coupon_id).await,
        (
            "USED".to_owned(),
            Some(Uuid::parse_str(&first.order_id).expect("a uuid"))
        )
    );
    assert_eq!(
        available(&shop, sku).await,
        49,
        "only the first order holds stock"
    );
}

#[tokio::test]
async fn an_expired_coupon_is_refused_at_checkout() {
    let (clock, manual) = Clock::manual(Utc::now());
    let shop = Shop::start_with_clock(clock, |_| {}).await;
    let (_, skus) = shop.harness.published("Cup", &[(800, 10)]).await;
    let buyer = Uuid::now_v7();
    let coupon = shop
        .api
        .create(pb::Coupon {
            validity_days: 1,
            ..fixed("One day only", 100, None)
        })
        .await;
    let held = shop.api.issue(&coupon.coupon_id, buyer).await;

    manual.advance(Duration::days(1));
    let status = shop
        .order(buyer, &[(skus[0].as_str(), 1)], Some(&held.user_coupon_id))
        .await
        .expect_err("expired at issue + 1 day");
    assert_eq!(
        refusal(&status),
        (Code::FailedPrecondition, "COUPON_EXPIRED".to_owned())
    );
    assert!(metadata(&status, "expire_time").is_some());
    assert_eq!(shop.order_count().await, 0);
    assert_eq!(
        stored(shop.pool(), &held.user_coupon_id).await,
        ("AVAILABLE".to_owned(), None),
        "the refusal wrote nothing (the sweeper will mark it)"
    );
    let shown = shop.api.mine_one(buyer, &held.user_coupon_id).await;
    assert_eq!(shown.status, UserCouponStatus::Expired as i32);
}
