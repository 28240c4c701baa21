//! Orders as stored (rows) and as clients see them (`mercato.order.v1.Order`), plus the event
//! snapshots built from them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mercato_proto::mercato::common::v1::{
    CouponKind, Money, OrderCancellationReason, PaymentMethod, PostalAddress,
};
use mercato_proto::mercato::events::v1::{CouponUse, OrderLineSnapshot};
use mercato_proto::mercato::order::v1 as pb;
use prost::Message as _;
use sqlx::FromRow;
use uuid::Uuid;

use crate::cart::view::timestamp;
use crate::order::error::OrderError;
use crate::order::state::Status;

/// One `orders` row.
#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    /// Id (UUID v7).
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// Stored status name.
    pub status: String,
    /// ISO 4217 code of every amount.
    pub currency: String,
    /// Σ line totals.
    pub subtotal: i64,
    /// Coupon discount.
    pub discount: i64,
    /// Shipping fee.
    pub shipping_fee: i64,
    /// subtotal − discount + shipping_fee.
    pub total: i64,
    /// `PaymentMethod` wire value.
    pub payment_method: i16,
    /// The applied user coupon.
    pub user_coupon_id: Option<Uuid>,
    /// Its definition.
    pub coupon_id: Option<Uuid>,
    /// Its name at order time.
    pub coupon_name: Option<String>,
    /// `CouponKind` wire value.
    pub coupon_kind: Option<i16>,
    /// Protobuf-encoded `PostalAddress`.
    pub shipping_address: Vec<u8>,
    /// The attached payment.
    pub payment_id: Option<String>,
    /// Where the buyer pays (sandbox).
    pub payment_url: Option<String>,
    /// When the payment was attached.
    pub attach_time: Option<DateTime<Utc>>,
    /// When the order became PAID.
    pub paid_time: Option<DateTime<Utc>>,
    /// The shipment.
    pub shipment_id: Option<String>,
    /// Carrier name.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// Tracking page.
    pub tracking_url: Option<String>,
    /// When it shipped.
    pub ship_time: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub deliver_time: Option<DateTime<Utc>>,
    /// `OrderCancellationReason` wire value, when CANCELLED.
    pub cancellation_reason: Option<i16>,
    /// Aggregate version.
    pub version: i64,
    /// Creation time.
    pub create_time: DateTime<Utc>,
    /// Last change.
    pub update_time: DateTime<Utc>,
    /// Payment deadline.
    pub payment_due_time: DateTime<Utc>,
}

/// One `order_lines` row.
#[derive(Debug, Clone, FromRow)]
pub struct LineRow {
    /// Position in the order.
    pub position: i32,
    /// SKU.
    pub sku_id: Uuid,
    /// Product.
    pub product_id: Uuid,
    /// Seller of the product.
    pub seller_id: Uuid,
    /// Product name at order time.
    pub product_name: String,
    /// SKU code at order time.
    pub sku_code: String,
    /// Option values at order time.
    pub option_values: sqlx::types::Json<HashMap<String, String>>,
    /// Main image at order time.
    pub main_image_url: String,
    /// Units.
    pub quantity: i64,
    /// Unit price at order time.
    pub unit_price: i64,
    /// unit_price × quantity.
    pub line_total: i64,
}

/// One `order_history` row.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    /// Version after the change.
    pub version: i64,
    /// State before (none for the creation).
    pub from_status: Option<String>,
    /// State after.
    pub to_status: String,
    /// When.
    pub change_time: DateTime<Utc>,
}

/// An order with its lines and history.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    /// The order row.
    pub order: OrderRow,
    /// Its lines, by position.
    pub lines: Vec<LineRow>,
    /// Its changes, oldest first.
    pub history: Vec<HistoryRow>,
}

impl OrderRow {
    /// The parsed status.
    pub fn status(&self) -> Result<Status, OrderError> {
        Status::parse(&self.status)
            .ok_or_else(|| OrderError::Corrupt(format!("unknown order status {}", self.status)))
    }

    /// `amount` in the order's currency.
    pub fn money(&self, amount: i64) -> Money {
        Money {
            currency_code: self.currency.clone(),
            amount_minor: amount,
        }
    }

    /// The decoded shipping address.
    pub fn address(&self) -> Result<PostalAddress, OrderError> {
        PostalAddress::decode(self.shipping_address.as_slice())
            .map_err(|e| OrderError::Corrupt(format!("undecodable shipping address: {e}")))
    }

    /// The coupon as events carry it.
    pub fn coupon_use(&self) -> Option<CouponUse> {
        match (self.user_coupon_id, self.coupon_id) {
            (Some(user_coupon_id), Some(coupon_id)) => Some(CouponUse {
                user_coupon_id: user_coupon_id.to_string(),
                coupon_id: coupon_id.to_string(),
                discount: Some(self.money(self.discount)),
            }),
            _ => None,
        }
    }

    /// The wire payment method.
    pub fn payment_method(&self) -> PaymentMethod {
        PaymentMethod::try_from(i32::from(self.payment_method))
            .unwrap_or(PaymentMethod::Unspecified)
    }
}

impl LineRow {
    /// The line as events carry it.
    pub fn snapshot(&self, currency: &str) -> OrderLineSnapshot {
        let money = |amount| Money {
            currency_code: currency.to_owned(),
            amount_minor: amount,
        };
        OrderLineSnapshot {
            sku_id: self.sku_id.to_string(),
            product_id: self.product_id.to_string(),
            seller_id: self.seller_id.to_string(),
            product_name: self.product_name.clone(),
            sku_code: self.sku_code.clone(),
            quantity: self.quantity,
            unit_price: Some(money(self.unit_price)),
            line_total: Some(money(self.line_total)),
        }
    }
}

fn status_proto(raw: Option<&str>) -> i32 {
    raw.and_then(Status::parse)
        .map_or(0, |status| status.to_proto() as i32)
}

impl StoredOrder {
    /// Every line as events carry it.
    pub fn snapshots(&self) -> Vec<OrderLineSnapshot> {
        self.lines
            .iter()
            .map(|line| line.snapshot(&self.order.currency))
            .collect()
    }

    /// The order as clients see it.
    pub fn to_proto(&self) -> Result<pb::Order, OrderError> {
        let o = &self.order;
        let status = o.status()?;
        let coupon = match (o.user_coupon_id, o.coupon_id) {
            (Some(user_coupon_id), Some(coupon_id)) => Some(pb::AppliedCoupon {
                user_coupon_id: user_coupon_id.to_string(),
                coupon_id: coupon_id.to_string(),
                name: o.coupon_name.clone().unwrap_or_default(),
                kind: o
                    .coupon_kind
                    .map_or(CouponKind::Unspecified as i32, i32::from),
                discount: Some(o.money(o.discount)),
            }),
            _ => None,
        };
        let payment = o.payment_id.as_ref().map(|payment_id| pb::OrderPayment {
            payment_id: payment_id.clone(),
            payment_url: o.payment_url.clone().unwrap_or_default(),
            attach_time: o.attach_time.map(timestamp),
            paid_time: o.paid_time.map(timestamp),
        });
        let shipment = o.shipment_id.as_ref().map(|shipment_id| pb::OrderShipment {
            shipment_id: shipment_id.clone(),
            carrier: o.carrier.clone().unwrap_or_default(),
            tracking_number: o.tracking_number.clone().unwrap_or_default(),
            tracking_url: o.tracking_url.clone().unwrap_or_default(),
            ship_time: o.ship_time.map(timestamp),
            deliver_time: o.deliver_time.map(timestamp),
        });
        Ok(pb::Order {
            order_id: o.order_id.to_string(),
            user_id: o.user_id.to_string(),
            status: status.to_proto() as i32,
            lines: self
                .lines
                .iter()
                .map(|line| pb::OrderLine {
                    sku_id: line.sku_id.to_string(),
                    product_id: line.product_id.to_string(),
                    seller_id: line.seller_id.to_string(),
                    product_name: line.product_name.clone(),
                    sku_code: line.sku_code.clone(),
                    option_values: line.option_values.0.clone(),
                    main_image_url: line.main_image_url.clone(),
                    quantity: line.quantity,
                    unit_price: Some(o.money(line.unit_price)),
                    line_total: Some(o.money(line.line_total)),
                })
                .collect(),
            subtotal: Some(o.money(o.subtotal)),
            discount: Some(o.money(o.discount)),
            shipping_fee: Some(o.money(o.shipping_fee)),
            total: Some(o.money(o.total)),
            coupon,
            payment_method: o.payment_method().into(),
            payment,
            shipping_address: Some(o.address()?),
            shipment,
            cancellation_reason: o
                .cancellation_reason
                .map_or(OrderCancellationReason::Unspecified as i32, i32::from),
            history: self
                .history
                .iter()
                .map(|h| pb::OrderStatusChange {
                    from_status: status_proto(h.from_status.as_deref()),
                    to_status: status_proto(Some(&h.to_status)),
                    change_time: Some(timestamp(h.change_time)),
                    version: h.version,
                })
                .collect(),
            version: o.version,
            create_time: Some(timestamp(o.create_time)),
            update_time: Some(timestamp(o.update_time)),
            payment_due_time: Some(timestamp(o.payment_due_time)),
        })
    }
}
