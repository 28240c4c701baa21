//! The cart as clients see it: stored lines enriched with live catalog facts from one
//! `ProductService.BatchGetSkus` call, each with its status.
//!
//! Status precedence (first match wins): INVALID (the SKU is unknown or deleted, or not
//! purchasable: inactive, or its product not PUBLISHED) > OUT_OF_STOCK (nothing available) >
//! OVER_STOCK (fewer units available than the line wants) > AVAILABLE.
//!
//! `subtotal` follows the contract (`Cart.subtotal`): the sum of `line_total` over every line
//! that is not INVALID, i.e. AVAILABLE, OVER_STOCK and OUT_OF_STOCK lines at current prices;
//! INVALID lines have no price. `checkoutable` is true only with at least one line and every
//! line AVAILABLE.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mercato_proto::mercato::common::v1::{CartLineStatus, Money};
use mercato_proto::mercato::order::v1::{Cart, CartLine};
use mercato_proto::mercato::product::v1::{BatchGetSkusRequest, PurchasableSku};
use uuid::Uuid;

use crate::cart::error::CartError;
use crate::cart::store::{StoredCart, StoredLine};
use crate::context::OrderContext;

/// Catalog facts by SKU id; SKUs the catalog does not know (or deleted) are absent.
pub type Facts = HashMap<Uuid, PurchasableSku>;

/// Fetches the facts of `sku_ids` (at most 100) with one `BatchGetSkus` call; no call for none.
/// A failed call is [`CartError::CatalogUnavailable`]: no fact is ever invented.
pub async fn fetch(context: &OrderContext, sku_ids: &[Uuid]) -> Result<Facts, CartError> {
    if sku_ids.is_empty() {
        return Ok(Facts::new());
    }
    let request = BatchGetSkusRequest {
        sku_ids: sku_ids.iter().map(ToString::to_string).collect(),
    };
    let response = context
        .product
        .clone()
        .batch_get_skus(request)
        .await
        .map_err(catalog_error)?
        .into_inner();
    let mut facts = Facts::with_capacity(response.skus.len());
    for purchasable in response.skus {
        let id = purchasable
            .sku
            .as_ref()
            .and_then(|sku| Uuid::parse_str(&sku.sku_id).ok())
            .ok_or_else(|| CartError::Corrupt("BatchGetSkus returned a sku without id".into()))?;
        facts.insert(id, purchasable);
    }
    Ok(facts)
}

/// A failed `BatchGetSkus`: transient failures are UNAVAILABLE, anything else (a refusal of our
/// request) is a bug or a misconfiguration here.
fn catalog_error(status: tonic::Status) -> CartError {
    let text = format!("BatchGetSkus: {:?} {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::ResourceExhausted
        | tonic::Code::Unknown
        | tonic::Code::Aborted => CartError::CatalogUnavailable(text),
        tonic::Code::Ok
        | tonic::Code::InvalidArgument
        | tonic::Code::NotFound
        | tonic::Code::AlreadyExists
        | tonic::Code::PermissionDenied
        | tonic::Code::FailedPrecondition
        | tonic::Code::OutOfRange
        | tonic::Code::Unimplemented
        | tonic::Code::Internal
        | tonic::Code::DataLoss
        | tonic::Code::Unauthenticated => CartError::CatalogFailed(text),
    }
}

/// The status of a line of `quantity` units given its facts (see the module docs).
pub fn line_status(facts: Option<&PurchasableSku>, quantity: i64) -> CartLineStatus {
    let Some(facts) = facts else {
        return CartLineStatus::Invalid;
    };
    let available = facts.sku.as_ref().map_or(0, |sku| sku.available_quantity);
    if !facts.purchasable || facts.sku.is_none() {
        CartLineStatus::Invalid
    } else if available <= 0 {
        CartLineStatus::OutOfStock
    } else if quantity > available {
        CartLineStatus::OverStock
    } else {
        CartLineStatus::Available
    }
}

/// A protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn line(stored: &StoredLine, facts: Option<&PurchasableSku>) -> Result<CartLine, CartError> {
    let status = line_status(facts, stored.quantity);
    let mut line = CartLine {
        sku_id: stored.sku_id.to_string(),
        quantity: stored.quantity,
        status: status as i32,
        add_time: Some(timestamp(stored.add_time)),
        ..CartLine::default()
    };
    let Some(facts) = facts else {
        return Ok(line);
    };
    line.product_name.clone_from(&facts.product_name);
    line.main_image_url.clone_from(&facts.main_image_url);
    if let Some(sku) = &facts.sku {
        line.product_id.clone_from(&sku.product_id);
        line.sku_code.clone_from(&sku.sku_code);
        line.option_values.clone_from(&sku.option_values);
        if status != CartLineStatus::Invalid {
            line.available_quantity = sku.available_quantity;
            let price = sku
                .price
                .clone()
                .ok_or_else(|| CartError::Corrupt(format!("sku {} has no price", stored.sku_id)))?;
            let total = price
                .amount_minor
                .checked_mul(stored.quantity)
                .ok_or_else(|| {
                    CartError::Corrupt(format!("line total of sku {} overflows", stored.sku_id))
                })?;
            line.line_total = Some(Money {
                currency_code: price.currency_code.clone(),
                amount_minor: total,
            });
            line.unit_price = Some(price);
        }
    }
    Ok(line)
}

/// The client's view of `stored` given the catalog `facts`; `currency` prices an empty subtotal.
pub fn render(stored: &StoredCart, facts: &Facts, currency: &str) -> Result<Cart, CartError> {
    let mut lines = Vec::with_capacity(stored.lines.len());
    let mut subtotal: i64 = 0;
    let mut item_count: i64 = 0;
    for stored_line in &stored.lines {
        let line = line(stored_line, facts.get(&stored_line.sku_id))?;
        item_count = item_count
            .checked_add(line.quantity)
            .ok_or_else(|| CartError::Corrupt("item count overflows".into()))?;
        if let Some(total) = &line.line_total {
            if total.currency_code != currency {
                return Err(CartError::Corrupt(format!(
                    "sku {} is priced in {}, not {currency}",
                    line.sku_id, total.currency_code
                )));
            }
            subtotal = subtotal
                .checked_add(total.amount_minor)
                .ok_or_else(|| CartError::Corrupt("subtotal overflows".into()))?;
        }
        lines.push(line);
    }
    let checkoutable = !lines.is_empty()
        && lines
            .iter()
            .all(|l| l.status == CartLineStatus::Available as i32);
    Ok(Cart {
        lines,
        subtotal: Some(Money {
            currency_code: currency.to_owned(),
            amount_minor: subtotal,
        }),
        item_count,
        checkoutable,
        update_time: stored.update_time.map(timestamp),
    })
}

/// Fetches the facts of every line of `stored` and renders it.
pub async fn enrich(context: &OrderContext, stored: &StoredCart) -> Result<Cart, CartError> {
    let ids: Vec<Uuid> = stored.lines.iter().map(|l| l.sku_id).collect();
    let facts = fetch(context, &ids).await?;
    render(stored, &facts, &context.settings.cart.currency)
}

#[cfg(test)]
mod tests {
    use mercato_proto::mercato::product::v1::Sku;

    use super::*;

    fn facts(purchasable: bool, available: i64, price: i64) -> PurchasableSku {
        PurchasableSku {
            sku: Some(Sku {
                sku_id: Uuid::nil().to_string(),
                price: Some(Money {
                    currency_code: "JPY".into(),
                    amount_minor: price,
                }),
                available_quantity: available,
                ..Sku::default()
            }),
            purchasable,
            ..PurchasableSku::default()
        }
    }

    #[test]
    fn statuses_follow_the_precedence() {
        assert_eq!(line_status(None, 1), CartLineStatus::Invalid);
        // Not purchasable wins over out of stock.
        assert_eq!(
            line_status(Some(&facts(false, 0, 1)), 1),
            CartLineStatus::Invalid
        );
        assert_eq!(
            line_status(Some(&facts(true, 0, 1)), 1),
            CartLineStatus::OutOfStock
        );
        assert_eq!(
            line_status(Some(&facts(true, 2, 1)), 3),
            CartLineStatus::OverStock
        );
        assert_eq!(
            line_status(Some(&facts(true, 3, 1)), 3),
            CartLineStatus::Available
        );
    }

    #[test]
    fn an_overflowing_line_total_is_an_error_not_a_wrapped_number() {
        let stored = StoredCart {
            lines: vec![StoredLine {
                sku_id: Uuid::nil(),
                quantity: 999,
                add_time: Utc::now(),
            }],
            update_time: None,
        };
        let facts = Facts::from([(Uuid::nil(), facts(true, 1000, i64::MAX / 10))]);
        assert!(matches!(
            render(&stored, &facts, "JPY"),
            Err(CartError::Corrupt(_))
        ));
    }
}
