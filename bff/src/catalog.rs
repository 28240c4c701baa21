//! The storefront catalog (`mercato.bff.v1.CatalogService`), backed by the product service's
//! `ProductService` and `RankingService`, and the conversions between the public and internal
//! product messages that the seller and admin surfaces share.
//!
//! The catalog is public: whoever calls, it shows only PUBLISHED, non-deleted products and their
//! active SKUs. A signed-in seller looking at their own draft through the storefront gets the
//! same NOT_FOUND as anyone else; drafts are seen through `SellerService`.

use mercato_platform::grpc::ClientChannel;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::ProductStatus;
use mercato_proto::mercato::product::v1 as product;
use product::product_service_client::ProductServiceClient;
use product::ranking_service_client::RankingServiceClient;
use tonic::{Request, Response, Status};

use crate::error::{broken_contract, downstream};

/// `mercato.bff.v1.CatalogService`.
#[derive(Debug, Clone)]
pub struct CatalogGrpc {
    products: ProductServiceClient<ClientChannel>,
    ranking: RankingServiceClient<ClientChannel>,
}

impl CatalogGrpc {
    /// The handler over a product-service channel.
    pub fn new(channel: ClientChannel) -> Self {
        Self {
            products: ProductServiceClient::new(channel.clone()),
            ranking: RankingServiceClient::new(channel),
        }
    }
}

#[tonic::async_trait]
impl bff::catalog_service_server::CatalogService for CatalogGrpc {
    async fn list_products(
        &self,
        request: Request<bff::ListProductsRequest>,
    ) -> Result<Response<bff::ListProductsResponse>, Status> {
        let bff::ListProductsRequest {
            page_size,
            page_token,
            query,
            category,
            min_price,
            max_price,
            tags,
            featured_only,
            order_by,
        } = request.into_inner();
        let response = self
            .products
            .clone()
            .list_products(product::ListProductsRequest {
                page_size,
                page_token,
                query,
                category,
                seller_id: String::new(),
                min_price,
                max_price,
                tags,
                featured_only,
                statuses: vec![ProductStatus::Published.into()],
                order_by: sort(order_by),
                show_deleted: false,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListProductsResponse {
            products: response
                .products
                .into_iter()
                .filter(is_public)
                .map(storefront_product)
                .collect(),
            next_page_token: response.next_page_token,
        }))
    }

    async fn get_product(
        &self,
        request: Request<bff::GetProductRequest>,
    ) -> Result<Response<bff::GetProductResponse>, Status> {
        let bff::GetProductRequest { product_id } = request.into_inner();
        let found = self
            .products
            .clone()
            .get_product(product::GetProductRequest {
                product_id: product_id.clone(),
                show_deleted: false,
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .product
            .ok_or_else(|| broken_contract("GetProductResponse.product"))?;
        if !is_public(&found) {
            return Err(not_found(&product_id));
        }
        Ok(Response::new(bff::GetProductResponse {
            product: Some(storefront_product(found)),
        }))
    }

    async fn list_best_sellers(
        &self,
        request: Request<bff::ListBestSellersRequest>,
    ) -> Result<Response<bff::ListBestSellersResponse>, Status> {
        let bff::ListBestSellersRequest {
            page_size,
            page_token,
            category,
        } = request.into_inner();
        let response = self
            .ranking
            .clone()
            .list_best_sellers(product::ListBestSellersRequest {
                page_size,
                page_token,
                category,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListBestSellersResponse {
            best_sellers: response
                .best_sellers
                .into_iter()
                .map(|entry| bff::BestSeller {
                    rank: entry.rank,
                    product_id: entry.product_id,
                    product_name: entry.product_name,
                    main_image_url: entry.main_image_url,
                    min_price: entry.min_price,
                    units_sold: entry.units_sold,
                })
                .collect(),
            next_page_token: response.next_page_token,
            window_start_time: response.window_start_time,
            window_end_time: response.window_end_time,
        }))
    }
}

/// Whether the storefront may show a product.
fn is_public(found: &product::Product) -> bool {
    found.status == i32::from(ProductStatus::Published) && found.delete_time.is_none()
}

/// A public product: only its active SKUs.
fn storefront_product(found: product::Product) -> bff::Product {
    let mut public = public_product(found);
    public.skus.retain(|sku| sku.active);
    public
}

/// `NOT_FOUND` for a product the storefront does not show, worded as the product service words
/// an unknown one (so a draft's existence does not leak).
fn not_found(product_id: &str) -> Status {
    mercato_platform::error::not_found("RESOURCE_NOT_FOUND", "product", product_id)
}

/// The public ordering as the product service's (the enums share their numbers; unknown values
/// fall back to NEWEST rather than failing a storefront page).
pub(crate) fn sort(order_by: i32) -> i32 {
    match bff::ProductSort::try_from(order_by).unwrap_or(bff::ProductSort::Unspecified) {
        bff::ProductSort::Unspecified => product::ProductSort::Unspecified.into(),
        bff::ProductSort::Newest => product::ProductSort::Newest.into(),
        bff::ProductSort::PriceAscending => product::ProductSort::PriceAscending.into(),
        bff::ProductSort::PriceDescending => product::ProductSort::PriceDescending.into(),
        bff::ProductSort::Relevance => product::ProductSort::Relevance.into(),
    }
}

/// An internal product as the public API shows it (every SKU; callers filter).
pub(crate) fn public_product(found: product::Product) -> bff::Product {
    bff::Product {
        product_id: found.product_id,
        seller_id: found.seller_id,
        name: found.name,
        description: found.description,
        category: found.category,
        tags: found.tags,
        attributes: found.attributes,
        options: found
            .options
            .into_iter()
            .map(|option| bff::ProductOption {
                name: option.name,
                values: option.values,
            })
            .collect(),
        skus: found.skus.into_iter().map(public_sku).collect(),
        images: found
            .images
            .into_iter()
            .map(|image| bff::ProductImage {
                url: image.url,
                alt_text: image.alt_text,
                main: image.main,
            })
            .collect(),
        status: found.status,
        featured: found.featured,
        min_price: found.min_price,
        max_price: found.max_price,
        version: found.version,
        create_time: found.create_time,
        update_time: found.update_time,
        publish_time: found.publish_time,
    }
}

/// An internal SKU as the public API shows it.
pub(crate) fn public_sku(sku: product::Sku) -> bff::Sku {
    bff::Sku {
        sku_id: sku.sku_id,
        sku_code: sku.sku_code,
        option_values: sku.option_values,
        price: sku.price,
        available_quantity: sku.available_quantity,
        active: sku.active,
    }
}

/// A seller's product input as the product service's `Product` (output-only fields empty).
pub(crate) fn product_from_input(product_id: String, input: bff::ProductInput) -> product::Product {
    product::Product {
        product_id,
        name: input.name,
        description: input.description,
        category: input.category,
        tags: input.tags,
        attributes: input.attributes,
        options: input
            .options
            .into_iter()
            .map(|option| product::ProductOption {
                name: option.name,
                values: option.values,
            })
            .collect(),
        skus: input
            .skus
            .into_iter()
            .map(|sku| sku_from_input(String::new(), sku))
            .collect(),
        images: input
            .images
            .into_iter()
            .map(|image| product::ProductImage {
                url: image.url,
                alt_text: image.alt_text,
                main: image.main,
            })
            .collect(),
        ..product::Product::default()
    }
}

/// A seller's SKU input as the product service's `Sku`.
pub(crate) fn sku_from_input(sku_id: String, input: bff::SkuInput) -> product::Sku {
    product::Sku {
        sku_id,
        sku_code: input.sku_code,
        option_values: input.option_values,
        price: input.price,
        active: input.active,
        ..product::Sku::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_sort_maps_to_the_same_internal_sort() {
        for public in [
            bff::ProductSort::Unspecified,
            bff::ProductSort::Newest,
            bff::ProductSort::PriceAscending,
            bff::ProductSort::PriceDescending,
            bff::ProductSort::Relevance,
        ] {
            let internal =
                product::ProductSort::try_from(sort(public.into())).expect("a known internal sort");
            assert_eq!(
                internal.as_str_name().strip_prefix("PRODUCT_SORT_"),
                public.as_str_name().strip_prefix("PRODUCT_SORT_")
            );
        }
        assert_eq!(sort(99), i32::from(product::ProductSort::Unspecified));
    }

    #[test]
    fn the_storefront_hides_drafts_deleted_products_and_inactive_skus() {
        let sku = |active| product::Sku {
            active,
            ..product::Sku::default()
        };
        let published = product::Product {
            status: ProductStatus::Published.into(),
            skus: vec![sku(true), sku(false)],
            ..product::Product::default()
        };
        assert!(is_public(&published));
        assert_eq!(storefront_product(published.clone()).skus.len(), 1);
        let draft = product::Product {
            status: ProductStatus::Draft.into(),
            ..published.clone()
        };
        assert!(!is_public(&draft));
        let deleted = product::Product {
            delete_time: Some(Default::default()),
            ..published
        };
        assert!(!is_public(&deleted));
    }
}
