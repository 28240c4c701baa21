//! The checkout benchmark: `CreateOrder` through the BFF (token check, rate limit, principal
//! forwarding, the order service pricing the lines from the catalog, reserving stock in the
//! product service, and writing the order, its lines, history, idempotency row and
//! `order.created` in one transaction), against `pgbench` replaying the order database's side of
//! one checkout — the same statements, one transaction — with the same number of clients.
//!
//! After the run it checks, straight from both databases, that nothing was lost or invented:
//! every successful answer is an order, every order has its `order.created` in the outbox, and
//! every reserved unit belongs to an order line (stock conserved). A broken invariant is recorded
//! in the report and fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1::PaymentMethod;
use tonic::metadata::MetadataValue;
use uuid::Uuid;

use super::seed::{self, SeededProduct};
use super::shop::address;
use super::sql::count;
use super::{connect_all, edge, pgbench};
use crate::measure::{LoadShape, PathResult, closed_loop};
use crate::report::{Ratio, Report};

/// Where the BFF, the product service and the two databases are.
#[derive(Debug, Clone)]
pub struct CheckoutTargets {
    /// The BFF's gRPC URI.
    pub bff: String,
    /// The product service's gRPC URI (seeding).
    pub product: String,
    /// The order service's database (pgbench and the invariants).
    pub order_database_url: String,
    /// The product service's database (the stock invariant).
    pub product_database_url: String,
}

/// SKUs a checkout picks its lines from.
const SKUS: usize = 8;
/// Stock per SKU: enough that a run never sells out.
const ON_HAND: i64 = 100_000_000;
/// Shoppers sharing the load (each checkout is one of theirs).
const SHOPPERS: usize = 16;

/// Seeds a catalog and shoppers, measures pgbench and CreateOrder, then checks the invariants.
pub async fn run(
    targets: &CheckoutTargets,
    shape: LoadShape,
    channels: usize,
) -> anyhow::Result<Report> {
    let product_channels = connect_all(&targets.product, 1).await?;
    let skus = seed::products(&product_channels[0], SKUS).await?;
    for sku in &skus {
        seed::stock(&product_channels[0], sku, ON_HAND).await?;
    }
    let bff_channels = connect_all(&targets.bff, channels).await?;
    let mut tokens = Vec::with_capacity(SHOPPERS);
    for _ in 0..SHOPPERS {
        let (token, _) = edge::register(&bff_channels[0]).await?;
        let bearer: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .context("the access token is not a valid header value")?;
        tokens.push(bearer);
    }

    let database = pgbench::run(
        &targets.order_database_url,
        "pgbench: the order database's statements of one checkout",
        &replay_script(&skus),
        shape,
    )
    .await?;
    // The replayed rows go, so the invariants below count the service's orders only.
    count(
        &targets.order_database_url,
        "WITH gone AS (DELETE FROM outbox RETURNING 1) SELECT count(*) FROM gone",
    )
    .await?;
    count(
        &targets.order_database_url,
        "WITH a AS (DELETE FROM orders RETURNING 1), b AS (DELETE FROM order_requests RETURNING 1) \
         SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)",
    )
    .await?;

    let tally = Arc::new(Tally::default());
    let service = measure_checkout(bff_channels, tokens, &skus, shape, Arc::clone(&tally)).await?;
    let (held, violations) = check_invariants(targets, &skus, &tally).await?;

    let ratios = vec![
        Ratio::new(
            "CreateOrder via BFF / pgbench replay, per second",
            service.rps,
            database.rps,
        ),
        Ratio::new(
            "CreateOrder / pgbench replay, p50 latency",
            service.p50_us as f64,
            database.p50_us as f64,
        ),
    ];
    let mut report = Report::new("checkout", shape, channels, vec![database, service], ratios);
    report.note(format!(
        "each CreateOrder has 1-3 lines of {SKUS} SKUs, a fresh idempotency key, SANDBOX payment \
         and an address, from {SHOPPERS} shoppers; pgbench runs the order database's INSERTs \
         (idempotency row, order, lines, history, outbox with its NOTIFY) and the final UPDATE in \
         one transaction — not the product service's reservation, which the stock scenario \
         measures, nor the catalog read"
    ));
    report.note(held);
    for violation in violations {
        report.violation(violation);
    }
    Ok(report)
}

/// Every CreateOrder sent and answered OK, warm-up included (the invariants count all orders).
#[derive(Debug, Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    units: AtomicU64,
}

async fn measure_checkout(
    channels: Vec<tonic::transport::Channel>,
    tokens: Vec<MetadataValue<tonic::metadata::Ascii>>,
    skus: &[SeededProduct],
    shape: LoadShape,
    tally: Arc<Tally>,
) -> anyhow::Result<PathResult> {
    let sku_ids: Arc<Vec<String>> = Arc::new(skus.iter().map(|s| s.sku_id.clone()).collect());
    let tokens = Arc::new(tokens);
    let round = Arc::new(AtomicU64::new(0));
    closed_loop(
        "bff.v1 CreateOrder (through the BFF, 1-3 lines)",
        shape,
        move |worker| {
            let mut client = bff::order_service_client::OrderServiceClient::new(
                channels[worker % channels.len()].clone(),
            );
            let n = round.fetch_add(1, Ordering::Relaxed);
            let width = 1 + (n % 3) as usize;
            let lines: Vec<bff::OrderLineInput> = (0..width)
                .map(|i| bff::OrderLineInput {
                    sku_id: sku_ids[(n as usize + i) % sku_ids.len()].clone(),
                    quantity: 1 + (i as i64),
                })
                .collect();
            let units: u64 = lines.iter().map(|line| line.quantity as u64).sum();
            let mut request = tonic::Request::new(bff::CreateOrderRequest {
                idempotency_key: Uuid::new_v4().to_string(),
                source: Some(bff::create_order_request::Source::ExplicitLines(
                    bff::ExplicitLines { lines },
                )),
                shipping_address: Some(address()),
                payment_method: PaymentMethod::Sandbox as i32,
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("authorization", tokens[worker % tokens.len()].clone());
            let tally = Arc::clone(&tally);
            async move {
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let answer = client.create_order(request).await;
                if answer.is_ok() {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    tally.units.fetch_add(units, Ordering::Relaxed);
                }
                answer.map(drop).map_err(|status| status.code())
            }
        },
    )
    .await
}

/// The order database's statements of one checkout with two lines, as the order service sends
/// them (prepared, parameters bound), in one transaction. The outbox row is written already
/// published, so the order service's relay never sends these stand-ins to the bus (where the
/// payment service, when running, would dead-letter their placeholder envelopes).
fn replay_script(skus: &[SeededProduct]) -> String {
    let sku = |i: usize| &skus[i % skus.len()].sku_id;
    let product = |i: usize| &skus[i % skus.len()].product_id;
    let seller = &skus[0].seller.user_id;
    format!(
        r#"SELECT gen_random_uuid() AS order_id, gen_random_uuid() AS user_id, gen_random_uuid() AS event_id \gset
BEGIN;
INSERT INTO order_requests (user_id, idempotency_key, fingerprint, order_id, state, lease_until, create_time) VALUES (:user_id, :order_id, '\x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', :order_id, 'RUNNING', now() + make_interval(secs => 30), now()) ON CONFLICT (user_id, idempotency_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, order_id = EXCLUDED.order_id, state = 'RUNNING', error_code = NULL, error_message = NULL, error_details = NULL, lease_until = EXCLUDED.lease_until, create_time = EXCLUDED.create_time WHERE order_requests.create_time < now() - make_interval(hours => 24) RETURNING order_id;
INSERT INTO orders (order_id, user_id, status, currency, subtotal, discount, shipping_fee, total, payment_method, user_coupon_id, coupon_id, coupon_name, coupon_kind, shipping_address, version, create_time, update_time, payment_due_time) VALUES (:order_id, :user_id, 'PENDING', 'JPY', 3000, 0, 500, 3500, 3, NULL, NULL, NULL, NULL, '\x0a0b42656e63686d61726b', 1, now(), now(), now() + interval '30 minutes');
INSERT INTO order_lines (order_id, position, sku_id, product_id, seller_id, product_name, sku_code, option_values, main_image_url, quantity, unit_price, line_total) VALUES (:order_id, 0, '{sku0}', '{product0}', '{seller}', 'Benchmark product 0', 'BENCH-0', '{{}}', '', 1, 1000, 1000);
INSERT INTO order_lines (order_id, position, sku_id, product_id, seller_id, product_name, sku_code, option_values, main_image_url, quantity, unit_price, line_total) VALUES (:order_id, 1, '{sku1}', '{product1}', '{seller}', 'Benchmark product 1', 'BENCH-1', '{{}}', '', 2, 1000, 2000);
INSERT INTO order_history (order_id, version, from_status, to_status, change_time) VALUES (:order_id, 1, NULL, 'PENDING', now());
SELECT pg_notify('order_changed', :order_id::text);
WITH inserted AS (INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, envelope, headers, published_at) VALUES (:event_id, 'order.created', 'order', :order_id::text, '\x0a00', '{{}}', now()) RETURNING 1) SELECT pg_notify('mercato_outbox', '') FROM inserted;
UPDATE order_requests SET state = 'DONE' WHERE user_id = :user_id AND idempotency_key = :order_id::text;
END;
"#,
        sku0 = sku(0),
        sku1 = sku(1),
        product0 = product(0),
        product1 = product(1),
    )
}

/// Checks the run against both databases: a line for the report, and every broken invariant.
async fn check_invariants(
    targets: &CheckoutTargets,
    skus: &[SeededProduct],
    tally: &Tally,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut broken = Vec::new();
    let order_db = &targets.order_database_url;
    let sent = tally.sent.load(Ordering::Relaxed);
    let ok = tally.ok.load(Ordering::Relaxed);
    let orders = count(order_db, "SELECT count(*) FROM orders").await?;
    if !(ok <= orders && orders <= sent) {
        broken.push(format!(
            "{ok} CreateOrders answered OK and {sent} were sent, but the order database holds \
             {orders} orders of this run"
        ));
    }
    let without_event = count(
        order_db,
        "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM outbox e \
         WHERE e.aggregate_id = o.order_id::text AND e.event_type = 'order.created')",
    )
    .await?;
    if without_event > 0 {
        broken.push(format!(
            "{without_event} orders have no order.created in the outbox"
        ));
    }
    let sku_list = skus
        .iter()
        .map(|s| format!("'{}'", s.sku_id))
        .collect::<Vec<_>>()
        .join(",");
    let ordered = count(
        order_db,
        &format!(
            "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o USING (order_id) \
             WHERE o.status IN ('PENDING', 'AWAITING_PAYMENT') AND l.sku_id IN ({sku_list})"
        ),
    )
    .await?;
    let reserved = count(
        &targets.product_database_url,
        &format!(
            "SELECT coalesce(sum(reserved), 0) FROM stock_levels WHERE sku_id IN ({sku_list})"
        ),
    )
    .await?;
    let on_hand = count(
        &targets.product_database_url,
        &format!("SELECT coalesce(sum(on_hand), 0) FROM stock_levels WHERE sku_id IN ({sku_list})"),
    )
    .await?;
    let expected_on_hand = ON_HAND as u64 * skus.len() as u64;
    if reserved != ordered || on_hand != expected_on_hand {
        broken.push(format!(
            "{reserved} units reserved for {ordered} units ordered; on hand {on_hand} of \
             {expected_on_hand}"
        ));
    }
    let held = format!(
        "invariants checked: {orders} orders for {ok} OK answers of {sent} sent; every order \
         has its order.created; {reserved} units reserved = {ordered} units ordered; on hand \
         unchanged — {}",
        if broken.is_empty() {
            "all held".to_owned()
        } else {
            format!("{} broken", broken.len())
        }
    );
    Ok((held, broken))
}
