//! The consumer of `order.paid` (`process.order-paid`): records the order's shipment PREPARING
//! with its lines and address and wakes the shipment worker — all in the transaction that records the event in the inbox, so the
//! shipment exists if and only if the event counts as processed. Everything after (stock, the
//! carrier, the order's transitions) is the worker's, which resumes from the row after any
//! crash. A second `order.paid` for the order (a redelivery, or a republish with a new event
//! id) meets the unique order id and changes nothing.

use mercato_messaging::{ConsumerTopology, Handler, HandlerError, IncomingEvent, Namespace};
use mercato_proto::mercato::events::v1::OrderPaid;
use prost::Message as _;
use sqlx::PgConnection;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::context::ProcessContext;
use crate::domain::{SIMULATED_CARRIER, simulated_tracking_number};
use crate::error::ProcessError;
use crate::settings::{CarrierMode, SERVICE};
use crate::shipments::store::{self, LineRow, NewShipment};
use crate::wake;

/// `order.paid`.
pub const ORDER_PAID: &str = "order.paid";

/// Consumer name of the order.paid queue.
pub const ORDER_PAID_CONSUMER: &str = "order-paid";

/// The queue of [`OrderPaidHandler`].
pub fn topology(namespace: &Namespace) -> Result<ConsumerTopology, mercato_messaging::Error> {
    ConsumerTopology::new(namespace, SERVICE, ORDER_PAID_CONSUMER, [ORDER_PAID])
}

/// Creates shipments from `order.paid`.
#[derive(Debug, Clone)]
pub struct OrderPaidHandler {
    context: ProcessContext,
}

impl OrderPaidHandler {
    /// A handler over `context`.
    pub fn new(context: ProcessContext) -> Self {
        Self { context }
    }
}

fn uuid(raw: &str, what: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw).map_err(|_| format!("{what} {raw:?} is not a uuid"))
}

/// The shipment an `order.paid` asks for, or why it can never be made.
pub fn parse(paid: &OrderPaid, carrier: CarrierMode) -> Result<NewShipment, String> {
    let order_id = uuid(&paid.order_id, "order_id")?;
    let user_id = uuid(&paid.user_id, "user_id")?;
    let address = paid
        .shipping_address
        .as_ref()
        .ok_or("the paid order has no shipping address")?;
    let mut lines = Vec::with_capacity(paid.lines.len());
    for line in &paid.lines {
        if line.quantity <= 0 {
            return Err(format!(
                "line {} has quantity {}",
                line.sku_id, line.quantity
            ));
        }
        lines.push(LineRow {
            sku_id: line.sku_id.clone(),
            sku_code: line.sku_code.clone(),
            product_name: line.product_name.clone(),
            quantity: line.quantity,
        });
    }
    let order_total = paid
        .amount
        .as_ref()
        .map(|m| format!("{} {}", m.amount_minor, m.currency_code))
        .unwrap_or_default();
    let (carrier, tracking_number) = match carrier {
        CarrierMode::Simulated => (
            SIMULATED_CARRIER.to_owned(),
            simulated_tracking_number(rand::random()),
        ),
        CarrierMode::Manual => (String::new(), String::new()),
    };
    Ok(NewShipment {
        order_id,
        user_id,
        payment_id: paid.payment_id.clone(),
        carrier,
        tracking_number,
        shipping_address: address.encode_to_vec(),
        order_total,
        lines,
    })
}

/// Records the shipment of a paid order (see the module docs); whether it was created now.
pub async fn record(
    context: &ProcessContext,
    conn: &mut PgConnection,
    new: &NewShipment,
) -> Result<bool, ProcessError> {
    let now = context.clock.now();
    let (shipment, created) = store::insert_if_absent(conn, new, now).await?;
    if !created {
        tracing::info!(shipment.id = %shipment.shipment_id,
            "the order already has its shipment; nothing to do");
        return Ok(false);
    }
    tracing::Span::current().record("shipment.id", tracing::field::display(shipment.shipment_id));
    wake::notify(conn, store::CHANNEL).await?;
    Ok(true)
}

impl Handler for OrderPaidHandler {
    async fn handle(
        &self,
        event: &IncomingEvent,
        conn: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        if event.envelope.event_type != ORDER_PAID {
            return Err(HandlerError::permanent(format!(
                "unexpected event type {}",
                event.envelope.event_type
            )));
        }
        let payload = event
            .envelope
            .payload
            .as_ref()
            .ok_or_else(|| HandlerError::permanent("the event has no payload"))?;
        let paid = OrderPaid::decode(payload.value.as_slice())
            .map_err(|e| HandlerError::permanent(format!("undecodable OrderPaid: {e}")))?;
        let new = parse(&paid, self.context.settings.fulfilment.carrier)
            .map_err(HandlerError::permanent)?;
        let span = tracing::info_span!("process.order_paid", order.id = %new.order_id,
            shipment.id = tracing::field::Empty);
        record(&self.context, conn, &new)
            .instrument(span)
            .await
            .map(|_| ())
            .map_err(|err| {
                if err.is_transient() {
                    HandlerError::retryable(err)
                } else {
                    HandlerError::permanent(err)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use mercato_proto::mercato::common::v1::PostalAddress;
    use mercato_proto::mercato::events::v1::OrderLineSnapshot;

    use super::*;

    fn paid() -> OrderPaid {
        OrderPaid {
            order_id: Uuid::now_v7().to_string(),
            user_id: Uuid::now_v7().to_string(),
            payment_id: "pay-1".to_owned(),
            shipping_address: Some(PostalAddress::default()),
            lines: vec![OrderLineSnapshot {
                sku_id: "sku-1".to_owned(),
                quantity: 2,
                ..OrderLineSnapshot::default()
            }],
            ..OrderPaid::default()
        }
    }

    #[test]
    fn a_paid_order_becomes_a_preparing_shipment_with_a_simulated_tracking_number() {
        let new = parse(&paid(), CarrierMode::Simulated).expect("valid");
        assert_eq!(new.carrier, SIMULATED_CARRIER);
        assert!(new.tracking_number.starts_with("SIM-"));
        assert_eq!(new.lines.len(), 1);
        let manual = parse(&paid(), CarrierMode::Manual).expect("valid");
        assert!(manual.tracking_number.is_empty());
    }

    #[test]
    fn an_order_paid_without_ids_or_address_is_refused() {
        let mut bad = paid();
        bad.order_id = "nope".to_owned();
        assert!(parse(&bad, CarrierMode::Simulated).is_err());
        let mut bad = paid();
        bad.shipping_address = None;
        assert!(parse(&bad, CarrierMode::Simulated).is_err());
        let mut bad = paid();
        bad.lines[0].quantity = 0;
        assert!(parse(&bad, CarrierMode::Simulated).is_err());
    }
}
