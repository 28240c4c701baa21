//! The saga benchmark: orders from `CreateOrder` to FINISHED per second with every service on the
//! bus — the BFF, user, product, order, payment and process services — for the POINTS method
//! (wallets charged through the BFF while seeding; the payment service debits them on
//! `order.created`) and the SANDBOX method (each order paid as a browser would: the payment page
//! the BFF's `GetOrderPayment` points to is loaded and its Pay form posted, so the payment service
//! signs the provider's event and runs it through its own webhook verification).
//!
//! Each method is driven in an open loop at each offered rate; an iteration is one shopper's
//! whole journey (check out, pay if needed, follow the order with `WatchOrder` until it ends),
//! its latency from when it was due to FINISHED seen through the BFF. The per-step latencies
//! (created → AWAITING_PAYMENT → PAID → SHIPPED → FINISHED) come from the order database's own
//! history rows afterwards, so they cost the run nothing. The baseline is `pgbench` replaying the
//! order database's writes of one saga (the checkout transaction and the four transitions).
//!
//! Then the invariants, straight from the four databases and the broker: every order of the run
//! is FINISHED within the SLA; each has exactly one payment, SUCCEEDED, of the order's total and
//! method; each POINTS order one wallet debit of its total; every wallet's balance equals the sum
//! of its ledger and none is negative, each buyer's balance = charged − spent; every reservation
//! COMMITTED, on-hand stock fell by exactly the units ordered, nothing reserved; one DELIVERED
//! shipment per order with its stock committed; every dead-letter queue empty. A broken invariant
//! is recorded in the report and fails the run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::{OrderStatus, PaymentMethod};
use tonic::transport::Channel;
use uuid::Uuid;

use super::bus::{DeadLetterProbe, dead_letters};
use super::seed::{self, SeededProduct};
use super::shop::{self, Buyer};
use super::sql::{count, in_list, rows};
use super::{connect_all, pgbench};
use crate::measure::{Failure, LoadShape, OpenShape, micros, new_histogram, open_loop};
use crate::report::{LoadPoint, Ratio, Report, Series, Table};

/// Where the BFF, the product service, the four databases and the broker's dead letters are.
#[derive(Debug, Clone)]
pub struct SagaTargets {
    /// The BFF's gRPC URI.
    pub bff: String,
    /// The product service's gRPC URI (seeding the catalog).
    pub product: String,
    /// The order service's database (pgbench, step latencies, invariants).
    pub order_database_url: String,
    /// The product service's database (stock invariants).
    pub product_database_url: String,
    /// The payment service's database (payment and wallet invariants).
    pub payment_database_url: String,
    /// The process service's database (shipment invariants).
    pub process_database_url: String,
    /// The dead-letter queues of the services' broker namespace.
    pub dead_letters: Arc<dyn DeadLetterProbe>,
}

/// A payment method the saga is driven with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// Paid from the buyer's points wallet by the payment service itself.
    Points,
    /// Paid on the built-in sandbox provider's page.
    Sandbox,
}

impl Method {
    fn proto(self) -> PaymentMethod {
        match self {
            Self::Points => PaymentMethod::Points,
            Self::Sandbox => PaymentMethod::Sandbox,
        }
    }

    /// Its name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Points => "points",
            Self::Sandbox => "sandbox",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "points" => Ok(Self::Points),
            "sandbox" => Ok(Self::Sandbox),
            other => Err(format!("unknown method {other:?} (points, sandbox)")),
        }
    }
}

/// How hard and how long to drive the saga.
#[derive(Debug, Clone)]
pub struct SagaOptions {
    /// The methods, each driven at every rate.
    pub methods: Vec<Method>,
    /// Offered orders per second, one open-loop run each.
    pub rates: Vec<f64>,
    /// Arrival window and warm-up of each run (`concurrency` is the baseline's pgbench clients).
    pub shape: LoadShape,
    /// At most this many journeys in flight; later arrivals are dropped and counted.
    pub max_in_flight: usize,
    /// Shoppers sharing the load (more are signed up when the wallets would not cover it).
    pub buyers: usize,
    /// Every order must be FINISHED within this time of its creation.
    pub sla: Duration,
    /// HTTP/2 connections to the BFF.
    pub connections: usize,
    /// Whether to measure the pgbench baseline.
    pub baseline: bool,
    /// The process service's `SHIPMENT_DELAY`, for the report (it is part of every saga).
    pub shipment_delay: Option<Duration>,
}

/// SKUs an order picks its lines from.
const SKUS: usize = 4;
/// Stock per SKU: enough that a run never sells out.
const ON_HAND: i64 = 100_000_000;
/// What one order can cost at most: two lines of one unit at ≤ 1,003 yen, and any shipping fee.
const MAX_ORDER_TOTAL: i64 = 5_000;
/// The most one charge may add, and the most a wallet may hold (the payment service's limits).
const MAX_CHARGE: i64 = 1_000_000;
const MAX_BALANCE: i64 = 10_000_000;
/// The saga steps, in order, as the order history names the statuses they reach.
const STEPS: [&str; 4] = ["AWAITING_PAYMENT", "PAID", "SHIPPED", "FINISHED"];

/// One open-loop run: the method and the offered rate.
#[derive(Debug, Clone, Copy)]
struct Step {
    method: Method,
    rate: f64,
}

impl Step {
    fn name(self) -> String {
        format!(
            "{} checkout → FINISHED @ {}/s",
            self.method.name(),
            self.rate
        )
    }
}

/// Orders created by the run: their step, and whether they arrived in the measured window.
#[derive(Debug, Default)]
struct Created {
    orders: Mutex<Vec<(usize, bool, String)>>,
    sent: std::sync::atomic::AtomicU64,
}

/// Seeds, measures pgbench and every (method, rate), then reads the step latencies and checks the
/// invariants.
pub async fn run(targets: &SagaTargets, options: &SagaOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !options.methods.is_empty() && !options.rates.is_empty(),
        "the saga needs at least one method and one rate"
    );
    let product_channels = connect_all(&targets.product, 1).await?;
    let skus = seed::products(&product_channels[0], SKUS).await?;
    for sku in &skus {
        seed::stock(&product_channels[0], sku, ON_HAND).await?;
    }
    let bff_channels = connect_all(&targets.bff, options.connections).await?;

    // Each wallet must cover its share of the POINTS orders without nearing its maximum.
    let window = (options.shape.warmup + options.shape.duration).as_secs_f64();
    let points_arrivals: f64 = if options.methods.contains(&Method::Points) {
        options.rates.iter().map(|rate| rate * window).sum()
    } else {
        0.0
    };
    let per_wallet = MAX_BALANCE / 2 / MAX_ORDER_TOTAL;
    let buyers_needed = (points_arrivals / per_wallet as f64).ceil() as usize;
    let buyer_count = options.buyers.max(buyers_needed).max(1);
    let buyers = shop::register_buyers(&bff_channels, buyer_count, 16).await?;
    let mut charged = HashMap::new();
    if points_arrivals > 0.0 {
        let orders_per_buyer = (points_arrivals / buyer_count as f64).ceil() as i64 + 2;
        let need = orders_per_buyer * MAX_ORDER_TOTAL;
        for buyer in &buyers {
            let mut balance = 0;
            while balance < need {
                let amount = MAX_CHARGE.min(need - balance);
                shop::charge(&bff_channels[0], buyer, amount).await?;
                balance += amount;
            }
            charged.insert(buyer.user_id, balance);
        }
    }

    let mut paths = Vec::new();
    let mut ratios = Vec::new();
    let baseline = if options.baseline {
        let replay = pgbench::run(
            &targets.order_database_url,
            "pgbench: the order database's writes of one saga (5 transactions)",
            &replay_script(&skus),
            options.shape,
        )
        .await?;
        delete_replayed(&targets.order_database_url).await?;
        paths.push(replay.clone());
        Some(replay)
    } else {
        None
    };

    let buyers = Arc::new(buyers);
    let created = Arc::new(Created::default());
    let http = http_client()?;
    let mut steps = Vec::new();
    let mut series = BTreeMap::<Method, Vec<LoadPoint>>::new();
    for &method in &options.methods {
        for &rate in &options.rates {
            let step = Step { method, rate };
            let index = steps.len();
            steps.push(step);
            let shape = OpenShape {
                rate,
                warmup: options.shape.warmup,
                duration: options.shape.duration,
                max_in_flight: options.max_in_flight,
                drain: options.sla + Duration::from_secs(5),
            };
            let journey = Journey {
                channels: bff_channels.clone(),
                buyers: Arc::clone(&buyers),
                skus: skus.iter().map(|sku| sku.sku_id.clone()).collect(),
                http: http.clone(),
                created: Arc::clone(&created),
                sla: options.sla,
                method,
                step: index,
                warmup_arrivals: shape.arrivals().0,
            };
            let journey = Arc::new(journey);
            let path = open_loop(&step.name(), shape, move |iteration| {
                Arc::clone(&journey).run(iteration)
            })
            .await?;
            series.entry(method).or_default().push(LoadPoint::of(&path));
            paths.push(path);
        }
    }

    let orders = read_orders(&targets.order_database_url, &skus).await?;
    let created_orders = created
        .orders
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let step_table = step_latencies(&steps, &created_orders, &orders)?;
    let invariants = Invariants {
        targets,
        skus: &skus,
        on_hand: ON_HAND,
        orders: &orders,
        answered: created_orders.len() as u64,
        sent: created.sent.load(std::sync::atomic::Ordering::Relaxed),
        charged: &charged,
        sla: options.sla,
    };
    let (held, violations) = invariants.check().await?;

    let best = paths
        .iter()
        .filter(|path| path.offered_rps.is_some() && path.dropped == 0 && path.unfinished == 0)
        .filter(|path| path.error_count() == 0)
        .map(|path| path.rps)
        .fold(0.0_f64, f64::max);
    if let Some(replay) = &baseline {
        ratios.push(Ratio::new(
            "best clean saga rate (no errors, drops or stragglers) / pgbench saga replays, per \
             second",
            best,
            replay.rps,
        ));
    }
    let shape = OpenShape {
        rate: 0.0,
        warmup: options.shape.warmup,
        duration: options.shape.duration,
        max_in_flight: options.max_in_flight,
        drain: options.sla,
    };
    let mut report = Report::open("saga", shape, options.connections, paths, ratios);
    report.table(step_table);
    report.series = series
        .into_iter()
        .map(|(method, points)| Series {
            name: method.name().to_owned(),
            points,
        })
        .collect();
    let delay = options.shipment_delay.map_or_else(
        || "the process service's SHIPMENT_DELAY".to_owned(),
        |delay| format!("SHIPMENT_DELAY = {} ms", delay.as_millis()),
    );
    report.note(format!(
        "each journey: CreateOrder through the BFF (1-2 lines of {SKUS} SKUs, a fresh \
         idempotency key), for SANDBOX GetOrderPayment until the payment is attached then the \
         sandbox page loaded and its Pay form posted, then WatchOrder until the order ends; \
         latency runs from when the arrival was due to FINISHED seen by the shopper; {} \
         shoppers, SLA {} s; the carrier waits {delay} before shipping and again before \
         delivering, so SHIPPED and FINISHED include it; step latencies come from the order \
         database's history (change times), measured arrivals only",
        buyers.len(),
        options.sla.as_secs()
    ));
    if baseline.is_some() {
        report.note(
            "pgbench replays, per saga, the checkout transaction of the checkout scenario and \
             four transitions (row lock, status and version update, history row, watch notify, \
             outbox row with its relay notify; PAID also an inbox row), each its own \
             transaction, with the outbox rows written already published so the relay leaves \
             them alone; not the product, payment or process databases' work"
                .to_owned(),
        );
    }
    report.note(held);
    for violation in violations {
        report.violation(violation);
    }
    Ok(report)
}

pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default TLS provider; pages are plain HTTP, but the client
    // still wants one installed (an error only means one already is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

/// One shopper's journey, shared by the iterations of one run.
#[derive(Debug)]
struct Journey {
    channels: Vec<Channel>,
    buyers: Arc<Vec<Buyer>>,
    skus: Vec<String>,
    http: reqwest::Client,
    created: Arc<Created>,
    sla: Duration,
    method: Method,
    step: usize,
    warmup_arrivals: u64,
}

impl Journey {
    async fn run(self: Arc<Self>, iteration: u64) -> Result<(), Failure> {
        let index = iteration as usize;
        let buyer = &self.buyers[index % self.buyers.len()];
        let mut orders = bff::order_service_client::OrderServiceClient::new(
            self.channels[index % self.channels.len()].clone(),
        );
        let width = 1 + index % 2;
        let lines = (0..width)
            .map(|i| bff::OrderLineInput {
                sku_id: self.skus[(index + i) % self.skus.len()].clone(),
                quantity: 1,
            })
            .collect();
        let started = tokio::time::Instant::now();
        self.created
            .sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let order = orders
            .create_order(buyer.request(bff::CreateOrderRequest {
                idempotency_key: Uuid::new_v4().to_string(),
                source: Some(bff::create_order_request::Source::ExplicitLines(
                    bff::ExplicitLines { lines },
                )),
                shipping_address: Some(shop::address()),
                payment_method: self.method.proto() as i32,
                ..Default::default()
            }))
            .await
            .map_err(|status| Failure(format!("CreateOrder {}", Failure::from(&status).0)))?
            .into_inner()
            .order
            .ok_or_else(|| Failure("CreateOrder returned no order".to_owned()))?;
        let order_id = order.order_id;
        self.created
            .orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                self.step,
                iteration >= self.warmup_arrivals,
                order_id.clone(),
            ));
        let left = || self.sla.saturating_sub(started.elapsed());
        if self.method == Method::Sandbox {
            let url = shop::payment_url(&mut orders, buyer, &order_id, left()).await?;
            shop::pay_on_sandbox_page(&self.http, &url).await?;
        }
        let ended = shop::watch_until_terminal(&mut orders, buyer, &order_id, left()).await?;
        if ended == OrderStatus::Finished {
            Ok(())
        } else {
            Err(Failure(format!("ended {}", ended.as_str_name())))
        }
    }
}

/// One order of the run as the order database holds it.
#[derive(Debug, Clone)]
pub(crate) struct SagaOrder {
    order_id: String,
    user_id: Uuid,
    status: String,
    method: i32,
    total: i64,
    created_us: i64,
    /// When the order reached each of [`STEPS`], if it did.
    reached_us: [Option<i64>; 4],
}

impl SagaOrder {
    fn finished_after(&self) -> Option<Duration> {
        let finished = self.reached_us[3]?;
        u64::try_from(finished - self.created_us)
            .ok()
            .map(Duration::from_micros)
    }
}

/// Every order holding one of `skus`, with when it reached each step.
pub(crate) async fn read_orders(
    order_database_url: &str,
    skus: &[SeededProduct],
) -> anyhow::Result<Vec<SagaOrder>> {
    let sku_list = in_list(skus.iter().map(|sku| sku.sku_id.as_str()));
    let at = |status: &str| {
        format!(
            "(extract(epoch FROM min(h.change_time) FILTER (WHERE h.to_status = '{status}')) \
             * 1000000)::bigint"
        )
    };
    let sql = format!(
        "SELECT o.order_id, o.user_id, o.status, o.payment_method, o.total, \
         (extract(epoch FROM o.create_time) * 1000000)::bigint, {}, {}, {}, {} \
         FROM orders o LEFT JOIN order_history h USING (order_id) \
         WHERE o.order_id IN (SELECT order_id FROM order_lines WHERE sku_id IN ({sku_list})) \
         GROUP BY o.order_id",
        at(STEPS[0]),
        at(STEPS[1]),
        at(STEPS[2]),
        at(STEPS[3])
    );
    let mut orders = Vec::new();
    for row in rows(order_database_url, &sql).await? {
        anyhow::ensure!(row.len() == 10, "unexpected order row {row:?}");
        let optional = |cell: &str| -> anyhow::Result<Option<i64>> {
            if cell.is_empty() {
                Ok(None)
            } else {
                Ok(Some(cell.parse()?))
            }
        };
        orders.push(SagaOrder {
            order_id: row[0].clone(),
            user_id: row[1].parse().context("an order's user id")?,
            status: row[2].clone(),
            method: row[3].parse().context("an order's payment method")?,
            total: row[4].parse().context("an order's total")?,
            created_us: row[5].parse().context("an order's create time")?,
            reached_us: [
                optional(&row[6])?,
                optional(&row[7])?,
                optional(&row[8])?,
                optional(&row[9])?,
            ],
        });
    }
    Ok(orders)
}

/// p50 and p99 of each step per run, measured arrivals only, in milliseconds.
fn step_latencies(
    steps: &[Step],
    created: &[(usize, bool, String)],
    orders: &[SagaOrder],
) -> anyhow::Result<Table> {
    let by_id: HashMap<&str, &SagaOrder> = orders
        .iter()
        .map(|order| (order.order_id.as_str(), order))
        .collect();
    let mut rows = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let mut histograms = [
            new_histogram()?,
            new_histogram()?,
            new_histogram()?,
            new_histogram()?,
            new_histogram()?,
        ];
        let mut count = 0;
        for (_, _, order_id) in created
            .iter()
            .filter(|(at, measured, _)| *at == index && *measured)
        {
            let Some(order) = by_id.get(order_id.as_str()) else {
                continue;
            };
            count += 1;
            let mut previous = order.created_us;
            for (k, reached) in order.reached_us.iter().enumerate() {
                if let Some(at) = reached {
                    histograms[k].saturating_record(micros(Duration::from_micros(
                        u64::try_from(at - previous).unwrap_or(0),
                    )));
                    previous = *at;
                }
            }
            if let Some(total) = order.finished_after() {
                histograms[4].saturating_record(micros(total));
            }
        }
        let ms = |histogram: &hdrhistogram::Histogram<u64>, q: f64| {
            if histogram.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.1}", histogram.value_at_quantile(q) as f64 / 1_000.0)
            }
        };
        let mut row = vec![step.name(), count.to_string()];
        for histogram in &histograms {
            row.push(format!("{} / {}", ms(histogram, 0.5), ms(histogram, 0.99)));
        }
        rows.push(row);
    }
    Ok(Table {
        title: "Saga steps from the order database's history, p50 / p99 ms (measured arrivals)"
            .to_owned(),
        columns: [
            "run",
            "orders",
            "created → AWAITING_PAYMENT",
            "→ PAID",
            "→ SHIPPED",
            "→ FINISHED",
            "created → FINISHED",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
    })
}

/// What the invariants of a run whose orders all end FINISHED are checked against.
pub(crate) struct Invariants<'a> {
    pub(crate) targets: &'a SagaTargets,
    pub(crate) skus: &'a [SeededProduct],
    /// Units on hand per SKU before the run.
    pub(crate) on_hand: i64,
    pub(crate) orders: &'a [SagaOrder],
    /// CreateOrder answers OK (every iteration records its order).
    pub(crate) answered: u64,
    /// CreateOrder calls sent.
    pub(crate) sent: u64,
    /// Points charged per buyer.
    pub(crate) charged: &'a HashMap<Uuid, i64>,
    pub(crate) sla: Duration,
}

impl Invariants<'_> {
    /// A line for the report of what held, and every broken invariant.
    pub(crate) async fn check(&self) -> anyhow::Result<(String, Vec<String>)> {
        let mut broken = Vec::new();
        let orders = self.orders;
        let total = orders.len() as u64;
        if !(self.answered <= total && total <= self.sent) {
            broken.push(format!(
                "{} CreateOrders answered OK and {} were sent, but the order database holds \
                 {total} orders of this run",
                self.answered, self.sent
            ));
        }
        let mut statuses = BTreeMap::<&str, u64>::new();
        for order in orders {
            *statuses.entry(order.status.as_str()).or_default() += 1;
        }
        let unfinished: Vec<&SagaOrder> = orders
            .iter()
            .filter(|order| order.status != "FINISHED")
            .collect();
        if !unfinished.is_empty() {
            broken.push(format!(
                "{} of {total} orders are not FINISHED ({statuses:?}), e.g. {}",
                unfinished.len(),
                sample(unfinished.iter().map(|order| order.order_id.as_str()))
            ));
        }
        let late: Vec<&SagaOrder> = orders
            .iter()
            .filter(|order| order.finished_after().is_some_and(|after| after > self.sla))
            .collect();
        if !late.is_empty() {
            broken.push(format!(
                "{} orders finished later than the SLA of {} s after creation, e.g. {}",
                late.len(),
                self.sla.as_secs(),
                sample(late.iter().map(|order| order.order_id.as_str()))
            ));
        }
        let slowest = orders
            .iter()
            .filter_map(SagaOrder::finished_after)
            .max()
            .unwrap_or_default();
        let ids = in_list(orders.iter().map(|order| order.order_id.as_str()));

        self.payments(&ids, &mut broken).await?;
        self.wallets(&ids, &mut broken).await?;
        let units = self.stock(&ids, &mut broken).await?;
        self.shipments(&ids, &mut broken).await?;
        if let Some(full) = dead_letters(self.targets.dead_letters.as_ref()).await? {
            broken.push(format!("dead letters after the run: {full}"));
        }
        let held = format!(
            "invariants checked: {total} orders of this run ({} CreateOrders answered OK of {} \
             sent), {statuses:?}, slowest created → FINISHED {:.1} s (SLA {} s); one SUCCEEDED \
             payment of the order's total and method per order; one debit per POINTS order; \
             every wallet = Σ ledger, none negative, each buyer's = charged − spent; {units} \
             units ordered = committed = on-hand drop, nothing left reserved; one DELIVERED \
             shipment per order with its stock committed; dead-letter queues empty — {}",
            self.answered,
            self.sent,
            slowest.as_secs_f64(),
            self.sla.as_secs(),
            if broken.is_empty() {
                "all held".to_owned()
            } else {
                format!("{} broken", broken.len())
            }
        );
        Ok((held, broken))
    }

    async fn payments(&self, ids: &str, broken: &mut Vec<String>) -> anyhow::Result<()> {
        let payments = rows(
            &self.targets.payment_database_url,
            &format!(
                "SELECT order_id, count(*), min(status), max(status), min(method), \
                 sum(amount) FROM payments WHERE order_id IN ({ids}) GROUP BY order_id"
            ),
        )
        .await?;
        let by_order: HashMap<&str, &Vec<String>> =
            payments.iter().map(|row| (row[0].as_str(), row)).collect();
        let mut wrong = Vec::new();
        for order in self.orders {
            let expected_method = if order.method == PaymentMethod::Points as i32 {
                "POINTS"
            } else {
                "SANDBOX"
            };
            let total = order.total.to_string();
            let fine = by_order.get(order.order_id.as_str()).is_some_and(|row| {
                row[1] == "1"
                    && row[2] == "SUCCEEDED"
                    && row[3] == "SUCCEEDED"
                    && row[4] == expected_method
                    && row[5] == total
            });
            if !fine {
                wrong.push(format!(
                    "{} ({:?})",
                    order.order_id,
                    by_order.get(order.order_id.as_str())
                ));
            }
        }
        if !wrong.is_empty() {
            broken.push(format!(
                "{} orders lack exactly one SUCCEEDED payment of their total and method, e.g. {}",
                wrong.len(),
                sample(wrong.iter().map(String::as_str))
            ));
        }
        Ok(())
    }

    async fn wallets(&self, ids: &str, broken: &mut Vec<String>) -> anyhow::Result<()> {
        let db = &self.targets.payment_database_url;
        let drifted = count(
            db,
            "SELECT count(*) FROM wallets w WHERE w.balance < 0 OR w.balance <> \
             coalesce((SELECT sum(l.amount) FROM ledger_entries l WHERE l.user_id = w.user_id), 0)",
        )
        .await?;
        let negative = count(
            db,
            "SELECT count(*) FROM ledger_entries WHERE balance_after < 0",
        )
        .await?;
        if drifted > 0 || negative > 0 {
            broken.push(format!(
                "{drifted} wallets differ from the sum of their ledger or are negative; \
                 {negative} ledger entries left a negative balance"
            ));
        }
        let points: Vec<&SagaOrder> = self
            .orders
            .iter()
            .filter(|order| order.method == PaymentMethod::Points as i32)
            .collect();
        let debits = rows(
            db,
            &format!(
                "SELECT order_id, count(*), sum(amount) FROM ledger_entries \
                 WHERE kind = 'SPEND' AND order_id IN ({ids}) GROUP BY order_id"
            ),
        )
        .await?;
        let by_order: HashMap<&str, &Vec<String>> =
            debits.iter().map(|row| (row[0].as_str(), row)).collect();
        let wrong: Vec<&str> = points
            .iter()
            .filter(|order| {
                !by_order
                    .get(order.order_id.as_str())
                    .is_some_and(|row| row[1] == "1" && row[2] == (-order.total).to_string())
            })
            .map(|order| order.order_id.as_str())
            .collect();
        let points_ids: std::collections::HashSet<&str> =
            points.iter().map(|order| order.order_id.as_str()).collect();
        let stray = debits
            .iter()
            .filter(|row| !points_ids.contains(row[0].as_str()))
            .count();
        if !wrong.is_empty() || stray > 0 {
            broken.push(format!(
                "{} POINTS orders lack exactly one debit of their total, e.g. {}; {stray} \
                 debits for orders that are not POINTS orders of this run",
                wrong.len(),
                sample(wrong.iter().copied())
            ));
        }
        let refunds = count(
            db,
            &format!(
                "SELECT count(*) FROM ledger_entries WHERE kind = 'REFUND' AND order_id IN ({ids})"
            ),
        )
        .await?;
        if refunds > 0 {
            broken.push(format!("{refunds} refunds for orders that all finished"));
        }
        if self.charged.is_empty() {
            return Ok(());
        }
        let mut spent = HashMap::<Uuid, i64>::new();
        for order in &points {
            *spent.entry(order.user_id).or_default() += order.total;
        }
        let balances = rows(
            db,
            &format!(
                "SELECT user_id, balance FROM wallets WHERE user_id IN ({})",
                in_list(
                    self.charged
                        .keys()
                        .map(Uuid::to_string)
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str)
                )
            ),
        )
        .await?;
        let balances: HashMap<Uuid, i64> = balances
            .iter()
            .filter_map(|row| Some((row[0].parse().ok()?, row[1].parse().ok()?)))
            .collect();
        let off: Vec<String> = self
            .charged
            .iter()
            .filter_map(|(user, charged)| {
                let expected = charged - spent.get(user).copied().unwrap_or(0);
                let actual = balances.get(user).copied();
                (actual != Some(expected))
                    .then(|| format!("{user}: {actual:?}, expected {expected}"))
            })
            .collect();
        if !off.is_empty() {
            broken.push(format!(
                "{} buyers' balances are not charged − spent, e.g. {}",
                off.len(),
                sample(off.iter().map(String::as_str))
            ));
        }
        Ok(())
    }

    /// Checks the stock; returns the units the run's orders hold.
    async fn stock(&self, ids: &str, broken: &mut Vec<String>) -> anyhow::Result<u64> {
        let product_db = &self.targets.product_database_url;
        let sku_list = in_list(self.skus.iter().map(|sku| sku.sku_id.as_str()));
        let ordered_rows = rows(
            &self.targets.order_database_url,
            &format!(
                "SELECT sku_id, sum(quantity) FROM order_lines WHERE order_id IN ({ids}) \
                 GROUP BY sku_id"
            ),
        )
        .await?;
        let ordered: HashMap<String, i64> = ordered_rows
            .iter()
            .filter_map(|row| Some((row[0].clone(), row[1].parse().ok()?)))
            .collect();
        let levels = rows(
            product_db,
            &format!(
                "SELECT sku_id, on_hand, reserved FROM stock_levels WHERE sku_id IN ({sku_list})"
            ),
        )
        .await?;
        let mut units = 0;
        for row in &levels {
            let (on_hand, reserved): (i64, i64) = (row[1].parse()?, row[2].parse()?);
            let sold = ordered.get(&row[0]).copied().unwrap_or(0);
            units += sold;
            if on_hand != self.on_hand - sold || reserved != 0 || sold > self.on_hand {
                broken.push(format!(
                    "SKU {}: on hand {on_hand} and {reserved} reserved after {sold} units of {} \
                     were ordered and finished (expected on hand {}, nothing reserved)",
                    row[0],
                    self.on_hand,
                    self.on_hand - sold
                ));
            }
        }
        if levels.len() != self.skus.len() {
            broken.push(format!(
                "{} of {} SKUs have stock levels",
                levels.len(),
                self.skus.len()
            ));
        }
        let reservations = rows(
            product_db,
            &format!(
                "SELECT status, count(*) FROM reservations WHERE order_id IN ({ids}) \
                 GROUP BY status"
            ),
        )
        .await?;
        let committed: u64 = reservations
            .iter()
            .filter(|row| row[0] == "COMMITTED")
            .filter_map(|row| row[1].parse::<u64>().ok())
            .sum();
        let all: u64 = reservations
            .iter()
            .filter_map(|row| row[1].parse::<u64>().ok())
            .sum();
        if committed != self.orders.len() as u64 || all != committed {
            broken.push(format!(
                "{} orders but reservations {reservations:?}",
                self.orders.len()
            ));
        }
        Ok(u64::try_from(units).unwrap_or(0))
    }

    async fn shipments(&self, ids: &str, broken: &mut Vec<String>) -> anyhow::Result<()> {
        // The process service records a step only after the order service accepted it, so the
        // last DELIVERED rows may trail the FINISHED orders by a moment.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let shipments = rows(
                &self.targets.process_database_url,
                &format!(
                    "SELECT status, stock_committed, count(*), count(DISTINCT order_id) \
                     FROM shipments WHERE order_id IN ({ids}) GROUP BY status, stock_committed"
                ),
            )
            .await?;
            let delivered: u64 = shipments
                .iter()
                .filter(|row| row[0] == "DELIVERED" && row[1] == "t" && row[2] == row[3])
                .filter_map(|row| row[2].parse::<u64>().ok())
                .sum();
            let all: u64 = shipments
                .iter()
                .filter_map(|row| row[2].parse::<u64>().ok())
                .sum();
            let expected = self.orders.len() as u64;
            if delivered == expected && all == expected {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                broken.push(format!(
                    "{expected} orders but shipments (status, stock committed, rows, orders) \
                     {shipments:?}"
                ));
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Up to five of `items`, comma-separated.
pub(crate) fn sample<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.take(5).collect::<Vec<_>>().join(", ")
}

/// The order database's writes of one saga: the checkout transaction, then AWAITING_PAYMENT,
/// PAID (with the consumer's inbox row), SHIPPED and FINISHED, each a transaction taking the
/// row lock, stepping the version and writing a history row and an outbox row (already
/// published, so the relay leaves it alone).
fn replay_script(skus: &[SeededProduct]) -> String {
    let sku = |i: usize| &skus[i % skus.len()].sku_id;
    let product = |i: usize| &skus[i % skus.len()].product_id;
    let seller = &skus[0].seller.user_id;
    let mut script = format!(
        r#"SELECT gen_random_uuid() AS order_id, gen_random_uuid() AS user_id, gen_random_uuid() AS payment_id \gset
BEGIN;
INSERT INTO order_requests (user_id, idempotency_key, fingerprint, order_id, state, lease_until, create_time) VALUES (:user_id, :order_id, '\x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', :order_id, 'RUNNING', now() + make_interval(secs => 30), now()) ON CONFLICT (user_id, idempotency_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, order_id = EXCLUDED.order_id, state = 'RUNNING', error_code = NULL, error_message = NULL, error_details = NULL, lease_until = EXCLUDED.lease_until, create_time = EXCLUDED.create_time WHERE order_requests.create_time < now() - make_interval(hours => 24) RETURNING order_id;
INSERT INTO orders (order_id, user_id, status, currency, subtotal, discount, shipping_fee, total, payment_method, user_coupon_id, coupon_id, coupon_name, coupon_kind, shipping_address, version, create_time, update_time, payment_due_time) VALUES (:order_id, :user_id, 'PENDING', 'JPY', 2001, 0, 0, 2001, 2, NULL, NULL, NULL, NULL, '\x0a0b42656e63686d61726b', 1, now(), now(), now() + interval '30 minutes');
INSERT INTO order_lines (order_id, position, sku_id, product_id, seller_id, product_name, sku_code, option_values, main_image_url, quantity, unit_price, line_total) VALUES (:order_id, 0, '{sku0}', '{product0}', '{seller}', 'Benchmark product 0', 'BENCH-REPLAY-0', '{{}}', '', 1, 1000, 1000);
INSERT INTO order_lines (order_id, position, sku_id, product_id, seller_id, product_name, sku_code, option_values, main_image_url, quantity, unit_price, line_total) VALUES (:order_id, 1, '{sku1}', '{product1}', '{seller}', 'Benchmark product 1', 'BENCH-REPLAY-1', '{{}}', '', 1, 1001, 1001);
INSERT INTO order_history (order_id, version, from_status, to_status, change_time) VALUES (:order_id, 1, NULL, 'PENDING', now());
SELECT pg_notify('order_changed', :order_id::text);
WITH inserted AS (INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, envelope, headers, published_at) VALUES (gen_random_uuid(), 'order.created', 'order', :order_id::text, '\x0a00', '{{}}', now()) RETURNING 1) SELECT pg_notify('mercato_outbox', '') FROM inserted;
UPDATE order_requests SET state = 'DONE' WHERE user_id = :user_id AND idempotency_key = :order_id::text;
END;
"#,
        sku0 = sku(0),
        sku1 = sku(1),
        product0 = product(0),
        product1 = product(1),
    );
    let transitions = [
        (
            "PENDING",
            "AWAITING_PAYMENT",
            "payment_id = :payment_id::text, payment_url = 'http://sandbox/pay', attach_time = now(), ",
            "order.awaiting_payment",
            false,
        ),
        (
            "AWAITING_PAYMENT",
            "PAID",
            "paid_time = now(), ",
            "order.paid_recorded",
            true,
        ),
        (
            "PAID",
            "SHIPPED",
            "shipment_id = :payment_id::text, carrier = 'simulated', tracking_number = 'SIM-1', ship_time = now(), ",
            "order.shipped",
            false,
        ),
        (
            "SHIPPED",
            "FINISHED",
            "deliver_time = now(), ",
            "order.finished",
            false,
        ),
    ];
    for (version, (from, to, columns, event, inbox)) in (2..).zip(transitions) {
        script.push_str("BEGIN;\n");
        if inbox {
            script.push_str(
                "INSERT INTO inbox (consumer, message_id) VALUES ('bench-replay', gen_random_uuid()::text);\n",
            );
        }
        script.push_str(&format!(
            "SELECT status, version FROM orders WHERE order_id = :order_id FOR UPDATE;\n\
             UPDATE orders SET status = '{to}', {columns}version = {version}, update_time = now() WHERE order_id = :order_id AND status = '{from}';\n\
             INSERT INTO order_history (order_id, version, from_status, to_status, change_time) VALUES (:order_id, {version}, '{from}', '{to}', now());\n\
             SELECT pg_notify('order_changed', :order_id::text);\n\
             WITH inserted AS (INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, envelope, headers, published_at) VALUES (gen_random_uuid(), '{event}', 'order', :order_id::text, '\\x0a00', '{{}}', now()) RETURNING 1) SELECT pg_notify('mercato_outbox', '') FROM inserted;\n\
             END;\n"
        ));
    }
    script
}

/// Deletes what the replay wrote, so the invariants count the services' orders only.
async fn delete_replayed(order_database_url: &str) -> anyhow::Result<()> {
    let replayed = "SELECT order_id FROM order_lines WHERE sku_code LIKE 'BENCH-REPLAY-%'";
    for statement in [
        format!(
            "WITH gone AS (DELETE FROM outbox WHERE aggregate_type = 'order' AND aggregate_id IN \
             (SELECT order_id::text FROM ({replayed}) r) RETURNING 1) SELECT count(*) FROM gone"
        ),
        format!(
            "WITH gone AS (DELETE FROM order_requests WHERE order_id IN ({replayed}) RETURNING 1) \
             SELECT count(*) FROM gone"
        ),
        "WITH gone AS (DELETE FROM inbox WHERE consumer = 'bench-replay' RETURNING 1) \
         SELECT count(*) FROM gone"
            .to_owned(),
        format!(
            "WITH gone AS (DELETE FROM orders WHERE order_id IN ({replayed}) RETURNING 1) \
             SELECT count(*) FROM gone"
        ),
    ] {
        count(order_database_url, &statement).await?;
    }
    Ok(())
}
