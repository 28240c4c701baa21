//! The ranking's content: units per product over the sliding window ending at the clock's now,
//! PUBLISHED products only, ties by product id, paging, categories, and redelivered events
//! counted once.

use chrono::Duration;
use mercato_product::catalog::ranking::snapshot_key;
use mercato_proto::mercato::product::v1::ListBestSellersRequest;
use redis::AsyncCommands as _;
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn the_top_five_of_the_last_three_days_count_each_order_once() {
    let h = Harness::start(|_| {}).await;
    let now = start_time();
    let mut ids = Vec::new();
    let mut skus = Vec::new();
    for i in 0..8 {
        let category = if i == 3 { "garden" } else { "kitchen" };
        let (product, sku) = h
            .product(&format!("Product {i}"), category, 100 * (i + 1))
            .await;
        ids.push(product);
        skus.push(sku);
    }
    let line = |i: usize, quantity: i64| (ids[i].as_str(), skus[i].as_str(), quantity);

    let first = order_paid(now - Duration::hours(1), &[line(0, 10)]);
    let events = vec![
        first.clone(),
        order_paid(now - Duration::days(2), &[line(1, 8)]),
        order_paid(now - Duration::days(4), &[line(1, 100)]),
        order_paid(now - Duration::hours(71), &[line(2, 8)]),
        order_paid(now - Duration::days(1), &[line(3, 5)]),
        order_paid(now - Duration::hours(10), &[line(4, 2), line(5, 2)]),
        order_paid(now - Duration::hours(12), &[line(4, 1)]),
        order_paid(now - Duration::hours(73), &[line(6, 50)]),
    ];
    for event in &events {
        h.publish(event).await;
    }
    // The same event delivered again (inbox), and the same order in a new event (unique key).
    h.publish(&first).await;
    let mut replayed = first.clone();
    replayed.event_id = Uuid::now_v7().to_string();
    h.publish(&replayed).await;
    // Published last: with prefetch 1 the duplicates are settled once this one is recorded.
    h.publish(&order_paid(now - Duration::hours(1), &[line(7, 99)]))
        .await;
    h.await_sales_rows(10).await;
    h.hide(&ids[7]).await;

    let mut ranking = h.ranking.clone();
    let top = ranking
        .list_best_sellers(ListBestSellersRequest::default())
        .await
        .expect("best sellers")
        .into_inner();
    let (tie_first, tie_second) = if ids[1] < ids[2] { (1, 2) } else { (2, 1) };
    assert_eq!(
        units(&top),
        vec![
            (ids[0].clone(), 10),
            (ids[tie_first].clone(), 8),
            (ids[tie_second].clone(), 8),
            (ids[3].clone(), 5),
            (ids[4].clone(), 3),
        ],
        "top five of the window; the redelivered order counts once; ties by id"
    );
    let ranks: Vec<i32> = top.best_sellers.iter().map(|b| b.rank).collect();
    assert_eq!(ranks, vec![1, 2, 3, 4, 5]);
    let best = top.best_sellers.first().expect("a best seller");
    assert_eq!(best.product_name, "Product 0");
    assert_eq!(best.min_price.as_ref().map(|m| m.amount_minor), Some(100));
    assert_eq!(
        top.window_start_time.map(|t| t.seconds),
        Some((now - Duration::days(3)).timestamp())
    );
    assert_eq!(
        top.window_end_time.map(|t| t.seconds),
        Some(now.timestamp())
    );

    let next = ranking
        .list_best_sellers(ListBestSellersRequest {
            page_token: top.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(units(&next), vec![(ids[5].clone(), 2)]);
    assert_eq!(next.best_sellers.first().map(|b| b.rank), Some(6));
    assert!(next.next_page_token.is_empty());

    let garden = ranking
        .list_best_sellers(ListBestSellersRequest {
            category: "garden".to_owned(),
            ..Default::default()
        })
        .await
        .expect("garden")
        .into_inner();
    assert_eq!(units(&garden), vec![(ids[3].clone(), 5)]);
    let err = ranking
        .list_best_sellers(ListBestSellersRequest {
            page_token: top.next_page_token,
            category: "garden".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("a token of another category");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = ranking
        .list_best_sellers(ListBestSellersRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("negative page size");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Two days later (cache dropped as if expired) the window has slid past the old sales.
    h.clock.advance(Duration::days(2));
    let mut redis = h.service.context.redis.clone();
    let _: () = redis
        .del(snapshot_key(&h.service.context, None))
        .await
        .expect("drop the cached ranking");
    let later = ranking
        .list_best_sellers(ListBestSellersRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .expect("best sellers")
        .into_inner();
    assert_eq!(
        units(&later),
        vec![
            (ids[0].clone(), 10),
            (ids[3].clone(), 5),
            (ids[4].clone(), 3),
            (ids[5].clone(), 2),
        ]
    );
}
