//! Smoke runs of every benchmark scenario: each drives the whole system started in-process
//! (`mercato_e2e::stack`, fresh databases and one broker namespace) for a second or two at tiny
//! rates through the same library entry points the `mercato-loadgen` binary calls, then checks
//! that the scenario's invariants held (the report records no violation), that its JSON,
//! Markdown and (for the scenarios measured at offered rates) SVG reports are written and well
//! formed, and basic sanity of the counts (requests were answered; the flash sale sold exactly
//! its units). Speed is never asserted: that is what `make bench` measures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mercato_e2e::stack::{Stack, StackOptions, UNLIMITED_RATE_LIMITS};
use mercato_loadgen::measure::{LoadShape, PathResult};
use mercato_loadgen::report::Report;
use mercato_loadgen::scenarios::browse::{self, BrowseOptions, BrowseTargets};
use mercato_loadgen::scenarios::bus::Rabbitmqctl;
use mercato_loadgen::scenarios::catalog::{self, CatalogTargets};
use mercato_loadgen::scenarios::checkout::{self, CheckoutTargets};
use mercato_loadgen::scenarios::coupon_rush::{self, CouponRushOptions, CouponRushTargets};
use mercato_loadgen::scenarios::edge::{self, EdgeTargets};
use mercato_loadgen::scenarios::flash_sale::{self, FlashSaleOptions};
use mercato_loadgen::scenarios::login_storm::{self, LoginStormOptions, LoginStormTargets};
use mercato_loadgen::scenarios::redis::{self, RedisTargets};
use mercato_loadgen::scenarios::rss::{self, Process};
use mercato_loadgen::scenarios::saga::{self, Method, SagaOptions, SagaTargets};
use mercato_loadgen::scenarios::stock::{self, StockTargets};
use mercato_loadgen::summary;
use tokio::net::TcpListener;

/// A closed loop of two calls in flight: short, and light on the services' small pools.
const CLOSED: LoadShape = LoadShape {
    concurrency: 2,
    warmup: Duration::from_millis(200),
    duration: Duration::from_secs(1),
};

/// HTTP/2 connections per path.
const CONNECTIONS: usize = 2;

/// The user service's login failure budget in its test settings.
const LOGIN_MAX_FAILURES: u64 = 5;

/// The whole system and a report directory of the test's own.
struct Smoke {
    stack: Stack,
    out: PathBuf,
}

impl Smoke {
    async fn start() -> Self {
        let stack = Stack::start(StackOptions {
            stripe: false,
            bff_settings: UNLIMITED_RATE_LIMITS,
        })
        .await;
        let out = std::env::temp_dir().join(format!("loadgen-smoke-{}", uuid::Uuid::new_v4()));
        Self { stack, out }
    }

    fn bff(&self) -> String {
        format!("http://{}", self.stack.bff_addr)
    }

    fn product(&self) -> String {
        self.stack.products.grpc_uri()
    }

    fn database(&self, service: &str) -> String {
        self.stack.database_url(service)
    }

    /// The journey scenarios' targets; dead letters listed with `rabbitmqctl`, as `make bench`
    /// does.
    fn saga_targets(&self) -> SagaTargets {
        SagaTargets {
            bff: self.bff(),
            product: self.product(),
            order_database_url: self.database("order"),
            product_database_url: self.database("product"),
            payment_database_url: self.database("payment"),
            process_database_url: self.database("process"),
            dead_letters: Arc::new(Rabbitmqctl {
                command: vec!["rabbitmqctl".to_owned()],
                namespace: self.stack.namespace.clone(),
            }),
        }
    }

    /// Checks and writes `report` (see [`published`]), then stops the system and removes the
    /// reports.
    async fn finish(self, report: &Report, plotted: bool) -> serde_json::Value {
        let json = published(report, &self.out, plotted);
        self.stack.stop().await;
        std::fs::remove_dir_all(&self.out).expect("the reports are removed");
        json
    }
}

/// Asserts that `report` records no broken invariant, writes it into `dir` and checks what was
/// written: the JSON parses with the report's fields, the Markdown has its heading and no
/// broken invariant, and the SVG is a whole document exactly when the scenario is `plotted`.
/// The parsed JSON.
fn published(report: &Report, dir: &Path, plotted: bool) -> serde_json::Value {
    assert!(
        report.violations.is_empty(),
        "{} broke invariants: {:#?}\n{}",
        report.scenario,
        report.violations,
        report.markdown()
    );
    let written = report.write(dir).expect("the reports are written");
    let scenario = &report.scenario;
    let file = |extension: &str| dir.join(format!("{scenario}.{extension}"));
    let mut expected = vec![file("json"), file("md")];
    if plotted {
        expected.push(file("svg"));
    }
    assert_eq!(written, expected, "the files {scenario} writes");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file("json")).expect("the JSON report is readable"))
            .expect("the JSON report parses");
    for field in [
        "scenario",
        "finished_at",
        "model",
        "concurrency",
        "connections",
        "duration_s",
        "warmup_s",
        "paths",
        "ratios",
        "notes",
        "tables",
        "series",
        "violations",
    ] {
        assert!(json.get(field).is_some(), "{scenario}.json lacks {field}");
    }
    assert_eq!(json["scenario"], scenario.as_str());
    assert_eq!(json["violations"], serde_json::json!([]));
    let paths = json["paths"].as_array().expect("paths is an array");
    assert_eq!(paths.len(), report.paths.len(), "every path is in the JSON");
    assert!(!paths.is_empty(), "{scenario} measured no path");
    for path in paths {
        assert!(path["name"].is_string() && path["ok"].is_u64(), "{path}");
    }
    assert_eq!(
        json["series"].as_array().map(Vec::len),
        Some(report.series.len())
    );

    let markdown = std::fs::read_to_string(file("md")).expect("the Markdown report is readable");
    assert!(
        markdown.starts_with(&format!("### {scenario} (")),
        "{markdown}"
    );
    assert!(!markdown.contains("INVARIANT BROKEN"), "{markdown}");
    for path in &report.paths {
        assert!(
            markdown.contains(&format!("| {} |", path.name)),
            "{markdown}"
        );
    }

    if plotted {
        let svg = std::fs::read_to_string(file("svg")).expect("the plot is readable");
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        for series in &report.series {
            assert!(!series.points.is_empty(), "series {} is empty", series.name);
        }
    } else {
        assert!(
            report.series.is_empty(),
            "{scenario} has series but no plot"
        );
    }
    json
}

/// The path called `name` (a prefix of it).
fn path<'a>(report: &'a Report, name: &str) -> &'a PathResult {
    report
        .paths
        .iter()
        .find(|path| path.name.starts_with(name))
        .unwrap_or_else(|| panic!("no path {name} in {:?}", names(report)))
}

/// The names of the report's paths.
fn names(report: &Report) -> Vec<&str> {
    report.paths.iter().map(|path| path.name.as_str()).collect()
}

/// Every path answered at least one call and, the load being tiny, failed none.
fn assert_clean(report: &Report) {
    for path in &report.paths {
        assert!(path.ok > 0, "{} answered nothing: {path:?}", path.name);
        assert!(
            path.errors.is_empty() && path.dropped == 0 && path.unfinished == 0,
            "{} failed at a tiny load: {path:?}",
            path.name
        );
    }
}

/// The only row of the report's table titled `title`, by column heading.
fn row<'a>(report: &'a Report, title: &str) -> Vec<(&'a str, &'a str)> {
    let table = report
        .tables
        .iter()
        .find(|table| table.title.starts_with(title))
        .unwrap_or_else(|| panic!("no table {title}"));
    let [row] = table.rows.as_slice() else {
        panic!("one round, one row: {:?}", table.rows)
    };
    table
        .columns
        .iter()
        .map(String::as_str)
        .zip(row.iter().map(String::as_str))
        .collect()
}

/// The number in `column` of `row`.
fn cell(row: &[(&str, &str)], column: &str) -> u64 {
    let (_, value) = row
        .iter()
        .find(|(heading, _)| *heading == column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"));
    value
        .parse()
        .unwrap_or_else(|_| panic!("{column} is {value}"))
}

/// A bare tonic server on a free port (the RPC baseline), stopped when the sender drops.
async fn hello_server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the hello server");
    let addr = listener.local_addr().expect("the hello server's address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mercato_loadgen::hello::serve_on(listener, async move {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_measures_the_bff_the_service_and_the_hello_baseline() {
    let smoke = Smoke::start().await;
    let (hello, _stop_hello) = hello_server().await;
    let targets = EdgeTargets {
        bff: smoke.bff(),
        user: smoke.stack.users.grpc_uri(),
        hello: Some(hello),
    };
    let report = edge::run(&targets, CLOSED, CONNECTIONS)
        .await
        .expect("the edge scenario runs");
    assert_clean(&report);
    path(&report, "raw tonic (health check)");
    path(&report, "user.v1 GetCurrentUser (direct)");
    path(&report, "bff.v1 GetAccount (through the BFF)");
    assert_eq!(report.paths.len(), 5, "{:?}", names(&report));
    assert_eq!(report.ratios.len(), 4);
    let json = smoke.finish(&report, false).await;
    assert_eq!(json["model"], "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_reads_seeded_products_through_the_bff_and_directly() {
    let smoke = Smoke::start().await;
    let (hello, _stop_hello) = hello_server().await;
    let targets = CatalogTargets {
        bff: smoke.bff(),
        product: smoke.product(),
        hello,
    };
    let report = catalog::run(&targets, CLOSED, CONNECTIONS)
        .await
        .expect("the catalog scenario runs");
    assert_clean(&report);
    path(&report, "product.v1 GetProduct (direct)");
    path(
        &report,
        "bff.v1 CatalogService.GetProduct (through the BFF)",
    );
    let partial = path(&report, catalog::PARTIAL_LOAD_PATH);
    assert!(
        partial.offered_rps.is_some_and(|rate| rate > 0.0),
        "the 70 % run is open-loop at a positive rate: {partial:?}"
    );
    assert_eq!(report.paths.len(), 4, "{:?}", names(&report));
    smoke.finish(&report, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_reserves_one_hot_sku_beside_pgbench_on_its_database() {
    let smoke = Smoke::start().await;
    let targets = StockTargets {
        product: smoke.product(),
        database_url: smoke.database("product"),
    };
    let shape = LoadShape {
        warmup: Duration::ZERO,
        ..CLOSED
    };
    let report = stock::run(&targets, shape, CONNECTIONS)
        .await
        .expect("the stock scenario runs");
    assert_clean(&report);
    path(&report, "pgbench: the conditional UPDATE alone");
    path(&report, "product.v1 ReserveStock, one hot SKU");
    smoke.finish(&report, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_keeps_orders_outbox_and_stock_in_step() {
    let smoke = Smoke::start().await;
    let targets = CheckoutTargets {
        bff: smoke.bff(),
        product: smoke.product(),
        order_database_url: smoke.database("order"),
        product_database_url: smoke.database("product"),
    };
    let shape = LoadShape {
        warmup: Duration::ZERO,
        ..CLOSED
    };
    let report = checkout::run(&targets, shape, CONNECTIONS)
        .await
        .expect("the checkout scenario runs");
    assert_clean(&report);
    path(&report, "pgbench: the order database's statements");
    path(&report, "bff.v1 CreateOrder (through the BFF");
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.starts_with("invariants checked:") && note.ends_with("all held")),
        "{:?}",
        report.notes
    );
    smoke.finish(&report, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_takes_points_and_sandbox_orders_to_finished() {
    let smoke = Smoke::start().await;
    let options = SagaOptions {
        methods: vec![Method::Points, Method::Sandbox],
        rates: vec![2.0],
        shape: LoadShape {
            concurrency: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(2),
        },
        max_in_flight: 50,
        buyers: 4,
        sla: Duration::from_secs(30),
        connections: CONNECTIONS,
        baseline: false,
        shipment_delay: Some(Duration::from_millis(100)),
    };
    let report = saga::run(&smoke.saga_targets(), &options)
        .await
        .expect("the saga scenario runs");
    assert_clean(&report);
    for method in ["points", "sandbox"] {
        let run = path(&report, &format!("{method} checkout → FINISHED"));
        assert_eq!(run.ok, 4, "2/s for 2 s, every journey FINISHED: {run:?}");
    }
    let steps = &report.tables[0];
    assert_eq!(steps.rows.len(), 2, "a step row per run: {steps:?}");
    for step in &steps.rows {
        assert_eq!(
            step[1], "4",
            "every measured order has its history: {step:?}"
        );
    }
    let json = smoke.finish(&report, true).await;
    assert_eq!(json["model"], "open");
    assert_eq!(json["series"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_sells_exactly_its_units_and_refuses_the_rest_cleanly() {
    // More winners than the payment service's pool has connections: each `order.created`
    // delivery holds a pooled connection in its inbox transaction while the handler takes a
    // second one, so the consumer must keep its prefetch under the pool or the burst stalls.
    const UNITS: i64 = 20;
    let smoke = Smoke::start().await;
    let options = FlashSaleOptions {
        buyers: 200,
        units: UNITS,
        rates: vec![100.0],
        max_in_flight: 200,
        sla: Duration::from_secs(30),
        connections: CONNECTIONS,
        register_concurrency: 8,
    };
    let report = flash_sale::run(&smoke.saga_targets(), &options)
        .await
        .expect("the flash sale runs");
    assert_clean(&report);
    let round = row(&report, "Answers per round");
    assert_eq!(cell(&round, "orders"), UNITS as u64, "{round:?}");
    assert_eq!(cell(&round, "sold out"), 200 - UNITS as u64, "{round:?}");
    assert_eq!(cell(&round, "other (errors, dropped, unfinished)"), 0);
    assert_eq!(report.paths[0].ok, 200, "every buyer was answered");
    smoke.finish(&report, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupon_rush_issues_exactly_the_campaign_one_per_shopper() {
    let smoke = Smoke::start().await;
    let targets = CouponRushTargets {
        bff: smoke.bff(),
        order: smoke.stack.orders.grpc_uri(),
        order_database_url: smoke.database("order"),
    };
    let options = CouponRushOptions {
        coupons: 20,
        claimants: 100,
        rates: vec![100.0],
        max_in_flight: 100,
        connections: CONNECTIONS,
        register_concurrency: 8,
    };
    let report = coupon_rush::run(&targets, &options)
        .await
        .expect("the coupon rush runs");
    assert_clean(&report);
    let round = row(&report, "Claims per round");
    // Each of the 100 shoppers clicks twice: 200 answers, at least one OK per coupon.
    let issued = cell(&round, "issued");
    let refused = cell(&round, "sold out") + cell(&round, "already claimed");
    assert!(issued >= 20, "{round:?}");
    assert_eq!(issued + refused, 200, "{round:?}");
    // The 80 shoppers left without a coupon are refused on both clicks.
    assert!(cell(&round, "sold out") >= 160, "{round:?}");
    assert_eq!(report.paths[0].ok, 100, "every shopper was answered");
    smoke.finish(&report, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_storm_lets_shoppers_in_and_throttles_the_guesses() {
    let smoke = Smoke::start().await;
    let options = LoginStormOptions {
        shoppers: 20,
        rates: vec![40.0],
        warmup: Duration::ZERO,
        duration: Duration::from_secs(2),
        max_in_flight: 100,
        max_failures: LOGIN_MAX_FAILURES,
        connections: CONNECTIONS,
    };
    let report = login_storm::run(&LoginStormTargets { bff: smoke.bff() }, &options)
        .await
        .expect("the login storm runs");
    assert_clean(&report);
    // 80 arrivals, every tenth a guess at the victim's password.
    assert_eq!(report.paths[0].ok, 72, "every shopper's login succeeded");
    let run = row(&report, "Guesses at the victim's password");
    let (refused, throttled) = (cell(&run, "refused"), cell(&run, "throttled"));
    assert_eq!(refused + throttled, 8, "every guess refused: {run:?}");
    assert!(refused <= LOGIN_MAX_FAILURES, "{run:?}");
    assert!(
        throttled > 0,
        "guesses past the budget are throttled: {run:?}"
    );
    assert_eq!(cell(&run, "other"), 0);
    smoke.finish(&report, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_walks_whole_sessions_to_a_checkout() {
    let smoke = Smoke::start().await;
    let targets = BrowseTargets {
        bff: smoke.bff(),
        product: smoke.product(),
        order_database_url: smoke.database("order"),
        product_database_url: smoke.database("product"),
    };
    // Two shoppers and 60 arrivals: each walks its whole 26-step session, checkout included.
    let options = BrowseOptions {
        shoppers: 2,
        products: 4,
        rates: vec![30.0],
        warmup: Duration::ZERO,
        duration: Duration::from_secs(2),
        max_in_flight: 100,
        connections: CONNECTIONS,
    };
    let report = browse::run(&targets, &options)
        .await
        .expect("the browsing mix runs");
    for name in [
        "home (ListProducts)",
        "product (GetProduct)",
        "cart view (GetCart)",
        "add (AddCartItem)",
        "all actions",
    ] {
        let action = path(&report, name);
        assert!(action.ok > 0 && action.errors.is_empty(), "{action:?}");
    }
    // A checkout whose adds were still in flight answers CART_EMPTY, counted and not failed.
    let checkout = path(&report, "checkout (CreateOrder from the cart)");
    assert_eq!(
        checkout.ok + checkout.error_count(),
        2,
        "one checkout per shopper: {checkout:?}"
    );
    assert!(
        checkout
            .errors
            .keys()
            .all(|label| label == "FailedPrecondition/CART_EMPTY"),
        "{checkout:?}"
    );
    smoke.finish(&report, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_runs_get_set_and_the_rate_limit_script_under_the_test_prefix() {
    let redis = mercato_testkit::TestRedis::new().expect("a Redis prefix");
    let targets = RedisTargets {
        url: redis.url().to_owned(),
        key_prefix: redis.prefix().to_owned(),
    };
    let report = redis::run(&targets, CLOSED)
        .await
        .expect("the redis scenario runs");
    assert_clean(&report);
    for name in [
        "redis-benchmark GET",
        "redis-benchmark SET",
        "redis-benchmark the BFF's",
    ] {
        let measured = path(&report, name);
        assert!(
            measured.rps > 0.0 && measured.p50_us <= measured.max_us,
            "{measured:?}"
        );
    }
    // The script's keys were written under the prefix only (the prefix's drop deletes them).
    let mut connection = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("a Redis connection");
    let written: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{}ip:*", redis.prefix()))
        .query_async(&mut connection)
        .await
        .expect("KEYS");
    assert!(!written.is_empty(), "the rate-limit script wrote no key");
    let out = std::env::temp_dir().join(format!("loadgen-smoke-{}", uuid::Uuid::new_v4()));
    published(&report, &out, false);
    std::fs::remove_dir_all(&out).expect("the reports are removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_reads_the_services_and_the_summary_reads_the_reports() {
    let smoke = Smoke::start().await;
    // The in-process stack is one process: read it, and the PostgreSQL server it talks to is
    // not ours to name, so a second row reads this process again under another name.
    let me = std::process::id();
    let processes = [
        Process {
            name: "stack".to_owned(),
            pid: me,
        },
        Process {
            name: "again".to_owned(),
            pid: me,
        },
    ];
    let report = rss::run("idle-rss", &processes).expect("resident memory read");
    let rows = &report.tables[0].rows;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mib: f64 = rows[0][2].parse().expect("RSS in MiB");
    assert!(mib > 1.0, "a whole stack in under a MiB: {rows:?}");
    let written = report.write(&smoke.out).expect("the report is written");
    let markdown = std::fs::read_to_string(&written[1]).expect("the Markdown report");
    assert!(
        markdown.contains("| stack |") && markdown.contains("RSS MiB"),
        "{markdown}"
    );
    let summary = summary::summarize(&smoke.out);
    let idle = summary
        .goals
        .iter()
        .find(|goal| goal.goal.starts_with("idle resident memory"))
        .expect("the memory goal");
    assert!(
        idle.measured.as_deref().is_some_and(|m| m.contains("MiB")),
        "{idle:?}"
    );
    assert!(
        summary
            .goals
            .iter()
            .filter(|goal| goal.met.is_none())
            .count()
            >= 4,
        "goals without their reports are not measured: {:?}",
        summary.goals
    );
    smoke.stack.stop().await;
    std::fs::remove_dir_all(&smoke.out).expect("the reports are removed");
}
