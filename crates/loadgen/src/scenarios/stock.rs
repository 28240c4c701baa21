//! The stock benchmark: reservations per second on one hot SKU through the product service,
//! against `pgbench` running the conditional UPDATE at the heart of a reservation on the same
//! row of the same database (the database's own limit for that row).
//!
//! Both sides serialise on one row lock, which is the point: a flash sale is exactly this. The
//! ratio says how much of the database's ceiling the service keeps while also recording the
//! reservation, its lines and the stock history in the same transaction.

use anyhow::Context as _;
use mercato_proto::mercato::product::v1 as product;
use product::stock_service_client::StockServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use super::seed::{self, internal};
use super::{connect_all, pgbench};
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

    let sku_id: Uuid = seeded
        .sku_id
        .parse()
        .context("the seeded SKU id is not a UUID")?;
    let script = format!(
        "UPDATE stock_levels SET reserved = reserved + 1 \
         WHERE sku_id = '{sku_id}' AND on_hand - reserved >= 1;\n"
    );
    let database = pgbench::run(
        &targets.database_url,
        "pgbench: the conditional UPDATE alone",
        &script,
        shape,
    )
    .await?;
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
