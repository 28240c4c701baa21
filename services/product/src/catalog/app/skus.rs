//! SKU writes: create (with its stock row, idempotently), update by field mask, soft delete.
//! Every SKU write bumps the product's version, recomputes its price summary and invalidates
//! its cached detail after commit.

use serde::Serialize;
use uuid::Uuid;

use super::products::code_conflict;
use super::{CatalogApp, authorize, request_hash, violations, writer};
use crate::cache;
use crate::catalog::domain::{MAX_SKUS, SkuDraft, Status, Viewer, Violation};
use crate::catalog::error::CatalogError;
use crate::catalog::store::{self, SkuRecord};

/// A field `UpdateSku` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkuField {
    /// `sku_code`.
    SkuCode,
    /// `option_values`.
    OptionValues,
    /// `price`.
    Price,
    /// `active`.
    Active,
}

/// An `UpdateSku` request in domain terms.
#[derive(Debug, Clone)]
pub struct SkuPatch {
    /// The SKU.
    pub sku_id: Uuid,
    /// New values (only `fields` are read).
    pub values: SkuDraft,
    /// Fields to change.
    pub fields: Vec<SkuField>,
}

#[derive(Serialize)]
struct CreateSkuHash<'a> {
    product_id: Uuid,
    sku: &'a SkuDraft,
}

impl CatalogApp {
    /// Adds a SKU (stock 0) to a product, idempotently per caller and key.
    pub async fn create_sku(
        &self,
        viewer: Viewer,
        product_id: Uuid,
        mut sku: SkuDraft,
        idempotency_key: &str,
    ) -> Result<SkuRecord, CatalogError> {
        let writer = writer(viewer)?;
        sku.normalize();
        let hash = request_hash(&CreateSkuHash {
            product_id,
            sku: &sku,
        })?;
        let now = self.now();
        let sku_id = Uuid::now_v7();
        let mut tx = self.ctx.pool.begin().await?;
        let product = store::find_product(&mut tx, product_id, true)
            .await?
            .ok_or_else(|| CatalogError::product_not_found(product_id))?;
        authorize(writer, &product)?;
        let scope = format!("{}:CreateSku", writer.id);
        if let Some(existing) = store::claim_idempotency_key(
            &mut tx,
            &scope,
            idempotency_key,
            &hash,
            sku_id,
            now,
            self.idempotency_expiry(now),
        )
        .await?
        {
            if existing.request_hash != hash {
                return Err(CatalogError::IdempotencyKeyReused);
            }
            let found = store::find_sku(&mut tx, existing.resource_id, false)
                .await?
                .ok_or_else(|| CatalogError::sku_not_found(existing.resource_id))?;
            tx.commit().await?;
            return Ok(found);
        }
        let siblings = store::skus_of(&mut tx, &[product_id], true).await?;
        let mut list = sku.validate("sku", &product.draft.options);
        if siblings.len() >= MAX_SKUS {
            list.push(Violation::new(
                "sku",
                format!("a product has at most {MAX_SKUS} skus"),
            ));
        }
        if product.draft.options.is_empty() && !siblings.is_empty() {
            list.push(Violation::new(
                "sku.option_values",
                "a product without options has exactly one sku",
            ));
        }
        list.extend(duplicate_combination(&sku, &siblings, None));
        violations(list)?;
        self.check_currency(&[("sku".to_owned(), &sku)])?;
        if let Some(code) =
            store::taken_code(&mut tx, std::slice::from_ref(&sku.sku_code), None).await?
        {
            return Err(CatalogError::SkuCodeTaken(code));
        }
        store::insert_sku(&mut tx, sku_id, product_id, &sku, now)
            .await
            .map_err(|e| code_conflict(e, &sku.sku_code))?;
        store::touch_product(&mut tx, product_id, now).await?;
        let created = store::find_sku(&mut tx, sku_id, false)
            .await?
            .ok_or_else(|| CatalogError::sku_not_found(sku_id))?;
        tx.commit().await?;
        cache::invalidate_product(&self.ctx, product_id).await;
        Ok(created)
    }

    /// Applies a field-masked SKU update.
    pub async fn update_sku(
        &self,
        viewer: Viewer,
        patch: SkuPatch,
    ) -> Result<SkuRecord, CatalogError> {
        let writer = writer(viewer)?;
        let id = patch.sku_id;
        let mut tx = self.ctx.pool.begin().await?;
        let (product, current) = self.lock_sku(&mut tx, id).await?;
        authorize(writer, &product)?;
        let mut draft = current.draft.clone();
        let values = patch.values;
        for field in &patch.fields {
            match field {
                SkuField::SkuCode => draft.sku_code.clone_from(&values.sku_code),
                SkuField::OptionValues => draft.option_values.clone_from(&values.option_values),
                SkuField::Price => {
                    draft.price_minor = values.price_minor;
                    draft.currency_code.clone_from(&values.currency_code);
                }
                SkuField::Active => draft.active = values.active,
            }
        }
        draft.normalize();
        let siblings = store::skus_of(&mut tx, &[product.id], true).await?;
        let mut list = draft.validate("sku", &product.draft.options);
        list.extend(duplicate_combination(&draft, &siblings, Some(id)));
        violations(list)?;
        self.check_currency(&[("sku".to_owned(), &draft)])?;
        if draft.sku_code != current.draft.sku_code
            && let Some(code) =
                store::taken_code(&mut tx, std::slice::from_ref(&draft.sku_code), Some(id)).await?
        {
            return Err(CatalogError::SkuCodeTaken(code));
        }
        let now = self.now();
        store::update_sku(&mut tx, id, &draft, now)
            .await
            .map_err(|e| code_conflict(e, &draft.sku_code))?;
        store::touch_product(&mut tx, product.id, now).await?;
        let updated = store::find_sku(&mut tx, id, false)
            .await?
            .ok_or_else(|| CatalogError::sku_not_found(id))?;
        tx.commit().await?;
        cache::invalidate_product(&self.ctx, product.id).await;
        Ok(updated)
    }

    /// Soft-deletes a SKU; a PUBLISHED product keeps at least one active SKU.
    pub async fn delete_sku(
        &self,
        viewer: Viewer,
        id: Uuid,
    ) -> Result<chrono::DateTime<chrono::Utc>, CatalogError> {
        let writer = writer(viewer)?;
        let mut tx = self.ctx.pool.begin().await?;
        let (product, current) = self.lock_sku(&mut tx, id).await?;
        authorize(writer, &product)?;
        if product.status == Status::Published && current.draft.active {
            let active = store::skus_of(&mut tx, &[product.id], false).await?;
            if active.iter().all(|s| s.id == id) {
                return Err(CatalogError::ProductIncomplete {
                    product_id: product.id.to_string(),
                });
            }
        }
        if store::has_pending_reservations(&mut tx, product.id, Some(id)).await? {
            return Err(CatalogError::PendingReservations {
                resource_type: "sku",
                resource_id: id.to_string(),
            });
        }
        let now = self.now();
        store::delete_sku(&mut tx, id, now).await?;
        store::touch_product(&mut tx, product.id, now).await?;
        tx.commit().await?;
        cache::invalidate_product(&self.ctx, product.id).await;
        Ok(now)
    }

    /// Locks the SKU's product, then the SKU (always in that order, so SKU writes of one
    /// product serialize without deadlocks).
    async fn lock_sku(
        &self,
        conn: &mut sqlx::PgConnection,
        id: Uuid,
    ) -> Result<(store::ProductRecord, SkuRecord), CatalogError> {
        let sku = store::find_sku(conn, id, false)
            .await?
            .ok_or_else(|| CatalogError::sku_not_found(id))?;
        let product = store::find_product(conn, sku.product_id, true)
            .await?
            .filter(|p| p.deleted_at.is_none())
            .ok_or_else(|| CatalogError::sku_not_found(id))?;
        let sku = store::find_sku(conn, id, true)
            .await?
            .ok_or_else(|| CatalogError::sku_not_found(id))?;
        Ok((product, sku))
    }
}

/// A violation when an active `sku` repeats the option combination of another active SKU.
fn duplicate_combination(
    sku: &SkuDraft,
    siblings: &[SkuRecord],
    except: Option<Uuid>,
) -> Option<Violation> {
    if !sku.active || sku.option_values.is_empty() {
        return None;
    }
    siblings
        .iter()
        .filter(|s| Some(s.id) != except && s.draft.active)
        .find(|s| s.draft.option_values == sku.option_values)
        .map(|s| {
            Violation::new(
                "sku.option_values",
                format!("repeats the combination of sku {}", s.draft.sku_code),
            )
        })
}
