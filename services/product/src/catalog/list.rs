//! `ListProducts`: filters, the four orderings and keyset paging.
//!
//! Every ordering ends with the product id, so the sort key is unique and a page continues
//! exactly after the last row of the previous one (no offsets: rows inserted meanwhile never
//! shift a page). The page token is base64url JSON holding that last key and a hash of the
//! filters and ordering it belongs to; a token used with other filters is INVALID_PAGE_TOKEN.
//! Tokens are not signed: tampering can only move the cursor, never widen what the caller may
//! see, because authorization is applied to every request.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::{Postgres, QueryBuilder, Row as _};
use uuid::Uuid;

use crate::catalog::app::{CatalogApp, ProductView};
use crate::catalog::domain::{Status, Viewer};
use crate::catalog::error::CatalogError;
use crate::catalog::store::{self, PRODUCT_COLUMNS};

/// Orderings of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sort {
    /// Newest first.
    Newest,
    /// Cheapest first.
    PriceAscending,
    /// Most expensive first.
    PriceDescending,
    /// Best full-text match first.
    Relevance,
}

/// The filters of a listing (everything a page token is bound to).
#[derive(Debug, Clone, Serialize)]
pub struct ListFilter {
    /// Full-text query.
    pub query: Option<String>,
    /// Category slug.
    pub category: Option<String>,
    /// Owning seller.
    pub seller_id: Option<Uuid>,
    /// Lowest min price.
    pub min_price: Option<i64>,
    /// Highest min price.
    pub max_price: Option<i64>,
    /// Required tags (lower-cased).
    pub tags: Vec<String>,
    /// Featured only.
    pub featured_only: bool,
    /// Statuses (never empty).
    pub statuses: Vec<Status>,
    /// Ordering.
    pub sort: Sort,
    /// Include deleted products (admins only).
    pub show_deleted: bool,
}

/// A page of products.
#[derive(Debug, Clone)]
pub struct ProductPage {
    /// Products with their SKUs.
    pub products: Vec<ProductView>,
    /// Token of the next page, empty on the last.
    pub next_page_token: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PageToken {
    /// Hash of the filters.
    f: String,
    /// Sort time (NEWEST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<DateTime<Utc>>,
    /// Sort price (price orderings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<i64>,
    /// Rank (RELEVANCE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<f32>,
    /// Last product id.
    id: Uuid,
}

fn filter_hash(filter: &ListFilter) -> Result<String, CatalogError> {
    let json = serde_json::to_vec(filter).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    Ok(Sha256::digest(&json)
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn decode_token(raw: &str, hash: &str) -> Result<Option<PageToken>, CatalogError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| CatalogError::InvalidPageToken)?;
    let token: PageToken =
        serde_json::from_slice(&bytes).map_err(|_| CatalogError::InvalidPageToken)?;
    if token.f != hash {
        return Err(CatalogError::InvalidPageToken);
    }
    Ok(Some(token))
}

/// The price sort key: products without an active SKU sort last either way.
const PRICE_ASC_KEY: &str = "COALESCE(p.min_price_minor, 9223372036854775807)";
const PRICE_DESC_KEY: &str = "COALESCE(p.min_price_minor, -1)";

impl CatalogApp {
    /// Lists products `viewer` may see, one page after `page_token`.
    pub async fn list_products(
        &self,
        viewer: Viewer,
        mut filter: ListFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<ProductPage, CatalogError> {
        let only_published = filter.statuses.iter().all(|s| *s == Status::Published);
        let own_listing =
            matches!(viewer, Viewer::User { id, seller: true, .. } if filter.seller_id == Some(id));
        let privileged = matches!(viewer, Viewer::Internal) || viewer.is_admin();
        if !only_published && !privileged && !own_listing {
            return Err(CatalogError::RoleRequired("ROLE_ADMIN"));
        }
        if !viewer.is_admin() {
            filter.show_deleted = false;
        }
        let hash = filter_hash(&filter)?;
        let cursor = decode_token(page_token, &hash)?;

        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {PRODUCT_COLUMNS}, {PRICE_ASC_KEY} AS price_asc, {PRICE_DESC_KEY} AS price_desc, "
        ));
        match &filter.query {
            Some(text) => {
                qb.push("ts_rank(p.search, q) AS rank FROM products p CROSS JOIN websearch_to_tsquery('simple', ");
                qb.push_bind(text.clone());
                qb.push(") AS q WHERE p.search @@ q");
            }
            None => {
                qb.push("0::real AS rank FROM products p WHERE TRUE");
            }
        }
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        qb.push(" AND p.status = ANY(");
        qb.push_bind(statuses);
        qb.push(")");
        if !filter.show_deleted {
            qb.push(" AND p.deleted_at IS NULL");
        }
        if let Some(category) = &filter.category {
            qb.push(" AND p.category = ").push_bind(category.clone());
        }
        if let Some(seller) = filter.seller_id {
            qb.push(" AND p.seller_id = ").push_bind(seller);
        }
        if let Some(min) = filter.min_price {
            qb.push(" AND p.min_price_minor >= ").push_bind(min);
        }
        if let Some(max) = filter.max_price {
            qb.push(" AND p.min_price_minor <= ").push_bind(max);
        }
        if !filter.tags.is_empty() {
            qb.push(" AND p.tags @> ").push_bind(filter.tags.clone());
        }
        if filter.featured_only {
            qb.push(" AND p.featured");
        }
        let order = match filter.sort {
            Sort::Newest => {
                if let Some(c) = &cursor {
                    let t = c.t.ok_or(CatalogError::InvalidPageToken)?;
                    qb.push(" AND (p.sort_time, p.id) < (").push_bind(t);
                    qb.push(", ").push_bind(c.id).push(")");
                }
                " ORDER BY p.sort_time DESC, p.id DESC"
            }
            Sort::PriceAscending => {
                if let Some(c) = &cursor {
                    let p = c.p.ok_or(CatalogError::InvalidPageToken)?;
                    qb.push(format!(" AND ({PRICE_ASC_KEY}, p.id) > ("))
                        .push_bind(p);
                    qb.push(", ").push_bind(c.id).push(")");
                }
                " ORDER BY price_asc ASC, p.id ASC"
            }
            Sort::PriceDescending => {
                if let Some(c) = &cursor {
                    let p = c.p.ok_or(CatalogError::InvalidPageToken)?;
                    qb.push(format!(" AND ({PRICE_DESC_KEY}, p.id) < ("))
                        .push_bind(p);
                    qb.push(", ").push_bind(c.id).push(")");
                }
                " ORDER BY price_desc DESC, p.id DESC"
            }
            Sort::Relevance => {
                if let Some(c) = &cursor {
                    let r = c.r.ok_or(CatalogError::InvalidPageToken)?;
                    qb.push(" AND (ts_rank(p.search, q), p.id) < (")
                        .push_bind(r);
                    qb.push("::real, ").push_bind(c.id).push(")");
                }
                " ORDER BY rank DESC, p.id DESC"
            }
        };
        qb.push(order);
        let limit = i64::try_from(page_size).unwrap_or(100).saturating_add(1);
        qb.push(" LIMIT ").push_bind(limit);

        let mut conn = self.context().pool.acquire().await?;
        let rows = qb.build().fetch_all(&mut *conn).await?;
        let has_more = rows.len() > page_size;
        let mut products = Vec::with_capacity(page_size);
        let mut last_key = None;
        for row in rows.iter().take(page_size) {
            let product = store::product_from_row(row)?;
            last_key = Some(PageToken {
                f: hash.clone(),
                t: Some(product.sort_time).filter(|_| filter.sort == Sort::Newest),
                p: match filter.sort {
                    Sort::PriceAscending => Some(row.try_get("price_asc")?),
                    Sort::PriceDescending => Some(row.try_get("price_desc")?),
                    Sort::Newest | Sort::Relevance => None,
                },
                r: if filter.sort == Sort::Relevance {
                    Some(row.try_get("rank")?)
                } else {
                    None
                },
                id: product.id,
            });
            products.push(product);
        }
        let ids: Vec<Uuid> = products.iter().map(|p| p.id).collect();
        let mut skus_by_product: HashMap<Uuid, Vec<_>> = HashMap::new();
        for sku in store::skus_of(&mut conn, &ids, true).await? {
            skus_by_product.entry(sku.product_id).or_default().push(sku);
        }
        let products = products
            .into_iter()
            .map(|product| {
                let privileged = viewer.is_privileged_for(product.seller_id);
                let skus = skus_by_product
                    .remove(&product.id)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|s| privileged || s.draft.active)
                    .collect();
                ProductView { product, skus }
            })
            .collect();
        let next_page_token = match last_key {
            Some(key) if has_more => {
                let json =
                    serde_json::to_vec(&key).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
                URL_SAFE_NO_PAD.encode(json)
            }
            Some(_) | None => String::new(),
        };
        Ok(ProductPage {
            products,
            next_page_token,
        })
    }
}
