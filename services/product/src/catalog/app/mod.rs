//! Use cases of the catalog. `grpc.rs` has already turned protobuf into domain values; each use
//! case here authorizes, validates, opens the transaction, calls the store, commits, and only
//! then invalidates the product's cached detail.
//!
//! This module holds [`CatalogApp`], the reads (`GetProduct`, `BatchGetSkus`) and the shared
//! authorization and validation helpers; the writes are in `products` and `skus`.

mod products;
mod skus;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

pub use products::{CreateProduct, ProductField, ProductPatch};
pub use skus::{SkuField, SkuPatch};

use crate::cache;
use crate::catalog::domain::{SkuDraft, Status, Viewer, Violation};
use crate::catalog::error::CatalogError;
use crate::catalog::store::{self, ProductRecord, PurchasableRow, SkuRecord};
use crate::context::ProductContext;

/// How long an idempotency key is remembered.
const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// A product with the SKUs its viewer may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    /// The product.
    pub product: ProductRecord,
    /// Live SKUs (inactive ones only for privileged viewers).
    pub skus: Vec<SkuRecord>,
}

/// The catalog's use cases; cheap to clone.
#[derive(Debug, Clone)]
pub struct CatalogApp {
    ctx: ProductContext,
}

/// An authenticated writer: a seller or an admin.
#[derive(Debug, Clone, Copy)]
struct Writer {
    id: Uuid,
    admin: bool,
}

impl CatalogApp {
    /// The use cases over `ctx`.
    pub fn new(ctx: ProductContext) -> Self {
        Self { ctx }
    }

    /// The shared context.
    pub fn context(&self) -> &ProductContext {
        &self.ctx
    }

    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
    }

    /// One product as `viewer` may see it. Public views of PUBLISHED products come from the
    /// detail cache when present.
    pub async fn get_product(
        &self,
        viewer: Viewer,
        id: Uuid,
        show_deleted: bool,
    ) -> Result<ProductView, CatalogError> {
        let key = cache::product_key(&self.ctx, id);
        let may_use_cache = matches!(
            viewer,
            Viewer::Anonymous | Viewer::User { admin: false, .. }
        );
        if may_use_cache && let Some(raw) = cache::get(&self.ctx, &key).await {
            match serde_json::from_str::<ProductView>(&raw) {
                // The owning seller also sees inactive SKUs, which the public copy lacks.
                Ok(view) if !viewer.is_privileged_for(view.product.seller_id) => {
                    return Ok(view);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, product.id = %id, "undecodable cached product");
                }
            }
        }
        let mut conn = self.ctx.pool.acquire().await?;
        let product = store::find_product(&mut conn, id, false)
            .await?
            .ok_or_else(|| CatalogError::product_not_found(id))?;
        let deleted_visible = show_deleted && viewer.is_admin();
        if (product.deleted_at.is_some() && !deleted_visible)
            || !viewer.can_see(product.seller_id, product.status)
        {
            return Err(CatalogError::product_not_found(id));
        }
        let privileged = viewer.is_privileged_for(product.seller_id);
        let skus = store::skus_of(&mut conn, &[id], privileged).await?;
        let view = ProductView { product, skus };
        if !privileged
            && view.product.status == Status::Published
            && view.product.deleted_at.is_none()
        {
            match serde_json::to_string(&view) {
                Ok(raw) => {
                    let ttl = self.ctx.settings.catalog.product_cache_ttl;
                    cache::put(&self.ctx, &key, &raw, ttl).await;
                }
                Err(error) => tracing::warn!(%error, "product view does not serialize"),
            }
        }
        Ok(view)
    }

    /// SKUs by id with their products; ids not found (or deleted) are returned as missing.
    pub async fn batch_get_skus(
        &self,
        ids: &[Uuid],
    ) -> Result<(Vec<PurchasableRow>, Vec<Uuid>), CatalogError> {
        let mut conn = self.ctx.pool.acquire().await?;
        let rows = store::purchasable_skus(&mut conn, ids).await?;
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            match rows.iter().find(|r| r.sku.id == *id) {
                Some(row) => found.push(row.clone()),
                None => missing.push(*id),
            }
        }
        Ok((found, missing))
    }

    /// A product as its owner sees it, after a write.
    async fn privileged_view(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
    ) -> Result<ProductView, CatalogError> {
        let product = store::find_product(conn, id, false)
            .await?
            .ok_or_else(|| CatalogError::product_not_found(id))?;
        let skus = store::skus_of(conn, &[id], true).await?;
        Ok(ProductView { product, skus })
    }

    /// Checks the shop currency of every SKU after the other validations passed.
    fn check_currency(&self, skus: &[(String, &SkuDraft)]) -> Result<(), CatalogError> {
        let expected = &self.ctx.settings.catalog.currency;
        for (prefix, sku) in skus {
            if &sku.currency_code != expected {
                return Err(CatalogError::CurrencyMismatch {
                    field: format!("{prefix}.price.currency_code"),
                    expected: expected.clone(),
                });
            }
        }
        Ok(())
    }

    fn idempotency_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS)
    }
}

/// The writer behind `viewer`: anonymous and internal callers are unauthenticated for writes,
/// users without ROLE_SELLER or ROLE_ADMIN lack the role.
fn writer(viewer: Viewer) -> Result<Writer, CatalogError> {
    match viewer {
        Viewer::Anonymous | Viewer::Internal => Err(CatalogError::TokenMissing),
        Viewer::User { id, seller, admin } => {
            if seller || admin {
                Ok(Writer { id, admin })
            } else {
                Err(CatalogError::RoleRequired("ROLE_SELLER"))
            }
        }
    }
}

/// Whether `writer` may change `product`: admins always; sellers their own products; another
/// seller's product is NOT_RESOURCE_OWNER when they can see it and NOT_FOUND otherwise.
fn authorize(writer: Writer, product: &ProductRecord) -> Result<(), CatalogError> {
    if product.deleted_at.is_some() {
        return Err(CatalogError::product_not_found(product.id));
    }
    if writer.admin || writer.id == product.seller_id {
        return Ok(());
    }
    if product.status == Status::Published {
        Err(CatalogError::NotResourceOwner)
    } else {
        Err(CatalogError::product_not_found(product.id))
    }
}

fn violations(list: Vec<Violation>) -> Result<(), CatalogError> {
    if list.is_empty() {
        Ok(())
    } else {
        Err(CatalogError::Validation(list))
    }
}

/// Hex SHA-256 of a request's canonical JSON form.
fn request_hash<T: Serialize>(request: &T) -> Result<String, CatalogError> {
    let json = serde_json::to_vec(request).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    Ok(Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
