//! SQL of the catalog: plain functions over `&mut PgConnection` (the use cases own the
//! transactions). Listing queries are in `list.rs`, the ranking's in `ranking/store.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row as _};
use uuid::Uuid;

use crate::catalog::domain::{Image, ProductDraft, ProductOption, SkuDraft, Status};

/// The name of the unique index that keeps live SKU codes unique.
pub const SKU_CODE_INDEX: &str = "skus_code_live_idx";

/// A stored product (without its SKUs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRecord {
    /// Id.
    pub id: Uuid,
    /// Owning seller.
    pub seller_id: Uuid,
    /// Editable fields.
    pub draft: ProductDraft,
    /// Publication state.
    pub status: Status,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of the product or its SKUs.
    pub updated_at: DateTime<Utc>,
    /// First publication.
    pub published_at: Option<DateTime<Utc>>,
    /// Soft deletion.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Lowest active price.
    pub min_price_minor: Option<i64>,
    /// Highest active price.
    pub max_price_minor: Option<i64>,
    /// Currency of those prices.
    pub price_currency: Option<String>,
    /// Newest-first ordering key.
    pub sort_time: DateTime<Utc>,
}

/// A stored SKU with its live availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuRecord {
    /// Id.
    pub id: Uuid,
    /// Product.
    pub product_id: Uuid,
    /// Editable fields.
    pub draft: SkuDraft,
    /// `on_hand - reserved` when read.
    pub available: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Soft deletion.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Columns of `products` read into a [`ProductRecord`] (alias `p`).
pub const PRODUCT_COLUMNS: &str = "p.id, p.seller_id, p.name, p.description, p.category, p.tags, \
    p.attributes, p.options, p.images, p.status, p.featured, p.version, p.created_at, \
    p.updated_at, p.published_at, p.deleted_at, p.min_price_minor, p.max_price_minor, \
    p.price_currency, p.sort_time";

const SKU_COLUMNS: &str = "s.id, s.product_id, s.sku_code, s.option_values, s.price_minor, \
    s.currency_code, s.active, s.created_at, s.updated_at, s.deleted_at, \
    COALESCE(l.on_hand - l.reserved, 0) AS available";

/// Decodes a row selected with [`PRODUCT_COLUMNS`].
pub fn product_from_row(row: &PgRow) -> Result<ProductRecord, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let status = Status::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "status".to_owned(),
        source: format!("unknown product status {status:?}").into(),
    })?;
    Ok(ProductRecord {
        id: row.try_get("id")?,
        seller_id: row.try_get("seller_id")?,
        draft: ProductDraft {
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            category: row.try_get("category")?,
            tags: row.try_get("tags")?,
            attributes: row
                .try_get::<Json<BTreeMap<String, String>>, _>("attributes")?
                .0,
            options: row.try_get::<Json<Vec<ProductOption>>, _>("options")?.0,
            images: row.try_get::<Json<Vec<Image>>, _>("images")?.0,
            featured: row.try_get("featured")?,
        },
        status,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        published_at: row.try_get("published_at")?,
        deleted_at: row.try_get("deleted_at")?,
        min_price_minor: row.try_get("min_price_minor")?,
        max_price_minor: row.try_get("max_price_minor")?,
        price_currency: row.try_get("price_currency")?,
        sort_time: row.try_get("sort_time")?,
    })
}

fn sku_from_row(row: &PgRow) -> Result<SkuRecord, sqlx::Error> {
    Ok(SkuRecord {
        id: row.try_get("id")?,
        product_id: row.try_get("product_id")?,
        draft: SkuDraft {
            sku_code: row.try_get("sku_code")?,
            option_values: row
                .try_get::<Json<BTreeMap<String, String>>, _>("option_values")?
                .0,
            price_minor: row.try_get("price_minor")?,
            currency_code: row.try_get("currency_code")?,
            active: row.try_get("active")?,
        },
        available: row.try_get("available")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

/// Inserts a DRAFT product.
pub async fn insert_product(
    conn: &mut PgConnection,
    id: Uuid,
    seller_id: Uuid,
    draft: &ProductDraft,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO products (id, seller_id, name, description, category, tags, attributes, \
         options, images, status, featured, version, created_at, updated_at, sort_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'DRAFT', $10, 1, $11, $11, $11)",
    )
    .bind(id)
    .bind(seller_id)
    .bind(&draft.name)
    .bind(&draft.description)
    .bind(&draft.category)
    .bind(&draft.tags)
    .bind(Json(&draft.attributes))
    .bind(Json(&draft.options))
    .bind(Json(&draft.images))
    .bind(draft.featured)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts a SKU and its stock row (on hand 0).
pub async fn insert_sku(
    conn: &mut PgConnection,
    id: Uuid,
    product_id: Uuid,
    sku: &SkuDraft,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO skus (id, product_id, sku_code, option_values, price_minor, currency_code, \
         active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(id)
    .bind(product_id)
    .bind(&sku.sku_code)
    .bind(Json(&sku.option_values))
    .bind(sku.price_minor)
    .bind(&sku.currency_code)
    .bind(sku.active)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO stock_levels (sku_id, on_hand, reserved, updated_at) VALUES ($1, 0, 0, $2)",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Recomputes the product's price summary from its active live SKUs and bumps its version.
pub async fn touch_product(
    conn: &mut PgConnection,
    product_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products p SET min_price_minor = agg.min_price, max_price_minor = agg.max_price, \
         price_currency = agg.currency, version = p.version + 1, updated_at = $2 \
         FROM (SELECT min(price_minor) AS min_price, max(price_minor) AS max_price, \
               min(currency_code) AS currency FROM skus \
               WHERE product_id = $1 AND active AND deleted_at IS NULL) agg \
         WHERE p.id = $1",
    )
    .bind(product_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the price summary right after creation without bumping the version again.
pub async fn init_prices(conn: &mut PgConnection, product_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products p SET min_price_minor = agg.min_price, max_price_minor = agg.max_price, \
         price_currency = agg.currency \
         FROM (SELECT min(price_minor) AS min_price, max(price_minor) AS max_price, \
               min(currency_code) AS currency FROM skus \
               WHERE product_id = $1 AND active AND deleted_at IS NULL) agg \
         WHERE p.id = $1",
    )
    .bind(product_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A product by id (deleted ones included), optionally locked for update.
pub async fn find_product(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<ProductRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(product_from_row).transpose()
}

/// Live SKUs of the given products (only active ones unless `include_inactive`), ordered by
/// product, then creation.
pub async fn skus_of(
    conn: &mut PgConnection,
    product_ids: &[Uuid],
    include_inactive: bool,
) -> Result<Vec<SkuRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {SKU_COLUMNS} FROM skus s LEFT JOIN stock_levels l ON l.sku_id = s.id \
         WHERE s.product_id = ANY($1) AND s.deleted_at IS NULL AND ($2 OR s.active) \
         ORDER BY s.product_id, s.created_at, s.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(product_ids)
        .bind(include_inactive)
        .fetch_all(conn)
        .await?;
    rows.iter().map(sku_from_row).collect()
}

/// A live SKU by id, optionally locked.
pub async fn find_sku(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<SkuRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {SKU_COLUMNS} FROM skus s LEFT JOIN stock_levels l ON l.sku_id = s.id \
         WHERE s.id = $1 AND s.deleted_at IS NULL{}",
        if lock { " FOR UPDATE OF s" } else { "" }
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(sku_from_row).transpose()
}

/// One SKU of a `BatchGetSkus` answer with the product facts a cart needs.
#[derive(Debug, Clone)]
pub struct PurchasableRow {
    /// The SKU.
    pub sku: SkuRecord,
    /// The product.
    pub product: ProductRecord,
}

/// Live SKUs among `ids` with their (non-deleted) products.
pub async fn purchasable_skus(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<PurchasableRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {SKU_COLUMNS}, p.id AS p_id FROM skus s \
         LEFT JOIN stock_levels l ON l.sku_id = s.id \
         JOIN products p ON p.id = s.product_id \
         WHERE s.id = ANY($1) AND s.deleted_at IS NULL AND p.deleted_at IS NULL"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    let skus = rows
        .iter()
        .map(sku_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let product_ids: Vec<Uuid> = skus.iter().map(|s| s.product_id).collect();
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = ANY($1)");
    let products = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&product_ids)
        .fetch_all(conn)
        .await?
        .iter()
        .map(product_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(skus
        .into_iter()
        .filter_map(|sku| {
            let product = products.iter().find(|p| p.id == sku.product_id)?.clone();
            Some(PurchasableRow { sku, product })
        })
        .collect())
}

/// Writes the editable fields of a product and bumps its version.
pub async fn update_product(
    conn: &mut PgConnection,
    id: Uuid,
    draft: &ProductDraft,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products SET name = $2, description = $3, category = $4, tags = $5, \
         attributes = $6, options = $7, images = $8, featured = $9, version = version + 1, \
         updated_at = $10 WHERE id = $1",
    )
    .bind(id)
    .bind(&draft.name)
    .bind(&draft.description)
    .bind(&draft.category)
    .bind(&draft.tags)
    .bind(Json(&draft.attributes))
    .bind(Json(&draft.options))
    .bind(Json(&draft.images))
    .bind(draft.featured)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a product to `status`; the first publication sets `published_at` and the sort time.
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: Status,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products SET status = $2, version = version + 1, updated_at = $3, \
         published_at = CASE WHEN $2 = 'PUBLISHED' THEN COALESCE(published_at, $3) \
                        ELSE published_at END, \
         sort_time = CASE WHEN $2 = 'PUBLISHED' AND published_at IS NULL THEN $3 \
                     ELSE sort_time END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Soft-deletes a product and its live SKUs.
pub async fn delete_product(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE skus SET deleted_at = $2, updated_at = $2 WHERE product_id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE products SET deleted_at = $2, updated_at = $2, version = version + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the editable fields of a SKU.
pub async fn update_sku(
    conn: &mut PgConnection,
    id: Uuid,
    sku: &SkuDraft,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE skus SET sku_code = $2, option_values = $3, price_minor = $4, currency_code = $5, \
         active = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(id)
    .bind(&sku.sku_code)
    .bind(Json(&sku.option_values))
    .bind(sku.price_minor)
    .bind(&sku.currency_code)
    .bind(sku.active)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Soft-deletes a SKU (freeing its code).
pub async fn delete_sku(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE skus SET deleted_at = $2, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// The first of `codes` already used by a live SKU (other than `except`).
pub async fn taken_code(
    conn: &mut PgConnection,
    codes: &[String],
    except: Option<Uuid>,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT sku_code FROM skus WHERE sku_code = ANY($1) AND deleted_at IS NULL \
         AND ($2::uuid IS NULL OR id <> $2) ORDER BY sku_code LIMIT 1",
    )
    .bind(codes)
    .bind(except)
    .fetch_optional(conn)
    .await
}

/// Whether `err` is the live-SKU-code unique violation.
pub fn is_sku_code_conflict(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.constraint())
        .is_some_and(|c| c == SKU_CODE_INDEX)
}

/// A stored idempotency key: the hash of the request that used it and what it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Request hash.
    pub request_hash: String,
    /// The created resource.
    pub resource_id: Uuid,
}

/// Claims `(scope, key)` for `resource_id` unless a live claim exists; returns the existing
/// claim in that case. A concurrent claim blocks on the primary key until its transaction ends,
/// so the loser sees the winner's committed row (or claims the key if the winner rolled back).
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
    resource_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
    sqlx::query(
        "DELETE FROM catalog_idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at <= $3",
    )
    .bind(scope)
    .bind(key)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO catalog_idempotency_keys (scope, key, request_hash, resource_id, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(resource_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let row: Option<(String, Uuid)> = sqlx::query_as(
        "SELECT request_hash, resource_id FROM catalog_idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(request_hash, resource_id)| IdempotencyRecord {
        request_hash,
        resource_id,
    }))
}

/// Whether a PENDING reservation holds stock of the product's SKUs (or of `sku` only). Locks the
/// stock rows first: reservations change `stock_levels` under the same row locks, so none can
/// start on these SKUs until the caller's transaction ends.
pub async fn has_pending_reservations(
    conn: &mut PgConnection,
    product_id: Uuid,
    sku: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "SELECT l.sku_id FROM stock_levels l JOIN skus s ON s.id = l.sku_id \
         WHERE s.product_id = $1 AND ($2::uuid IS NULL OR s.id = $2) \
         ORDER BY l.sku_id FOR UPDATE OF l",
    )
    .bind(product_id)
    .bind(sku)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM reservation_lines rl \
         JOIN reservations r ON r.id = rl.reservation_id JOIN skus s ON s.id = rl.sku_id \
         WHERE s.product_id = $1 AND ($2::uuid IS NULL OR s.id = $2) AND r.status = 'PENDING')",
    )
    .bind(product_id)
    .bind(sku)
    .fetch_one(conn)
    .await
}
