//! Fixtures for the stock tests: catalog rows inserted with SQL (the catalog's own RPCs are
//! another part), a started service, internal-caller requests, and error-detail accessors.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato_platform::principal::{CALLER_HEADER, Principal, Role};
use mercato_product::clock::{Clock, ManualClock};
use mercato_product::testing::{RunningProduct, TestEnv};
use mercato_proto::mercato::common::v1::StockShortage;
use mercato_proto::mercato::product::v1 as pb;
use pb::stock_service_client::StockServiceClient;
use prost::Message as _;
use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;
use uuid::Uuid;

/// How long any awaited effect may take before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A product's id, its seller and its SKUs.
#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub(crate) product_id: Uuid,
    pub(crate) seller_id: Uuid,
    pub(crate) skus: Vec<Uuid>,
}

/// Inserts a product in `status` with one SKU per entry of `stock` (its on-hand units).
pub(crate) async fn insert_product(pool: &PgPool, status: &str, stock: &[i64]) -> Product {
    let product_id = Uuid::now_v7();
    let seller_id = Uuid::now_v7();
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO products (id, seller_id, name, status, created_at, updated_at, sort_time)
         VALUES ($1, $2, 'test product', $3, $4, $4, $4)",
    )
    .bind(product_id)
    .bind(seller_id)
    .bind(status)
    .bind(now)
    .execute(pool)
    .await
    .expect("insert product");
    let mut skus = Vec::new();
    for on_hand in stock {
        let sku_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO skus (id, product_id, sku_code, price_minor, currency_code, created_at,
                               updated_at)
             VALUES ($1, $2, $3, 1000, 'EUR', $4, $4)",
        )
        .bind(sku_id)
        .bind(product_id)
        .bind(format!("SKU-{}", sku_id.simple()))
        .bind(now)
        .execute(pool)
        .await
        .expect("insert sku");
        sqlx::query("INSERT INTO stock_levels (sku_id, on_hand, updated_at) VALUES ($1, $2, $3)")
            .bind(sku_id)
            .bind(on_hand)
            .bind(now)
            .execute(pool)
            .await
            .expect("insert stock");
        skus.push(sku_id);
    }
    Product {
        product_id,
        seller_id,
        skus,
    }
}

/// A published product with one SKU per entry of `stock`.
pub(crate) async fn published(pool: &PgPool, stock: &[i64]) -> Product {
    insert_product(pool, "PUBLISHED", stock).await
}

/// A started service with the sweeper off (tests drive expiry themselves) on `clock`.
pub(crate) async fn start(env: &TestEnv, clock: Clock) -> RunningProduct {
    env.start_with_clock(clock, |settings| settings.stock.sweeper_enabled = false)
        .await
        .expect("the service starts")
}

/// A service on a manual clock.
pub(crate) async fn start_manual(env: &TestEnv) -> (RunningProduct, ManualClock) {
    let start_time: DateTime<Utc> = Utc::now();
    let (clock, hand) = Clock::manual(start_time);
    (start(env, clock).await, hand)
}

/// A client over one lazily connected channel.
pub(crate) fn client(service: &RunningProduct) -> StockServiceClient<Channel> {
    let channel = Channel::from_shared(service.grpc_uri())
        .expect("valid uri")
        .connect_lazy();
    StockServiceClient::new(channel)
}

/// A request from the order service.
pub(crate) fn internal<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(CALLER_HEADER, "order".parse().expect("ascii"));
    request
}

/// A request from a user with `roles`, as the BFF forwards it.
pub(crate) fn as_user<T>(message: T, user_id: Uuid, roles: &[Role]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    Principal::new(user_id, roles.iter().copied()).write_metadata(request.metadata_mut());
    request
        .metadata_mut()
        .insert(CALLER_HEADER, "bff".parse().expect("ascii"));
    request
}

/// A ReserveStock request for `lines` (sku, quantity) with the default TTL.
pub(crate) fn reserve_request(order_id: Uuid, lines: &[(Uuid, i64)]) -> pb::ReserveStockRequest {
    pb::ReserveStockRequest {
        order_id: order_id.to_string(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::ReserveStockLine {
                sku_id: sku.to_string(),
                quantity: *quantity,
            })
            .collect(),
        ttl: None,
    }
}

/// Reserves and expects success.
pub(crate) async fn reserve_ok(
    client: &mut StockServiceClient<Channel>,
    order_id: Uuid,
    lines: &[(Uuid, i64)],
) -> pb::Reservation {
    client
        .reserve_stock(internal(reserve_request(order_id, lines)))
        .await
        .expect("the reservation succeeds")
        .into_inner()
        .reservation
        .expect("a reservation")
}

/// The stock of a SKU through the API.
pub(crate) async fn stock(
    client: &mut StockServiceClient<Channel>,
    sku_id: Uuid,
) -> pb::StockLevel {
    client
        .get_stock(internal(pb::GetStockRequest {
            sku_id: sku_id.to_string(),
        }))
        .await
        .expect("get stock")
        .into_inner()
        .stock
        .expect("a stock level")
}

/// The `ErrorInfo.reason` of a status.
pub(crate) fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// The field paths of a status's `BadRequest` violations.
pub(crate) fn bad_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The `StockShortage` detail of an INSUFFICIENT_STOCK status.
pub(crate) fn shortage(status: &tonic::Status) -> Option<StockShortage> {
    let rpc = tonic_types::pb::Status::decode(status.details()).ok()?;
    rpc.details
        .into_iter()
        .find(|any| any.type_url.ends_with("mercato.common.v1.StockShortage"))
        .and_then(|any| StockShortage::decode(any.value.as_slice()).ok())
}

/// Row counts that must not move on a replay or a refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) reservations: i64,
    pub(crate) lines: i64,
    pub(crate) history: i64,
    pub(crate) outbox: i64,
}

pub(crate) async fn counts(pool: &PgPool) -> Counts {
    let (reservations, lines, history, outbox): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM reservations), (SELECT count(*) FROM reservation_lines),
                (SELECT count(*) FROM stock_history), (SELECT count(*) FROM outbox)",
    )
    .fetch_one(pool)
    .await
    .expect("counts");
    Counts {
        reservations,
        lines,
        history,
        outbox,
    }
}

/// Polls `check` until it holds or [`PATIENCE`] runs out.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
