//! The flash-sale benchmark: `buyers` shoppers arrive at a constant rate for one SKU with `units`
//! on hand, each checking out one unit through the BFF (SANDBOX). Exactly `min(buyers, units)`
//! orders must be made and every other buyer must get the clean sold-out answer
//! (`FAILED_PRECONDITION` / `INSUFFICIENT_STOCK`), never an error, a hang or a second unit
//! sold; an `UNAVAILABLE` (load shed, safe to retry by design) is retried with the same
//! idempotency key, as a storefront would, and counted. Then the winners pay on the sandbox page
//! and their orders are followed to FINISHED, so the stock is committed and the invariants of the
//! saga hold too (one payment per order, one shipment, on-hand down by exactly the units sold,
//! nothing reserved, no dead letters).
//!
//! Each offered rate is a round of its own on a fresh SKU, with the same buyers, so the report
//! plots the answer latency against the arrival rate.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod};
use tonic::transport::Channel;
use uuid::Uuid;

use super::connect_all;
use super::saga::{Invariants, SagaTargets, http_client, read_orders};
use super::seed::{self, SeededProduct};
use super::shop::{self, Buyer};
use crate::measure::{Failure, OpenShape, open_loop};
use crate::report::{LoadPoint, Report, Series, Table};

/// The sold-out answer every buyer past the last unit must get.
pub const SOLD_OUT: &str = "FailedPrecondition/INSUFFICIENT_STOCK";

/// How the sale is run.
#[derive(Debug, Clone)]
pub struct FlashSaleOptions {
    /// Shoppers, each trying once per round.
    pub buyers: usize,
    /// Units of the SKU on sale, per round.
    pub units: i64,
    /// Arrivals per second, one round each.
    pub rates: Vec<f64>,
    /// Checkouts in flight at most; later arrivals are dropped and counted.
    pub max_in_flight: usize,
    /// A winner's order must be FINISHED within this time of its creation.
    pub sla: Duration,
    /// HTTP/2 connections to the BFF.
    pub connections: usize,
    /// Sign-ups in flight while seeding.
    pub register_concurrency: usize,
}

/// What one round's buyers were answered.
#[derive(Debug, Default)]
struct Outcomes {
    orders: Mutex<Vec<(usize, String)>>,
    sold_out: AtomicU64,
    retries: AtomicU64,
    sent: AtomicU64,
}

/// Seeds the buyers, runs one round per rate, then pays the winners and checks the invariants.
pub async fn run(targets: &SagaTargets, options: &FlashSaleOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !options.rates.is_empty(),
        "the sale needs at least one rate"
    );
    let product_channels = connect_all(&targets.product, 1).await?;
    let bff_channels = connect_all(&targets.bff, options.connections).await?;
    let buyers = Arc::new(
        shop::register_buyers(&bff_channels, options.buyers, options.register_concurrency).await?,
    );
    let http = http_client()?;
    let mut paths = Vec::new();
    let mut points = Vec::new();
    let mut rows = Vec::new();
    let mut report_violations = Vec::new();
    let mut held = Vec::new();
    for &rate in &options.rates {
        let sku = seed::products(&product_channels[0], 1)
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("seeding returned no product"))?;
        seed::stock(&product_channels[0], &sku, options.units).await?;
        let outcomes = Arc::new(Outcomes::default());
        let shape = OpenShape {
            rate,
            warmup: Duration::ZERO,
            duration: Duration::from_secs_f64(buyers.len() as f64 / rate),
            max_in_flight: options.max_in_flight,
            drain: Duration::from_secs(60),
        };
        let attempt = Arc::new(Attempt {
            channels: bff_channels.clone(),
            buyers: Arc::clone(&buyers),
            sku_id: sku.sku_id.clone(),
            outcomes: Arc::clone(&outcomes),
        });
        let name = format!(
            "{} buyers, {} units @ {rate}/s: CreateOrder answers (order or sold out)",
            buyers.len(),
            options.units
        );
        let path = open_loop(&name, shape, move |iteration| {
            Arc::clone(&attempt).run(iteration)
        })
        .await?;
        let winners = outcomes
            .orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let paid = pay_winners(&bff_channels, &buyers, &http, &winners, options.sla).await;
        let round = Round {
            targets,
            options,
            sku: &sku,
            outcomes: &outcomes,
            winners: &winners,
            answered_clean: path.ok,
            unpaid_for: shape.duration,
        };
        let (line, violations) = round.check(&path.errors, paid).await?;
        rows.push(vec![
            format!("{rate}/s"),
            winners.len().to_string(),
            outcomes.sold_out.load(Ordering::Relaxed).to_string(),
            (path.error_count() + path.dropped + path.unfinished).to_string(),
            outcomes.retries.load(Ordering::Relaxed).to_string(),
        ]);
        held.push(format!("@ {rate}/s: {line}"));
        report_violations.extend(violations.into_iter().map(|v| format!("@ {rate}/s: {v}")));
        points.push(LoadPoint::of(&path));
        paths.push(path);
    }
    let shape = OpenShape {
        rate: 0.0,
        warmup: Duration::ZERO,
        duration: Duration::from_secs_f64(buyers.len() as f64 / options.rates[0]),
        max_in_flight: options.max_in_flight,
        drain: options.sla,
    };
    let mut report = Report::open("flash-sale", shape, options.connections, paths, Vec::new());
    report.table(Table {
        title: "Answers per round".to_owned(),
        columns: [
            "rate",
            "orders",
            "sold out",
            "other (errors, dropped, unfinished)",
            "UNAVAILABLE retried",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
    });
    report.series = vec![Series {
        name: "CreateOrder answer".to_owned(),
        points,
    }];
    report.note(format!(
        "each round: a fresh SKU with {} units, {} buyers arriving at the offered rate, each \
         CreateOrder of one unit (SANDBOX, a fresh idempotency key, retried with the same key \
         after UNAVAILABLE up to 5 times); latency from the arrival to the answer, orders and \
         sold-out answers alike; the winners then pay on the sandbox page and are followed to \
         FINISHED (SLA {} s from the round's end); the measured window is the arrival span, buyers / rate",
        options.units,
        buyers.len(),
        options.sla.as_secs()
    ));
    for line in held {
        report.note(line);
    }
    for violation in report_violations {
        report.violation(violation);
    }
    Ok(report)
}

/// One buyer's checkout, shared by the arrivals of a round.
#[derive(Debug)]
struct Attempt {
    channels: Vec<Channel>,
    buyers: Arc<Vec<Buyer>>,
    sku_id: String,
    outcomes: Arc<Outcomes>,
}

impl Attempt {
    async fn run(self: Arc<Self>, iteration: u64) -> Result<(), Failure> {
        let index = iteration as usize;
        let buyer = &self.buyers[index % self.buyers.len()];
        let mut orders = bff::order_service_client::OrderServiceClient::new(
            self.channels[index % self.channels.len()].clone(),
        );
        let request = bff::CreateOrderRequest {
            idempotency_key: Uuid::new_v4().to_string(),
            source: Some(bff::create_order_request::Source::ExplicitLines(
                bff::ExplicitLines {
                    lines: vec![bff::OrderLineInput {
                        sku_id: self.sku_id.clone(),
                        quantity: 1,
                    }],
                },
            )),
            shipping_address: Some(shop::address()),
            payment_method: PaymentMethod::Sandbox as i32,
            ..Default::default()
        };
        self.outcomes.sent.fetch_add(1, Ordering::Relaxed);
        let mut attempt = 0;
        loop {
            match orders.create_order(buyer.request(request.clone())).await {
                Ok(response) => {
                    let order = response
                        .into_inner()
                        .order
                        .ok_or_else(|| Failure("CreateOrder returned no order".to_owned()))?;
                    self.outcomes
                        .orders
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((index % self.buyers.len(), order.order_id));
                    return Ok(());
                }
                Err(status) if status.code() == tonic::Code::Unavailable && attempt < 5 => {
                    attempt += 1;
                    self.outcomes.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(status) => {
                    let failure = Failure::from(&status);
                    if failure.0 == SOLD_OUT {
                        self.outcomes.sold_out.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    return Err(failure);
                }
            }
        }
    }
}

/// Pays every winner's order on the sandbox page and follows it to its end, 32 at a time;
/// the statuses the orders ended in (or why following one failed).
async fn pay_winners(
    channels: &[Channel],
    buyers: &[Buyer],
    http: &reqwest::Client,
    winners: &[(usize, String)],
    sla: Duration,
) -> BTreeMap<String, u64> {
    let ended = futures::stream::iter(winners.iter().enumerate())
        .map(|(i, (buyer, order_id))| {
            let mut orders = bff::order_service_client::OrderServiceClient::new(
                channels[i % channels.len()].clone(),
            );
            let buyer = &buyers[*buyer];
            async move {
                let url = shop::payment_url(&mut orders, buyer, order_id, sla).await?;
                shop::pay_on_sandbox_page(http, &url).await?;
                shop::watch_until_terminal(&mut orders, buyer, order_id, sla).await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<Result<OrderStatus, Failure>>>()
        .await;
    let mut statuses = BTreeMap::new();
    for outcome in ended {
        let label = match outcome {
            Ok(status) => status.as_str_name().to_owned(),
            Err(failure) => failure.0,
        };
        *statuses.entry(label).or_default() += 1;
    }
    statuses
}

/// One round's invariants.
struct Round<'a> {
    targets: &'a SagaTargets,
    options: &'a FlashSaleOptions,
    sku: &'a SeededProduct,
    outcomes: &'a Outcomes,
    winners: &'a [(usize, String)],
    /// Orders and sold-out answers.
    answered_clean: u64,
    /// How long the winners wait, unpaid, for the round's arrivals to end.
    unpaid_for: Duration,
}

impl Round<'_> {
    async fn check(
        &self,
        errors: &BTreeMap<String, u64>,
        paid: BTreeMap<String, u64>,
    ) -> anyhow::Result<(String, Vec<String>)> {
        let mut broken = Vec::new();
        let buyers = self.options.buyers as u64;
        let expected = buyers.min(u64::try_from(self.options.units).unwrap_or(0));
        let sold_out = self.outcomes.sold_out.load(Ordering::Relaxed);
        let made = self.winners.len() as u64;
        if made != expected {
            broken.push(format!(
                "{made} CreateOrders answered with an order, expected exactly {expected}"
            ));
        }
        if !errors.is_empty() || self.answered_clean != buyers || made + sold_out != buyers {
            broken.push(format!(
                "of {buyers} buyers {made} got an order and {sold_out} the sold-out answer; the \
                 rest: {errors:?}"
            ));
        }
        let mut distinct: Vec<usize> = self.winners.iter().map(|(buyer, _)| *buyer).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != self.winners.len() {
            broken.push("a buyer got more than one order".to_owned());
        }
        if paid.get("ORDER_STATUS_FINISHED").copied().unwrap_or(0) != made {
            broken.push(format!("the winners' orders ended {paid:?}"));
        }
        let orders = read_orders(
            &self.targets.order_database_url,
            std::slice::from_ref(self.sku),
        )
        .await?;
        let invariants = Invariants {
            targets: self.targets,
            skus: std::slice::from_ref(self.sku),
            on_hand: self.options.units,
            orders: &orders,
            answered: made,
            sent: self.outcomes.sent.load(Ordering::Relaxed),
            charged: &HashMap::new(),
            // The winners pay once the round's arrivals are over: the SLA runs from then.
            sla: self.options.sla + self.unpaid_for,
        };
        let (held, more) = invariants.check().await?;
        if orders.len() as u64 != expected {
            broken.push(format!(
                "the order database holds {} orders of the SKU, expected exactly {expected}",
                orders.len()
            ));
        }
        broken.extend(more);
        let line = format!(
            "{made} orders for {} units, {sold_out} sold-out answers, {} UNAVAILABLE retried; \
             {held}",
            self.options.units,
            self.outcomes.retries.load(Ordering::Relaxed)
        );
        Ok((line, broken))
    }
}
