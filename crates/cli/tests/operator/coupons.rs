//! `coupon create` and `campaign create`: bad values are refused naming the field the server
//! checked, with nothing created; good ones are created as given.

use mercato_cli::error::EXIT_FAILED;
use mercato_cli::{Progress, coupons, execute};
use mercato_e2e::stack::{Stack, StackOptions};
use tonic::Code;

use crate::support::{command_line, endpoints, run_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_coupon_is_refused_naming_the_field_and_nothing_is_created() {
    let stack = Stack::start(StackOptions::default()).await;
    let endpoints = endpoints(&stack);
    let operator = mercato_cli::Operator::new(endpoints.clone());

    let refused = execute(
        command_line(
            &endpoints,
            &[
                "coupon",
                "create",
                "--name",
                "Nothing off",
                "--kind",
                "fixed",
                "--amount-off",
                "0",
                "--validity-days",
                "30",
            ],
        ),
        &mut Progress::quiet(),
    )
    .await
    .expect_err("a zero discount is refused");
    assert_eq!(refused.exit_code(), EXIT_FAILED);
    let rpc = refused.rpc().expect("the server refused");
    assert_eq!(rpc.code, Code::InvalidArgument);
    assert_eq!(rpc.reason.as_deref(), Some("VALIDATION_FAILED"));
    assert_eq!(rpc.fields(), ["coupon.fixed_discount.amount_minor"]);
    let line = refused.to_string();
    assert!(
        line.starts_with("CouponService.CreateCoupon refused: INVALID_ARGUMENT VALIDATION_FAILED:")
            && line.contains("coupon.fixed_discount.amount_minor")
            && !line.contains('\n'),
        "{line}"
    );

    // A second mistake: a percentage on a fixed coupon, in another currency.
    let refused = execute(
        command_line(
            &endpoints,
            &[
                "coupon",
                "create",
                "--name",
                "Mixed up",
                "--kind",
                "fixed",
                "--amount-off",
                "100",
                "--percent-off",
                "10",
                "--validity-days",
                "30",
                "--currency",
                "USD",
            ],
        ),
        &mut Progress::quiet(),
    )
    .await
    .expect_err("refused");
    let fields = refused.rpc().expect("rpc refusal").fields();
    assert!(fields.contains(&"coupon.percent_off"), "{fields:?}");
    assert!(
        fields.contains(&"coupon.fixed_discount.currency_code"),
        "{fields:?}"
    );
    assert!(
        coupons::list_coupons(&operator)
            .await
            .expect("coupons list")
            .is_empty(),
        "nothing was created"
    );

    let created = run_json(
        &endpoints,
        &[
            "coupon",
            "create",
            "--name",
            "300 off",
            "--kind",
            "fixed",
            "--amount-off",
            "300",
            "--minimum-order",
            "1000",
            "--validity-days",
            "14",
        ],
    )
    .await;
    assert_eq!(created["kind"], "FIXED");
    assert_eq!(created["fixed_discount"]["amount_minor"], 300);
    assert_eq!(created["fixed_discount"]["currency_code"], "JPY");
    assert_eq!(created["minimum_order_amount"]["amount_minor"], 1000);
    assert_eq!(created["validity_days"], 14);
    let coupon_id = created["coupon_id"].as_str().expect("an id").to_owned();
    let listed = coupons::list_coupons(&operator)
        .await
        .expect("coupons list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].coupon_id, coupon_id);

    // Campaigns: a zero quantity is refused by field, a good one is created for the coupon.
    let refused = execute(
        command_line(
            &endpoints,
            &[
                "campaign",
                "create",
                "--coupon-id",
                &coupon_id,
                "--name",
                "Rush",
                "--quantity",
                "0",
                "--duration",
                "24h",
            ],
        ),
        &mut Progress::quiet(),
    )
    .await
    .expect_err("a zero quantity is refused");
    assert_eq!(
        refused.rpc().expect("rpc refusal").fields(),
        ["campaign.total_quantity"]
    );
    let campaign = run_json(
        &endpoints,
        &[
            "campaign",
            "create",
            "--coupon-id",
            &coupon_id,
            "--name",
            "Rush",
            "--quantity",
            "5",
            "--duration",
            "24h",
        ],
    )
    .await;
    assert_eq!(campaign["coupon_id"], coupon_id.as_str());
    assert_eq!(campaign["total_quantity"], 5);
    assert_eq!(campaign["remaining_quantity"], 5);
    let campaigns = coupons::list_campaigns(&operator)
        .await
        .expect("campaigns list");
    assert_eq!(campaigns.len(), 1, "only the good campaign exists");

    stack.stop().await;
}
