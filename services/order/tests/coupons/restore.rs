//! Compensation: a cancelled or expired order gives its coupon back (AVAILABLE again, or EXPIRED
//! when the coupon's own expiry passed meanwhile) with a RESTORED history entry, exactly once.

use chrono::{Duration, Utc};
use mercato_order::clock::Clock;
use mercato_order::coupon::apply;
use mercato_proto::mercato::common::v1::UserCouponStatus;
use mercato_proto::mercato::order::v1 as pb;
use uuid::Uuid;

use crate::support::{Shop, eventually, fixed, history_kinds, stored, stored_history};

#[tokio::test]
async fn cancelling_an_order_gives_its_coupon_back_once() {
    let shop = Shop::start_with_clock(Clock::system(), |_| {}).await;
    let (_, skus) = shop.harness.published("Plate", &[(2_000, 10)]).await;
    let sku = skus[0].as_str();
    let buyer = Uuid::now_v7();
    let coupon = shop.api.create(fixed("200 off", 200, None)).await;
    let held = shop.api.issue(&coupon.coupon_id, buyer).await;
    let order = shop
        .order(buyer, &[(sku, 1)], Some(&held.user_coupon_id))
        .await
        .expect("ordered with the coupon");
    let order_id = Uuid::parse_str(&order.order_id).expect("a uuid");

    let cancelled = shop.cancel(buyer, &order.order_id).await;
    assert_eq!(cancelled.status, 6, "CANCELLED");
    assert_eq!(
        stored(shop.pool(), &held.user_coupon_id).await,
        ("AVAILABLE".to_owned(), None)
    );
    let history = vec![
        ("ISSUED".to_owned(), None),
        ("USED".to_owned(), Some(order_id)),
        ("RESTORED".to_owned(), Some(order_id)),
    ];
    assert_eq!(
        stored_history(shop.pool(), &held.user_coupon_id).await,
        history
    );
    let shown = shop.api.mine_one(buyer, &held.user_coupon_id).await;
    assert_eq!(shown.status, UserCouponStatus::Available as i32);
    assert_eq!(shown.order_id, "");
    assert_eq!(
        history_kinds(&shown),
        [
            pb::UserCouponEventKind::Issued,
            pb::UserCouponEventKind::Used,
            pb::UserCouponEventKind::Restored
        ]
    );
    assert_eq!(shown.history[2].order_id, order.order_id);

    // Restoring again (a redelivered cancellation, a replayed CancelOrder) changes nothing.
    let user_coupon_id = Uuid::parse_str(&held.user_coupon_id).expect("a uuid");
    let mut tx = shop.pool().begin().await.expect("transaction");
    let again = apply::restore_for_order(&mut tx, user_coupon_id, order_id, Utc::now())
        .await
        .expect("restore runs");
    tx.commit().await.expect("commit");
    assert!(!again, "the second restore is a no-op");
    let replay = shop.cancel(buyer, &order.order_id).await;
    assert_eq!(
        replay.version, cancelled.version,
        "the replayed cancel changed nothing"
    );
    assert_eq!(
        stored_history(shop.pool(), &held.user_coupon_id).await,
        history
    );

    // The coupon works again.
    let second = shop
        .order(buyer, &[(sku, 1)], Some(&held.user_coupon_id))
        .await
        .expect("the restored coupon applies to a new order");
    assert_eq!(second.discount.as_ref().map(|m| m.amount_minor), Some(200));
}

#[tokio::test]
async fn an_order_that_expires_unpaid_gives_its_coupon_back_expired_if_the_coupon_expired_too() {
    let (clock, manual) = Clock::manual(Utc::now());
    let shop = Shop::start_with_clock(clock, |_| {}).await;
    let (_, skus) = shop.harness.published("Bowl", &[(1_500, 10)]).await;
    let sku = skus[0].as_str();
    let buyer = Uuid::now_v7();
    let long = shop.api.create(fixed("Long", 100, None)).await;
    let short = shop
        .api
        .create(pb::Coupon {
            validity_days: 1,
            ..fixed("Short", 100, None)
        })
        .await;
    let keeps = shop.api.issue(&long.coupon_id, buyer).await;
    let lapses = shop.api.issue(&short.coupon_id, buyer).await;
    let kept = shop
        .order(buyer, &[(sku, 1)], Some(&keeps.user_coupon_id))
        .await
        .expect("ordered");
    let lapsed = shop
        .order(buyer, &[(sku, 1)], Some(&lapses.user_coupon_id))
        .await
        .expect("ordered");

    // Past both orders' payment deadline and the short coupon's expiry: the order sweeper
    // expires both orders and restores their coupons in the same transactions.
    manual.advance(Duration::days(2));
    let pool = shop.pool().clone();
    let ids = [keeps.user_coupon_id.clone(), lapses.user_coupon_id.clone()];
    eventually("both coupons are given back", || {
        let pool = pool.clone();
        let ids = ids.clone();
        async move {
            let mut done = true;
            for id in &ids {
                done &= stored(&pool, id).await.0 != "USED";
            }
            done
        }
    })
    .await;
    let kept_id = Uuid::parse_str(&kept.order_id).expect("a uuid");
    let lapsed_id = Uuid::parse_str(&lapsed.order_id).expect("a uuid");
    assert_eq!(
        stored(shop.pool(), &keeps.user_coupon_id).await,
        ("AVAILABLE".to_owned(), None)
    );
    assert_eq!(
        stored_history(shop.pool(), &keeps.user_coupon_id).await,
        [
            ("ISSUED".to_owned(), None),
            ("USED".to_owned(), Some(kept_id)),
            ("RESTORED".to_owned(), Some(kept_id)),
        ]
    );
    assert_eq!(
        stored(shop.pool(), &lapses.user_coupon_id).await,
        ("EXPIRED".to_owned(), None),
        "a coupon past its own expiry does not come back usable"
    );
    assert_eq!(
        stored_history(shop.pool(), &lapses.user_coupon_id).await,
        [
            ("ISSUED".to_owned(), None),
            ("USED".to_owned(), Some(lapsed_id)),
            ("RESTORED".to_owned(), Some(lapsed_id)),
            ("EXPIRED".to_owned(), None),
        ]
    );
    let statuses: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'EXPIRED'")
        .fetch_one(shop.pool())
        .await
        .expect("orders");
    assert_eq!(statuses, 2);
}
