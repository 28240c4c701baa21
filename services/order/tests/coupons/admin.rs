//! The admin RPCs: ROLE_ADMIN checked before anything is read or written, definitions and
//! campaigns validated naming every bad field with nothing written, idempotent creates scoped to
//! the caller, and the coupon listing.

use chrono::{Duration, Utc};
use mercato_platform::principal::Role;
use mercato_proto::mercato::common::v1::{CouponKind, Money};
use mercato_proto::mercato::order::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    Coupons, as_buyer, as_user, campaign, count, fixed, metadata, percent, reason, refusal,
    violated_fields, yen,
};

async fn written(coupons: &Coupons) -> (i64, i64, i64) {
    (
        count(coupons.pool(), "SELECT count(*) FROM coupons").await,
        count(coupons.pool(), "SELECT count(*) FROM coupon_campaigns").await,
        count(coupons.pool(), "SELECT count(*) FROM user_coupons").await,
    )
}

#[tokio::test]
async fn non_admins_cannot_manage_coupons_and_nothing_is_written() {
    let coupons = Coupons::start().await;
    let existing = coupons.api.create(fixed("Existing", 100, None)).await;
    let before = written(&coupons).await;
    let mut client = coupons.api.client.clone();
    let buyer = Uuid::now_v7();

    // Even invalid bodies are refused for the role first: nothing about the request is revealed.
    let checks: Vec<(&str, tonic::Status)> = vec![
        (
            "CreateCoupon by a buyer",
            client
                .create_coupon(as_buyer(
                    pb::CreateCouponRequest {
                        coupon: Some(fixed("Mine", 100, None)),
                        idempotency_key: "k".to_owned(),
                    },
                    buyer,
                ))
                .await
                .expect_err("refused"),
        ),
        (
            "CreateCoupon with an invalid body by a seller",
            client
                .create_coupon(as_user(
                    pb::CreateCouponRequest::default(),
                    Uuid::now_v7(),
                    &[Role::Buyer, Role::Seller],
                ))
                .await
                .expect_err("refused"),
        ),
        (
            "GetCoupon by a buyer",
            client
                .get_coupon(as_buyer(
                    pb::GetCouponRequest {
                        coupon_id: existing.coupon_id.clone(),
                    },
                    buyer,
                ))
                .await
                .expect_err("refused"),
        ),
        (
            "ListCoupons by a buyer",
            client
                .list_coupons(as_buyer(pb::ListCouponsRequest::default(), buyer))
                .await
                .expect_err("refused"),
        ),
        (
            "CreateCampaign by a buyer",
            client
                .create_campaign(as_buyer(
                    pb::CreateCampaignRequest {
                        campaign: Some(campaign(
                            &existing.coupon_id,
                            Utc::now(),
                            Utc::now() + Duration::hours(1),
                            10,
                        )),
                        idempotency_key: "k".to_owned(),
                    },
                    buyer,
                ))
                .await
                .expect_err("refused"),
        ),
        (
            "IssueCoupon to oneself by a buyer",
            client
                .issue_coupon(as_buyer(
                    pb::IssueCouponRequest {
                        coupon_id: existing.coupon_id.clone(),
                        user_id: buyer.to_string(),
                        idempotency_key: "k".to_owned(),
                    },
                    buyer,
                ))
                .await
                .expect_err("refused"),
        ),
        (
            "ListCampaigns with ended ones by a buyer",
            client
                .list_campaigns(as_buyer(
                    pb::ListCampaignsRequest {
                        include_ended: true,
                        ..Default::default()
                    },
                    buyer,
                ))
                .await
                .expect_err("refused"),
        ),
    ];
    for (what, status) in &checks {
        assert_eq!(
            refusal(status),
            (Code::PermissionDenied, "ROLE_REQUIRED".to_owned()),
            "{what}: {status:?}"
        );
    }
    let anonymous = client
        .create_coupon(pb::CreateCouponRequest {
            coupon: Some(fixed("Anon", 100, None)),
            idempotency_key: "k".to_owned(),
        })
        .await
        .expect_err("refused");
    assert_eq!(
        refusal(&anonymous),
        (Code::Unauthenticated, "TOKEN_MISSING".to_owned())
    );
    let anonymous = client
        .list_coupons(pb::ListCouponsRequest::default())
        .await
        .expect_err("refused");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(
        written(&coupons).await,
        before,
        "no refused call wrote anything"
    );
}

fn money(currency: &str, amount: i64) -> Option<Money> {
    Some(Money {
        currency_code: currency.to_owned(),
        amount_minor: amount,
    })
}

#[tokio::test]
async fn bad_definitions_are_refused_naming_the_field_and_nothing_is_written() {
    let coupons = Coupons::start().await;
    let cases: Vec<(&str, pb::Coupon, &[&str])> = vec![
        (
            "percent on a FIXED coupon",
            pb::Coupon {
                percent_off: 10,
                ..fixed("F", 500, None)
            },
            &["coupon.percent_off"],
        ),
        (
            "a cap on a FIXED coupon",
            pb::Coupon {
                max_discount: yen(100),
                ..fixed("F", 500, None)
            },
            &["coupon.max_discount"],
        ),
        (
            "a fixed amount on a PERCENT coupon",
            pb::Coupon {
                fixed_discount: yen(100),
                ..percent("P", 10, None)
            },
            &["coupon.fixed_discount"],
        ),
        ("percent 0", percent("P", 0, None), &["coupon.percent_off"]),
        (
            "percent 101",
            percent("P", 101, None),
            &["coupon.percent_off"],
        ),
        (
            "validity 0",
            pb::Coupon {
                validity_days: 0,
                ..fixed("F", 500, None)
            },
            &["coupon.validity_days"],
        ),
        (
            "validity 3651",
            pb::Coupon {
                validity_days: 3_651,
                ..fixed("F", 500, None)
            },
            &["coupon.validity_days"],
        ),
        (
            "a zero fixed amount",
            fixed("F", 0, None),
            &["coupon.fixed_discount.amount_minor"],
        ),
        (
            "no fixed amount",
            pb::Coupon {
                fixed_discount: None,
                ..fixed("F", 500, None)
            },
            &["coupon.fixed_discount"],
        ),
        (
            "a zero cap",
            percent("P", 10, Some(0)),
            &["coupon.max_discount.amount_minor"],
        ),
        (
            "a negative minimum",
            fixed("F", 500, Some(-1)),
            &["coupon.minimum_order_amount.amount_minor"],
        ),
        (
            "no kind and no name",
            pb::Coupon {
                kind: CouponKind::Unspecified as i32,
                name: String::new(),
                ..fixed("F", 500, None)
            },
            &["coupon.name", "coupon.kind"],
        ),
        (
            "a name of 101 characters",
            fixed(&"n".repeat(101), 500, None),
            &["coupon.name"],
        ),
    ];
    let mut client = coupons.api.client.clone();
    for (what, coupon, fields) in cases {
        let status = client
            .create_coupon(coupons.api.as_admin(pb::CreateCouponRequest {
                coupon: Some(coupon),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .expect_err(what);
        assert_eq!(
            refusal(&status),
            (Code::InvalidArgument, "VALIDATION_FAILED".to_owned()),
            "{what}"
        );
        assert_eq!(violated_fields(&status), fields, "{what}");
    }

    let foreign = client
        .create_coupon(coupons.api.as_admin(pb::CreateCouponRequest {
            coupon: Some(pb::Coupon {
                fixed_discount: money("USD", 500),
                ..fixed("F", 500, None)
            }),
            idempotency_key: Uuid::new_v4().to_string(),
        }))
        .await
        .expect_err("a foreign currency");
    assert_eq!(
        refusal(&foreign),
        (Code::InvalidArgument, "CURRENCY_MISMATCH".to_owned())
    );
    assert_eq!(
        metadata(&foreign, "expected_currency").as_deref(),
        Some("JPY")
    );
    assert_eq!(
        metadata(&foreign, "field").as_deref(),
        Some("coupon.fixed_discount.currency_code")
    );

    let unkeyed = client
        .create_coupon(coupons.api.as_admin(pb::CreateCouponRequest {
            coupon: Some(fixed("F", 500, None)),
            idempotency_key: String::new(),
        }))
        .await
        .expect_err("a key is required");
    assert_eq!(violated_fields(&unkeyed), ["idempotency_key"]);
    let empty = client
        .create_coupon(coupons.api.as_admin(pb::CreateCouponRequest {
            coupon: None,
            idempotency_key: "k".to_owned(),
        }))
        .await
        .expect_err("a coupon is required");
    assert_eq!(violated_fields(&empty), ["coupon"]);

    assert_eq!(written(&coupons).await, (0, 0, 0));
}

#[tokio::test]
async fn bad_campaigns_are_refused_naming_the_field_and_nothing_is_written() {
    let coupons = Coupons::start().await;
    let coupon = coupons.api.create(fixed("F", 500, None)).await;
    let now = Utc::now();
    let hour = Duration::hours(1);
    let id = coupon.coupon_id.as_str();
    let cases: Vec<(&str, pb::CouponCampaign, &[&str])> = vec![
        (
            "an end before the start",
            campaign(id, now, now - hour, 10),
            &["campaign.end_time"],
        ),
        (
            "an end equal to the start",
            campaign(id, now, now, 10),
            &["campaign.end_time"],
        ),
        (
            "quantity 0",
            campaign(id, now, now + hour, 0),
            &["campaign.total_quantity"],
        ),
        (
            "quantity above ten million",
            campaign(id, now, now + hour, 10_000_001),
            &["campaign.total_quantity"],
        ),
        (
            "no coupon and no times",
            pb::CouponCampaign {
                coupon_id: String::new(),
                start_time: None,
                end_time: None,
                ..campaign(id, now, now + hour, 10)
            },
            &[
                "campaign.coupon_id",
                "campaign.start_time",
                "campaign.end_time",
            ],
        ),
        (
            "a blank name",
            pb::CouponCampaign {
                name: "  ".to_owned(),
                ..campaign(id, now, now + hour, 10)
            },
            &["campaign.name"],
        ),
    ];
    let mut client = coupons.api.client.clone();
    for (what, campaign, fields) in cases {
        let status = client
            .create_campaign(coupons.api.as_admin(pb::CreateCampaignRequest {
                campaign: Some(campaign),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .expect_err(what);
        assert_eq!(
            refusal(&status),
            (Code::InvalidArgument, "VALIDATION_FAILED".to_owned()),
            "{what}"
        );
        assert_eq!(violated_fields(&status), fields, "{what}");
    }
    let key = Uuid::new_v4().to_string();
    let unknown = client
        .create_campaign(coupons.api.as_admin(pb::CreateCampaignRequest {
            campaign: Some(campaign(&Uuid::now_v7().to_string(), now, now + hour, 10)),
            idempotency_key: key.clone(),
        }))
        .await
        .expect_err("no such coupon");
    assert_eq!(
        refusal(&unknown),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );
    assert_eq!(written(&coupons).await, (1, 0, 0));
    // The refusal kept no key: the same key works for a valid campaign.
    client
        .create_campaign(coupons.api.as_admin(pb::CreateCampaignRequest {
            campaign: Some(campaign(id, now, now + hour, 10)),
            idempotency_key: key,
        }))
        .await
        .expect("the key was not consumed by the refusal");
    assert_eq!(written(&coupons).await, (1, 1, 0));
}

#[tokio::test]
async fn create_coupon_replays_the_first_coupon_and_refuses_a_reused_key() {
    let coupons = Coupons::start().await;
    let mut client = coupons.api.client.clone();
    let request = |coupon: pb::Coupon, key: &str| pb::CreateCouponRequest {
        coupon: Some(coupon),
        idempotency_key: key.to_owned(),
    };
    let first = client
        .create_coupon(
            coupons
                .api
                .as_admin(request(fixed("Once", 500, None), "key-1")),
        )
        .await
        .expect("created")
        .into_inner()
        .coupon
        .expect("a coupon");
    // Output-only fields do not make the request different.
    let with_output = pb::Coupon {
        coupon_id: Uuid::now_v7().to_string(),
        ..fixed("Once", 500, None)
    };
    let replay = client
        .create_coupon(coupons.api.as_admin(request(with_output, "key-1")))
        .await
        .expect("replayed")
        .into_inner()
        .coupon
        .expect("a coupon");
    assert_eq!(replay, first, "the replay returns the coupon created first");

    let reused = client
        .create_coupon(
            coupons
                .api
                .as_admin(request(fixed("Other", 500, None), "key-1")),
        )
        .await
        .expect_err("another body under the same key");
    assert_eq!(
        refusal(&reused),
        (
            Code::FailedPrecondition,
            "IDEMPOTENCY_KEY_REUSED".to_owned()
        )
    );
    assert_eq!(written(&coupons).await, (1, 0, 0));

    // Keys are scoped to the caller.
    let other_admin = as_user(
        request(fixed("Other", 500, None), "key-1"),
        Uuid::now_v7(),
        &[Role::Admin],
    );
    let theirs = client
        .create_coupon(other_admin)
        .await
        .expect("another admin's key")
        .into_inner()
        .coupon
        .expect("a coupon");
    assert_ne!(theirs.coupon_id, first.coupon_id);

    // Concurrent duplicates create one coupon.
    let duplicates = (0..10).map(|_| {
        let mut client = client.clone();
        let message = coupons
            .api
            .as_admin(request(percent("Racing", 10, Some(1_000)), "key-2"));
        tokio::spawn(async move { client.create_coupon(message).await })
    });
    let ids: std::collections::HashSet<String> = futures::future::join_all(duplicates)
        .await
        .into_iter()
        .map(|r| {
            r.expect("task ran")
                .expect("created or replayed")
                .into_inner()
                .coupon
                .expect("a coupon")
                .coupon_id
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(written(&coupons).await, (3, 0, 0));
}

#[tokio::test]
async fn campaigns_and_direct_issues_replay_by_key() {
    let coupons = Coupons::start().await;
    let coupon = coupons.api.create(percent("Ten", 10, None)).await;
    let mut client = coupons.api.client.clone();
    let now = Utc::now();
    let create = |key: &str, total| {
        coupons.api.as_admin(pb::CreateCampaignRequest {
            campaign: Some(campaign(
                &coupon.coupon_id,
                now,
                now + Duration::hours(1),
                total,
            )),
            idempotency_key: key.to_owned(),
        })
    };
    let first = client
        .create_campaign(create("c", 10))
        .await
        .expect("created")
        .into_inner()
        .campaign
        .expect("a campaign");
    assert_eq!(
        (
            first.total_quantity,
            first.issued_quantity,
            first.remaining_quantity
        ),
        (10, 0, 10)
    );
    assert_eq!(first.coupon.as_ref(), Some(&coupon));
    let replay = client
        .create_campaign(create("c", 10))
        .await
        .expect("replayed")
        .into_inner()
        .campaign
        .expect("a campaign");
    assert_eq!(replay.campaign_id, first.campaign_id);
    let reused = client
        .create_campaign(create("c", 11))
        .await
        .expect_err("a different body");
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");

    let user = Uuid::now_v7();
    let issue = |user: Uuid, key: &str| {
        coupons.api.as_admin(pb::IssueCouponRequest {
            coupon_id: coupon.coupon_id.clone(),
            user_id: user.to_string(),
            idempotency_key: key.to_owned(),
        })
    };
    let issued = client
        .issue_coupon(issue(user, "i"))
        .await
        .expect("issued")
        .into_inner()
        .user_coupon
        .expect("a user coupon");
    assert_eq!(issued.user_id, user.to_string());
    assert_eq!(issued.campaign_id, "", "issued outside any campaign");
    assert_eq!(issued.coupon.as_ref(), Some(&coupon));
    assert_eq!(issued.history.len(), 1);
    let replay = client
        .issue_coupon(issue(user, "i"))
        .await
        .expect("replayed")
        .into_inner()
        .user_coupon
        .expect("a user coupon");
    assert_eq!(replay.user_coupon_id, issued.user_coupon_id);
    let reused = client
        .issue_coupon(issue(Uuid::now_v7(), "i"))
        .await
        .expect_err("another user under the same key");
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");
    // A second direct issue (another key) gives the same user a second coupon: the one-per-user
    // rule belongs to campaigns.
    client
        .issue_coupon(issue(user, "j"))
        .await
        .expect("issued again");
    let unknown = client
        .issue_coupon(coupons.api.as_admin(pb::IssueCouponRequest {
            coupon_id: Uuid::now_v7().to_string(),
            user_id: user.to_string(),
            idempotency_key: "k".to_owned(),
        }))
        .await
        .expect_err("no such coupon");
    assert_eq!(unknown.code(), Code::NotFound);
    let invalid = client
        .issue_coupon(coupons.api.as_admin(pb::IssueCouponRequest {
            coupon_id: "x".to_owned(),
            user_id: String::new(),
            idempotency_key: String::new(),
        }))
        .await
        .expect_err("invalid");
    assert_eq!(
        violated_fields(&invalid),
        ["coupon_id", "user_id", "idempotency_key"]
    );
    assert_eq!(written(&coupons).await, (1, 1, 2));
}

#[tokio::test]
async fn coupons_are_read_and_listed_newest_first_by_admins() {
    let coupons = Coupons::start().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            coupons
                .api
                .create(fixed(&format!("C{i}"), 100 + i, None))
                .await,
        );
    }
    let mut client = coupons.api.client.clone();
    let got = client
        .get_coupon(coupons.api.as_admin(pb::GetCouponRequest {
            coupon_id: created[2].coupon_id.clone(),
        }))
        .await
        .expect("read")
        .into_inner()
        .coupon
        .expect("a coupon");
    assert_eq!(got, created[2]);
    let missing = client
        .get_coupon(coupons.api.as_admin(pb::GetCouponRequest {
            coupon_id: Uuid::now_v7().to_string(),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(
        refusal(&missing),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );

    let mut listed = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_coupons(coupons.api.as_admin(pb::ListCouponsRequest {
                page_size: 2,
                page_token: page_token.clone(),
            }))
            .await
            .expect("listed")
            .into_inner();
        pages += 1;
        listed.extend(page.coupons);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    created.reverse();
    assert_eq!(listed, created, "newest first, each once");
    assert_eq!(pages, 3);
    let bad = client
        .list_coupons(coupons.api.as_admin(pb::ListCouponsRequest {
            page_size: 2,
            page_token: "garbage".to_owned(),
        }))
        .await
        .expect_err("bad token");
    assert_eq!(
        refusal(&bad),
        (Code::InvalidArgument, "INVALID_PAGE_TOKEN".to_owned())
    );
}
