//! CreateOrder: validate, claim the idempotency key, price every line from the catalog, reserve
//! the stock (all or nothing, keyed by the new order id), then in one transaction apply the
//! coupon, check the expected total, write the order with its `order.created` event, clear the
//! checked-out cart lines and mark the key DONE. Whatever fails after the reservation releases it.

use std::collections::HashSet;

use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use mercato_platform::address::{self, PostalAddress as Address};
use mercato_proto::mercato::common::v1::{CartLineStatus, PaymentMethod, PostalAddress};
use mercato_proto::mercato::order::v1 as pb;
use mercato_proto::mercato::product::v1::{
    ReleaseReservationRequest, ReserveStockLine, ReserveStockRequest,
};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use sqlx::types::Json;
use uuid::Uuid;

use crate::cart::error::{CartError, Violation};
use crate::cart::{store as cart_store, view};
use crate::context::OrderContext;
use crate::coupon::apply as coupons;
use crate::order::error::OrderError;
use crate::order::events;
use crate::order::idempotency::{self, Claim};
use crate::order::model::{LineRow, OrderRow, StoredOrder};
use crate::order::state::Status;
use crate::order::store::{self, NewOrder};

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;
/// Most units one line may have.
pub const MAX_QUANTITY: i64 = 999;

/// Where the lines come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Explicit `(sku, quantity)` lines, in request order.
    Lines(Vec<(Uuid, i64)>),
    /// The caller's cart.
    Cart,
}

/// A validated CreateOrder request.
#[derive(Debug, Clone)]
pub struct Input {
    /// The client's key.
    pub key: String,
    /// SHA-256 of the request without its key.
    pub fingerprint: Vec<u8>,
    /// What to order.
    pub source: Source,
    /// Where it ships (validated, normalised).
    pub address: PostalAddress,
    /// How it is paid.
    pub payment_method: PaymentMethod,
    /// The coupon to apply.
    pub user_coupon_id: Option<Uuid>,
    /// The total the client showed.
    pub expected_total: Option<i64>,
}

fn uuid_field(raw: &str, field: &str, violations: &mut Vec<Violation>) -> Option<Uuid> {
    if raw.is_empty() {
        violations.push(Violation::new(field, "is required"));
        return None;
    }
    Uuid::parse_str(raw)
        .map_err(|_| violations.push(Violation::new(field, "must be a uuid")))
        .ok()
}

/// Validates `request` (every bad field named, nothing read or written).
pub fn parse(request: &pb::CreateOrderRequest, currency: &str) -> Result<Input, OrderError> {
    let mut violations = Vec::new();
    let key = request.idempotency_key.as_str();
    if key.is_empty() {
        violations.push(Violation::new("idempotency_key", "is required"));
    } else if key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        violations.push(Violation::new(
            "idempotency_key",
            "must be 1-128 printable ascii characters",
        ));
    }
    let mut duplicate = None;
    let source = match &request.source {
        None => {
            violations.push(Violation::new(
                "source",
                "is required: explicit_lines or cart",
            ));
            None
        }
        Some(pb::create_order_request::Source::Cart(_)) => Some(Source::Cart),
        Some(pb::create_order_request::Source::ExplicitLines(explicit)) => {
            let lines = &explicit.lines;
            if lines.is_empty() {
                violations.push(Violation::new(
                    "explicit_lines.lines",
                    "must have at least one line",
                ));
            } else if lines.len() > MAX_LINES {
                violations.push(Violation::new(
                    "explicit_lines.lines",
                    format!("must have at most {MAX_LINES} lines"),
                ));
            }
            let mut parsed = Vec::with_capacity(lines.len());
            let mut seen = HashSet::new();
            for (i, line) in lines.iter().enumerate().take(MAX_LINES) {
                let field = format!("explicit_lines.lines[{i}]");
                let sku = uuid_field(&line.sku_id, &format!("{field}.sku_id"), &mut violations);
                if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                    violations.push(Violation::new(
                        format!("{field}.quantity"),
                        format!("must be between 1 and {MAX_QUANTITY}"),
                    ));
                }
                if let Some(sku) = sku {
                    if !seen.insert(sku) && duplicate.is_none() {
                        duplicate = Some(sku);
                    }
                    parsed.push((sku, line.quantity));
                }
            }
            Some(Source::Lines(parsed))
        }
    };
    let address = request
        .shipping_address
        .as_ref()
        .map(|raw| address::parse_address(&Address::from(raw.clone()), "shipping_address"));
    let address = match address {
        Some(Ok(address)) => Some(PostalAddress::from(address)),
        Some(Err(bad)) => {
            violations.extend(bad);
            None
        }
        None => None,
    };
    let payment_method = PaymentMethod::try_from(request.payment_method)
        .ok()
        .filter(|m| *m != PaymentMethod::Unspecified);
    if payment_method.is_none() {
        violations.push(Violation::new(
            "payment_method",
            "must be STRIPE, POINTS or SANDBOX",
        ));
    }
    let user_coupon_id = if request.user_coupon_id.is_empty() {
        None
    } else {
        uuid_field(&request.user_coupon_id, "user_coupon_id", &mut violations)
    };
    let expected_total = request.expected_total.as_ref().map(|money| {
        if money.currency_code != currency {
            violations.push(Violation::new(
                "expected_total.currency_code",
                format!("must be the shop currency {currency}"),
            ));
        }
        if money.amount_minor < 0 {
            violations.push(Violation::new(
                "expected_total.amount_minor",
                "must not be negative",
            ));
        }
        money.amount_minor
    });
    if !violations.is_empty() {
        return Err(OrderError::Validation(violations));
    }
    if let Some(sku) = duplicate {
        return Err(OrderError::DuplicateLine(sku.to_string()));
    }
    let (Some(source), Some(payment_method)) = (source, payment_method) else {
        return Err(OrderError::Validation(violations));
    };
    let address = address.ok_or(OrderError::ShippingAddressRequired)?;
    let mut unkeyed = request.clone();
    unkeyed.idempotency_key.clear();
    Ok(Input {
        key: key.to_owned(),
        fingerprint: Sha256::digest(unkeyed.encode_to_vec()).to_vec(),
        source,
        address,
        payment_method,
        user_coupon_id,
        expected_total,
    })
}

/// Places the order for `user_id`, or replays what an earlier request with the key did.
/// Returns the order and whether it is a replay.
pub async fn create(
    context: &OrderContext,
    user_id: Uuid,
    input: Input,
) -> Result<(StoredOrder, bool), OrderError> {
    let order_id =
        match idempotency::claim(&context.pool, user_id, &input.key, &input.fingerprint).await? {
            Claim::Owner(order_id) => order_id,
            Claim::Done(order_id) => {
                let mut conn = context.pool.acquire().await?;
                let order = store::load(&mut conn, order_id)
                    .await?
                    .ok_or_else(|| OrderError::Corrupt(format!("order {order_id} vanished")))?;
                return Ok((order, true));
            }
            Claim::Failed(status) => return Err(OrderError::Replayed(status)),
        };
    match place(context, user_id, order_id, &input).await {
        Ok(order) => Ok((order, false)),
        Err(err) if err.is_final() => {
            let status = tonic::Status::from(err);
            idempotency::fail(&context.pool, user_id, &input.key, &status).await?;
            Err(OrderError::Replayed(status))
        }
        Err(err) => {
            if let Err(forget) = idempotency::release(&context.pool, user_id, &input.key).await {
                tracing::warn!(error = %forget, "could not forget a failed checkout's key");
            }
            Err(err)
        }
    }
}

/// The lines to order: the explicit ones, or the cart's (which must all be AVAILABLE).
async fn lines_of(
    context: &OrderContext,
    user_id: Uuid,
    source: &Source,
) -> Result<(Vec<(Uuid, i64)>, view::Facts), OrderError> {
    let lines = match source {
        Source::Lines(lines) => lines.clone(),
        Source::Cart => {
            let cart = cart_store::load(&context.pool, user_id)
                .await
                .map_err(cart_error)?;
            if cart.lines.is_empty() {
                return Err(OrderError::CartEmpty);
            }
            cart.lines.iter().map(|l| (l.sku_id, l.quantity)).collect()
        }
    };
    let ids: Vec<Uuid> = lines.iter().map(|(sku, _)| *sku).collect();
    let facts = view::fetch(context, &ids).await.map_err(cart_error)?;
    if matches!(source, Source::Cart) {
        let blocked: Vec<(String, String)> = lines
            .iter()
            .filter_map(|(sku, quantity)| {
                let status = view::line_status(facts.get(sku), *quantity);
                (status != CartLineStatus::Available)
                    .then(|| (sku.to_string(), status.as_str_name().to_owned()))
            })
            .collect();
        if !blocked.is_empty() {
            return Err(OrderError::CartNotCheckoutable(blocked));
        }
    }
    Ok((lines, facts))
}

fn cart_error(err: CartError) -> OrderError {
    match err {
        CartError::CatalogUnavailable(why) => OrderError::CatalogUnavailable(why),
        CartError::Database(db) => OrderError::Database(db),
        other @ (CartError::Validation(_)
        | CartError::NotFound { .. }
        | CartError::SkuNotPurchasable(_)
        | CartError::CartFull(_)
        | CartError::IdempotencyKeyReused
        | CartError::CatalogFailed(_)
        | CartError::Corrupt(_)) => OrderError::Corrupt(other.to_string()),
    }
}

/// Snapshots the catalog facts of every line.
fn price(
    lines: &[(Uuid, i64)],
    facts: &view::Facts,
    currency: &str,
) -> Result<(Vec<LineRow>, i64), OrderError> {
    let mut rows = Vec::with_capacity(lines.len());
    let mut subtotal: i64 = 0;
    for (position, (sku_id, quantity)) in lines.iter().enumerate() {
        let fact = facts.get(sku_id).ok_or_else(|| OrderError::NotFound {
            resource_type: "sku",
            resource_id: sku_id.to_string(),
        })?;
        if !fact.purchasable {
            return Err(OrderError::SkuNotPurchasable(sku_id.to_string()));
        }
        let sku = fact
            .sku
            .as_ref()
            .ok_or_else(|| OrderError::Corrupt(format!("sku {sku_id} has no facts")))?;
        let price = sku
            .price
            .as_ref()
            .filter(|p| p.currency_code == currency)
            .ok_or_else(|| OrderError::Corrupt(format!("sku {sku_id} has no {currency} price")))?;
        let corrupt = || OrderError::Corrupt(format!("line total of sku {sku_id} overflows"));
        let line_total = price
            .amount_minor
            .checked_mul(*quantity)
            .ok_or_else(corrupt)?;
        subtotal = subtotal.checked_add(line_total).ok_or_else(corrupt)?;
        let id = |raw: &str, what: &str| {
            Uuid::parse_str(raw)
                .map_err(|_| OrderError::Corrupt(format!("sku {sku_id} has a bad {what}")))
        };
        rows.push(LineRow {
            position: i32::try_from(position).unwrap_or(i32::MAX),
            sku_id: *sku_id,
            product_id: id(&sku.product_id, "product id")?,
            seller_id: id(&fact.seller_id, "seller id")?,
            product_name: fact.product_name.clone(),
            sku_code: sku.sku_code.clone(),
            option_values: Json(sku.option_values.clone()),
            main_image_url: fact.main_image_url.clone(),
            quantity: *quantity,
            unit_price: price.amount_minor,
            line_total,
        });
    }
    Ok((rows, subtotal))
}

/// Reserves the stock of `lines` for `order_id` until a margin after the payment deadline.
async fn reserve(
    context: &OrderContext,
    order_id: Uuid,
    lines: &[LineRow],
) -> Result<(), OrderError> {
    let ttl = context.settings.orders.reservation_ttl();
    let request = ReserveStockRequest {
        order_id: order_id.to_string(),
        lines: lines
            .iter()
            .map(|l| ReserveStockLine {
                sku_id: l.sku_id.to_string(),
                quantity: l.quantity,
            })
            .collect(),
        ttl: Some(prost_types::Duration {
            seconds: ttl.num_seconds(),
            nanos: 0,
        }),
    };
    match context.stock.clone().reserve_stock(request).await {
        Ok(_) => Ok(()),
        Err(status) => Err(upstream(status)),
    }
}

/// A product service refusal: client-visible refusals pass through, the rest is UNAVAILABLE.
fn upstream(status: tonic::Status) -> OrderError {
    if matches!(
        status.code(),
        tonic::Code::FailedPrecondition | tonic::Code::NotFound | tonic::Code::InvalidArgument
    ) {
        OrderError::Upstream(status)
    } else {
        OrderError::CatalogUnavailable(format!("{:?}: {}", status.code(), status.message()))
    }
}

/// Gives the reservation back after a failed checkout; the reservation's own expiry is the
/// safety net if this fails too.
async fn release(context: &OrderContext, order_id: Uuid) {
    let request = ReleaseReservationRequest {
        order_id: order_id.to_string(),
        reason: "checkout failed".to_owned(),
    };
    if let Err(status) = context.stock.clone().release_reservation(request).await {
        tracing::warn!(order.id = %order_id, error = %status.message(),
            "could not release the reservation of a failed checkout; it will expire");
    }
}

async fn place(
    context: &OrderContext,
    user_id: Uuid,
    order_id: Uuid,
    input: &Input,
) -> Result<StoredOrder, OrderError> {
    let currency = context.settings.cart.currency.clone();
    let (lines, facts) = lines_of(context, user_id, &input.source).await?;
    let (rows, subtotal) = price(&lines, &facts, &currency)?;
    reserve(context, order_id, &rows).await?;
    // PostgreSQL keeps microseconds: the first answer must equal every replay read back.
    let now = context.clock.now().trunc_subsecs(6);
    match commit(context, user_id, order_id, input, rows, subtotal, now).await {
        Ok(order) => Ok(order),
        Err(err) => {
            release(context, order_id).await;
            Err(err)
        }
    }
}

async fn commit(
    context: &OrderContext,
    user_id: Uuid,
    order_id: Uuid,
    input: &Input,
    lines: Vec<LineRow>,
    subtotal: i64,
    now: DateTime<Utc>,
) -> Result<StoredOrder, OrderError> {
    let settings = &context.settings.orders;
    let mut tx = context.pool.begin().await?;
    let coupon = match input.user_coupon_id {
        Some(id) => {
            Some(coupons::use_for_order(&mut tx, user_id, id, subtotal, order_id, now).await?)
        }
        None => None,
    };
    let discount = coupon.as_ref().map_or(0, |c| c.discount);
    let shipping_fee = settings.shipping_fee_for(subtotal);
    let total = subtotal - discount + shipping_fee;
    if let Some(expected) = input.expected_total
        && expected != total
    {
        return Err(OrderError::PriceChanged {
            expected,
            actual: total,
        });
    }
    let order = OrderRow {
        order_id,
        user_id,
        status: Status::Pending.as_str().to_owned(),
        currency: context.settings.cart.currency.clone(),
        subtotal,
        discount,
        shipping_fee,
        total,
        payment_method: i16::try_from(input.payment_method as i32).unwrap_or_default(),
        user_coupon_id: coupon.as_ref().map(|c| c.user_coupon_id),
        coupon_id: coupon.as_ref().map(|c| c.coupon_id),
        coupon_name: coupon.as_ref().map(|c| c.name.clone()),
        coupon_kind: coupon
            .as_ref()
            .map(|c| i16::try_from(c.kind as i32).unwrap_or_default()),
        shipping_address: input.address.encode_to_vec(),
        payment_id: None,
        payment_url: None,
        attach_time: None,
        paid_time: None,
        shipment_id: None,
        carrier: None,
        tracking_number: None,
        tracking_url: None,
        ship_time: None,
        deliver_time: None,
        cancellation_reason: None,
        version: 1,
        create_time: now,
        update_time: now,
        payment_due_time: now + Duration::from_std(settings.payment_ttl).unwrap_or(Duration::MAX),
    };
    let new = NewOrder { order, lines };
    store::insert(&mut tx, &new).await?;
    if matches!(input.source, Source::Cart) {
        let ordered: Vec<(Uuid, i64)> = new.lines.iter().map(|l| (l.sku_id, l.quantity)).collect();
        cart_store::remove_checked_out(&mut tx, user_id, &ordered, now)
            .await
            .map_err(cart_error)?;
    }
    let stored = store::complete(&mut tx, new.order).await?;
    events::created(&mut tx, &stored).await?;
    idempotency::complete(&mut tx, user_id, &input.key).await?;
    tx.commit().await?;
    Ok(stored)
}
