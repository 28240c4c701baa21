//! The `order.paid` consumer behind the best-seller ranking: records units sold per product and
//! SKU with the paid time.
//!
//! Redeliveries are dropped by the consumer's inbox (same transaction as the insert); the insert
//! is idempotent on its own as well, keyed by (order, SKU), so even an event replayed from the
//! DLQ with a new inbox entry, or a second event for the same order, never counts twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mercato_messaging::{ConsumerTopology, Handler, HandlerError, IncomingEvent, Namespace};
use mercato_proto::mercato::events::v1::{OrderLineSnapshot, OrderPaid};
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

/// Routing key of the consumed event.
pub const ORDER_PAID: &str = "order.paid";
const ORDER_PAID_TYPE: &str = "mercato.events.v1.OrderPaid";

/// The queue `product.best-sellers`, bound to `order.paid`.
pub fn best_sellers_topology(
    namespace: &Namespace,
) -> Result<ConsumerTopology, mercato_messaging::Error> {
    ConsumerTopology::new(namespace, "product", "best-sellers", [ORDER_PAID])
}

/// Applies `order.paid` to `product_sales`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BestSellerHandler;

fn parse(raw: &str, what: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(raw)
        .map_err(|_| HandlerError::permanent(format!("{what} {raw:?} is not a uuid")))
}

impl Handler for BestSellerHandler {
    async fn handle(
        &self,
        event: &IncomingEvent,
        conn: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let payload = event
            .envelope
            .payload
            .as_ref()
            .ok_or_else(|| HandlerError::permanent("order.paid without a payload"))?;
        if !payload.type_url.ends_with(ORDER_PAID_TYPE) {
            return Err(HandlerError::permanent(format!(
                "unexpected payload type {}",
                payload.type_url
            )));
        }
        let paid = OrderPaid::decode(payload.value.as_slice())
            .map_err(|e| HandlerError::permanent(format!("undecodable order.paid: {e}")))?;
        let order_id = parse(&paid.order_id, "order_id")?;
        let paid_time = paid
            .paid_time
            .ok_or_else(|| HandlerError::permanent("order.paid without paid_time"))?;
        let paid_at = DateTime::<Utc>::from_timestamp(
            paid_time.seconds,
            u32::try_from(paid_time.nanos).unwrap_or(0),
        )
        .ok_or_else(|| HandlerError::permanent("paid_time out of range"))?;
        // One row per SKU: lines of the same SKU (which an order should not have) are summed.
        let mut units: BTreeMap<Uuid, (Uuid, i64)> = BTreeMap::new();
        for OrderLineSnapshot {
            sku_id,
            product_id,
            quantity,
            ..
        } in &paid.lines
        {
            if *quantity <= 0 {
                continue;
            }
            let sku = parse(sku_id, "sku_id")?;
            let product = parse(product_id, "product_id")?;
            let entry = units.entry(sku).or_insert((product, 0));
            entry.1 = entry
                .1
                .checked_add(*quantity)
                .ok_or_else(|| HandlerError::permanent("quantity overflow"))?;
        }
        for (sku, (product, quantity)) in units {
            sqlx::query(
                "INSERT INTO product_sales (order_id, sku_id, product_id, units, paid_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id, sku_id) DO NOTHING",
            )
            .bind(order_id)
            .bind(sku)
            .bind(product)
            .bind(quantity)
            .bind(paid_at)
            .execute(&mut *conn)
            .await?;
        }
        tracing::debug!(order.id = %order_id, "sales recorded for the ranking");
        Ok(())
    }
}
