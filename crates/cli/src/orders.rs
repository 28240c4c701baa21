//! `order show <order-id>`: one order as the operator sees it, from the three services that own
//! a part of it.
//!
//! - the order service's `LookupOrder`: lines, totals, the coupon, and the status history (every
//!   state change with its version, the order's own event log);
//! - the payment service's `LookupPayment` for the payment the order names (or, before the
//!   payment service attached it, the one `SearchPayments` finds for the order);
//! - the process service's `GetShipment` for the order's shipment (or the one `ListShipments`
//!   finds while the shipment is still being prepared).

use mercato_proto::mercato::order::v1 as order;
use mercato_proto::mercato::payment::v1 as payment;
use mercato_proto::mercato::process::v1 as process;
use serde_json::{Value, json};

use crate::connect::Operator;
use crate::error::{Answer as _, CliError};
use crate::render::{self, Table};

/// An order with its payment and shipment.
#[derive(Debug, Clone)]
pub struct OrderDetails {
    /// The order, with its status history.
    pub order: order::Order,
    /// Its payment, once the payment service created one.
    pub payment: Option<payment::Payment>,
    /// Its shipment, once the process service created one.
    pub shipment: Option<process::Shipment>,
}

/// Looks up `order_id` with its payment and shipment.
pub async fn show(operator: &Operator, order_id: &str) -> Result<OrderDetails, CliError> {
    let order = operator
        .orders()?
        .lookup_order(operator.request(order::LookupOrderRequest {
            order_id: order_id.to_owned(),
        }))
        .await
        .answer("OrderService.LookupOrder")?
        .order
        .ok_or_else(|| CliError::Failed("LookupOrder answered without the order".to_owned()))?;
    let payment = payment_of(operator, &order).await?;
    let shipment = shipment_of(operator, &order).await?;
    Ok(OrderDetails {
        order,
        payment,
        shipment,
    })
}

async fn payment_of(
    operator: &Operator,
    order: &order::Order,
) -> Result<Option<payment::Payment>, CliError> {
    let mut payments = operator.payments()?;
    if let Some(attached) = &order.payment {
        let found = payments
            .lookup_payment(operator.request(payment::LookupPaymentRequest {
                payment_id: attached.payment_id.clone(),
            }))
            .await
            .answer("PaymentService.LookupPayment")?;
        return Ok(found.payment);
    }
    let found = payments
        .search_payments(operator.request(payment::SearchPaymentsRequest {
            page_size: 1,
            order_id: order.order_id.clone(),
            ..payment::SearchPaymentsRequest::default()
        }))
        .await
        .answer("PaymentService.SearchPayments")?;
    Ok(found.payments.into_iter().next())
}

async fn shipment_of(
    operator: &Operator,
    order: &order::Order,
) -> Result<Option<process::Shipment>, CliError> {
    let mut shipments = operator.shipments()?;
    if let Some(known) = &order.shipment {
        let found = shipments
            .get_shipment(operator.request(process::GetShipmentRequest {
                shipment_id: known.shipment_id.clone(),
            }))
            .await
            .answer("ShipmentService.GetShipment")?;
        return Ok(found.shipment);
    }
    let found = shipments
        .list_shipments(operator.request(process::ListShipmentsRequest {
            page_size: 1,
            order_id: order.order_id.clone(),
            ..process::ListShipmentsRequest::default()
        }))
        .await
        .answer("ShipmentService.ListShipments")?;
    Ok(found.shipments.into_iter().next())
}

impl OrderDetails {
    /// The details as one JSON document.
    pub fn to_json(&self) -> Value {
        let order = &self.order;
        json!({
            "order": {
                "order_id": order.order_id,
                "user_id": order.user_id,
                "status": render::order_status(order.status),
                "version": order.version,
                "payment_method": render::payment_method(order.payment_method),
                "subtotal": render::money_json(order.subtotal.as_ref()),
                "discount": render::money_json(order.discount.as_ref()),
                "shipping_fee": render::money_json(order.shipping_fee.as_ref()),
                "total": render::money_json(order.total.as_ref()),
                "coupon": order.coupon.as_ref().map(|coupon| json!({
                    "coupon_id": coupon.coupon_id,
                    "user_coupon_id": coupon.user_coupon_id,
                    "name": coupon.name,
                    "discount": render::money_json(coupon.discount.as_ref()),
                })),
                "lines": order.lines.iter().map(|line| json!({
                    "sku_id": line.sku_id,
                    "sku_code": line.sku_code,
                    "product_name": line.product_name,
                    "seller_id": line.seller_id,
                    "quantity": line.quantity,
                    "unit_price": render::money_json(line.unit_price.as_ref()),
                    "line_total": render::money_json(line.line_total.as_ref()),
                })).collect::<Vec<_>>(),
                "history": order.history.iter().map(|change| json!({
                    "from_status": (change.from_status != 0)
                        .then(|| render::order_status(change.from_status)),
                    "to_status": render::order_status(change.to_status),
                    "change_time": render::time_json(change.change_time.as_ref()),
                    "version": change.version,
                })).collect::<Vec<_>>(),
                "create_time": render::time_json(order.create_time.as_ref()),
                "update_time": render::time_json(order.update_time.as_ref()),
                "payment_due_time": render::time_json(order.payment_due_time.as_ref()),
            },
            "payment": self.payment.as_ref().map(|payment| json!({
                "payment_id": payment.payment_id,
                "method": render::payment_method(payment.method),
                "status": render::payment_status(payment.status),
                "amount": render::money_json(payment.amount.as_ref()),
                "refunded_amount": render::money_json(payment.refunded_amount.as_ref()),
                "provider_payment_id": payment.provider_payment_id,
                "failure_code": payment.failure_code,
                "refunds": payment.refunds.len(),
                "create_time": render::time_json(payment.create_time.as_ref()),
                "settle_time": render::time_json(payment.settle_time.as_ref()),
            })),
            "shipment": self.shipment.as_ref().map(|shipment| json!({
                "shipment_id": shipment.shipment_id,
                "status": render::shipment_status(shipment.status),
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
                "create_time": render::time_json(shipment.create_time.as_ref()),
                "ship_time": render::time_json(shipment.ship_time.as_ref()),
                "deliver_time": render::time_json(shipment.deliver_time.as_ref()),
            })),
        })
    }

    /// The details as readable tables: the order, its lines, its history, payment, shipment.
    pub fn to_table(&self) -> String {
        let order = &self.order;
        let mut summary = Table::default();
        summary.row(["order".to_owned(), order.order_id.clone()]);
        summary.row(["status".to_owned(), render::order_status(order.status)]);
        summary.row(["buyer".to_owned(), order.user_id.clone()]);
        summary.row([
            "created".to_owned(),
            render::time(order.create_time.as_ref()),
        ]);
        summary.row([
            "payment due".to_owned(),
            render::time(order.payment_due_time.as_ref()),
        ]);
        summary.row([
            "subtotal".to_owned(),
            render::money(order.subtotal.as_ref()),
        ]);
        summary.row([
            "discount".to_owned(),
            render::money(order.discount.as_ref()),
        ]);
        summary.row([
            "shipping".to_owned(),
            render::money(order.shipping_fee.as_ref()),
        ]);
        summary.row(["total".to_owned(), render::money(order.total.as_ref())]);
        if let Some(coupon) = &order.coupon {
            summary.row([
                "coupon".to_owned(),
                format!("{} ({})", coupon.name, coupon.coupon_id),
            ]);
        }

        let mut lines = Table::with_header(["sku", "product", "qty", "unit", "total"]);
        for line in &order.lines {
            lines.row([
                line.sku_code.clone(),
                line.product_name.clone(),
                line.quantity.to_string(),
                render::money(line.unit_price.as_ref()),
                render::money(line.line_total.as_ref()),
            ]);
        }

        let mut history = Table::with_header(["time", "from", "to", "version"]);
        for change in &order.history {
            let from = if change.from_status == 0 {
                "-".to_owned()
            } else {
                render::order_status(change.from_status)
            };
            history.row([
                render::time(change.change_time.as_ref()),
                from,
                render::order_status(change.to_status),
                change.version.to_string(),
            ]);
        }

        let mut parts = vec![
            summary.render(),
            format!("lines\n{}", lines.render()),
            format!("history\n{}", history.render()),
        ];
        parts.push(match &self.payment {
            Some(payment) => {
                let mut table = Table::default();
                table.row(["payment".to_owned(), payment.payment_id.clone()]);
                table.row(["method".to_owned(), render::payment_method(payment.method)]);
                table.row(["status".to_owned(), render::payment_status(payment.status)]);
                table.row(["amount".to_owned(), render::money(payment.amount.as_ref())]);
                table.row([
                    "refunded".to_owned(),
                    render::money(payment.refunded_amount.as_ref()),
                ]);
                table.row([
                    "provider id".to_owned(),
                    render::or_dash(&payment.provider_payment_id),
                ]);
                table.row([
                    "settled".to_owned(),
                    render::time(payment.settle_time.as_ref()),
                ]);
                table.render()
            }
            None => "payment  none yet\n".to_owned(),
        });
        parts.push(match &self.shipment {
            Some(shipment) => {
                let mut table = Table::default();
                table.row(["shipment".to_owned(), shipment.shipment_id.clone()]);
                table.row([
                    "status".to_owned(),
                    render::shipment_status(shipment.status),
                ]);
                table.row(["carrier".to_owned(), render::or_dash(&shipment.carrier)]);
                table.row([
                    "tracking".to_owned(),
                    render::or_dash(&shipment.tracking_number),
                ]);
                table.row([
                    "shipped".to_owned(),
                    render::time(shipment.ship_time.as_ref()),
                ]);
                table.row([
                    "delivered".to_owned(),
                    render::time(shipment.deliver_time.as_ref()),
                ]);
                table.render()
            }
            None => "shipment  none yet\n".to_owned(),
        });
        parts.join("\n")
    }
}
