//! Test data for the product scenarios, created through the product service's own API as a
//! seller (and as an internal caller for stock), so the benchmark reads what a shop would hold.

use anyhow::Context as _;
use mercato_platform::principal::{CALLER_HEADER, Principal, Role};
use mercato_proto::mercato::common::v1::Money;
use mercato_proto::mercato::product::v1 as product;
use product::product_service_client::ProductServiceClient;
use product::stock_service_client::StockServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use uuid::Uuid;

/// What the loadgen calls itself in `x-mercato-caller` (an internal caller, not the BFF).
pub const CALLER: &str = "loadgen";

/// A request from the seeding seller.
fn as_seller<T>(seller: &Principal, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    seller.write_metadata(request.metadata_mut());
    request
}

/// A request from an internal caller.
pub fn internal<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(CALLER_HEADER, MetadataValue::from_static(CALLER));
    request
}

/// A published product with one SKU.
#[derive(Debug, Clone)]
pub struct SeededProduct {
    /// The product.
    pub product_id: String,
    /// Its only SKU.
    pub sku_id: String,
    /// The seller who owns it.
    pub seller: Principal,
}

/// Creates and publishes `count` products, one SKU each, owned by a fresh seller.
pub async fn products(channel: &Channel, count: usize) -> anyhow::Result<Vec<SeededProduct>> {
    let seller = Principal::new(Uuid::new_v4(), [Role::Seller]);
    let mut client = ProductServiceClient::new(channel.clone());
    let mut seeded = Vec::with_capacity(count);
    for index in 0..count {
        let sku = product::Sku {
            sku_code: format!("BENCH-{}-{index}", Uuid::new_v4().simple()),
            price: Some(Money {
                currency_code: "JPY".to_owned(),
                amount_minor: 1_000 + i64::try_from(index)?,
            }),
            active: true,
            ..product::Sku::default()
        };
        let created = client
            .create_product(as_seller(
                &seller,
                product::CreateProductRequest {
                    product: Some(product::Product {
                        name: format!("Benchmark product {index}"),
                        description: "A product created by mercato-loadgen.".to_owned(),
                        category: "benchmark".to_owned(),
                        skus: vec![sku],
                        ..product::Product::default()
                    }),
                    idempotency_key: Uuid::new_v4().to_string(),
                    seller_id: String::new(),
                },
            ))
            .await
            .context("CreateProduct while seeding")?
            .into_inner()
            .product
            .context("CreateProduct returned no product")?;
        let sku_id = created
            .skus
            .first()
            .map(|sku| sku.sku_id.clone())
            .context("the created product has no SKU")?;
        client
            .publish_product(as_seller(
                &seller,
                product::PublishProductRequest {
                    product_id: created.product_id.clone(),
                },
            ))
            .await
            .context("PublishProduct while seeding")?;
        seeded.push(SeededProduct {
            product_id: created.product_id,
            sku_id,
            seller: seller.clone(),
        });
    }
    Ok(seeded)
}

/// Sets the on-hand quantity of a seeded product's SKU, as its seller (stock adjustments are a
/// seller's or an admin's), with the current version.
pub async fn stock(channel: &Channel, product: &SeededProduct, on_hand: i64) -> anyhow::Result<()> {
    let mut client = StockServiceClient::new(channel.clone());
    let sku_id = &product.sku_id;
    let current = client
        .get_stock(internal(product::GetStockRequest {
            sku_id: sku_id.clone(),
        }))
        .await
        .context("GetStock while seeding")?
        .into_inner()
        .stock
        .context("GetStock returned no stock")?;
    client
        .adjust_stock(as_seller(
            &product.seller,
            product::AdjustStockRequest {
                sku_id: sku_id.clone(),
                on_hand,
                expected_version: current.version,
                reason: "benchmark stock".to_owned(),
                idempotency_key: Uuid::new_v4().to_string(),
            },
        ))
        .await
        .context("AdjustStock while seeding")?;
    Ok(())
}
