//! The browsing mix: signed-up shoppers through the BFF in the proportions of a shop's traffic —
//! home page 10 (`ListProducts`), product page 10 (`GetProduct`), cart view 3 (`GetCart`), add
//! to cart 2 (`AddCartItem`), checkout 1 (`CreateOrder` from the cart, SANDBOX) — as arrivals at
//! a constant rate, one run per offered rate, each action with its own latency row.
//!
//! Every shopper walks the same 26-step session (two adds come before each checkout, so a cart
//! is never empty when a checkout runs unless an add is still in flight); arrivals go to the
//! shoppers in turn. Invariants afterwards, from the order and product databases: the orders of
//! the run's SKUs are at least the checkouts answered OK and at most the ones sent, none ended,
//! and every unit those orders hold is reserved (none lost, none invented); every action answered
//! OK (or, for a checkout whose adds were still in flight, CART_EMPTY).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::PaymentMethod;
use tonic::transport::Channel;
use uuid::Uuid;

use super::connect_all;
use super::seed::{self, SeededProduct};
use super::shop::{self, Buyer};
use super::sql::{count, in_list};
use crate::measure::{Failure, OpenShape, PathResult, micros, new_histogram, open_loop};
use crate::report::{LoadPoint, Report, Series, Table};

/// Where the BFF, the product service (seeding) and the databases are.
#[derive(Debug, Clone)]
pub struct BrowseTargets {
    /// The BFF's gRPC URI.
    pub bff: String,
    /// The product service's gRPC URI.
    pub product: String,
    /// The order service's database.
    pub order_database_url: String,
    /// The product service's database.
    pub product_database_url: String,
}

/// How the mix is run.
#[derive(Debug, Clone)]
pub struct BrowseOptions {
    /// Shoppers sharing the arrivals.
    pub shoppers: usize,
    /// Products in the catalog the shoppers browse.
    pub products: usize,
    /// Arrivals (actions) per second, one run each.
    pub rates: Vec<f64>,
    /// Unrecorded arrivals before each run's window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Actions in flight at most; later arrivals are dropped and counted.
    pub max_in_flight: usize,
    /// HTTP/2 connections to the BFF.
    pub connections: usize,
}

/// One step of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Home,
    Product,
    Cart,
    Add,
    Checkout,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Self::Home => "home (ListProducts)",
            Self::Product => "product (GetProduct)",
            Self::Cart => "cart view (GetCart)",
            Self::Add => "add (AddCartItem)",
            Self::Checkout => "checkout (CreateOrder from the cart)",
        }
    }
}

/// The 26-step session: home 10, product 10, cart 3, add 2, checkout 1, adds before the
/// checkout.
const SESSION: [Action; 26] = {
    use Action::{Add as A, Cart as C, Checkout as X, Home as H, Product as P};
    [
        H, P, H, P, H, P, H, P, H, P, A, C, H, P, H, P, H, P, H, P, H, P, A, C, C, X,
    ]
};

/// Stock per SKU: enough that a run never sells out.
const ON_HAND: i64 = 100_000_000;
const CART_EMPTY: &str = "FailedPrecondition/CART_EMPTY";

/// What the actions of one run recorded.
#[derive(Debug)]
struct Recorded {
    per_action: BTreeMap<Action, (Histogram<u64>, BTreeMap<String, u64>)>,
}

/// Checkouts of the whole scenario.
#[derive(Debug, Default)]
struct Checkouts {
    sent: AtomicU64,
    ok: AtomicU64,
    empty: AtomicU64,
}

/// Seeds the catalog and the shoppers, one run per rate, then the invariants.
pub async fn run(targets: &BrowseTargets, options: &BrowseOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(!options.rates.is_empty(), "the mix needs at least one rate");
    let product_channels = connect_all(&targets.product, 1).await?;
    let products = seed::products(&product_channels[0], options.products.max(1)).await?;
    for product in &products {
        seed::stock(&product_channels[0], product, ON_HAND).await?;
    }
    let bff_channels = connect_all(&targets.bff, options.connections).await?;
    let shoppers = Arc::new(shop::register_buyers(&bff_channels, options.shoppers, 16).await?);
    let products = Arc::new(products);
    let checkouts = Arc::new(Checkouts::default());
    let mut paths = Vec::new();
    let mut series = BTreeMap::<Action, Vec<LoadPoint>>::new();
    let mut violations = Vec::new();
    for (run, &rate) in options.rates.iter().enumerate() {
        let shape = OpenShape {
            rate,
            warmup: options.warmup,
            duration: options.duration,
            max_in_flight: options.max_in_flight,
            drain: Duration::from_secs(60),
        };
        let mut per_action = BTreeMap::new();
        for action in SESSION {
            per_action.insert(action, (new_histogram()?, BTreeMap::new()));
        }
        let recorded = Arc::new(Mutex::new(Recorded { per_action }));
        let session = Arc::new(Session {
            channels: bff_channels.clone(),
            shoppers: Arc::clone(&shoppers),
            products: Arc::clone(&products),
            recorded: Arc::clone(&recorded),
            checkouts: Arc::clone(&checkouts),
            warmup_arrivals: shape.arrivals().0,
            // Each run continues the sessions where the last one left them.
            offset: (run as u64) * (shape.arrivals().0 + shape.arrivals().1),
        });
        let all = open_loop(
            &format!("all actions @ {rate}/s"),
            shape,
            move |iteration| Arc::clone(&session).run(iteration),
        )
        .await?;
        let recorded = recorded.lock().unwrap_or_else(PoisonError::into_inner);
        for (action, (histogram, errors)) in &recorded.per_action {
            let mut path = PathResult::from_histogram(
                &format!("{} @ {rate}/s", action.name()),
                histogram,
                errors.clone(),
                options.duration,
            );
            let weight = SESSION.iter().filter(|a| *a == action).count() as f64;
            path.offered_rps = Some(rate * weight / SESSION.len() as f64);
            series
                .entry(*action)
                .or_default()
                .push(LoadPoint::of(&path));
            let unclean: BTreeMap<&String, &u64> = errors
                .iter()
                .filter(|(label, _)| label.as_str() != CART_EMPTY)
                .collect();
            if !unclean.is_empty() {
                violations.push(format!("{}: failed {unclean:?}", path.name));
            }
            paths.push(path);
        }
        if all.dropped > 0 || all.unfinished > 0 {
            violations.push(format!(
                "@ {rate}/s: {} arrivals dropped, {} unfinished",
                all.dropped, all.unfinished
            ));
        }
        paths.push(all);
    }
    let (held, broken) = check(targets, &products, &checkouts).await?;
    violations.extend(broken);

    let shape = OpenShape {
        rate: 0.0,
        warmup: options.warmup,
        duration: options.duration,
        max_in_flight: options.max_in_flight,
        drain: Duration::from_secs(60),
    };
    let mut report = Report::open("browse", shape, options.connections, paths, Vec::new());
    report.series = series
        .into_iter()
        .map(|(action, points)| Series {
            name: action.name().to_owned(),
            points,
        })
        .collect();
    report.table(Table {
        title: "The session each shopper walks (26 arrivals)".to_owned(),
        columns: ["action", "per session"].map(str::to_owned).to_vec(),
        rows: [
            Action::Home,
            Action::Product,
            Action::Cart,
            Action::Add,
            Action::Checkout,
        ]
        .iter()
        .map(|action| {
            vec![
                action.name().to_owned(),
                SESSION.iter().filter(|a| *a == action).count().to_string(),
            ]
        })
        .collect(),
    });
    report.note(format!(
        "{} shoppers, {} products; arrivals at the offered rate go to the shoppers in turn, each \
         taking the next step of its session; an action's offered rate is its share of the \
         arrivals; latency from the arrival to the answer; a checkout that found its cart empty \
         (its adds still in flight) answers CART_EMPTY and is counted, not failed",
        shoppers.len(),
        products.len()
    ));
    report.note(held);
    for violation in violations {
        report.violation(violation);
    }
    Ok(report)
}

/// One arrival, shared by a run's iterations.
#[derive(Debug)]
struct Session {
    channels: Vec<Channel>,
    shoppers: Arc<Vec<Buyer>>,
    products: Arc<Vec<SeededProduct>>,
    recorded: Arc<Mutex<Recorded>>,
    checkouts: Arc<Checkouts>,
    warmup_arrivals: u64,
    offset: u64,
}

impl Session {
    fn run(
        self: Arc<Self>,
        iteration: u64,
    ) -> impl std::future::Future<Output = Result<(), Failure>> + Send + 'static {
        // Called when the arrival is due: the latency runs from here.
        let due = Instant::now();
        async move {
            let arrival = iteration + self.offset;
            let count = self.shoppers.len() as u64;
            let shopper = &self.shoppers[(arrival % count) as usize];
            let action = SESSION[((arrival / count) % SESSION.len() as u64) as usize];
            let outcome = self.act(action, shopper, arrival).await;
            if iteration >= self.warmup_arrivals {
                let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((histogram, errors)) = recorded.per_action.get_mut(&action) {
                    match &outcome {
                        Ok(()) => histogram.saturating_record(micros(due.elapsed())),
                        Err(failure) => *errors.entry(failure.0.clone()).or_default() += 1,
                    }
                }
            }
            outcome
        }
    }

    async fn act(&self, action: Action, shopper: &Buyer, arrival: u64) -> Result<(), Failure> {
        let channel = self.channels[(arrival as usize) % self.channels.len()].clone();
        let product = &self.products[(arrival as usize / 7) % self.products.len()];
        match action {
            Action::Home => {
                bff::catalog_service_client::CatalogServiceClient::new(channel)
                    .list_products(bff::ListProductsRequest {
                        page_size: 20,
                        ..Default::default()
                    })
                    .await?;
            }
            Action::Product => {
                bff::catalog_service_client::CatalogServiceClient::new(channel)
                    .get_product(bff::GetProductRequest {
                        product_id: product.product_id.clone(),
                    })
                    .await?;
            }
            Action::Cart => {
                bff::cart_service_client::CartServiceClient::new(channel)
                    .get_cart(shopper.request(bff::GetCartRequest {}))
                    .await?;
            }
            Action::Add => {
                bff::cart_service_client::CartServiceClient::new(channel)
                    .add_cart_item(shopper.request(bff::AddCartItemRequest {
                        sku_id: product.sku_id.clone(),
                        quantity: 1,
                        idempotency_key: Uuid::new_v4().to_string(),
                    }))
                    .await?;
            }
            Action::Checkout => {
                self.checkouts.sent.fetch_add(1, Ordering::Relaxed);
                let answer = bff::order_service_client::OrderServiceClient::new(channel)
                    .create_order(shopper.request(bff::CreateOrderRequest {
                        idempotency_key: Uuid::new_v4().to_string(),
                        source: Some(bff::create_order_request::Source::Cart(
                            bff::CartCheckout {},
                        )),
                        shipping_address: Some(shop::address()),
                        payment_method: PaymentMethod::Sandbox as i32,
                        ..Default::default()
                    }))
                    .await;
                match answer {
                    Ok(_) => {
                        self.checkouts.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => {
                        let failure = Failure::from(&status);
                        if failure.0 == CART_EMPTY {
                            self.checkouts.empty.fetch_add(1, Ordering::Relaxed);
                        }
                        return Err(failure);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The orders of the run's SKUs against the checkouts, and their stock.
async fn check(
    targets: &BrowseTargets,
    products: &[SeededProduct],
    checkouts: &Checkouts,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut broken = Vec::new();
    let sku_list = in_list(products.iter().map(|p| p.sku_id.as_str()));
    let db = &targets.order_database_url;
    let of_run = format!("SELECT order_id FROM order_lines WHERE sku_id IN ({sku_list})");
    let orders = count(
        db,
        &format!("SELECT count(*) FROM orders WHERE order_id IN ({of_run})"),
    )
    .await?;
    let ok = checkouts.ok.load(Ordering::Relaxed);
    let sent = checkouts.sent.load(Ordering::Relaxed);
    if !(ok <= orders && orders <= sent) {
        broken.push(format!(
            "{ok} checkouts answered OK of {sent} sent, but the order database holds {orders} \
             orders of the run's SKUs"
        ));
    }
    let ordered = count(
        db,
        &format!(
            "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o USING (order_id) \
             WHERE o.status IN ('PENDING', 'AWAITING_PAYMENT') AND l.sku_id IN ({sku_list})"
        ),
    )
    .await?;
    let ended = count(
        db,
        &format!(
            "SELECT count(*) FROM orders WHERE order_id IN ({of_run}) \
             AND status NOT IN ('PENDING', 'AWAITING_PAYMENT')"
        ),
    )
    .await?;
    let reserved = count(
        &targets.product_database_url,
        &format!(
            "SELECT coalesce(sum(reserved), 0) FROM stock_levels WHERE sku_id IN ({sku_list})"
        ),
    )
    .await?;
    if reserved != ordered || ended > 0 {
        broken.push(format!(
            "{reserved} units reserved for {ordered} units in open orders; {ended} orders ended \
             during the run"
        ));
    }
    let held = format!(
        "invariants checked: {orders} orders for {ok} checkouts answered OK of {sent} sent ({} \
         found the cart empty); {reserved} units reserved = {ordered} units ordered",
        checkouts.empty.load(Ordering::Relaxed)
    );
    Ok((held, broken))
}
