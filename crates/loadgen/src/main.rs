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
//! ```
//!
//! `make bench` (deployments/bench.sh) starts release builds of the services on free ports and
//! runs these; the results land in `target/bench/<scenario>.{json,md}`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mercato_platform::settings::parse_duration;

use mercato_loadgen::measure::LoadShape;
use mercato_loadgen::report::Report;
use mercato_loadgen::scenarios::catalog::CatalogTargets;
use mercato_loadgen::scenarios::checkout::CheckoutTargets;
use mercato_loadgen::scenarios::edge::EdgeTargets;
use mercato_loadgen::scenarios::stock::StockTargets;
use mercato_loadgen::{hello, scenarios};

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
    }
}

fn publish(report: &Report, out: &std::path::Path) -> anyhow::Result<()> {
    let (json, markdown) = report.write(out)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", report.markdown());
        println!("written: {} and {}", json.display(), markdown.display());
    }
    Ok(())
}
