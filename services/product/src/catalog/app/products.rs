//! Product writes: create (with its SKUs and their stock rows), update by field mask with
//! optimistic concurrency, soft delete, publish and hide.

use serde::Serialize;
use uuid::Uuid;

use super::{CatalogApp, ProductView, authorize, request_hash, violations, writer};
use crate::cache;
use crate::catalog::domain::{
    ProductDraft, SkuDraft, Status, Viewer, Violation, option_values_problem, validate_sku_set,
};
use crate::catalog::error::CatalogError;
use crate::catalog::store;

/// A `CreateProduct` request in domain terms.
#[derive(Debug, Clone, Serialize)]
pub struct CreateProduct {
    /// The product's fields.
    pub draft: ProductDraft,
    /// Its initial SKUs.
    pub skus: Vec<SkuDraft>,
    /// The owner an admin names; `None` for "the caller".
    pub seller_id: Option<Uuid>,
    /// The retry key.
    #[serde(skip)]
    pub idempotency_key: String,
}

/// A field `UpdateProduct` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductField {
    /// `name`.
    Name,
    /// `description`.
    Description,
    /// `category`.
    Category,
    /// `tags`.
    Tags,
    /// `attributes`.
    Attributes,
    /// `options`.
    Options,
    /// `images`.
    Images,
    /// `featured` (admins only).
    Featured,
}

/// An `UpdateProduct` request in domain terms.
#[derive(Debug, Clone)]
pub struct ProductPatch {
    /// The product.
    pub product_id: Uuid,
    /// New values (only `fields` are read).
    pub values: ProductDraft,
    /// Fields to change.
    pub fields: Vec<ProductField>,
    /// Required current version, when set.
    pub expected_version: Option<i64>,
}

impl CatalogApp {
    /// Creates a DRAFT product with its SKUs (stock 0), idempotently per caller and key.
    pub async fn create_product(
        &self,
        viewer: Viewer,
        mut request: CreateProduct,
    ) -> Result<ProductView, CatalogError> {
        let writer = writer(viewer)?;
        if !writer.admin {
            if request.seller_id.is_some_and(|id| id != writer.id) {
                return Err(CatalogError::field(
                    "seller_id",
                    "only admins may create products for another seller",
                ));
            }
            request.draft.featured = false;
        }
        let seller_id = request.seller_id.unwrap_or(writer.id);
        request.draft.normalize();
        for sku in &mut request.skus {
            sku.normalize();
        }
        let mut list = request.draft.validate("product");
        for (i, sku) in request.skus.iter().enumerate() {
            list.extend(sku.validate(&format!("product.skus[{i}]"), &request.draft.options));
        }
        list.extend(validate_sku_set(
            &request.skus,
            &request.draft.options,
            "product",
        ));
        violations(list)?;
        let prefixed: Vec<(String, &SkuDraft)> = request
            .skus
            .iter()
            .enumerate()
            .map(|(i, sku)| (format!("product.skus[{i}]"), sku))
            .collect();
        self.check_currency(&prefixed)?;

        let hash = request_hash(&(&request, seller_id))?;
        let now = self.now();
        let product_id = Uuid::now_v7();
        let mut tx = self.ctx.pool.begin().await?;
        let scope = format!("{}:CreateProduct", writer.id);
        if let Some(existing) = store::claim_idempotency_key(
            &mut tx,
            &scope,
            &request.idempotency_key,
            &hash,
            product_id,
            now,
            self.idempotency_expiry(now),
        )
        .await?
        {
            if existing.request_hash != hash {
                return Err(CatalogError::IdempotencyKeyReused);
            }
            let view = self.privileged_view(&mut tx, existing.resource_id).await?;
            tx.commit().await?;
            return Ok(view);
        }
        let codes: Vec<String> = request.skus.iter().map(|s| s.sku_code.clone()).collect();
        if let Some(code) = store::taken_code(&mut tx, &codes, None).await? {
            return Err(CatalogError::SkuCodeTaken(code));
        }
        store::insert_product(&mut tx, product_id, seller_id, &request.draft, now).await?;
        for sku in &request.skus {
            store::insert_sku(&mut tx, Uuid::now_v7(), product_id, sku, now)
                .await
                .map_err(|e| code_conflict(e, &sku.sku_code))?;
        }
        store::init_prices(&mut tx, product_id).await?;
        let view = self.privileged_view(&mut tx, product_id).await?;
        tx.commit().await?;
        tracing::info!(product.id = %product_id, seller.id = %seller_id, "product created");
        Ok(view)
    }

    /// Applies a field-masked update.
    pub async fn update_product(
        &self,
        viewer: Viewer,
        patch: ProductPatch,
    ) -> Result<ProductView, CatalogError> {
        let writer = writer(viewer)?;
        if patch.fields.contains(&ProductField::Featured) && !writer.admin {
            return Err(CatalogError::RoleRequired("ROLE_ADMIN"));
        }
        let id = patch.product_id;
        let mut tx = self.ctx.pool.begin().await?;
        let current = store::find_product(&mut tx, id, true)
            .await?
            .ok_or_else(|| CatalogError::product_not_found(id))?;
        authorize(writer, &current)?;
        if let Some(expected) = patch.expected_version
            && expected != current.version
        {
            return Err(CatalogError::VersionMismatch(current.version));
        }
        let mut draft = current.draft.clone();
        let values = patch.values;
        for field in &patch.fields {
            match field {
                ProductField::Name => draft.name.clone_from(&values.name),
                ProductField::Description => draft.description.clone_from(&values.description),
                ProductField::Category => draft.category.clone_from(&values.category),
                ProductField::Tags => draft.tags.clone_from(&values.tags),
                ProductField::Attributes => draft.attributes.clone_from(&values.attributes),
                ProductField::Options => draft.options.clone_from(&values.options),
                ProductField::Images => draft.images.clone_from(&values.images),
                ProductField::Featured => draft.featured = values.featured,
            }
        }
        draft.normalize();
        let mut list = draft.validate("product");
        if patch.fields.contains(&ProductField::Options) {
            let skus = store::skus_of(&mut tx, &[id], true).await?;
            for sku in &skus {
                if let Some(problem) =
                    option_values_problem(&sku.draft.option_values, &draft.options)
                {
                    list.push(Violation::new(
                        "product.options",
                        format!("would leave sku {}: {problem}", sku.draft.sku_code),
                    ));
                }
            }
        }
        violations(list)?;
        let now = self.now();
        store::update_product(&mut tx, id, &draft, now).await?;
        let view = self.privileged_view(&mut tx, id).await?;
        tx.commit().await?;
        cache::invalidate_product(&self.ctx, id).await;
        Ok(view)
    }

    /// Soft-deletes a product and its SKUs; returns the deletion time.
    pub async fn delete_product(
        &self,
        viewer: Viewer,
        id: Uuid,
    ) -> Result<chrono::DateTime<chrono::Utc>, CatalogError> {
        let writer = writer(viewer)?;
        let mut tx = self.ctx.pool.begin().await?;
        let current = store::find_product(&mut tx, id, true)
            .await?
            .ok_or_else(|| CatalogError::product_not_found(id))?;
        authorize(writer, &current)?;
        if store::has_pending_reservations(&mut tx, id, None).await? {
            return Err(CatalogError::PendingReservations {
                resource_type: "product",
                resource_id: id.to_string(),
            });
        }
        let now = self.now();
        store::delete_product(&mut tx, id, now).await?;
        tx.commit().await?;
        cache::invalidate_product(&self.ctx, id).await;
        tracing::info!(product.id = %id, "product deleted");
        Ok(now)
    }

    /// DRAFT or HIDDEN → PUBLISHED (a no-op when PUBLISHED); needs an active SKU.
    pub async fn publish_product(
        &self,
        viewer: Viewer,
        id: Uuid,
    ) -> Result<ProductView, CatalogError> {
        self.transition(viewer, id, Status::Published).await
    }

    /// PUBLISHED → HIDDEN (a no-op when HIDDEN); a DRAFT cannot be hidden.
    pub async fn hide_product(
        &self,
        viewer: Viewer,
        id: Uuid,
    ) -> Result<ProductView, CatalogError> {
        self.transition(viewer, id, Status::Hidden).await
    }

    async fn transition(
        &self,
        viewer: Viewer,
        id: Uuid,
        target: Status,
    ) -> Result<ProductView, CatalogError> {
        let writer = writer(viewer)?;
        let mut tx = self.ctx.pool.begin().await?;
        let current = store::find_product(&mut tx, id, true)
            .await?
            .ok_or_else(|| CatalogError::product_not_found(id))?;
        authorize(writer, &current)?;
        if current.status == target {
            let view = self.privileged_view(&mut tx, id).await?;
            tx.commit().await?;
            return Ok(view);
        }
        match (current.status, target) {
            (Status::Draft | Status::Hidden, Status::Published) => {
                let active = store::skus_of(&mut tx, &[id], false).await?;
                if active.is_empty() {
                    return Err(CatalogError::ProductIncomplete {
                        product_id: id.to_string(),
                    });
                }
            }
            (Status::Published, Status::Hidden) => {}
            (from, to) => {
                return Err(CatalogError::IllegalTransition {
                    product_id: id.to_string(),
                    current: from.as_str(),
                    requested: to.as_str(),
                });
            }
        }
        store::set_status(&mut tx, id, target, self.now()).await?;
        let view = self.privileged_view(&mut tx, id).await?;
        tx.commit().await?;
        cache::invalidate_product(&self.ctx, id).await;
        tracing::info!(product.id = %id, status = target.as_str(), "product status changed");
        Ok(view)
    }
}

/// Maps the live-code unique violation of an insert to `SKU_CODE_TAKEN` (a concurrent writer
/// took the code after our check).
pub(super) fn code_conflict(err: sqlx::Error, code: &str) -> CatalogError {
    if store::is_sku_code_conflict(&err) {
        CatalogError::SkuCodeTaken(code.to_owned())
    } else {
        CatalogError::Database(err)
    }
}
