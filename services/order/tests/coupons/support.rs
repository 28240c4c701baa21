//! Fixtures of the coupon tests: the order service alone (coupon RPCs never call the product
//! service) or with the real product service for checkouts, a coupon client acting as an admin
//! or a user, builders of definitions, and readers of what the database holds.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato_order::clock::Clock;
use mercato_order::context::OrderContext;
use mercato_order::settings::Settings;
use mercato_order::testing::{RunningOrder, TestEnv as OrderEnv};
use mercato_platform::principal::Role;
use mercato_proto::mercato::common::v1::{CouponKind, PaymentMethod, PostalAddress};
use mercato_proto::mercato::order::v1 as pb;
use pb::coupon_service_client::CouponServiceClient;
use pb::order_service_client::OrderServiceClient;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;
use uuid::Uuid;

pub(crate) use crate::carts::{Harness, as_buyer, as_user, channel, reason, violated_fields, yen};

/// How long a saga effect (the order sweeper) may take to show.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

/// The order service alone, on a fresh database, Redis prefix and broker namespace.
pub(crate) struct Coupons {
    pub(crate) order: RunningOrder,
    pub(crate) api: CouponApi,
    /// Dropped last: dropping it deletes the database, keys and queues.
    pub(crate) env: OrderEnv,
}

impl Coupons {
    /// The service with test settings on the system clock.
    pub(crate) async fn start() -> Self {
        Self::start_with_clock(Clock::system(), |_| {}).await
    }

    /// The service with its settings adjusted by `configure`, on business time from `clock`.
    pub(crate) async fn start_with_clock(
        clock: Clock,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        // Nothing here calls the product service; its channel connects lazily and never does.
        let env = OrderEnv::new("http://127.0.0.1:9")
            .await
            .expect("order test resources");
        let order = env
            .start_with_clock(clock, configure)
            .await
            .expect("order service starts");
        Self {
            api: CouponApi::new(order.grpc_uri()),
            order,
            env,
        }
    }

    /// The service's database.
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        &self.order.context.pool
    }

    /// The running service's context (Redis, keys, clock).
    pub(crate) fn context(&self) -> &OrderContext {
        &self.order.context
    }
}

/// The product service and the order service, for checkouts with coupons.
pub(crate) struct Shop {
    pub(crate) harness: Harness,
    pub(crate) api: CouponApi,
    pub(crate) orders: OrderServiceClient<Channel>,
}

impl Shop {
    /// Both services, the order service configured by `configure` on business time from `clock`.
    pub(crate) async fn start_with_clock(
        clock: Clock,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let harness = Harness::start_with_clock(clock, configure).await;
        let uri = harness.order.as_ref().expect("order service").grpc_uri();
        Self {
            api: CouponApi::new(uri.clone()),
            orders: OrderServiceClient::new(channel(uri)),
            harness,
        }
    }

    /// The order service's database.
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        self.harness.order_pool()
    }

    /// The order service's context.
    pub(crate) fn context(&self) -> &OrderContext {
        &self.harness.order.as_ref().expect("order service").context
    }

    /// Places an order of `lines` for `user` with `user_coupon_id` (if any), under `key`.
    pub(crate) async fn order_keyed(
        &self,
        user: Uuid,
        lines: &[(&str, i64)],
        user_coupon_id: Option<&str>,
        key: &str,
    ) -> Result<pb::Order, tonic::Status> {
        let request = pb::CreateOrderRequest {
            idempotency_key: key.to_owned(),
            source: Some(pb::create_order_request::Source::ExplicitLines(
                pb::ExplicitLines {
                    lines: lines
                        .iter()
                        .map(|(sku_id, quantity)| pb::OrderLineInput {
                            sku_id: (*sku_id).to_owned(),
                            quantity: *quantity,
                        })
                        .collect(),
                },
            )),
            shipping_address: Some(address()),
            payment_method: PaymentMethod::Sandbox as i32,
            user_coupon_id: user_coupon_id.unwrap_or_default().to_owned(),
            expected_total: None,
        };
        self.orders
            .clone()
            .create_order(as_buyer(request, user))
            .await
            .map(|r| r.into_inner().order.expect("an order"))
    }

    /// Places an order under a fresh key.
    pub(crate) async fn order(
        &self,
        user: Uuid,
        lines: &[(&str, i64)],
        user_coupon_id: Option<&str>,
    ) -> Result<pb::Order, tonic::Status> {
        self.order_keyed(user, lines, user_coupon_id, &Uuid::new_v4().to_string())
            .await
    }

    /// Cancels `order_id` as its buyer.
    pub(crate) async fn cancel(&self, user: Uuid, order_id: &str) -> pb::Order {
        self.orders
            .clone()
            .cancel_order(as_buyer(
                pb::CancelOrderRequest {
                    order_id: order_id.to_owned(),
                },
                user,
            ))
            .await
            .expect("order cancelled")
            .into_inner()
            .order
            .expect("an order")
    }

    /// Rows in `orders`.
    pub(crate) async fn order_count(&self) -> i64 {
        count(self.pool(), "SELECT count(*) FROM orders").await
    }
}

/// A `CouponService` client with an admin of its own.
#[derive(Clone)]
pub(crate) struct CouponApi {
    pub(crate) client: CouponServiceClient<Channel>,
    pub(crate) admin: Uuid,
}

impl CouponApi {
    /// A client of the order service at `uri`.
    pub(crate) fn new(uri: String) -> Self {
        Self {
            client: CouponServiceClient::new(channel(uri)),
            admin: Uuid::now_v7(),
        }
    }

    /// `message` from this client's admin.
    pub(crate) fn as_admin<T>(&self, message: T) -> tonic::Request<T> {
        as_user(message, self.admin, &[Role::Buyer, Role::Admin])
    }

    /// Creates `coupon` under a fresh key.
    pub(crate) async fn create(&self, coupon: pb::Coupon) -> pb::Coupon {
        self.client
            .clone()
            .create_coupon(self.as_admin(pb::CreateCouponRequest {
                coupon: Some(coupon),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .expect("coupon created")
            .into_inner()
            .coupon
            .expect("a coupon")
    }

    /// Creates a campaign of `coupon_id` over `[start, end)` with `total` coupons.
    pub(crate) async fn campaign(
        &self,
        coupon_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        total: i64,
    ) -> pb::CouponCampaign {
        self.client
            .clone()
            .create_campaign(self.as_admin(pb::CreateCampaignRequest {
                campaign: Some(campaign(coupon_id, start, end, total)),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .expect("campaign created")
            .into_inner()
            .campaign
            .expect("a campaign")
    }

    /// A campaign of `coupon_id` running from an hour before `now` to an hour after it.
    pub(crate) async fn running(
        &self,
        coupon_id: &str,
        now: DateTime<Utc>,
        total: i64,
    ) -> pb::CouponCampaign {
        let hour = chrono::Duration::hours(1);
        self.campaign(coupon_id, now - hour, now + hour, total)
            .await
    }

    /// Issues `coupon_id` to `user` directly.
    pub(crate) async fn issue(&self, coupon_id: &str, user: Uuid) -> pb::UserCoupon {
        self.client
            .clone()
            .issue_coupon(self.as_admin(pb::IssueCouponRequest {
                coupon_id: coupon_id.to_owned(),
                user_id: user.to_string(),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .expect("coupon issued")
            .into_inner()
            .user_coupon
            .expect("a user coupon")
    }

    /// Claims a coupon of `campaign_id` for `user`.
    pub(crate) async fn claim(
        &self,
        user: Uuid,
        campaign_id: &str,
    ) -> Result<pb::UserCoupon, tonic::Status> {
        self.client
            .clone()
            .claim_coupon(as_buyer(
                pb::ClaimCouponRequest {
                    campaign_id: campaign_id.to_owned(),
                },
                user,
            ))
            .await
            .map(|r| r.into_inner().user_coupon.expect("a user coupon"))
    }

    /// Every coupon of `user` in `statuses` (all when empty), following every page.
    pub(crate) async fn mine(
        &self,
        user: Uuid,
        statuses: &[mercato_proto::mercato::common::v1::UserCouponStatus],
    ) -> Vec<pb::UserCoupon> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client
                .clone()
                .list_my_coupons(as_buyer(
                    pb::ListMyCouponsRequest {
                        page_size: 2,
                        page_token: page_token.clone(),
                        statuses: statuses.iter().map(|s| *s as i32).collect(),
                    },
                    user,
                ))
                .await
                .expect("my coupons listed")
                .into_inner();
            all.extend(page.user_coupons);
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }

    /// The coupon `user_coupon_id` of `user`, as ListMyCoupons shows it.
    pub(crate) async fn mine_one(&self, user: Uuid, user_coupon_id: &str) -> pb::UserCoupon {
        self.mine(user, &[])
            .await
            .into_iter()
            .find(|c| c.user_coupon_id == user_coupon_id)
            .expect("the user holds the coupon")
    }
}

/// A FIXED definition: `amount` yen off, with an optional minimum subtotal.
pub(crate) fn fixed(name: &str, amount: i64, minimum: Option<i64>) -> pb::Coupon {
    pb::Coupon {
        name: name.to_owned(),
        description: format!("{amount} yen off"),
        kind: CouponKind::Fixed as i32,
        fixed_discount: yen(amount),
        minimum_order_amount: minimum.and_then(yen),
        validity_days: 30,
        ..Default::default()
    }
}

/// A PERCENT definition: `percent` off, optionally capped.
pub(crate) fn percent(name: &str, percent: i32, cap: Option<i64>) -> pb::Coupon {
    pb::Coupon {
        name: name.to_owned(),
        description: format!("{percent}% off"),
        kind: CouponKind::Percent as i32,
        percent_off: percent,
        max_discount: cap.and_then(yen),
        validity_days: 30,
        ..Default::default()
    }
}

/// A campaign message.
pub(crate) fn campaign(
    coupon_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    total: i64,
) -> pb::CouponCampaign {
    pb::CouponCampaign {
        coupon_id: coupon_id.to_owned(),
        name: "Flash sale".to_owned(),
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
        total_quantity: total,
        ..Default::default()
    }
}

/// A protobuf timestamp.
pub(crate) fn ts(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf timestamp as a time.
pub(crate) fn time_of(raw: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    let raw = raw.expect("a timestamp");
    DateTime::from_timestamp(raw.seconds, u32::try_from(raw.nanos).expect("valid nanos"))
        .expect("valid time")
}

/// A Japanese address already in normal form.
pub(crate) fn address() -> PostalAddress {
    PostalAddress {
        recipient_name: "Hanako Yamada".to_owned(),
        recipient_name_kana: String::new(),
        country_code: "JP".to_owned(),
        postal_code: "150-0001".to_owned(),
        region: "東京都".to_owned(),
        locality: "渋谷区".to_owned(),
        address_line1: "神宮前1-2-3".to_owned(),
        address_line2: String::new(),
        phone_number: "09012345678".to_owned(),
    }
}

/// The `ErrorInfo` metadata value under `key`.
pub(crate) fn metadata(status: &tonic::Status, key: &str) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}

/// `(code, reason)` of a status.
pub(crate) fn refusal(status: &tonic::Status) -> (tonic::Code, String) {
    (status.code(), reason(status))
}

/// A `count(*)` query.
pub(crate) async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count query")
}

/// `(status, order_id)` of a user coupon as stored.
pub(crate) async fn stored(pool: &sqlx::PgPool, user_coupon_id: &str) -> (String, Option<Uuid>) {
    sqlx::query_as("SELECT status, order_id FROM user_coupons WHERE user_coupon_id = $1")
        .bind(Uuid::parse_str(user_coupon_id).expect("a uuid"))
        .fetch_one(pool)
        .await
        .expect("stored user coupon")
}

/// `(kind, order_id)` of every stored history entry of a user coupon, oldest first.
pub(crate) async fn stored_history(
    pool: &sqlx::PgPool,
    user_coupon_id: &str,
) -> Vec<(String, Option<Uuid>)> {
    sqlx::query_as(
        "SELECT kind, order_id FROM user_coupon_history WHERE user_coupon_id = $1 ORDER BY seq",
    )
    .bind(Uuid::parse_str(user_coupon_id).expect("a uuid"))
    .fetch_all(pool)
    .await
    .expect("stored history")
}

/// The kinds of a user coupon's history as the API shows it.
pub(crate) fn history_kinds(coupon: &pb::UserCoupon) -> Vec<pb::UserCouponEventKind> {
    coupon
        .history
        .iter()
        .map(|e| {
            pb::UserCouponEventKind::try_from(e.kind)
                .unwrap_or(pb::UserCouponEventKind::Unspecified)
        })
        .collect()
}

/// Polls `check` until it holds or [`PATIENCE`] runs out.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
