//! Invalid ReserveStock and AdjustStock requests are refused naming the field and write nothing.

use mercato_platform::principal::Role;
use mercato_product::clock::Clock;
use mercato_product::testing::TestEnv;
use mercato_proto::mercato::product::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

fn line(sku: &str, quantity: i64) -> pb::ReserveStockLine {
    pb::ReserveStockLine {
        sku_id: sku.to_owned(),
        quantity,
    }
}

#[tokio::test]
async fn bad_reservations_name_the_field_and_write_nothing() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[100]).await;
    let sku = product.skus[0].to_string();
    let order = Uuid::now_v7().to_string();
    let mut client = client(&service);
    let before = counts(pool).await;

    let request = |order_id: &str, lines: Vec<pb::ReserveStockLine>, ttl_seconds: Option<i64>| {
        pb::ReserveStockRequest {
            order_id: order_id.to_owned(),
            lines,
            ttl: ttl_seconds.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
        }
    };
    let cases: Vec<(&str, pb::ReserveStockRequest, Vec<&str>)> = vec![
        (
            "zero quantity",
            request(&order, vec![line(&sku, 0)], None),
            vec!["lines[0].quantity"],
        ),
        (
            "negative quantity in the fourth line",
            request(
                &order,
                vec![line(&sku, 1), line(&sku, 1), line(&sku, 1), line(&sku, -3)],
                None,
            ),
            vec!["lines[3].quantity"],
        ),
        (
            "quantity above the line limit",
            request(&order, vec![line(&sku, 10_000)], None),
            vec!["lines[0].quantity"],
        ),
        (
            "merged lines overflow",
            request(&order, vec![line(&sku, 9_999), line(&sku, i64::MAX)], None),
            vec!["lines[1].quantity"],
        ),
        (
            "merged lines above the limit",
            request(&order, vec![line(&sku, 5_000), line(&sku, 5_000)], None),
            vec!["lines[1].quantity"],
        ),
        ("no lines", request(&order, vec![], None), vec!["lines"]),
        (
            "a thousand lines",
            request(&order, (0..1_000).map(|_| line(&sku, 1)).collect(), None),
            vec!["lines"],
        ),
        (
            "ttl too short",
            request(&order, vec![line(&sku, 1)], Some(59)),
            vec!["ttl"],
        ),
        (
            "ttl too long",
            request(&order, vec![line(&sku, 1)], Some(3_601)),
            vec!["ttl"],
        ),
        (
            "negative ttl",
            request(&order, vec![line(&sku, 1)], Some(-60)),
            vec!["ttl"],
        ),
        (
            "bad order id",
            request("order-1", vec![line(&sku, 1)], None),
            vec!["order_id"],
        ),
        (
            "missing order id",
            request("", vec![line(&sku, 1)], None),
            vec!["order_id"],
        ),
        (
            "bad sku id",
            request(&order, vec![line(&sku, 1), line("not-a-uuid", 1)], None),
            vec!["lines[1].sku_id"],
        ),
    ];
    for (what, message, fields) in cases {
        let status = client
            .reserve_stock(internal(message))
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(reason(&status), "VALIDATION_FAILED", "{what}");
        assert_eq!(bad_fields(&status), fields, "{what}");
    }
    assert_eq!(counts(pool).await, before);
    assert_eq!(stock(&mut client, product.skus[0]).await.reserved, 0);
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test]
async fn bad_adjustments_name_the_field_and_write_nothing() {
    let env = TestEnv::new().await.expect("test resources");
    let service = start(&env, Clock::system()).await;
    let pool = env.database().pool();
    let product = published(pool, &[5]).await;
    let sku = product.skus[0].to_string();
    let mut client = client(&service);
    let before = counts(pool).await;

    let request = |sku_id: &str, on_hand: i64, reason: &str, key: &str| pb::AdjustStockRequest {
        sku_id: sku_id.to_owned(),
        on_hand,
        expected_version: 1,
        reason: reason.to_owned(),
        idempotency_key: key.to_owned(),
    };
    let long = "x".repeat(201);
    let cases = vec![
        (
            "negative on hand",
            request(&sku, -1, "count", "k"),
            vec!["on_hand"],
        ),
        (
            "huge on hand",
            request(&sku, 1_000_000_001, "count", "k"),
            vec!["on_hand"],
        ),
        ("no reason", request(&sku, 1, " ", "k"), vec!["reason"]),
        ("long reason", request(&sku, 1, &long, "k"), vec!["reason"]),
        (
            "no key",
            request(&sku, 1, "count", ""),
            vec!["idempotency_key"],
        ),
        ("bad sku", request("sku", 1, "count", "k"), vec!["sku_id"]),
    ];
    for (what, message, fields) in cases {
        let status = client
            .adjust_stock(as_user(message, product.seller_id, &[Role::Seller]))
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(bad_fields(&status), fields, "{what}");
    }
    assert_eq!(counts(pool).await, before);
    service.stop().await.expect("the service stops cleanly");
}
