//! ClaimCoupon under contention and at the edges of a campaign: exactly `total_quantity` issued
//! however many race, one per user, repeat claims that name the coupon held, windows, unknown
//! campaigns, the Redis sold-out gate, and claims while Redis is down.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::time::Instant;

use chrono::{Duration, Utc};
use mercato_order::clock::Clock;
use mercato_order::coupon::claim;
use mercato_proto::mercato::order::v1 as pb;
use mercato_testkit::TcpProxy;
use pb::coupon_service_client::CouponServiceClient;
use redis::AsyncCommands as _;
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    Coupons, as_buyer, channel, count, fixed, metadata, reason, refusal, time_of,
};

/// Issued quantity and user coupons of a campaign as stored.
async fn issued(coupons: &Coupons, campaign_id: &str) -> (i64, i64, i64) {
    let id = Uuid::parse_str(campaign_id).expect("a uuid");
    let quantity: i64 =
        sqlx::query_scalar("SELECT issued_quantity FROM coupon_campaigns WHERE campaign_id = $1")
            .bind(id)
            .fetch_one(coupons.pool())
            .await
            .expect("campaign row");
    let (rows, users): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT user_id) FROM user_coupons WHERE campaign_id = $1",
    )
    .bind(id)
    .fetch_one(coupons.pool())
    .await
    .expect("user coupons");
    (quantity, rows, users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_users_racing_for_a_hundred_coupons_get_exactly_a_hundred() {
    // 1,000 calls in flight at once: above the default limit of 512 the server would shed some.
    let coupons = Coupons::start_with_clock(Clock::system(), |settings| {
        settings.common.limits.concurrency_limit =
            NonZeroUsize::new(2_048).expect("a positive limit");
    })
    .await;
    let coupon = coupons.api.create(fixed("FCFS 100 yen", 100, None)).await;
    let campaign = coupons
        .api
        .running(&coupon.coupon_id, Utc::now(), 100)
        .await;
    // A few connections, as a few BFF replicas would hold.
    let clients: Vec<CouponServiceClient<_>> = (0..8)
        .map(|_| CouponServiceClient::new(channel(coupons.order.grpc_uri())))
        .collect();

    let started = Instant::now();
    let claims = (0..1_000).map(|i| {
        let mut client = clients[i % clients.len()].clone();
        let campaign_id = campaign.campaign_id.clone();
        tokio::spawn(async move {
            let user = Uuid::now_v7();
            let outcome = client
                .claim_coupon(as_buyer(pb::ClaimCouponRequest { campaign_id }, user))
                .await
                .map(|r| r.into_inner().user_coupon.expect("a user coupon"));
            (user, outcome)
        })
    });
    let outcomes = futures::future::join_all(claims).await;
    let elapsed = started.elapsed();
    eprintln!("1,000 concurrent claims for 100 coupons took {elapsed:?}");

    let mut winners = HashSet::new();
    let mut sold_out = 0;
    for outcome in outcomes {
        let (user, outcome) = outcome.expect("the claim task ran");
        match outcome {
            Ok(user_coupon) => {
                assert_eq!(user_coupon.user_id, user.to_string());
                assert_eq!(user_coupon.campaign_id, campaign.campaign_id);
                winners.insert(user);
            }
            Err(status) => {
                assert_eq!(
                    refusal(&status),
                    (Code::FailedPrecondition, "COUPON_SOLD_OUT".to_owned()),
                    "{status:?}"
                );
                sold_out += 1;
            }
        }
    }
    assert_eq!(
        winners.len(),
        100,
        "exactly the campaign's quantity is issued"
    );
    assert_eq!(sold_out, 900);
    assert_eq!(
        issued(&coupons, &campaign.campaign_id).await,
        (100, 100, 100)
    );
    let holders: HashSet<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM user_coupons WHERE campaign_id = $1::text::uuid")
            .bind(&campaign.campaign_id)
            .fetch_all(coupons.pool())
            .await
            .expect("holders")
            .into_iter()
            .collect();
    assert_eq!(
        holders, winners,
        "the coupons went to the users who were told so"
    );
    let issued_events = count(
        coupons.pool(),
        "SELECT count(*) FROM user_coupon_history WHERE kind = 'ISSUED'",
    )
    .await;
    assert_eq!(issued_events, 100);
    let after = coupons
        .api
        .client
        .clone()
        .get_campaign(pb::GetCampaignRequest {
            campaign_id: campaign.campaign_id.clone(),
        })
        .await
        .expect("campaign read")
        .into_inner()
        .campaign
        .expect("a campaign");
    assert_eq!((after.issued_quantity, after.remaining_quantity), (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_claiming_fifty_times_at_once_gets_exactly_one() {
    let coupons = Coupons::start().await;
    let coupon = coupons.api.create(fixed("One each", 100, None)).await;
    let campaign = coupons.api.running(&coupon.coupon_id, Utc::now(), 10).await;
    let user = Uuid::now_v7();
    let claims = (0..50).map(|_| {
        let api = coupons.api.clone();
        let campaign_id = campaign.campaign_id.clone();
        tokio::spawn(async move { api.claim(user, &campaign_id).await })
    });
    let outcomes = futures::future::join_all(claims).await;
    let mut held = Vec::new();
    let mut named = Vec::new();
    for outcome in outcomes {
        match outcome.expect("the claim task ran") {
            Ok(user_coupon) => held.push(user_coupon.user_coupon_id),
            Err(status) => {
                assert_eq!(
                    refusal(&status),
                    (Code::AlreadyExists, "COUPON_ALREADY_CLAIMED".to_owned()),
                    "{status:?}"
                );
                named.push(metadata(&status, "user_coupon_id").expect("the held coupon's id"));
            }
        }
    }
    assert_eq!(held.len(), 1, "exactly one claim succeeds");
    assert_eq!(named.len(), 49);
    assert!(
        named.iter().all(|id| *id == held[0]),
        "every refusal names the coupon the user holds"
    );
    assert_eq!(
        issued(&coupons, &campaign.campaign_id).await,
        (1, 1, 1),
        "the refused claims consumed no unit"
    );
}

#[tokio::test]
async fn a_repeat_claim_names_the_coupon_held_and_takes_no_unit_even_after_the_sell_out() {
    let coupons = Coupons::start().await;
    let coupon = coupons.api.create(fixed("Last one", 300, None)).await;
    let campaign = coupons.api.running(&coupon.coupon_id, Utc::now(), 1).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());

    let claimed = coupons
        .api
        .claim(first, &campaign.campaign_id)
        .await
        .expect("the first claim succeeds");
    assert_eq!(claimed.status, 1, "AVAILABLE");
    assert_eq!(
        claimed.coupon.as_ref().map(|c| c.name.as_str()),
        Some("Last one")
    );
    let validity = time_of(claimed.expire_time.as_ref()) - time_of(claimed.issue_time.as_ref());
    assert_eq!(validity, Duration::days(30));

    // The campaign is sold out now (and marked so in Redis); the holder still hears which
    // coupon it holds, so a client retrying after a lost response can treat it as done.
    for _ in 0..2 {
        let again = coupons
            .api
            .claim(first, &campaign.campaign_id)
            .await
            .expect_err("a repeat claim issues nothing");
        assert_eq!(
            refusal(&again),
            (Code::AlreadyExists, "COUPON_ALREADY_CLAIMED".to_owned())
        );
        assert_eq!(
            metadata(&again, "user_coupon_id"),
            Some(claimed.user_coupon_id.clone())
        );
    }
    let late = coupons
        .api
        .claim(second, &campaign.campaign_id)
        .await
        .expect_err("nothing is left");
    assert_eq!(
        refusal(&late),
        (Code::FailedPrecondition, "COUPON_SOLD_OUT".to_owned())
    );
    assert_eq!(issued(&coupons, &campaign.campaign_id).await, (1, 1, 1));
}

#[tokio::test]
async fn claims_are_refused_outside_the_window_and_for_unknown_campaigns() {
    let start = Utc::now();
    let (clock, manual) = Clock::manual(start);
    let coupons = Coupons::start_with_clock(clock, |_| {}).await;
    let coupon = coupons.api.create(fixed("Later", 100, None)).await;
    let opens = start + Duration::hours(1);
    let closes = start + Duration::hours(2);
    let campaign = coupons
        .api
        .campaign(&coupon.coupon_id, opens, closes, 10)
        .await;
    let user = Uuid::now_v7();

    let early = coupons
        .api
        .claim(user, &campaign.campaign_id)
        .await
        .expect_err("not started");
    assert_eq!(
        refusal(&early),
        (Code::FailedPrecondition, "CAMPAIGN_NOT_ACTIVE".to_owned())
    );
    assert!(
        metadata(&early, "start_time")
            .is_some_and(|t| t.starts_with(&opens.format("%Y-%m-%dT%H:%M").to_string()))
    );
    assert!(metadata(&early, "end_time").is_some());

    manual.set(opens);
    coupons
        .api
        .claim(user, &campaign.campaign_id)
        .await
        .expect("the start is inclusive");
    manual.set(closes);
    let late = coupons
        .api
        .claim(Uuid::now_v7(), &campaign.campaign_id)
        .await
        .expect_err("ended");
    assert_eq!(
        refusal(&late),
        (Code::FailedPrecondition, "CAMPAIGN_NOT_ACTIVE".to_owned()),
        "the end is exclusive"
    );
    let holder = coupons
        .api
        .claim(user, &campaign.campaign_id)
        .await
        .expect_err("already held");
    assert_eq!(
        reason(&holder),
        "COUPON_ALREADY_CLAIMED",
        "a holder learns it holds one even after the end"
    );

    let unknown = coupons
        .api
        .claim(user, &Uuid::now_v7().to_string())
        .await
        .expect_err("no such campaign");
    assert_eq!(
        refusal(&unknown),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );
    let malformed = coupons
        .api
        .claim(user, "not-a-uuid")
        .await
        .expect_err("not a uuid");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    let anonymous = coupons
        .api
        .client
        .clone()
        .claim_coupon(pb::ClaimCouponRequest {
            campaign_id: campaign.campaign_id.clone(),
        })
        .await
        .expect_err("a user is required");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(issued(&coupons, &campaign.campaign_id).await, (1, 1, 1));
}

#[tokio::test]
async fn the_sold_out_marker_turns_claims_away_before_the_database_except_for_holders() {
    let coupons = Coupons::start().await;
    let coupon = coupons.api.create(fixed("Gate", 100, None)).await;
    let campaign = coupons.api.running(&coupon.coupon_id, Utc::now(), 5).await;
    let campaign_id = Uuid::parse_str(&campaign.campaign_id).expect("a uuid");
    let key = claim::marker_key(coupons.context(), campaign_id);
    let mut redis = coupons.context().redis.clone();
    let holder = Uuid::now_v7();
    let held = coupons
        .api
        .claim(holder, &campaign.campaign_id)
        .await
        .expect("claimed");
    let exists: bool = redis.exists(&key).await.expect("redis");
    assert!(!exists, "units are left, so there is no marker");

    // A marker (here planted, normally set by the claim that saw the last unit go) is trusted
    // while it lives: newcomers are refused without the campaign being read...
    let end = time_of(campaign.end_time.as_ref());
    let _: () = redis
        .set(&key, end.timestamp_micros().to_string())
        .await
        .expect("redis");
    let refused = coupons
        .api
        .claim(Uuid::now_v7(), &campaign.campaign_id)
        .await
        .expect_err("turned away by the marker");
    assert_eq!(reason(&refused), "COUPON_SOLD_OUT");
    // ...but a holder still learns which coupon it holds.
    let again = coupons
        .api
        .claim(holder, &campaign.campaign_id)
        .await
        .expect_err("already held");
    assert_eq!(
        metadata(&again, "user_coupon_id"),
        Some(held.user_coupon_id)
    );

    // Selling out for real sets the marker, with a short TTL.
    let _: () = redis.del(&key).await.expect("redis");
    for _ in 0..4 {
        coupons
            .api
            .claim(Uuid::now_v7(), &campaign.campaign_id)
            .await
            .expect("units are left");
    }
    let ttl: i64 = redis.pttl(&key).await.expect("redis");
    assert!(
        ttl > 0 && ttl <= 30_000,
        "the last unit's claim set the marker with a short ttl, got {ttl} ms"
    );
    assert_eq!(issued(&coupons, &campaign.campaign_id).await, (5, 5, 5));
}

#[tokio::test]
async fn claims_go_to_the_database_when_redis_is_down() {
    let redis_url = mercato_testkit::env::redis_url();
    let upstream = mercato_testkit::env::authority(&redis_url)
        .expect("a redis authority")
        .to_owned();
    let proxy = TcpProxy::start(upstream).await.expect("proxy starts");
    let through_proxy = mercato_testkit::env::with_authority(&redis_url, &proxy.addr().to_string())
        .expect("a proxied url");
    let coupons = Coupons::start_with_clock(Clock::system(), |settings| {
        settings.redis.url = secrecy::SecretString::from(through_proxy);
    })
    .await;
    let coupon = coupons.api.create(fixed("No redis", 100, None)).await;
    let campaign = coupons.api.running(&coupon.coupon_id, Utc::now(), 2).await;

    proxy.cut().await;
    let mut redis = coupons.context().redis.clone();
    let probe = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        redis.get::<_, Option<String>>(claim::marker_key(coupons.context(), Uuid::now_v7())),
    )
    .await;
    assert!(
        !matches!(probe, Ok(Ok(_))),
        "the service's redis connection is cut"
    );
    let started = Instant::now();
    for _ in 0..2 {
        coupons
            .api
            .claim(Uuid::now_v7(), &campaign.campaign_id)
            .await
            .expect("a claim succeeds without redis");
    }
    let late = coupons
        .api
        .claim(Uuid::now_v7(), &campaign.campaign_id)
        .await
        .expect_err("sold out");
    assert_eq!(
        reason(&late),
        "COUPON_SOLD_OUT",
        "the database still decides"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "redis calls are bounded, took {:?}",
        started.elapsed()
    );
    assert_eq!(issued(&coupons, &campaign.campaign_id).await, (2, 2, 2));
    proxy.restore();
}
