//! The catalog benchmark: a public product read through the BFF against the same read directly
//! on the product service and against a bare tonic server (the machine's RPC ceiling); then the
//! BFF read again in an open loop at [`LOAD_FRACTION`] of the rate it reached closed-loop, the
//! latency a storefront sees at a sustainable load rather than at saturation.

use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::product::v1 as product;
use tonic::transport::Channel;

use super::{connect_all, measure_hello, seed};
use std::time::Duration;

use crate::measure::{LoadShape, OpenShape, PathResult, closed_loop, open_loop};
use crate::report::{Ratio, Report};

/// Where the services under test listen.
#[derive(Debug, Clone)]
pub struct CatalogTargets {
    /// The BFF's gRPC URI.
    pub bff: String,
    /// The product service's gRPC URI.
    pub product: String,
    /// A bare tonic server URI.
    pub hello: String,
}

/// Products read in rotation, so the cache holds several entries, as a storefront's would.
const PRODUCTS: usize = 20;

/// The open-loop run's offered rate, as a fraction of the closed-loop BFF rate.
pub const LOAD_FRACTION: f64 = 0.7;

/// The open-loop path's name (the summary finds it by this prefix).
pub const PARTIAL_LOAD_PATH: &str = "bff.v1 CatalogService.GetProduct (through the BFF) @ 70 %";

/// Seeds published products, then measures the three paths one after another.
pub async fn run(
    targets: &CatalogTargets,
    shape: LoadShape,
    channels: usize,
) -> anyhow::Result<Report> {
    let product_channels = connect_all(&targets.product, channels).await?;
    let bff_channels = connect_all(&targets.bff, channels).await?;
    let hello_channels = connect_all(&targets.hello, channels).await?;
    let ids: Vec<String> = seed::products(&product_channels[0], PRODUCTS)
        .await?
        .into_iter()
        .map(|seeded| seeded.product_id)
        .collect();

    let hello = measure_hello(hello_channels, shape).await?;
    let direct = measure_direct(product_channels, ids.clone(), shape).await?;
    let through_bff = measure_bff(bff_channels.clone(), ids.clone(), shape).await?;
    let partial =
        measure_bff_open(bff_channels, ids, shape, through_bff.rps * LOAD_FRACTION).await?;
    let ratios = vec![
        Ratio::new("bff catalog reads / raw tonic", through_bff.rps, hello.rps),
        Ratio::new("bff / direct throughput", through_bff.rps, direct.rps),
        Ratio::new(
            "bff / direct p99 latency",
            through_bff.p99_us as f64,
            direct.p99_us as f64,
        ),
    ];
    let mut report = Report::new(
        "catalog",
        shape,
        channels,
        vec![hello, direct, through_bff, partial],
        ratios,
    );
    report.note(format!(
        "{PRODUCTS} published products read in rotation; product details are served from the \
         product service's Redis cache after the first read of each"
    ));
    Ok(report)
}

async fn measure_direct(
    channels: Vec<Channel>,
    ids: Vec<String>,
    shape: LoadShape,
) -> anyhow::Result<PathResult> {
    closed_loop("product.v1 GetProduct (direct)", shape, move |worker| {
        let mut client = product::product_service_client::ProductServiceClient::new(
            channels[worker % channels.len()].clone(),
        );
        let product_id = ids[fastrand_index(worker, ids.len())].clone();
        async move {
            client
                .get_product(product::GetProductRequest {
                    product_id,
                    show_deleted: false,
                })
                .await
                .map(drop)
                .map_err(|status| status.code())
        }
    })
    .await
}

async fn measure_bff(
    channels: Vec<Channel>,
    ids: Vec<String>,
    shape: LoadShape,
) -> anyhow::Result<PathResult> {
    closed_loop(
        "bff.v1 CatalogService.GetProduct (through the BFF)",
        shape,
        move |worker| {
            let mut client = bff::catalog_service_client::CatalogServiceClient::new(
                channels[worker % channels.len()].clone(),
            );
            let product_id = ids[fastrand_index(worker, ids.len())].clone();
            async move {
                client
                    .get_product(bff::GetProductRequest { product_id })
                    .await
                    .map(drop)
                    .map_err(|status| status.code())
            }
        },
    )
    .await
}

/// The BFF read with arrivals at `rate` per second (at most 10 × the closed loop's calls in
/// flight, and at least 256).
async fn measure_bff_open(
    channels: Vec<Channel>,
    ids: Vec<String>,
    closed: LoadShape,
    rate: f64,
) -> anyhow::Result<PathResult> {
    let shape = OpenShape {
        rate: rate.max(1.0),
        warmup: closed.warmup,
        duration: closed.duration,
        // Room for a latency spike of the machine: a drop would be the load generator's own
        // limit, not the BFF's answer.
        max_in_flight: (closed.concurrency * 10).max(256),
        drain: Duration::from_secs(10),
    };
    let name = format!("{PARTIAL_LOAD_PATH} of its closed-loop rate, open model");
    open_loop(&name, shape, move |iteration| {
        let index = iteration as usize;
        let mut client = bff::catalog_service_client::CatalogServiceClient::new(
            channels[index % channels.len()].clone(),
        );
        let product_id = ids[index % ids.len()].clone();
        async move {
            client
                .get_product(bff::GetProductRequest { product_id })
                .await
                .map(drop)
                .map_err(|status| status.code())
        }
    })
    .await
}

/// A cheap varying index: the product read next by this worker.
fn fastrand_index(worker: usize, len: usize) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    (NEXT.fetch_add(1, Ordering::Relaxed) + worker) % len.max(1)
}
