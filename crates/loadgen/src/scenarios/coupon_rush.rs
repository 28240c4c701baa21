//! The first-come-first-served coupon rush: a campaign of `coupons` coupons and `claimants`
//! shoppers arriving at a constant rate, each claiming through the BFF twice at once (a double
//! click). Exactly `min(claimants, coupons)` coupons must be issued, at most one per shopper, and
//! every other claim must get a clean refusal — `FAILED_PRECONDITION` / `COUPON_SOLD_OUT`, or
//! for a shopper's second click `ALREADY_EXISTS` / `COUPON_ALREADY_CLAIMED` (or the same coupon
//! again: the claim is idempotent per shopper) — never an error.
//!
//! Each offered rate is a round on a fresh campaign with the same shoppers. Afterwards the order
//! database must hold exactly as many user coupons of the campaign as were issued, one per
//! shopper, and the campaign's issued count must equal them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::CouponKind;
use mercato_proto::mercato::order::v1 as order;
use tonic::transport::Channel;
use uuid::Uuid;

use super::connect_all;
use super::shop::{self, Buyer};
use super::sql::{count, rows};
use crate::measure::{Failure, OpenShape, open_loop};
use crate::report::{LoadPoint, Report, Series, Table};

/// Where the BFF, the order service (creating campaigns as an admin) and its database are.
#[derive(Debug, Clone)]
pub struct CouponRushTargets {
    /// The BFF's gRPC URI.
    pub bff: String,
    /// The order service's gRPC URI.
    pub order: String,
    /// The order service's database (the invariants).
    pub order_database_url: String,
}

/// How the rush is run.
#[derive(Debug, Clone)]
pub struct CouponRushOptions {
    /// Coupons per campaign.
    pub coupons: i64,
    /// Shoppers, each claiming twice at once per round.
    pub claimants: usize,
    /// Arrivals (shoppers) per second, one round each.
    pub rates: Vec<f64>,
    /// Shoppers in flight at most; later arrivals are dropped and counted.
    pub max_in_flight: usize,
    /// HTTP/2 connections to the BFF.
    pub connections: usize,
    /// Sign-ups in flight while seeding.
    pub register_concurrency: usize,
}

/// The clean refusals of a claim.
const SOLD_OUT: &str = "FailedPrecondition/COUPON_SOLD_OUT";
const ALREADY_CLAIMED: &str = "AlreadyExists/COUPON_ALREADY_CLAIMED";

/// What one round's claims were answered.
#[derive(Debug, Default)]
struct Outcomes {
    /// (shopper, user coupon) of every claim answered OK.
    issued: Mutex<Vec<(usize, String)>>,
    sold_out: AtomicU64,
    already: AtomicU64,
}

/// Seeds the shoppers, runs one round per rate, checks each round from the order database.
pub async fn run(
    targets: &CouponRushTargets,
    options: &CouponRushOptions,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !options.rates.is_empty(),
        "the rush needs at least one rate"
    );
    let bff_channels = connect_all(&targets.bff, options.connections).await?;
    let order_channels = connect_all(&targets.order, 1).await?;
    let claimants = Arc::new(
        shop::register_buyers(
            &bff_channels,
            options.claimants,
            options.register_concurrency,
        )
        .await?,
    );
    let operator = Principal::new(Uuid::new_v4(), [Role::Admin]);
    let mut paths = Vec::new();
    let mut points = Vec::new();
    let mut rows_out = Vec::new();
    let mut notes = Vec::new();
    let mut violations = Vec::new();
    for &rate in &options.rates {
        let campaign_id = campaign(&order_channels[0], &operator, options.coupons).await?;
        let outcomes = Arc::new(Outcomes::default());
        let claim = Arc::new(Claim {
            channels: bff_channels.clone(),
            claimants: Arc::clone(&claimants),
            campaign_id: campaign_id.clone(),
            outcomes: Arc::clone(&outcomes),
        });
        let shape = OpenShape {
            rate,
            warmup: Duration::ZERO,
            duration: Duration::from_secs_f64(claimants.len() as f64 / rate),
            max_in_flight: options.max_in_flight,
            drain: Duration::from_secs(60),
        };
        let name = format!(
            "{} shoppers × 2 claims, {} coupons @ {rate}/s: ClaimCoupon answers",
            claimants.len(),
            options.coupons
        );
        let path = open_loop(&name, shape, move |iteration| {
            Arc::clone(&claim).run(iteration)
        })
        .await?;
        let issued = outcomes
            .issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (line, broken) = check(
            targets,
            options,
            &campaign_id,
            &issued,
            &path.errors,
            path.dropped + path.unfinished,
        )
        .await?;
        rows_out.push(vec![
            format!("{rate}/s"),
            issued.len().to_string(),
            outcomes.sold_out.load(Ordering::Relaxed).to_string(),
            outcomes.already.load(Ordering::Relaxed).to_string(),
            (path.error_count() + path.dropped + path.unfinished).to_string(),
        ]);
        notes.push(format!("@ {rate}/s: {line}"));
        violations.extend(broken.into_iter().map(|v| format!("@ {rate}/s: {v}")));
        points.push(LoadPoint::of(&path));
        paths.push(path);
    }
    let shape = OpenShape {
        rate: 0.0,
        warmup: Duration::ZERO,
        duration: Duration::from_secs_f64(claimants.len() as f64 / options.rates[0]),
        max_in_flight: options.max_in_flight,
        drain: Duration::from_secs(60),
    };
    let mut report = Report::open("coupon-rush", shape, options.connections, paths, Vec::new());
    report.table(Table {
        title: "Claims per round".to_owned(),
        columns: [
            "rate",
            "issued",
            "sold out",
            "already claimed",
            "other (errors, dropped, unfinished)",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: rows_out,
    });
    report.series = vec![Series {
        name: "ClaimCoupon (both clicks)".to_owned(),
        points,
    }];
    report.note(format!(
        "each round: a fresh campaign of {} coupons (created on the order service as an admin), \
         {} shoppers arriving at the offered rate, each sending two ClaimCoupons at once through \
         the BFF; latency from the arrival to the later of the two answers",
        options.coupons,
        claimants.len()
    ));
    for note in notes {
        report.note(note);
    }
    for violation in violations {
        report.violation(violation);
    }
    Ok(report)
}

/// A FIXED 100-yen coupon and an open campaign of `coupons` of it; the campaign's id.
async fn campaign(channel: &Channel, operator: &Principal, coupons: i64) -> anyhow::Result<String> {
    let mut client = order::coupon_service_client::CouponServiceClient::new(channel.clone());
    let as_operator = |message| {
        let mut request = tonic::Request::new(message);
        operator.write_metadata(request.metadata_mut());
        request
    };
    let coupon = client
        .create_coupon(as_operator(order::CreateCouponRequest {
            coupon: Some(order::Coupon {
                name: "Benchmark rush".to_owned(),
                kind: CouponKind::Fixed.into(),
                fixed_discount: shop::jpy(100),
                validity_days: 30,
                ..order::Coupon::default()
            }),
            idempotency_key: Uuid::new_v4().to_string(),
        }))
        .await
        .context("CreateCoupon while seeding")?
        .into_inner()
        .coupon
        .context("CreateCoupon returned no coupon")?;
    let now = SystemTime::now();
    let mut request = tonic::Request::new(order::CreateCampaignRequest {
        campaign: Some(order::CouponCampaign {
            coupon_id: coupon.coupon_id,
            name: "Benchmark rush".to_owned(),
            start_time: Some((now - Duration::from_secs(60)).into()),
            end_time: Some((now + Duration::from_secs(3_600)).into()),
            total_quantity: coupons,
            ..order::CouponCampaign::default()
        }),
        idempotency_key: Uuid::new_v4().to_string(),
    });
    operator.write_metadata(request.metadata_mut());
    let campaign = client
        .create_campaign(request)
        .await
        .context("CreateCampaign while seeding")?
        .into_inner()
        .campaign
        .context("CreateCampaign returned no campaign")?;
    Ok(campaign.campaign_id)
}

/// One shopper's double click, shared by the arrivals of a round.
#[derive(Debug)]
struct Claim {
    channels: Vec<Channel>,
    claimants: Arc<Vec<Buyer>>,
    campaign_id: String,
    outcomes: Arc<Outcomes>,
}

impl Claim {
    async fn run(self: Arc<Self>, iteration: u64) -> Result<(), Failure> {
        let index = iteration as usize % self.claimants.len();
        let shopper = &self.claimants[index];
        let click = || {
            let mut coupons = bff::coupon_service_client::CouponServiceClient::new(
                self.channels[index % self.channels.len()].clone(),
            );
            let request = shopper.request(bff::ClaimCouponRequest {
                campaign_id: self.campaign_id.clone(),
            });
            async move { coupons.claim_coupon(request).await }
        };
        let (first, second) = futures::join!(click(), click());
        let mut failure = None;
        for answer in [first, second] {
            match answer {
                Ok(response) => {
                    let held = response
                        .into_inner()
                        .user_coupon
                        .map(|coupon| coupon.user_coupon_id)
                        .unwrap_or_default();
                    self.outcomes
                        .issued
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((index, held));
                }
                Err(status) => match Failure::from(&status) {
                    Failure(label) if label == SOLD_OUT => {
                        self.outcomes.sold_out.fetch_add(1, Ordering::Relaxed);
                    }
                    Failure(label) if label == ALREADY_CLAIMED => {
                        self.outcomes.already.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failure = Some(other),
                },
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// One round's invariants; a line for the report and what broke.
async fn check(
    targets: &CouponRushTargets,
    options: &CouponRushOptions,
    campaign_id: &str,
    issued: &[(usize, String)],
    errors: &BTreeMap<String, u64>,
    lost: u64,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut broken = Vec::new();
    let expected = (options.claimants as u64).min(u64::try_from(options.coupons).unwrap_or(0));
    // A shopper's two OK answers must name one coupon (the claim is idempotent per shopper).
    let mut by_shopper = BTreeMap::<usize, Vec<&str>>::new();
    for (shopper, coupon) in issued {
        by_shopper.entry(*shopper).or_default().push(coupon);
    }
    let doubled = by_shopper
        .values()
        .filter(|coupons| coupons.iter().any(|c| *c != coupons[0]))
        .count();
    if doubled > 0 {
        broken.push(format!(
            "{doubled} shoppers were issued two different coupons"
        ));
    }
    let winners = by_shopper.len() as u64;
    if winners != expected {
        broken.push(format!(
            "{winners} shoppers were issued a coupon, expected exactly {expected}"
        ));
    }
    if !errors.is_empty() || lost > 0 {
        broken.push(format!(
            "claims not answered cleanly: {errors:?}, {lost} dropped or unfinished"
        ));
    }
    let db = &targets.order_database_url;
    let held = rows(
        db,
        &format!(
            "SELECT count(*), count(DISTINCT user_id) FROM user_coupons \
             WHERE campaign_id = '{campaign_id}'"
        ),
    )
    .await?;
    let (rows_held, users): (u64, u64) = match held.first().map(Vec::as_slice) {
        Some([rows, users]) => (rows.parse()?, users.parse()?),
        _ => anyhow::bail!("unexpected answer {held:?}"),
    };
    let counted = count(
        db,
        &format!(
            "SELECT issued_quantity FROM coupon_campaigns WHERE campaign_id = '{campaign_id}'"
        ),
    )
    .await?;
    if rows_held != expected || users != rows_held || counted != rows_held {
        broken.push(format!(
            "the order database holds {rows_held} coupons of the campaign for {users} users and \
             counts {counted} issued, expected {expected} for {expected} users"
        ));
    }
    let line = format!(
        "{winners} shoppers issued a coupon of {} ({expected} expected), {rows_held} user coupons \
         in the database for {users} users, campaign issued count {counted}",
        options.coupons
    );
    Ok((line, broken))
}
