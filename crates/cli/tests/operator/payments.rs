//! `payments reconcile`: an unpaid sandbox payment is examined and stays pending; a threshold
//! out of range is refused naming the field.

use mercato_cli::payments::{self, ReconcileArgs};
use mercato_e2e::stack::{Stack, StackOptions, seed_sku};
use mercato_proto::mercato::common::v1 as common;
use std::time::Duration;

use crate::support::{endpoints, run_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_examines_unsettled_payments_and_reports_counts() {
    let stack = Stack::start(StackOptions::default()).await;
    let endpoints = endpoints(&stack);
    let operator = mercato_cli::Operator::new(endpoints.clone());
    let mut shop = stack.shop().await;
    let sku = seed_sku(&stack.products.grpc_uri(), 5).await;
    let shopper = shop.sign_up().await;
    let (placed, _) = shop
        .checkout(&shopper, &sku, 1, common::PaymentMethod::Sandbox)
        .await;
    // The payment exists (attached to the order) but nobody pressed Pay.
    shop.payment(&shopper, &placed.order_id).await;

    let report = run_json(&endpoints, &["payments", "reconcile", "--older-than", "0s"]).await;
    let count = |key: &str| {
        report[key]
            .as_i64()
            .unwrap_or_else(|| panic!("{key} in {report}"))
    };
    assert!(count("examined") >= 1, "{report}");
    assert!(
        count("pending") >= 1,
        "the unpaid sandbox payment stays pending: {report}"
    );
    assert_eq!(
        count("examined"),
        count("succeeded") + count("failed") + count("pending")
    );

    let refused = payments::reconcile(
        &operator,
        &ReconcileArgs {
            older_than: Some(Duration::from_secs(31 * 24 * 3600)),
            limit: 0,
        },
    )
    .await
    .expect_err("more than 30 days is refused");
    assert_eq!(refused.rpc().expect("rpc refusal").fields(), ["older_than"]);

    stack.stop().await;
}
