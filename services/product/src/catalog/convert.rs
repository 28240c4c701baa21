//! Protobuf ↔ domain conversions for the catalog: messages are destructured field by field so
//! a new proto field is a compile error here rather than silently ignored.

use chrono::{DateTime, Utc};
use mercato_platform::principal::{self, Principal, Role};
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as pb;
use tonic::Request;
use uuid::Uuid;

use crate::catalog::app::ProductView;
use crate::catalog::domain::{Image, ProductDraft, ProductOption, SkuDraft, Status, Viewer};
use crate::catalog::error::CatalogError;
use crate::catalog::store::{ProductRecord, PurchasableRow, SkuRecord};

/// A protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Who is calling: a forwarded user, an internal service on its own behalf, or nobody.
pub fn viewer<T>(request: &Request<T>) -> Viewer {
    match request.extensions().get::<Principal>() {
        Some(principal) => Viewer::User {
            id: principal.user_id,
            seller: principal.has_role(Role::Seller),
            admin: principal.has_role(Role::Admin),
        },
        None if principal::is_internal_service(request) => Viewer::Internal,
        None => Viewer::Anonymous,
    }
}

/// A required UUID field.
pub fn parse_id(raw: &str, field: &str) -> Result<Uuid, CatalogError> {
    Uuid::parse_str(raw.trim()).map_err(|_| CatalogError::field(field, "must be a uuid"))
}

/// An optional UUID field (empty means absent).
pub fn parse_optional_id(raw: &str, field: &str) -> Result<Option<Uuid>, CatalogError> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        parse_id(raw, field).map(Some)
    }
}

/// An idempotency key: 1-128 printable ASCII characters.
pub fn idempotency_key(raw: &str) -> Result<String, CatalogError> {
    let ok = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(CatalogError::field(
            "idempotency_key",
            "must be 1-128 printable ascii characters",
        ))
    }
}

fn money(amount: i64, currency: &str) -> common::Money {
    common::Money {
        currency_code: currency.to_owned(),
        amount_minor: amount,
    }
}

/// The protobuf status.
pub fn status_to_proto(status: Status) -> common::ProductStatus {
    match status {
        Status::Draft => common::ProductStatus::Draft,
        Status::Published => common::ProductStatus::Published,
        Status::Hidden => common::ProductStatus::Hidden,
    }
}

/// A SKU message.
pub fn sku_to_proto(sku: SkuRecord) -> pb::Sku {
    let SkuRecord {
        id,
        product_id,
        draft,
        available,
        created_at,
        updated_at,
        deleted_at: _,
    } = sku;
    pb::Sku {
        sku_id: id.to_string(),
        product_id: product_id.to_string(),
        sku_code: draft.sku_code,
        option_values: draft.option_values.into_iter().collect(),
        price: Some(money(draft.price_minor, &draft.currency_code)),
        active: draft.active,
        available_quantity: available.max(0),
        create_time: Some(timestamp(created_at)),
        update_time: Some(timestamp(updated_at)),
    }
}

/// A product message with its SKUs.
pub fn product_to_proto(view: ProductView) -> pb::Product {
    let ProductView { product, skus } = view;
    let ProductRecord {
        id,
        seller_id,
        draft,
        status,
        version,
        created_at,
        updated_at,
        published_at,
        deleted_at,
        min_price_minor,
        max_price_minor,
        price_currency,
        sort_time: _,
    } = product;
    let currency = price_currency.unwrap_or_default();
    pb::Product {
        product_id: id.to_string(),
        seller_id: seller_id.to_string(),
        name: draft.name,
        description: draft.description,
        category: draft.category,
        tags: draft.tags,
        attributes: draft.attributes.into_iter().collect(),
        options: draft
            .options
            .into_iter()
            .map(|o| pb::ProductOption {
                name: o.name,
                values: o.values,
            })
            .collect(),
        skus: skus.into_iter().map(sku_to_proto).collect(),
        images: draft
            .images
            .into_iter()
            .map(|i| pb::ProductImage {
                url: i.url,
                alt_text: i.alt_text,
                main: i.main,
            })
            .collect(),
        status: status_to_proto(status) as i32,
        featured: draft.featured,
        min_price: min_price_minor.map(|m| money(m, &currency)),
        max_price: max_price_minor.map(|m| money(m, &currency)),
        version,
        create_time: Some(timestamp(created_at)),
        update_time: Some(timestamp(updated_at)),
        publish_time: published_at.map(timestamp),
        delete_time: deleted_at.map(timestamp),
    }
}

/// A `PurchasableSku` message.
pub fn purchasable_to_proto(row: PurchasableRow) -> pb::PurchasableSku {
    let PurchasableRow { sku, product } = row;
    let purchasable =
        sku.draft.active && product.status == Status::Published && product.deleted_at.is_none();
    pb::PurchasableSku {
        sku: Some(sku_to_proto(sku)),
        product_name: product.draft.name.clone(),
        product_status: status_to_proto(product.status) as i32,
        seller_id: product.seller_id.to_string(),
        main_image_url: product
            .draft
            .main_image_url()
            .unwrap_or_default()
            .to_owned(),
        purchasable,
    }
}

/// The editable fields of a product message (output-only fields are ignored).
pub fn draft_from_proto(product: pb::Product) -> (ProductDraft, Vec<pb::Sku>) {
    let pb::Product {
        product_id: _,
        seller_id: _,
        name,
        description,
        category,
        tags,
        attributes,
        options,
        skus,
        images,
        status: _,
        featured,
        min_price: _,
        max_price: _,
        version: _,
        create_time: _,
        update_time: _,
        publish_time: _,
        delete_time: _,
    } = product;
    let draft = ProductDraft {
        name,
        description,
        category,
        tags,
        attributes: attributes.into_iter().collect(),
        options: options
            .into_iter()
            .map(|pb::ProductOption { name, values }| ProductOption { name, values })
            .collect(),
        images: images
            .into_iter()
            .map(
                |pb::ProductImage {
                     url,
                     alt_text,
                     main,
                 }| Image {
                    url,
                    alt_text,
                    main,
                },
            )
            .collect(),
        featured,
    };
    (draft, skus)
}

/// The editable fields of a SKU message.
pub fn sku_from_proto(sku: pb::Sku) -> SkuDraft {
    let pb::Sku {
        sku_id: _,
        product_id: _,
        sku_code,
        option_values,
        price,
        active,
        available_quantity: _,
        create_time: _,
        update_time: _,
    } = sku;
    let common::Money {
        currency_code,
        amount_minor,
    } = price.unwrap_or_default();
    SkuDraft {
        sku_code,
        option_values: option_values.into_iter().collect(),
        price_minor: amount_minor,
        currency_code: currency_code.trim().to_owned(),
        active,
    }
}

/// `page_size` per the paging convention: 0 → `default`, above `max` → `max`, negative refused.
pub fn page_size(raw: i32, default: usize, max: usize) -> Result<usize, CatalogError> {
    match raw {
        0 => Ok(default),
        n if n < 0 => Err(CatalogError::field("page_size", "must not be negative")),
        n => Ok(usize::try_from(n).unwrap_or(max).min(max)),
    }
}
