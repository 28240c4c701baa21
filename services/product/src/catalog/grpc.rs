//! The gRPC surface of `ProductService`: reads the caller, converts messages (see `convert.rs`)
//! and hands domain values to the use cases in `app`.

use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as pb;
use pb::product_service_server::ProductService;
use tonic::{Request, Response, Status};

use crate::catalog::app::{
    CatalogApp, CreateProduct, ProductField, ProductPatch, SkuField, SkuPatch,
};
use crate::catalog::convert::{
    draft_from_proto, idempotency_key, page_size, parse_id, parse_optional_id, product_to_proto,
    purchasable_to_proto, sku_from_proto, sku_to_proto, timestamp, viewer,
};
use crate::catalog::domain::{self, Violation};
use crate::catalog::error::CatalogError;
use crate::catalog::list::{ListFilter, Sort};

type GrpcResult<T> = Result<Response<T>, Status>;

/// Implements `ProductService` over a [`CatalogApp`].
#[derive(Debug, Clone)]
pub struct ProductGrpc {
    app: CatalogApp,
}

impl ProductGrpc {
    /// The service over `app`.
    pub fn new(app: CatalogApp) -> Self {
        Self { app }
    }

    fn shop_currency(&self) -> &str {
        &self.app.context().settings.catalog.currency
    }

    /// A Money filter in the shop currency, not negative.
    fn price_filter(
        &self,
        money: Option<common::Money>,
        field: &str,
    ) -> Result<Option<i64>, CatalogError> {
        let Some(common::Money {
            currency_code,
            amount_minor,
        }) = money
        else {
            return Ok(None);
        };
        if currency_code != self.shop_currency() {
            return Err(CatalogError::CurrencyMismatch {
                field: format!("{field}.currency_code"),
                expected: self.shop_currency().to_owned(),
            });
        }
        if amount_minor < 0 {
            return Err(CatalogError::field(
                format!("{field}.amount_minor"),
                "must not be negative",
            ));
        }
        Ok(Some(amount_minor))
    }
}

fn product_fields(
    mask: Option<prost_types::FieldMask>,
    product: &pb::Product,
) -> Result<Vec<ProductField>, CatalogError> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        let set = [
            (!product.name.is_empty(), ProductField::Name),
            (!product.description.is_empty(), ProductField::Description),
            (!product.category.is_empty(), ProductField::Category),
            (!product.tags.is_empty(), ProductField::Tags),
            (!product.attributes.is_empty(), ProductField::Attributes),
            (!product.options.is_empty(), ProductField::Options),
            (!product.images.is_empty(), ProductField::Images),
            (product.featured, ProductField::Featured),
        ];
        return Ok(set
            .into_iter()
            .filter(|(s, _)| *s)
            .map(|(_, f)| f)
            .collect());
    }
    paths
        .iter()
        .map(|path| match path.as_str() {
            "name" => Ok(ProductField::Name),
            "description" => Ok(ProductField::Description),
            "category" => Ok(ProductField::Category),
            "tags" => Ok(ProductField::Tags),
            "attributes" => Ok(ProductField::Attributes),
            "options" => Ok(ProductField::Options),
            "images" => Ok(ProductField::Images),
            "featured" => Ok(ProductField::Featured),
            other => Err(CatalogError::field(
                "update_mask",
                format!("{other:?} is not an updatable field"),
            )),
        })
        .collect()
}

fn sku_fields(
    mask: Option<prost_types::FieldMask>,
    sku: &pb::Sku,
) -> Result<Vec<SkuField>, CatalogError> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        let set = [
            (!sku.sku_code.is_empty(), SkuField::SkuCode),
            (!sku.option_values.is_empty(), SkuField::OptionValues),
            (sku.price.is_some(), SkuField::Price),
            (sku.active, SkuField::Active),
        ];
        return Ok(set
            .into_iter()
            .filter(|(s, _)| *s)
            .map(|(_, f)| f)
            .collect());
    }
    paths
        .iter()
        .map(|path| match path.as_str() {
            "sku_code" => Ok(SkuField::SkuCode),
            "option_values" => Ok(SkuField::OptionValues),
            "price" => Ok(SkuField::Price),
            "active" => Ok(SkuField::Active),
            other => Err(CatalogError::field(
                "update_mask",
                format!("{other:?} is not an updatable field"),
            )),
        })
        .collect()
}

#[tonic::async_trait]
impl ProductService for ProductGrpc {
    #[tracing::instrument(name = "product.get_product", skip_all)]
    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> GrpcResult<pb::GetProductResponse> {
        let viewer = viewer(&request);
        let pb::GetProductRequest {
            product_id,
            show_deleted,
        } = request.into_inner();
        let id = parse_id(&product_id, "product_id")?;
        let view = self.app.get_product(viewer, id, show_deleted).await?;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(product_to_proto(view)),
        }))
    }

    #[tracing::instrument(name = "product.batch_get_skus", skip_all)]
    async fn batch_get_skus(
        &self,
        request: Request<pb::BatchGetSkusRequest>,
    ) -> GrpcResult<pb::BatchGetSkusResponse> {
        // Internal: only another service (which names itself in x-mercato-caller) asks; the
        // BFF relays browsers and is not one.
        if !mercato_platform::principal::is_internal_service(&request) {
            return Err(CatalogError::RoleRequired("INTERNAL_SERVICE").into());
        }
        let pb::BatchGetSkusRequest { sku_ids } = request.into_inner();
        if sku_ids.is_empty() || sku_ids.len() > 100 {
            return Err(CatalogError::field("sku_ids", "must hold 1-100 ids").into());
        }
        let mut ids = Vec::with_capacity(sku_ids.len());
        let mut bad = Vec::new();
        for (i, raw) in sku_ids.iter().enumerate() {
            match uuid::Uuid::parse_str(raw.trim()) {
                Ok(id) if !ids.contains(&id) => ids.push(id),
                Ok(_) => {}
                Err(_) => bad.push(Violation::new(format!("sku_ids[{i}]"), "must be a uuid")),
            }
        }
        if !bad.is_empty() {
            return Err(CatalogError::Validation(bad).into());
        }
        let (found, missing) = self.app.batch_get_skus(&ids).await?;
        Ok(Response::new(pb::BatchGetSkusResponse {
            skus: found.into_iter().map(purchasable_to_proto).collect(),
            missing_sku_ids: missing.iter().map(ToString::to_string).collect(),
        }))
    }

    #[tracing::instrument(name = "product.list_products", skip_all)]
    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> GrpcResult<pb::ListProductsResponse> {
        let viewer = viewer(&request);
        let pb::ListProductsRequest {
            page_size: raw_page_size,
            page_token,
            query,
            category,
            seller_id,
            min_price,
            max_price,
            tags,
            featured_only,
            statuses,
            order_by,
            show_deleted,
        } = request.into_inner();
        let size = page_size(raw_page_size, 20, 100)?;
        let query = query.trim().to_owned();
        let mut list = Vec::new();
        if query.chars().count() > 200 {
            list.push(Violation::new("query", "must be at most 200 characters"));
        }
        if tags.len() > 10 {
            list.push(Violation::new("tags", "must hold at most 10 tags"));
        }
        let mut parsed_statuses = Vec::new();
        for (i, raw) in statuses.iter().enumerate() {
            match common::ProductStatus::try_from(*raw) {
                Ok(common::ProductStatus::Draft) => parsed_statuses.push(domain::Status::Draft),
                Ok(common::ProductStatus::Published) => {
                    parsed_statuses.push(domain::Status::Published);
                }
                Ok(common::ProductStatus::Hidden) => parsed_statuses.push(domain::Status::Hidden),
                Ok(common::ProductStatus::Unspecified) | Err(_) => {
                    list.push(Violation::new(
                        format!("statuses[{i}]"),
                        "is not a product status",
                    ));
                }
            }
        }
        parsed_statuses.sort_by_key(|s| s.as_str());
        parsed_statuses.dedup();
        if parsed_statuses.is_empty() {
            parsed_statuses.push(domain::Status::Published);
        }
        let sort = match pb::ProductSort::try_from(order_by) {
            Ok(pb::ProductSort::Unspecified | pb::ProductSort::Newest) => Sort::Newest,
            Ok(pb::ProductSort::PriceAscending) => Sort::PriceAscending,
            Ok(pb::ProductSort::PriceDescending) => Sort::PriceDescending,
            Ok(pb::ProductSort::Relevance) => Sort::Relevance,
            Err(_) => {
                list.push(Violation::new("order_by", "is not a product sort"));
                Sort::Newest
            }
        };
        if sort == Sort::Relevance && query.is_empty() {
            list.push(Violation::new("order_by", "relevance needs a query"));
        }
        if !list.is_empty() {
            return Err(CatalogError::Validation(list).into());
        }
        let min_price = self.price_filter(min_price, "min_price")?;
        let max_price = self.price_filter(max_price, "max_price")?;
        if let (Some(min), Some(max)) = (min_price, max_price)
            && min > max
        {
            return Err(CatalogError::field("max_price", "must not be below min_price").into());
        }
        let filter = ListFilter {
            query: Some(query).filter(|q| !q.is_empty()),
            category: Some(category.trim().to_owned()).filter(|c| !c.is_empty()),
            seller_id: parse_optional_id(&seller_id, "seller_id")?,
            min_price,
            max_price,
            tags: tags.iter().map(|t| t.trim().to_lowercase()).collect(),
            featured_only,
            statuses: parsed_statuses,
            sort,
            show_deleted,
        };
        let page = self
            .app
            .list_products(viewer, filter, size, &page_token)
            .await?;
        Ok(Response::new(pb::ListProductsResponse {
            products: page.products.into_iter().map(product_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "product.create_product", skip_all)]
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> GrpcResult<pb::CreateProductResponse> {
        let viewer = viewer(&request);
        let pb::CreateProductRequest {
            product,
            idempotency_key: key,
            seller_id,
        } = request.into_inner();
        let key = idempotency_key(&key)?;
        let seller_id = parse_optional_id(&seller_id, "seller_id")?;
        let Some(product) = product else {
            return Err(CatalogError::field("product", "is required").into());
        };
        let (draft, skus) = draft_from_proto(product);
        let request = CreateProduct {
            draft,
            skus: skus.into_iter().map(sku_from_proto).collect(),
            seller_id,
            idempotency_key: key,
        };
        let view = self.app.create_product(viewer, request).await?;
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(product_to_proto(view)),
        }))
    }

    #[tracing::instrument(name = "product.update_product", skip_all)]
    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> GrpcResult<pb::UpdateProductResponse> {
        let viewer = viewer(&request);
        let pb::UpdateProductRequest {
            product,
            update_mask,
            expected_version,
        } = request.into_inner();
        let Some(product) = product else {
            return Err(CatalogError::field("product", "is required").into());
        };
        let product_id = parse_id(&product.product_id, "product.product_id")?;
        let fields = product_fields(update_mask, &product)?;
        let (values, _) = draft_from_proto(product);
        let patch = ProductPatch {
            product_id,
            values,
            fields,
            expected_version: Some(expected_version).filter(|v| *v != 0),
        };
        let view = self.app.update_product(viewer, patch).await?;
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(product_to_proto(view)),
        }))
    }

    #[tracing::instrument(name = "product.delete_product", skip_all)]
    async fn delete_product(
        &self,
        request: Request<pb::DeleteProductRequest>,
    ) -> GrpcResult<pb::DeleteProductResponse> {
        let viewer = viewer(&request);
        let pb::DeleteProductRequest { product_id } = request.into_inner();
        let id = parse_id(&product_id, "product_id")?;
        let deleted = self.app.delete_product(viewer, id).await?;
        Ok(Response::new(pb::DeleteProductResponse {
            delete_time: Some(timestamp(deleted)),
        }))
    }

    #[tracing::instrument(name = "product.publish_product", skip_all)]
    async fn publish_product(
        &self,
        request: Request<pb::PublishProductRequest>,
    ) -> GrpcResult<pb::PublishProductResponse> {
        let viewer = viewer(&request);
        let pb::PublishProductRequest { product_id } = request.into_inner();
        let id = parse_id(&product_id, "product_id")?;
        let view = self.app.publish_product(viewer, id).await?;
        Ok(Response::new(pb::PublishProductResponse {
            product: Some(product_to_proto(view)),
        }))
    }

    #[tracing::instrument(name = "product.hide_product", skip_all)]
    async fn hide_product(
        &self,
        request: Request<pb::HideProductRequest>,
    ) -> GrpcResult<pb::HideProductResponse> {
        let viewer = viewer(&request);
        let pb::HideProductRequest { product_id } = request.into_inner();
        let id = parse_id(&product_id, "product_id")?;
        let view = self.app.hide_product(viewer, id).await?;
        Ok(Response::new(pb::HideProductResponse {
            product: Some(product_to_proto(view)),
        }))
    }

    #[tracing::instrument(name = "product.create_sku", skip_all)]
    async fn create_sku(
        &self,
        request: Request<pb::CreateSkuRequest>,
    ) -> GrpcResult<pb::CreateSkuResponse> {
        let viewer = viewer(&request);
        let pb::CreateSkuRequest {
            product_id,
            sku,
            idempotency_key: key,
        } = request.into_inner();
        let id = parse_id(&product_id, "product_id")?;
        let key = idempotency_key(&key)?;
        let Some(sku) = sku else {
            return Err(CatalogError::field("sku", "is required").into());
        };
        let created = self
            .app
            .create_sku(viewer, id, sku_from_proto(sku), &key)
            .await?;
        Ok(Response::new(pb::CreateSkuResponse {
            sku: Some(sku_to_proto(created)),
        }))
    }

    #[tracing::instrument(name = "product.update_sku", skip_all)]
    async fn update_sku(
        &self,
        request: Request<pb::UpdateSkuRequest>,
    ) -> GrpcResult<pb::UpdateSkuResponse> {
        let viewer = viewer(&request);
        let pb::UpdateSkuRequest { sku, update_mask } = request.into_inner();
        let Some(sku) = sku else {
            return Err(CatalogError::field("sku", "is required").into());
        };
        let sku_id = parse_id(&sku.sku_id, "sku.sku_id")?;
        let fields = sku_fields(update_mask, &sku)?;
        let patch = SkuPatch {
            sku_id,
            values: sku_from_proto(sku),
            fields,
        };
        let updated = self.app.update_sku(viewer, patch).await?;
        Ok(Response::new(pb::UpdateSkuResponse {
            sku: Some(sku_to_proto(updated)),
        }))
    }

    #[tracing::instrument(name = "product.delete_sku", skip_all)]
    async fn delete_sku(
        &self,
        request: Request<pb::DeleteSkuRequest>,
    ) -> GrpcResult<pb::DeleteSkuResponse> {
        let viewer = viewer(&request);
        let pb::DeleteSkuRequest { sku_id } = request.into_inner();
        let id = parse_id(&sku_id, "sku_id")?;
        let deleted = self.app.delete_sku(viewer, id).await?;
        Ok(Response::new(pb::DeleteSkuResponse {
            delete_time: Some(timestamp(deleted)),
        }))
    }
}
