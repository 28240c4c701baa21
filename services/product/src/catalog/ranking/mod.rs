//! The best-seller ranking: `order.paid` feeds `product_sales` (see `events`), and
//! `RankingService.ListBestSellers` ranks PUBLISHED products by units sold within a sliding
//! window ending at `clock.now()`.
//!
//! A computed ranking (a "snapshot": the top `ranking_depth` products of one category, or of
//! all) is cached in Redis for `ranking_cache_ttl`. When it expires under load, recomputation is
//! single-flight: the caller that wins `SET <key>:lock <token> NX PX <lock ttl>` computes and
//! fills the cache; everyone else polls the cache for up to `ranking_wait` and only computes
//! itself if the winner has not delivered by then (it crashed, or Redis is down), so a slow or
//! dead winner never blocks readers for longer than that. The lock expires on its own, and is
//! released with a compare-and-delete so a winner that outlived its lock cannot release the
//! next winner's.

pub mod events;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as pb;
use pb::ranking_service_server::RankingService;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cache;
use crate::catalog::convert::{page_size, timestamp};
use crate::catalog::domain::Image;
use crate::catalog::error::CatalogError;
use crate::context::ProductContext;

/// One ranked product of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankedProduct {
    /// Product id.
    pub product_id: Uuid,
    /// Name at ranking time.
    pub name: String,
    /// Main image URL, empty when none.
    pub main_image_url: String,
    /// Lowest active price and its currency.
    pub min_price: Option<(i64, String)>,
    /// Units sold in the window.
    pub units: i64,
}

/// A computed ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Window start (inclusive).
    pub window_start: DateTime<Utc>,
    /// Window end: the moment of computation.
    pub window_end: DateTime<Utc>,
    /// Best first; ties by product id.
    pub entries: Vec<RankedProduct>,
}

/// The Redis counter incremented by every ranking computation (tests read it to check that an
/// expiry under load recomputes once).
pub fn computations_key(ctx: &ProductContext) -> String {
    ctx.keys.singleton("best-sellers:computations")
}

/// The cache key of the snapshot of `category` (all categories when `None`).
pub fn snapshot_key(ctx: &ProductContext, category: Option<&str>) -> String {
    ctx.keys.key(
        "best-sellers",
        category.map_or("*".to_owned(), |c| format!("c.{c}")),
    )
}

/// Compare-and-delete: releases the lock only if it still holds our token.
const RELEASE_LOCK: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// `RankingService` over the shared context.
#[derive(Debug, Clone)]
pub struct RankingGrpc {
    ctx: ProductContext,
}

impl RankingGrpc {
    /// The service over `ctx`.
    pub fn new(ctx: ProductContext) -> Self {
        Self { ctx }
    }

    async fn cached(&self, key: &str) -> Option<Snapshot> {
        let raw = cache::get(&self.ctx, key).await?;
        serde_json::from_str(&raw)
            .inspect_err(|error| tracing::warn!(%error, "undecodable ranking snapshot"))
            .ok()
    }

    /// The current snapshot of `category`: cached, or computed once per expiry.
    pub async fn snapshot(&self, category: Option<&str>) -> Result<Snapshot, CatalogError> {
        let key = snapshot_key(&self.ctx, category);
        if let Some(snapshot) = self.cached(&key).await {
            return Ok(snapshot);
        }
        let settings = &self.ctx.settings.catalog;
        let lock_key = format!("{key}:lock");
        let token = Uuid::new_v4().to_string();
        let mut redis = self.ctx.redis.clone();
        let lock_ms = u64::try_from(settings.ranking_lock_ttl.as_millis()).unwrap_or(u64::MAX);
        let acquired: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&lock_key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(lock_ms.max(1))
            .query_async(&mut redis)
            .await;
        match acquired {
            Ok(Some(_)) => {
                // We won, but the previous winner may have filled the cache between our miss
                // and our lock.
                let result = match self.cached(&key).await {
                    Some(snapshot) => Ok(snapshot),
                    None => self.compute_and_cache(&key, category).await,
                };
                let released: redis::RedisResult<i64> = redis::Script::new(RELEASE_LOCK)
                    .key(&lock_key)
                    .arg(&token)
                    .invoke_async(&mut redis)
                    .await;
                if let Err(error) = released {
                    tracing::warn!(%error, "ranking lock release failed, it will expire");
                }
                result
            }
            Ok(None) => {
                let deadline = tokio::time::Instant::now() + settings.ranking_wait;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if let Some(snapshot) = self.cached(&key).await {
                        return Ok(snapshot);
                    }
                }
                tracing::warn!("ranking not computed by the lock holder in time, computing");
                self.compute_and_cache(&key, category).await
            }
            Err(error) => {
                tracing::warn!(%error, "ranking lock unavailable, computing without it");
                self.compute_and_cache(&key, category).await
            }
        }
    }

    async fn compute_and_cache(
        &self,
        key: &str,
        category: Option<&str>,
    ) -> Result<Snapshot, CatalogError> {
        let snapshot = self.compute(category).await?;
        match serde_json::to_string(&snapshot) {
            Ok(raw) => {
                cache::put(
                    &self.ctx,
                    key,
                    &raw,
                    self.ctx.settings.catalog.ranking_cache_ttl,
                )
                .await;
            }
            Err(error) => tracing::warn!(%error, "ranking snapshot does not serialize"),
        }
        Ok(snapshot)
    }

    /// Ranks products by units sold in the window ending now.
    async fn compute(&self, category: Option<&str>) -> Result<Snapshot, CatalogError> {
        let mut redis = self.ctx.redis.clone();
        if let Err(error) = redis
            .incr::<_, _, i64>(computations_key(&self.ctx), 1)
            .await
        {
            tracing::debug!(%error, "ranking computation counter unavailable");
        }
        let settings = &self.ctx.settings.catalog;
        let window_end = self.ctx.clock.now();
        let window = chrono::Duration::from_std(settings.ranking_window)
            .map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        let window_start = window_end - window;
        type Row = (
            Uuid,
            String,
            Json<Vec<Image>>,
            Option<i64>,
            Option<String>,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT p.id, p.name, p.images, p.min_price_minor, p.price_currency, s.units \
             FROM (SELECT product_id, sum(units)::bigint AS units FROM product_sales \
                   WHERE paid_at >= $1 AND paid_at <= $2 GROUP BY product_id) s \
             JOIN products p ON p.id = s.product_id \
             WHERE p.status = 'PUBLISHED' AND p.deleted_at IS NULL \
               AND ($3::text IS NULL OR p.category = $3) \
             ORDER BY s.units DESC, p.id ASC LIMIT $4",
        )
        .bind(window_start)
        .bind(window_end)
        .bind(category)
        .bind(i64::try_from(settings.ranking_depth).unwrap_or(100))
        .fetch_all(&self.ctx.pool)
        .await?;
        let entries = rows
            .into_iter()
            .map(
                |(product_id, name, images, min_price, currency, units)| RankedProduct {
                    product_id,
                    name,
                    main_image_url: images
                        .0
                        .into_iter()
                        .find(|i| i.main)
                        .map(|i| i.url)
                        .unwrap_or_default(),
                    min_price: min_price.zip(currency),
                    units,
                },
            )
            .collect();
        Ok(Snapshot {
            window_start,
            window_end,
            entries,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RankingToken {
    /// Category the token belongs to.
    c: Option<String>,
    /// Offset of the next entry.
    o: usize,
}

#[tonic::async_trait]
impl RankingService for RankingGrpc {
    #[tracing::instrument(name = "product.list_best_sellers", skip_all)]
    async fn list_best_sellers(
        &self,
        request: Request<pb::ListBestSellersRequest>,
    ) -> Result<Response<pb::ListBestSellersResponse>, Status> {
        let pb::ListBestSellersRequest {
            page_size: raw_size,
            page_token,
            category,
        } = request.into_inner();
        let size = page_size(raw_size, 5, 50)?;
        let category = Some(category.trim().to_owned()).filter(|c| !c.is_empty());
        let offset = if page_token.is_empty() {
            0
        } else {
            let token: RankingToken = URL_SAFE_NO_PAD
                .decode(&page_token)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or(CatalogError::InvalidPageToken)?;
            if token.c != category {
                return Err(CatalogError::InvalidPageToken.into());
            }
            token.o
        };
        let snapshot = self.snapshot(category.as_deref()).await?;
        let end = offset.saturating_add(size).min(snapshot.entries.len());
        let best_sellers = snapshot
            .entries
            .iter()
            .enumerate()
            .skip(offset)
            .take(end.saturating_sub(offset))
            .map(|(i, entry)| pb::BestSeller {
                rank: i32::try_from(i + 1).unwrap_or(i32::MAX),
                product_id: entry.product_id.to_string(),
                product_name: entry.name.clone(),
                main_image_url: entry.main_image_url.clone(),
                min_price: entry
                    .min_price
                    .as_ref()
                    .map(|(amount, currency)| common::Money {
                        currency_code: currency.clone(),
                        amount_minor: *amount,
                    }),
                units_sold: entry.units,
            })
            .collect();
        let next_page_token = if end < snapshot.entries.len() {
            let token = RankingToken {
                c: category,
                o: end,
            };
            serde_json::to_vec(&token)
                .map(|json| URL_SAFE_NO_PAD.encode(json))
                .map_err(|e| CatalogError::Corrupt(e.to_string()))?
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListBestSellersResponse {
            best_sellers,
            next_page_token,
            window_start_time: Some(timestamp(snapshot.window_start)),
            window_end_time: Some(timestamp(snapshot.window_end)),
            compute_time: Some(timestamp(snapshot.window_end)),
        }))
    }
}
