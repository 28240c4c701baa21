//! The listings: ListMyCoupons (soonest expiring first, EXPIRED before the sweeper, filters, page
//! tokens bound to the caller and filters, only the caller's own coupons), the expiry sweeper,
//! and ListCampaigns / GetCampaign for anyone.

use chrono::{Duration, Utc};
use mercato_order::clock::Clock;
use mercato_order::coupon::sweeper;
use mercato_proto::mercato::common::v1::UserCouponStatus::{Available, Expired};
use mercato_proto::mercato::order::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    Coupons, as_buyer, fixed, history_kinds, refusal, stored, stored_history, time_of,
};

#[tokio::test]
async fn my_coupons_list_soonest_expiring_first_and_show_expired_ones_before_the_sweeper() {
    let start = Utc::now();
    let (clock, manual) = Clock::manual(start);
    let coupons = Coupons::start_with_clock(clock, |_| {}).await;
    let user = Uuid::now_v7();
    let mut held = Vec::new();
    for days in [3, 1, 2] {
        let coupon = coupons
            .api
            .create(pb::Coupon {
                validity_days: days,
                ..fixed(&format!("{days} days"), 100, None)
            })
            .await;
        held.push(coupons.api.issue(&coupon.coupon_id, user).await);
    }
    let stranger = Uuid::now_v7();
    let theirs = coupons.api.create(fixed("Theirs", 100, None)).await;
    coupons.api.issue(&theirs.coupon_id, stranger).await;

    let names = |list: &[pb::UserCoupon]| -> Vec<String> {
        list.iter()
            .map(|c| {
                c.coupon
                    .as_ref()
                    .map(|d| d.name.clone())
                    .unwrap_or_default()
            })
            .collect()
    };
    let mine = coupons.api.mine(user, &[]).await;
    assert_eq!(
        names(&mine),
        ["1 days", "2 days", "3 days"],
        "soonest expiring first"
    );
    assert!(
        mine.iter().all(|c| c.user_id == user.to_string()),
        "only the caller's"
    );
    assert!(mine.iter().all(|c| c.status == Available as i32));

    // A day later the 1-day coupon shows EXPIRED (with the entry the sweeper will write), though
    // nothing was written yet.
    manual.advance(Duration::days(1));
    let before_sweep = coupons.api.mine(user, &[]).await;
    let lapsed = &before_sweep[0];
    assert_eq!(lapsed.status, Expired as i32);
    assert_eq!(
        history_kinds(lapsed),
        [
            pb::UserCouponEventKind::Issued,
            pb::UserCouponEventKind::Expired
        ]
    );
    assert_eq!(
        time_of(lapsed.history[1].event_time.as_ref()),
        time_of(lapsed.expire_time.as_ref()),
        "it expired at its expiry"
    );
    assert_eq!(
        stored(coupons.pool(), &lapsed.user_coupon_id).await.0,
        "AVAILABLE"
    );
    assert_eq!(
        names(&coupons.api.mine(user, &[Available]).await),
        ["2 days", "3 days"]
    );
    assert_eq!(names(&coupons.api.mine(user, &[Expired]).await), ["1 days"]);
    assert_eq!(coupons.api.mine(user, &[Available, Expired]).await.len(), 3);

    // The sweeper writes what the listing already showed: the listing does not change.
    let expired = sweeper::expire_batch(coupons.context())
        .await
        .expect("sweep");
    assert_eq!(expired.len(), 1);
    assert_eq!(
        stored(coupons.pool(), &lapsed.user_coupon_id).await,
        ("EXPIRED".to_owned(), None)
    );
    assert_eq!(
        stored_history(coupons.pool(), &lapsed.user_coupon_id).await,
        [("ISSUED".to_owned(), None), ("EXPIRED".to_owned(), None)]
    );
    assert_eq!(coupons.api.mine(user, &[]).await, before_sweep);
    assert!(
        sweeper::expire_batch(coupons.context())
            .await
            .expect("sweep")
            .is_empty(),
        "nothing expires twice"
    );
}

#[tokio::test]
async fn page_tokens_are_bound_to_the_caller_and_the_filters() {
    let coupons = Coupons::start().await;
    let user = Uuid::now_v7();
    let coupon = coupons.api.create(fixed("Many", 100, None)).await;
    for _ in 0..5 {
        coupons.api.issue(&coupon.coupon_id, user).await;
    }
    assert_eq!(
        coupons.api.mine(user, &[]).await.len(),
        5,
        "every page once"
    );
    let mut client = coupons.api.client.clone();
    let first = client
        .list_my_coupons(as_buyer(
            pb::ListMyCouponsRequest {
                page_size: 2,
                ..Default::default()
            },
            user,
        ))
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(first.user_coupons.len(), 2);
    assert!(!first.next_page_token.is_empty());

    let other_filters = client
        .list_my_coupons(as_buyer(
            pb::ListMyCouponsRequest {
                page_size: 2,
                page_token: first.next_page_token.clone(),
                statuses: vec![Available as i32],
            },
            user,
        ))
        .await
        .expect_err("issued for other filters");
    assert_eq!(
        refusal(&other_filters),
        (Code::InvalidArgument, "INVALID_PAGE_TOKEN".to_owned())
    );
    let other_user = client
        .list_my_coupons(as_buyer(
            pb::ListMyCouponsRequest {
                page_size: 2,
                page_token: first.next_page_token.clone(),
                statuses: Vec::new(),
            },
            Uuid::now_v7(),
        ))
        .await
        .expect_err("issued to another caller");
    assert_eq!(refusal(&other_user).1, "INVALID_PAGE_TOKEN");
    let stranger = client
        .list_my_coupons(as_buyer(
            pb::ListMyCouponsRequest::default(),
            Uuid::now_v7(),
        ))
        .await
        .expect("listed")
        .into_inner();
    assert!(
        stranger.user_coupons.is_empty(),
        "nobody sees another's coupons"
    );
    let negative = client
        .list_my_coupons(as_buyer(
            pb::ListMyCouponsRequest {
                page_size: -1,
                ..Default::default()
            },
            user,
        ))
        .await
        .expect_err("negative page size");
    assert_eq!(negative.code(), Code::InvalidArgument);
    let bad_status = client
        .list_my_coupons(as_buyer(
            pb::ListMyCouponsRequest {
                statuses: vec![0],
                ..Default::default()
            },
            user,
        ))
        .await
        .expect_err("unspecified status");
    assert_eq!(bad_status.code(), Code::InvalidArgument);
    let anonymous = client
        .list_my_coupons(pb::ListMyCouponsRequest::default())
        .await
        .expect_err("a user is required");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn campaigns_list_live_ones_soonest_ending_first_and_ended_ones_only_for_admins() {
    let now = Utc::now();
    let (clock, _manual) = Clock::manual(now);
    let coupons = Coupons::start_with_clock(clock, |_| {}).await;
    let coupon = coupons.api.create(fixed("Sale", 100, None)).await;
    let hour = Duration::hours(1);
    let mut made = Vec::new();
    // Running and ending in 3 h, ended, running and ending in 1 h, upcoming and ending in 2 h.
    for (start, end) in [
        (now - hour, now + hour * 3),
        (now - hour * 2, now - hour),
        (now - hour, now + hour),
        (now + hour, now + hour * 2),
    ] {
        made.push(
            coupons
                .api
                .campaign(&coupon.coupon_id, start, end, 10)
                .await,
        );
    }
    let mut client = coupons.api.client.clone();
    let list = |page_token: String, include_ended: bool| pb::ListCampaignsRequest {
        page_size: 2,
        page_token,
        include_ended,
    };
    let ids = |campaigns: &[pb::CouponCampaign]| -> Vec<String> {
        campaigns.iter().map(|c| c.campaign_id.clone()).collect()
    };

    // Anyone lists the live ones, two pages.
    let first = client
        .list_campaigns(list(String::new(), false))
        .await
        .expect("anonymous listing")
        .into_inner();
    let second = client
        .list_campaigns(list(first.next_page_token.clone(), false))
        .await
        .expect("second page")
        .into_inner();
    assert!(second.next_page_token.is_empty());
    let live: Vec<_> = first
        .campaigns
        .into_iter()
        .chain(second.campaigns)
        .collect();
    assert_eq!(
        ids(&live),
        ids(&[made[2].clone(), made[3].clone(), made[0].clone()]),
        "soonest ending first, upcoming included, ended left out"
    );
    assert!(live.iter().all(|c| c.coupon.as_ref() == Some(&coupon)));
    assert!(live.iter().all(|c| c.remaining_quantity == 10));

    let anonymous = client
        .list_campaigns(list(String::new(), true))
        .await
        .expect_err("ended ones need an admin");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let all = client
        .list_campaigns(coupons.api.as_admin(pb::ListCampaignsRequest {
            page_size: 10,
            page_token: String::new(),
            include_ended: true,
        }))
        .await
        .expect("admin listing")
        .into_inner();
    assert_eq!(all.campaigns.len(), 4);
    assert_eq!(
        all.campaigns[0].campaign_id, made[1].campaign_id,
        "the ended one ends first"
    );
    let mixed = client
        .list_campaigns(coupons.api.as_admin(list(first.next_page_token, true)))
        .await
        .expect_err("a token of the live listing");
    assert_eq!(refusal(&mixed).1, "INVALID_PAGE_TOKEN");

    let got = client
        .get_campaign(pb::GetCampaignRequest {
            campaign_id: made[0].campaign_id.clone(),
        })
        .await
        .expect("anyone reads a campaign")
        .into_inner()
        .campaign
        .expect("a campaign");
    assert_eq!(got.campaign_id, made[0].campaign_id);
    let missing = client
        .get_campaign(pb::GetCampaignRequest {
            campaign_id: Uuid::now_v7().to_string(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(
        refusal(&missing),
        (Code::NotFound, "RESOURCE_NOT_FOUND".to_owned())
    );
}
