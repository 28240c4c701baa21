//! The stock benchmark: reservations per second on one hot SKU through the product service,
//! against `pgbench` running the conditional UPDATE at the heart of a reservation on the same
//! row of the same database (the database's own limit for that row).
//!
//! Both sides serialise on one row lock, which is the point: a flash sale is exactly this. The
//! ratio says how much of the database's ceiling the service keeps while also recording the
//! reservation, its lines and the stock history in the same transaction.

use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use mercato_proto::mercato::product::v1 as product;
use product::stock_service_client::StockServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use super::connect_all;
use super::seed::{self, internal};
use crate::measure::{LoadShape, PathResult, closed_loop};
use crate::report::{Ratio, Report};

/// Where the service and its database are.
#[derive(Debug, Clone)]
pub struct StockTargets {
    /// The product service's gRPC URI.
    pub product: String,
    /// The product service's database (for pgbench).
    pub database_url: String,
}

/// Enough stock that the benchmark never runs out.
const ON_HAND: i64 = 1_000_000_000;

/// Seeds one SKU with plenty of stock, then measures pgbench and the service on it.
pub async fn run(
    targets: &StockTargets,
    shape: LoadShape,
    channels: usize,
) -> anyhow::Result<Report> {
    let product_channels = connect_all(&targets.product, channels).await?;
    let seeded = seed::products(&product_channels[0], 1)
        .await?
        .pop()
        .context("seeding returned no product")?;
    seed::stock(&product_channels[0], &seeded, ON_HAND).await?;

    let database = pgbench(&targets.database_url, &seeded.sku_id, shape).await?;
    let service = measure_reserve(product_channels, seeded.sku_id, shape).await?;
    let ratios = vec![
        Ratio::new(
            "reservations / pgbench updates per second",
            service.rps,
            database.rps,
        ),
        Ratio::new(
            "reservation / pgbench p50 latency",
            service.p50_us as f64,
            database.p50_us as f64,
        ),
    ];
    let mut report = Report::new("stock", shape, channels, vec![database, service], ratios);
    report.note(
        "pgbench runs `UPDATE stock_levels SET reserved = reserved + 1 WHERE sku_id = $1 AND \
         on_hand - reserved >= 1` (prepared, autocommit) with the same number of clients; a \
         reservation also checks idempotency, inserts the reservation, its line and a history \
         row, and answers over gRPC"
            .to_owned(),
    );
    Ok(report)
}

async fn measure_reserve(
    channels: Vec<Channel>,
    sku_id: String,
    shape: LoadShape,
) -> anyhow::Result<PathResult> {
    closed_loop(
        "product.v1 ReserveStock, one hot SKU",
        shape,
        move |worker| {
            let mut client = StockServiceClient::new(channels[worker % channels.len()].clone());
            let request = internal(product::ReserveStockRequest {
                order_id: Uuid::new_v4().to_string(),
                lines: vec![product::ReserveStockLine {
                    sku_id: sku_id.clone(),
                    quantity: 1,
                }],
                ttl: None,
            });
            async move {
                client
                    .reserve_stock(request)
                    .await
                    .map(drop)
                    .map_err(|status| status.code())
            }
        },
    )
    .await
}

/// Runs pgbench's warm-up, then the measured run with per-transaction logging, and summarises
/// the logged latencies like any other path.
async fn pgbench(database_url: &str, sku_id: &str, shape: LoadShape) -> anyhow::Result<PathResult> {
    let dir = std::env::temp_dir().join(format!("mercato-pgbench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("reserve.sql");
    let sku_id: Uuid = sku_id.parse().context("the seeded SKU id is not a UUID")?;
    std::fs::write(
        &script,
        format!(
            "UPDATE stock_levels SET reserved = reserved + 1 \
             WHERE sku_id = '{sku_id}' AND on_hand - reserved >= 1;\n"
        ),
    )?;
    let clients = shape.concurrency.to_string();
    let run = |seconds: u64, log: bool| {
        let mut command = tokio::process::Command::new("pgbench");
        command
            .args(["-n", "-M", "prepared", "-c", &clients, "-j", "2", "-T"])
            .arg(seconds.max(1).to_string())
            .arg("-f")
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if log {
            command
                .arg("-l")
                .arg(format!("--log-prefix={}", dir.join("log").display()));
        }
        command.arg(database_url);
        command
    };
    let warmup = run(shape.warmup.as_secs(), false)
        .output()
        .await
        .context("running pgbench")?;
    anyhow::ensure!(
        warmup.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&warmup.stderr)
    );
    let measured = run(shape.duration.as_secs(), true).output().await?;
    anyhow::ensure!(
        measured.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&measured.stderr)
    );
    let result = summarise_logs(&dir, shape)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(result)
}

/// Reads pgbench's per-transaction logs (`client transaction latency_us script epoch us`).
fn summarise_logs(dir: &Path, shape: LoadShape) -> anyhow::Result<PathResult> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("log"));
        if !is_log {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let latency = line
                .split_whitespace()
                .nth(2)
                .and_then(|field| field.parse::<u64>().ok())
                .with_context(|| format!("unexpected pgbench log line {line:?}"))?;
            histogram.saturating_record(latency);
        }
    }
    let ok = histogram.len();
    anyhow::ensure!(ok > 0, "pgbench logged no transactions");
    Ok(PathResult {
        name: "pgbench: the conditional UPDATE alone".to_owned(),
        ok,
        errors: Default::default(),
        rps: ok as f64 / shape.duration.as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.50),
        p90_us: histogram.value_at_quantile(0.90),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
    })
}
