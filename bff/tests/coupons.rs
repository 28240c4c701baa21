//! Coupons through the BFF, against the real user, product and order services: an admin
//! creates a coupon and a campaign through the admin API, anonymous shoppers browse campaigns,
//! a shopper claims (a second claim is `ALREADY_EXISTS` with the held coupon's id), checks out
//! with the coupon and sees it USED; sold-out and not-yet-open campaigns, direct issue by an
//! admin, and the refusals (no token, no role, malformed ids) that write nothing. The order
//! service's details reach a gRPC-Web browser too; refused calls never reach the order service.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use support::{
    FakeUsers, JwksServer, RedisPrefix, SKU_PRICE, Services, TestKey, claims, counting_listener,
    reason, seed_sku, settings, shipping_address, sign_up, sign_up_admin, violated_fields,
    with_token,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

type Admin = bff::admin_service_client::AdminServiceClient<Channel>;
type Coupons = bff::coupon_service_client::CouponServiceClient<Channel>;

/// The discount of the coupon every test creates, in JPY.
const DISCOUNT: i64 = 300;

fn jpy(amount_minor: i64) -> Option<common::Money> {
    Some(common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    })
}

fn at(offset: Duration, later: bool) -> Option<prost_types::Timestamp> {
    let now = std::time::SystemTime::now();
    let time = if later { now + offset } else { now - offset };
    Some(prost_types::Timestamp::from(time))
}

/// A FIXED coupon of [`DISCOUNT`] off, usable for 30 days.
fn fixed_coupon(name: &str) -> bff::Coupon {
    bff::Coupon {
        name: name.to_owned(),
        description: "A test coupon".to_owned(),
        kind: common::CouponKind::Fixed.into(),
        fixed_discount: jpy(DISCOUNT),
        validity_days: 30,
        ..bff::Coupon::default()
    }
}

/// A campaign of `total` coupons of `coupon_id`, open from a minute ago for an hour (or, when
/// `upcoming`, from an hour on).
fn campaign(coupon_id: &str, total: i64, upcoming: bool) -> bff::CouponCampaign {
    let (start_time, end_time) = if upcoming {
        (
            at(Duration::from_secs(3_600), true),
            at(Duration::from_secs(7_200), true),
        )
    } else {
        (
            at(Duration::from_secs(60), false),
            at(Duration::from_secs(3_600), true),
        )
    };
    bff::CouponCampaign {
        coupon_id: coupon_id.to_owned(),
        name: "Spring sale".to_owned(),
        start_time,
        end_time,
        total_quantity: total,
        ..bff::CouponCampaign::default()
    }
}

async fn create_coupon(admin: &mut Admin, token: &str, key: &str) -> bff::Coupon {
    admin
        .create_coupon(with_token(
            bff::CreateCouponRequest {
                coupon: Some(fixed_coupon("300 yen off")),
                idempotency_key: key.to_owned(),
            },
            token,
        ))
        .await
        .expect("coupon created")
        .into_inner()
        .coupon
        .expect("coupon")
}

async fn create_campaign(
    admin: &mut Admin,
    token: &str,
    coupon_id: &str,
    total: i64,
    upcoming: bool,
) -> bff::CouponCampaign {
    admin
        .create_campaign(with_token(
            bff::CreateCampaignRequest {
                campaign: Some(campaign(coupon_id, total, upcoming)),
                idempotency_key: Uuid::new_v4().to_string(),
            },
            token,
        ))
        .await
        .expect("campaign created")
        .into_inner()
        .campaign
        .expect("campaign")
}

async fn claim(
    coupons: &mut Coupons,
    token: &str,
    campaign_id: &str,
) -> Result<bff::UserCoupon, Status> {
    coupons
        .claim_coupon(with_token(
            bff::ClaimCouponRequest {
                campaign_id: campaign_id.to_owned(),
            },
            token,
        ))
        .await
        .map(|response| response.into_inner().user_coupon.expect("user coupon"))
}

async fn my_coupons(coupons: &mut Coupons, token: &str) -> Vec<bff::UserCoupon> {
    coupons
        .list_my_coupons(with_token(bff::ListMyCouponsRequest::default(), token))
        .await
        .expect("my coupons")
        .into_inner()
        .user_coupons
}

async fn all_coupons(admin: &mut Admin, token: &str) -> Vec<bff::Coupon> {
    admin
        .list_coupons(with_token(bff::ListCouponsRequest::default(), token))
        .await
        .expect("coupons listed")
        .into_inner()
        .coupons
}

async fn live_campaigns(coupons: &mut Coupons) -> Vec<bff::CouponCampaign> {
    coupons
        .list_campaigns(bff::ListCampaignsRequest::default())
        .await
        .expect("campaigns listed")
        .into_inner()
        .campaigns
}

/// The `ErrorInfo` metadata value `key` of a status.
fn metadata(status: &Status, key: &str) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}

fn status_of(held: &bff::UserCoupon) -> common::UserCouponStatus {
    common::UserCouponStatus::try_from(held.status).expect("a known status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_a_campaign_and_a_shopper_claims_and_spends_its_coupon() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut admin = Admin::new(channel.clone());
    let mut coupons = Coupons::new(channel.clone());
    let mut orders = bff::order_service_client::OrderServiceClient::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let operator = sign_up_admin(&mut auth, &services.users.grpc_uri()).await;

    // The definition, idempotent under its key.
    let key = Uuid::new_v4().to_string();
    let coupon = create_coupon(&mut admin, &operator, &key).await;
    assert!(Uuid::parse_str(&coupon.coupon_id).is_ok());
    assert_eq!(coupon.name, "300 yen off");
    assert_eq!(coupon.kind, i32::from(common::CouponKind::Fixed));
    assert_eq!(coupon.fixed_discount, jpy(DISCOUNT));
    assert_eq!(coupon.validity_days, 30);
    assert!(coupon.create_time.is_some());
    assert_eq!(create_coupon(&mut admin, &operator, &key).await, coupon);
    assert_eq!(
        all_coupons(&mut admin, &operator).await,
        vec![coupon.clone()]
    );

    // The campaign, and what anonymous shoppers see of it.
    let running = create_campaign(&mut admin, &operator, &coupon.coupon_id, 10, false).await;
    assert_eq!(running.coupon_id, coupon.coupon_id);
    assert_eq!(
        (running.total_quantity, running.remaining_quantity),
        (10, 10)
    );
    assert_eq!(running.coupon.as_ref(), Some(&coupon));
    assert_eq!(live_campaigns(&mut coupons).await, vec![running.clone()]);
    let shown = coupons
        .get_campaign(bff::GetCampaignRequest {
            campaign_id: running.campaign_id.clone(),
        })
        .await
        .expect("an anonymous shopper reads the campaign")
        .into_inner()
        .campaign;
    assert_eq!(shown.as_ref(), Some(&running));

    // The claim, and a second claim naming the coupon already held.
    let shopper = sign_up(&mut auth).await;
    let held = claim(&mut coupons, &shopper, &running.campaign_id)
        .await
        .expect("claimed");
    assert_eq!(status_of(&held), common::UserCouponStatus::Available);
    assert_eq!(held.campaign_id, running.campaign_id);
    assert_eq!(held.coupon.as_ref(), Some(&coupon));
    assert!(held.order_id.is_empty());
    let again = claim(&mut coupons, &shopper, &running.campaign_id)
        .await
        .expect_err("one per shopper");
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert_eq!(reason(&again), "COUPON_ALREADY_CLAIMED");
    assert_eq!(
        metadata(&again, "user_coupon_id").as_deref(),
        Some(held.user_coupon_id.as_str())
    );
    let after_claim = coupons
        .get_campaign(bff::GetCampaignRequest {
            campaign_id: running.campaign_id.clone(),
        })
        .await
        .expect("campaign")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(
        after_claim.remaining_quantity, 9,
        "the repeat issued nothing"
    );
    assert_eq!(my_coupons(&mut coupons, &shopper).await, vec![held.clone()]);

    // Checkout with the coupon: discounted, and the coupon is USED by that order.
    let placed = orders
        .create_order(with_token(
            bff::CreateOrderRequest {
                idempotency_key: Uuid::new_v4().to_string(),
                source: Some(bff::create_order_request::Source::ExplicitLines(
                    bff::ExplicitLines {
                        lines: vec![bff::OrderLineInput {
                            sku_id: sku.clone(),
                            quantity: 1,
                        }],
                    },
                )),
                shipping_address: Some(shipping_address("Shopper")),
                payment_method: common::PaymentMethod::Sandbox.into(),
                user_coupon_id: held.user_coupon_id.clone(),
                expected_total: jpy(SKU_PRICE - DISCOUNT),
            },
            &shopper,
        ))
        .await
        .expect("checkout with the coupon")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(placed.subtotal, jpy(SKU_PRICE));
    assert_eq!(placed.discount, jpy(DISCOUNT));
    assert_eq!(placed.total, jpy(SKU_PRICE - DISCOUNT));
    let applied = placed.coupon.as_ref().expect("the coupon is on the order");
    assert_eq!(applied.user_coupon_id, held.user_coupon_id);
    assert_eq!(applied.name, coupon.name);
    assert_eq!(applied.discount, jpy(DISCOUNT));
    let used = my_coupons(&mut coupons, &shopper).await;
    assert_eq!(used.len(), 1);
    assert_eq!(status_of(&used[0]), common::UserCouponStatus::Used);
    assert_eq!(used[0].order_id, placed.order_id);
    let only_available = coupons
        .list_my_coupons(with_token(
            bff::ListMyCouponsRequest {
                statuses: vec![common::UserCouponStatus::Available.into()],
                ..bff::ListMyCouponsRequest::default()
            },
            &shopper,
        ))
        .await
        .expect("filtered")
        .into_inner()
        .user_coupons;
    assert!(only_available.is_empty());

    // Another shopper holds nothing of it.
    let other = sign_up(&mut auth).await;
    assert!(my_coupons(&mut coupons, &other).await.is_empty());

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_and_upcoming_campaigns_refuse_claims_and_an_admin_issues_directly() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut admin = Admin::new(channel.clone());
    let mut coupons = Coupons::new(channel.clone());
    let mut accounts = bff::account_service_client::AccountServiceClient::new(channel);
    let operator = sign_up_admin(&mut auth, &services.users.grpc_uri()).await;
    let coupon = create_coupon(&mut admin, &operator, &Uuid::new_v4().to_string()).await;
    let first = sign_up(&mut auth).await;
    let second = sign_up(&mut auth).await;

    let single = create_campaign(&mut admin, &operator, &coupon.coupon_id, 1, false).await;
    claim(&mut coupons, &first, &single.campaign_id)
        .await
        .expect("the only coupon");
    let sold_out = claim(&mut coupons, &second, &single.campaign_id)
        .await
        .expect_err("none left");
    assert_eq!(sold_out.code(), Code::FailedPrecondition, "{sold_out:?}");
    assert_eq!(reason(&sold_out), "COUPON_SOLD_OUT");

    let upcoming = create_campaign(&mut admin, &operator, &coupon.coupon_id, 5, true).await;
    let early = claim(&mut coupons, &second, &upcoming.campaign_id)
        .await
        .expect_err("not open yet");
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    assert_eq!(reason(&early), "CAMPAIGN_NOT_ACTIVE");
    assert!(
        my_coupons(&mut coupons, &second).await.is_empty(),
        "refused claims issued nothing"
    );
    // Both campaigns have not ended, so both are listed, soonest ending first.
    let listed: Vec<String> = live_campaigns(&mut coupons)
        .await
        .into_iter()
        .map(|listed| listed.campaign_id)
        .collect();
    assert_eq!(listed, vec![single.campaign_id, upcoming.campaign_id]);

    // Issued by the admin to the second shopper, outside any campaign.
    let second_id = accounts
        .get_account(with_token(bff::GetAccountRequest {}, &second))
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account")
        .user_id;
    let key = Uuid::new_v4().to_string();
    let issue = |target_user_id: &str, key: &str| bff::IssueCouponRequest {
        coupon_id: coupon.coupon_id.clone(),
        target_user_id: target_user_id.to_owned(),
        idempotency_key: key.to_owned(),
    };
    let issued = admin
        .issue_coupon(with_token(issue(&second_id, &key), &operator))
        .await
        .expect("issued")
        .into_inner()
        .user_coupon
        .expect("user coupon");
    assert_eq!(status_of(&issued), common::UserCouponStatus::Available);
    assert!(issued.campaign_id.is_empty());
    let replayed = admin
        .issue_coupon(with_token(issue(&second_id, &key), &operator))
        .await
        .expect("replayed")
        .into_inner()
        .user_coupon;
    assert_eq!(
        replayed.as_ref(),
        Some(&issued),
        "the key replays the issue"
    );
    assert_eq!(my_coupons(&mut coupons, &second).await, vec![issued]);

    // Nobody by that id: nothing issued.
    let nobody = admin
        .issue_coupon(with_token(
            issue(&Uuid::new_v4().to_string(), &Uuid::new_v4().to_string()),
            &operator,
        ))
        .await
        .expect_err("no such account");
    assert_eq!(nobody.code(), Code::NotFound, "{nobody:?}");
    assert_eq!(reason(&nobody), "RESOURCE_NOT_FOUND");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_coupon_calls_name_their_reason_and_write_nothing() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut admin = Admin::new(channel.clone());
    let mut coupons = Coupons::new(channel);
    let operator = sign_up_admin(&mut auth, &services.users.grpc_uri()).await;
    let shopper = sign_up(&mut auth).await;
    let coupon = create_coupon(&mut admin, &operator, &Uuid::new_v4().to_string()).await;
    let running = create_campaign(&mut admin, &operator, &coupon.coupon_id, 10, false).await;
    let shopper_id = {
        let mut accounts =
            bff::account_service_client::AccountServiceClient::new(bff.channel().await);
        accounts
            .get_account(with_token(bff::GetAccountRequest {}, &shopper))
            .await
            .expect("account")
            .into_inner()
            .account
            .expect("account")
            .user_id
    };

    // A shopper is no admin: every admin coupon RPC, with a valid body, is refused.
    let not_admin = [
        admin
            .create_coupon(with_token(
                bff::CreateCouponRequest {
                    coupon: Some(fixed_coupon("shopper's own")),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &shopper,
            ))
            .await
            .map(drop),
        admin
            .list_coupons(with_token(bff::ListCouponsRequest::default(), &shopper))
            .await
            .map(drop),
        admin
            .create_campaign(with_token(
                bff::CreateCampaignRequest {
                    campaign: Some(campaign(&coupon.coupon_id, 100, false)),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &shopper,
            ))
            .await
            .map(drop),
        admin
            .issue_coupon(with_token(
                bff::IssueCouponRequest {
                    coupon_id: coupon.coupon_id.clone(),
                    target_user_id: shopper_id.clone(),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                &shopper,
            ))
            .await
            .map(drop),
    ];
    for (i, outcome) in not_admin.into_iter().enumerate() {
        let status = outcome.expect_err("a shopper is no admin");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "call {i}: {status:?}"
        );
        assert_eq!(reason(&status), "ROLE_REQUIRED", "call {i}");
    }

    // No token: claims and listings of one's own coupons are refused, campaign reads are not.
    let anonymous = [
        coupons
            .claim_coupon(bff::ClaimCouponRequest {
                campaign_id: running.campaign_id.clone(),
            })
            .await
            .map(drop),
        coupons
            .list_my_coupons(bff::ListMyCouponsRequest::default())
            .await
            .map(drop),
        admin
            .list_coupons(bff::ListCouponsRequest::default())
            .await
            .map(drop),
    ];
    for (i, outcome) in anonymous.into_iter().enumerate() {
        let status = outcome.expect_err("no token");
        assert_eq!(status.code(), Code::Unauthenticated, "call {i}: {status:?}");
        assert_eq!(reason(&status), "TOKEN_MISSING", "call {i}");
    }

    // Malformed and unknown ids, named.
    let bad_claim = claim(&mut coupons, &shopper, "not-a-uuid")
        .await
        .expect_err("not a campaign id");
    assert_eq!(bad_claim.code(), Code::InvalidArgument, "{bad_claim:?}");
    assert_eq!(reason(&bad_claim), "VALIDATION_FAILED");
    assert_eq!(violated_fields(&bad_claim), vec!["campaign_id"]);
    let bad_read = coupons
        .get_campaign(bff::GetCampaignRequest {
            campaign_id: "not-a-uuid".to_owned(),
        })
        .await
        .expect_err("not a campaign id");
    assert_eq!(bad_read.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad_read), vec!["campaign_id"]);
    let unknown = claim(&mut coupons, &shopper, &Uuid::new_v4().to_string())
        .await
        .expect_err("no such campaign");
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(reason(&unknown), "RESOURCE_NOT_FOUND");
    let bad_campaign = admin
        .create_campaign(with_token(
            bff::CreateCampaignRequest {
                campaign: Some(campaign("not-a-uuid", 10, false)),
                idempotency_key: Uuid::new_v4().to_string(),
            },
            &operator,
        ))
        .await
        .expect_err("not a coupon id");
    assert_eq!(bad_campaign.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad_campaign), vec!["campaign.coupon_id"]);
    let no_key = admin
        .create_coupon(with_token(
            bff::CreateCouponRequest {
                coupon: Some(fixed_coupon("no key")),
                idempotency_key: String::new(),
            },
            &operator,
        ))
        .await
        .expect_err("no idempotency key");
    assert_eq!(no_key.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&no_key), vec!["idempotency_key"]);
    let bad_target = admin
        .issue_coupon(with_token(
            bff::IssueCouponRequest {
                coupon_id: coupon.coupon_id.clone(),
                target_user_id: "not-a-uuid".to_owned(),
                idempotency_key: Uuid::new_v4().to_string(),
            },
            &operator,
        ))
        .await
        .expect_err("not a user id");
    assert_eq!(bad_target.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad_target), vec!["target_user_id"]);

    // Nothing of it was written.
    assert_eq!(all_coupons(&mut admin, &operator).await, vec![coupon]);
    assert_eq!(live_campaigns(&mut coupons).await, vec![running]);
    assert!(my_coupons(&mut coupons, &shopper).await.is_empty());

    drop(bff);
    services.stop().await;
}

/// One gRPC-Web data frame around `message`.
fn frame(message: &impl prost::Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&payload);
    framed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_claim_reaches_a_grpc_web_browser_with_the_held_coupons_id() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut admin = Admin::new(channel.clone());
    let mut coupons = Coupons::new(channel);
    let operator = sign_up_admin(&mut auth, &services.users.grpc_uri()).await;
    let coupon = create_coupon(&mut admin, &operator, &Uuid::new_v4().to_string()).await;
    let running = create_campaign(&mut admin, &operator, &coupon.coupon_id, 10, false).await;
    let shopper = sign_up(&mut auth).await;
    let held = claim(&mut coupons, &shopper, &running.campaign_id)
        .await
        .expect("claimed");

    mercato_bff::app::install_crypto_provider();
    let http1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("http client");
    let post = |path: &str, body: Vec<u8>, token: Option<&str>| {
        let mut request = http1
            .post(format!("{}/mercato.bff.v1.CouponService/{path}", bff.url()))
            .header("origin", "https://shop.example")
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .body(body);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.send()
    };

    // Anonymous browsing over gRPC-Web: the campaign in a data frame, then OK.
    let listed = post(
        "ListCampaigns",
        frame(&bff::ListCampaignsRequest::default()),
        None,
    )
    .await
    .expect("grpc-web list");
    assert!(listed.status().is_success());
    let body = listed.bytes().await.expect("body");
    assert_eq!(body[0], 0, "a data frame first");
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let decoded = <bff::ListCampaignsResponse as prost::Message>::decode(&body[5..5 + length])
        .expect("message decodes");
    assert_eq!(
        decoded.campaigns,
        vec![bff::CouponCampaign {
            remaining_quantity: 9,
            ..running.clone()
        }]
    );
    assert!(
        String::from_utf8_lossy(&body[5 + length..]).contains("grpc-status:0"),
        "trailers: {:?}",
        &body[5 + length..]
    );

    // The repeat: trailers-only, its details readable by the browser.
    let repeated = post(
        "ClaimCoupon",
        frame(&bff::ClaimCouponRequest {
            campaign_id: running.campaign_id.clone(),
        }),
        Some(&shopper),
    )
    .await
    .expect("grpc-web claim");
    let exposed = repeated
        .headers()
        .get("access-control-expose-headers")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        exposed.contains("grpc-status-details-bin"),
        "exposed: {exposed}"
    );
    let status = Status::from_header_map(repeated.headers()).expect("a trailers-only status");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(reason(&status), "COUPON_ALREADY_CLAIMED");
    assert_eq!(
        metadata(&status, "user_coupon_id").as_deref(),
        Some(held.user_coupon_id.as_str())
    );

    drop(bff);
    services.stop().await;
}

#[tokio::test]
async fn refused_coupon_calls_never_reach_the_order_service() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let (order_uri, accepted) = counting_listener().await;
    let prefix = RedisPrefix::new();
    let bff = support::TestBff::start(settings(
        &jwks,
        &users_url,
        &prefix,
        &[("ORDER_SERVICE_URL", &order_uri)],
    ))
    .await;
    let channel = bff.channel().await;
    let mut coupons = Coupons::new(channel.clone());
    let mut admin = Admin::new(channel);
    let buyer = key.sign(&claims(
        &jwks.issuer(),
        &Uuid::new_v4().to_string(),
        &["buyer"],
    ));
    let id = Uuid::new_v4().to_string();

    let anonymous = [
        coupons
            .claim_coupon(bff::ClaimCouponRequest {
                campaign_id: id.clone(),
            })
            .await
            .map(drop),
        coupons
            .list_my_coupons(bff::ListMyCouponsRequest::default())
            .await
            .map(drop),
    ];
    for (i, outcome) in anonymous.into_iter().enumerate() {
        let status = outcome.expect_err("no token, no coupon call");
        assert_eq!(status.code(), Code::Unauthenticated, "call {i}: {status:?}");
    }
    let not_admin = [
        admin
            .create_coupon(with_token(bff::CreateCouponRequest::default(), &buyer))
            .await
            .map(drop),
        admin
            .list_coupons(with_token(bff::ListCouponsRequest::default(), &buyer))
            .await
            .map(drop),
        admin
            .create_campaign(with_token(bff::CreateCampaignRequest::default(), &buyer))
            .await
            .map(drop),
        admin
            .issue_coupon(with_token(
                bff::IssueCouponRequest {
                    coupon_id: id.clone(),
                    target_user_id: id.clone(),
                    idempotency_key: id.clone(),
                },
                &buyer,
            ))
            .await
            .map(drop),
    ];
    for (i, outcome) in not_admin.into_iter().enumerate() {
        let status = outcome.expect_err("a buyer is no admin");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "call {i}: {status:?}"
        );
        assert_eq!(reason(&status), "ROLE_REQUIRED", "call {i}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no refused call reached the order service"
    );
    assert_eq!(users.call_count(), 0, "nor the user service");

    // The control: a public read does reach it (and, since the stand-in speaks no gRPC, fails
    // UNAVAILABLE without internal detail).
    let reached = coupons
        .get_campaign(bff::GetCampaignRequest { campaign_id: id })
        .await
        .expect_err("the stand-in answers nothing");
    assert_eq!(reached.code(), Code::Unavailable, "{reached:?}");
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the stand-in was called"
    );
}
