//! `mercato-loadgen`: drives Mercato and its baselines in one run and reports ratios.
//!
//! ```text
//! mercato-loadgen hello-server --addr 127.0.0.1:0
//! mercato-loadgen edge --bff http://127.0.0.1:8080 --user http://127.0.0.1:50051 \
//!     [--hello http://127.0.0.1:9000] [--concurrency 32] [--duration 10s] [--out DIR]
//! mercato-loadgen catalog --bff URI --product URI --hello URI
//! mercato-loadgen stock --product URI --database-url postgres://…/mercato_bench_product
//! mercato-loadgen checkout --bff URI --product URI --order-database-url URL \
//!     --product-database-url URL
//! mercato-loadgen saga --bff URI --product URI --order-database-url URL \
//!     --product-database-url URL --payment-database-url URL --process-database-url URL \
//!     --bus-namespace mercato-bench [--methods points,sandbox] [--rates 5,10,20,40] [--sla 30s]
//! mercato-loadgen flash-sale (the saga's flags) [--buyers 10000] [--units 100] [--rates 500,1000]
//! mercato-loadgen coupon-rush --bff URI --order URI --order-database-url URL [--coupons 100] \
//!     [--claimants 2000] [--rates 200,400]
//! mercato-loadgen login-storm --bff URI [--shoppers 200] [--rates 10,20,40,80]
//! mercato-loadgen browse --bff URI --product URI --order-database-url URL \
//!     --product-database-url URL [--shoppers 100] [--rates 100,200,400,800]
//! mercato-loadgen redis --url redis://127.0.0.1:6379 --key-prefix bench1:
//! mercato-loadgen rss --scenario idle-rss --process user=1234 --process bff=1240
//! mercato-loadgen summary [--out DIR]
//! ```
//!
//! `make bench` (deployments/bench.sh) starts release builds of the services on free ports and
//! runs these; the results land in `target/bench/<scenario>.{json,md,svg}`. A scenario whose
//! invariants broke still writes its report, then exits non-zero.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mercato_platform::settings::parse_duration;

use mercato_loadgen::measure::LoadShape;
use mercato_loadgen::report::Report;
use mercato_loadgen::scenarios::browse::{BrowseOptions, BrowseTargets};
use mercato_loadgen::scenarios::bus::Rabbitmqctl;
use mercato_loadgen::scenarios::catalog::CatalogTargets;
use mercato_loadgen::scenarios::checkout::CheckoutTargets;
use mercato_loadgen::scenarios::coupon_rush::{CouponRushOptions, CouponRushTargets};
use mercato_loadgen::scenarios::edge::EdgeTargets;
use mercato_loadgen::scenarios::flash_sale::FlashSaleOptions;
use mercato_loadgen::scenarios::login_storm::{LoginStormOptions, LoginStormTargets};
use mercato_loadgen::scenarios::redis::RedisTargets;
use mercato_loadgen::scenarios::rss::Process;
use mercato_loadgen::scenarios::saga::{Method, SagaOptions, SagaTargets};
use mercato_loadgen::scenarios::stock::StockTargets;
use mercato_loadgen::{hello, scenarios, summary};

#[derive(Debug, Parser)]
#[command(
    name = "mercato-loadgen",
    about = "Load generator and benchmark driver for Mercato"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves a bare tonic health service: the RPC baseline of this machine.
    HelloServer {
        /// Where to listen (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
    /// A verified-token read through the BFF vs the same read directly on the user service.
    Edge {
        /// The BFF's gRPC URI.
        #[arg(long)]
        bff: String,
        /// The user service's gRPC URI.
        #[arg(long)]
        user: String,
        /// A `hello-server` URI, measured as the baseline.
        #[arg(long)]
        hello: Option<String>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// A public product read through the BFF vs directly on the product service vs raw tonic.
    Catalog {
        /// The BFF's gRPC URI.
        #[arg(long)]
        bff: String,
        /// The product service's gRPC URI.
        #[arg(long)]
        product: String,
        /// A `hello-server` URI, the baseline.
        #[arg(long)]
        hello: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Reservations on one hot SKU vs pgbench running the same conditional UPDATE.
    Stock {
        /// The product service's gRPC URI.
        #[arg(long)]
        product: String,
        /// The product service's database URL (pgbench runs against it).
        #[arg(long)]
        database_url: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// CreateOrder through the BFF vs pgbench replaying the order database's statements of one
    /// checkout; then the invariants (orders = answers, outbox, stock conserved).
    Checkout {
        /// The BFF's gRPC URI.
        #[arg(long)]
        bff: String,
        /// The product service's gRPC URI (seeding the catalog).
        #[arg(long)]
        product: String,
        /// The order service's database URL (pgbench and the invariants).
        #[arg(long)]
        order_database_url: String,
        /// The product service's database URL (the stock invariant).
        #[arg(long)]
        product_database_url: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Orders from CreateOrder to FINISHED per second through every service and the bus, for
    /// POINTS and SANDBOX, in an open loop at each offered rate; per-step latencies from the
    /// order history; then the invariants from all four databases and the broker's DLQs.
    Saga {
        /// The BFF's gRPC URI.
        #[arg(long)]
        bff: String,
        /// The product service's gRPC URI (seeding the catalog).
        #[arg(long)]
        product: String,
        #[command(flatten)]
        databases: SagaDatabases,
        #[command(flatten)]
        bus: BusArgs,
        /// Payment methods, each driven at every rate.
        #[arg(long, value_delimiter = ',', default_value = "points,sandbox")]
        methods: Vec<Method>,
        /// Offered orders per second, one run each.
        #[arg(long, value_delimiter = ',', default_value = "5,10,20,40")]
        rates: Vec<f64>,
        /// Every order must be FINISHED within this time of its creation.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        sla: Duration,
        /// Journeys in flight at most; later arrivals are dropped and counted.
        #[arg(long, default_value_t = 1_000)]
        max_in_flight: usize,
        /// Shoppers sharing the load (at least; more when the wallets need it).
        #[arg(long, default_value_t = 64)]
        buyers: usize,
        /// The process service's SHIPMENT_DELAY, for the report.
        #[arg(long, value_parser = parse_duration)]
        shipment_delay: Option<Duration>,
        /// Leave out the pgbench baseline.
        #[arg(long)]
        no_baseline: bool,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Many buyers for few units of one SKU: exactly that many orders, the rest a clean sold-out
    /// answer; the winners paid and followed to FINISHED; the saga's invariants.
    FlashSale {
        /// The BFF's gRPC URI.
        #[arg(long)]
        bff: String,
        /// The product service's gRPC URI (seeding the SKU).
        #[arg(long)]
        product: String,
        #[command(flatten)]
        databases: SagaDatabases,
        #[command(flatten)]
        bus: BusArgs,
        /// Buyers, each trying once per round.
        #[arg(long, default_value_t = 10_000)]
        buyers: usize,
        /// Units on sale per round.
        #[arg(long, default_value_t = 100)]
        units: i64,
        /// Buyers arriving per second, one round each.
        #[arg(long, value_delimiter = ',', default_value = "500,1000,2000")]
        rates: Vec<f64>,
        /// A winner's order must be FINISHED within this time of its creation.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        sla: Duration,
        /// Checkouts in flight at most.
        #[arg(long, default_value_t = 2_000)]
        max_in_flight: usize,
        /// Sign-ups in flight while seeding.
        #[arg(long, default_value_t = 16)]
        register_concurrency: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// A first-come-first-served campaign of N coupons rushed by many shoppers clicking twice:
    /// exactly N issued, one per shopper, every other claim a clean refusal.
    CouponRush {
        /// The BFF's gRPC URI.
        #[arg(long)]
        bff: String,
        /// The order service's gRPC URI (creating campaigns as an admin).
        #[arg(long)]
        order: String,
        /// The order service's database URL.
        #[arg(long)]
        order_database_url: String,
        /// Coupons per campaign.
        #[arg(long, default_value_t = 100)]
        coupons: i64,
        /// Shoppers, each claiming twice at once per round.
        #[arg(long, default_value_t = 2_000)]
        claimants: usize,
        /// Shoppers arriving per second, one round each.
        #[arg(long, value_delimiter = ',', default_value = "200,400,800")]
        rates: Vec<f64>,
        /// Shoppers in flight at most.
        #[arg(long, default_value_t = 2_000)]
        max_in_flight: usize,
        /// Sign-ups in flight while seeding.
        #[arg(long, default_value_t = 16)]
        register_concurrency: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Logins through the BFF at each offered rate, one in ten a wrong guess at one account:
    /// every shopper's login succeeds, every guess is refused, then throttled.
    LoginStorm {
        /// The BFF's gRPC URI.
        #[arg(long)]
        bff: String,
        /// Shoppers signed up first.
        #[arg(long, default_value_t = 200)]
        shoppers: usize,
        /// Logins per second, one run each.
        #[arg(long, value_delimiter = ',', default_value = "10,20,40,80")]
        rates: Vec<f64>,
        /// The user service's LOGIN_MAX_FAILURES.
        #[arg(long, default_value_t = 5)]
        max_failures: u64,
        /// Logins in flight at most.
        #[arg(long, default_value_t = 1_000)]
        max_in_flight: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// A shop's traffic mix (home 10, product 10, cart view 3, add 2, checkout 1) at each
    /// offered rate, a latency row per action; orders and reservations checked afterwards.
    Browse {
        /// The BFF's gRPC URI.
        #[arg(long)]
        bff: String,
        /// The product service's gRPC URI (seeding the catalog).
        #[arg(long)]
        product: String,
        /// The order service's database URL.
        #[arg(long)]
        order_database_url: String,
        /// The product service's database URL.
        #[arg(long)]
        product_database_url: String,
        /// Shoppers sharing the arrivals.
        #[arg(long, default_value_t = 100)]
        shoppers: usize,
        /// Products in the catalog.
        #[arg(long, default_value_t = 20)]
        products: usize,
        /// Arrivals (actions) per second, one run each.
        #[arg(long, value_delimiter = ',', default_value = "100,200,400,800")]
        rates: Vec<f64>,
        /// Actions in flight at most.
        #[arg(long, default_value_t = 2_000)]
        max_in_flight: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The cache baseline: redis-benchmark GET, SET and the BFF's rate-limit script.
    Redis {
        /// The Redis URL the services use.
        #[arg(long)]
        url: String,
        /// Prefix of every key written (the caller deletes them afterwards).
        #[arg(long)]
        key_prefix: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Resident memory of running processes, from /proc.
    Rss {
        /// The report's name (`idle-rss` before any load, `rss-after-load` after).
        #[arg(long, default_value = "idle-rss")]
        scenario: String,
        /// A process to read, `name=pid`; repeated.
        #[arg(long = "process", required = true)]
        processes: Vec<Process>,
        /// Where the report goes.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// The goals against the reports in a directory: summary.md and summary.json.
    Summary {
        /// Where the reports are.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
}

/// The databases the saga's invariants read.
#[derive(Debug, clap::Args)]
struct SagaDatabases {
    /// The order service's database URL.
    #[arg(long)]
    order_database_url: String,
    /// The product service's database URL.
    #[arg(long)]
    product_database_url: String,
    /// The payment service's database URL.
    #[arg(long)]
    payment_database_url: String,
    /// The process service's database URL.
    #[arg(long)]
    process_database_url: String,
}

/// Where the services' dead-letter queues are.
#[derive(Debug, clap::Args)]
struct BusArgs {
    /// The services' broker namespace (`MERCATO__BUS_NAMESPACE`).
    #[arg(long, default_value = "mercato-bench")]
    bus_namespace: String,
    /// How to run rabbitmqctl (words split on spaces, e.g.
    /// `docker compose exec -T rabbitmq rabbitmqctl`).
    #[arg(long, default_value = "rabbitmqctl")]
    rabbitmqctl: String,
}

impl BusArgs {
    fn probe(&self) -> std::sync::Arc<Rabbitmqctl> {
        std::sync::Arc::new(Rabbitmqctl {
            command: self
                .rabbitmqctl
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            namespace: self.bus_namespace.clone(),
        })
    }
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Calls in flight per path.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections per path.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured time per path (`10s`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unrecorded warm-up per path.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Where the JSON and Markdown reports go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

impl LoadArgs {
    fn shape(&self) -> LoadShape {
        LoadShape {
            concurrency: self.concurrency.max(1),
            warmup: self.warmup,
            duration: self.duration,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::HelloServer { addr } => hello::serve(addr).await,
        Command::Edge {
            bff,
            user,
            hello,
            load,
        } => {
            let targets = EdgeTargets { bff, user, hello };
            let report = scenarios::edge::run(&targets, load.shape(), load.connections).await?;
            publish(&report, &load.out)
        }
        Command::Catalog {
            bff,
            product,
            hello,
            load,
        } => {
            let targets = CatalogTargets {
                bff,
                product,
                hello,
            };
            let report = scenarios::catalog::run(&targets, load.shape(), load.connections).await?;
            publish(&report, &load.out)
        }
        Command::Stock {
            product,
            database_url,
            load,
        } => {
            let targets = StockTargets {
                product,
                database_url,
            };
            let report = scenarios::stock::run(&targets, load.shape(), load.connections).await?;
            publish(&report, &load.out)
        }
        Command::Checkout {
            bff,
            product,
            order_database_url,
            product_database_url,
            load,
        } => {
            let targets = CheckoutTargets {
                bff,
                product,
                order_database_url,
                product_database_url,
            };
            let report = scenarios::checkout::run(&targets, load.shape(), load.connections).await?;
            publish(&report, &load.out)
        }
        Command::Saga {
            bff,
            product,
            databases,
            bus,
            methods,
            rates,
            sla,
            max_in_flight,
            buyers,
            shipment_delay,
            no_baseline,
            load,
        } => {
            let targets = SagaTargets {
                bff,
                product,
                order_database_url: databases.order_database_url,
                product_database_url: databases.product_database_url,
                payment_database_url: databases.payment_database_url,
                process_database_url: databases.process_database_url,
                dead_letters: bus.probe(),
            };
            let options = SagaOptions {
                methods,
                rates,
                shape: load.shape(),
                max_in_flight,
                buyers,
                sla,
                connections: load.connections,
                baseline: !no_baseline,
                shipment_delay,
            };
            let report = scenarios::saga::run(&targets, &options).await?;
            publish(&report, &load.out)
        }
        Command::FlashSale {
            bff,
            product,
            databases,
            bus,
            buyers,
            units,
            rates,
            sla,
            max_in_flight,
            register_concurrency,
            load,
        } => {
            let targets = SagaTargets {
                bff,
                product,
                order_database_url: databases.order_database_url,
                product_database_url: databases.product_database_url,
                payment_database_url: databases.payment_database_url,
                process_database_url: databases.process_database_url,
                dead_letters: bus.probe(),
            };
            let options = FlashSaleOptions {
                buyers,
                units,
                rates,
                max_in_flight,
                sla,
                connections: load.connections,
                register_concurrency,
            };
            let report = scenarios::flash_sale::run(&targets, &options).await?;
            publish(&report, &load.out)
        }
        Command::CouponRush {
            bff,
            order,
            order_database_url,
            coupons,
            claimants,
            rates,
            max_in_flight,
            register_concurrency,
            load,
        } => {
            let targets = CouponRushTargets {
                bff,
                order,
                order_database_url,
            };
            let options = CouponRushOptions {
                coupons,
                claimants,
                rates,
                max_in_flight,
                connections: load.connections,
                register_concurrency,
            };
            let report = scenarios::coupon_rush::run(&targets, &options).await?;
            publish(&report, &load.out)
        }
        Command::LoginStorm {
            bff,
            shoppers,
            rates,
            max_failures,
            max_in_flight,
            load,
        } => {
            let options = LoginStormOptions {
                shoppers,
                rates,
                warmup: load.warmup,
                duration: load.duration,
                max_in_flight,
                max_failures,
                connections: load.connections,
            };
            let report = scenarios::login_storm::run(&LoginStormTargets { bff }, &options).await?;
            publish(&report, &load.out)
        }
        Command::Browse {
            bff,
            product,
            order_database_url,
            product_database_url,
            shoppers,
            products,
            rates,
            max_in_flight,
            load,
        } => {
            let targets = BrowseTargets {
                bff,
                product,
                order_database_url,
                product_database_url,
            };
            let options = BrowseOptions {
                shoppers,
                products,
                rates,
                warmup: load.warmup,
                duration: load.duration,
                max_in_flight,
                connections: load.connections,
            };
            let report = scenarios::browse::run(&targets, &options).await?;
            publish(&report, &load.out)
        }
        Command::Redis {
            url,
            key_prefix,
            load,
        } => {
            let targets = RedisTargets { url, key_prefix };
            let report = scenarios::redis::run(&targets, load.shape()).await?;
            publish(&report, &load.out)
        }
        Command::Rss {
            scenario,
            processes,
            out,
        } => publish(&scenarios::rss::run(&scenario, &processes)?, &out),
        Command::Summary { out } => {
            let summary = summary::summarize(&out);
            let written = summary.write(&out)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", summary.markdown());
                println!("written: {}", written[1].display());
            }
            Ok(())
        }
    }
}

/// Prints and writes the report; fails when it records broken invariants.
fn publish(report: &Report, out: &std::path::Path) -> anyhow::Result<()> {
    let written = report.write(out)?;
    let names: Vec<String> = written
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    #[allow(clippy::print_stdout)]
    {
        println!("{}", report.markdown());
        println!("written: {}", names.join(", "));
    }
    anyhow::ensure!(
        report.violations.is_empty(),
        "{} broke {} invariant(s):\n- {}",
        report.scenario,
        report.violations.len(),
        report.violations.join("\n- ")
    );
    Ok(())
}
