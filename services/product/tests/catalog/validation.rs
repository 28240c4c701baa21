//! Bad input is refused with INVALID_ARGUMENT naming the field (or CURRENCY_MISMATCH,
//! SKU_CODE_TAKEN), and nothing is written.

use mercato_proto::mercato::common::v1::Money;
use mercato_proto::mercato::product::v1::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, Product, ProductImage, Sku,
    UpdateSkuRequest,
};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

type Mutation = fn(&mut CreateProductRequest);

fn price(request: &mut CreateProductRequest, amount: i64) {
    if let Some(sku) = request.product.as_mut().and_then(|p| p.skus.first_mut()) {
        sku.price = yen(amount);
    }
}

fn product(request: &mut CreateProductRequest) -> &mut Product {
    request.product.get_or_insert_with(Product::default)
}

#[tokio::test]
async fn invalid_products_are_refused_naming_the_field_and_nothing_is_written() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let cases: Vec<(&str, Mutation, Vec<&str>)> = vec![
        ("zero price", |r| price(r, 0), vec!["product.skus[0].price"]),
        (
            "negative price",
            |r| price(r, -5),
            vec!["product.skus[0].price"],
        ),
        (
            "price overflow",
            |r| price(r, 100_000_000_001),
            vec!["product.skus[0].price"],
        ),
        (
            "empty name",
            |r| product(r).name = "   ".to_owned(),
            vec!["product.name"],
        ),
        (
            "oversized name",
            |r| product(r).name = "n".repeat(201),
            vec!["product.name"],
        ),
        (
            "oversized description",
            |r| product(r).description = "d".repeat(10_001),
            vec!["product.description"],
        ),
        (
            "bad category",
            |r| product(r).category = "Kitchen Stuff".to_owned(),
            vec!["product.category"],
        ),
        (
            "too many tags",
            |r| product(r).tags = (0..21).map(|i| format!("t{i}")).collect(),
            vec!["product.tags"],
        ),
        (
            "plain http image",
            |r| {
                product(r).images = vec![ProductImage {
                    url: "http://example.com/a.jpg".to_owned(),
                    ..Default::default()
                }];
            },
            vec!["product.images[0].url"],
        ),
        (
            "two main images",
            |r| {
                let image = ProductImage {
                    url: "https://cdn.example.com/a.jpg".to_owned(),
                    alt_text: String::new(),
                    main: true,
                };
                product(r).images = vec![image.clone(), image];
            },
            vec!["product.images"],
        ),
        (
            "too many skus",
            |r| {
                let p = product(r);
                p.options = vec![mercato_proto::mercato::product::v1::ProductOption {
                    name: "N".to_owned(),
                    values: (0..30).map(|i| i.to_string()).collect(),
                }];
                p.skus = (0..101)
                    .map(|i| Sku {
                        sku_code: format!("MANY-{i}"),
                        option_values: [("N".to_owned(), (i % 30).to_string())].into(),
                        price: yen(100),
                        active: false,
                        ..Default::default()
                    })
                    .collect();
            },
            vec!["product.skus"],
        ),
        (
            "duplicate sku code",
            |r| {
                if let Some(sku) = product(r).skus.get_mut(1) {
                    sku.sku_code = "VAL-R".to_owned();
                }
            },
            vec!["product.skus[1].sku_code"],
        ),
        (
            "bad sku code",
            |r| {
                if let Some(sku) = product(r).skus.first_mut() {
                    sku.sku_code = "bad code!".to_owned();
                }
            },
            vec!["product.skus[0].sku_code"],
        ),
        (
            "undeclared option",
            |r| {
                if let Some(sku) = product(r).skus.first_mut() {
                    sku.option_values.insert("Size".to_owned(), "M".to_owned());
                }
            },
            vec!["product.skus[0].option_values"],
        ),
        ("no skus", |r| product(r).skus.clear(), vec!["product.skus"]),
        (
            "bad seller id",
            |r| r.seller_id = "not-a-uuid".to_owned(),
            vec!["seller_id"],
        ),
        (
            "missing idempotency key",
            |r| r.idempotency_key = String::new(),
            vec!["idempotency_key"],
        ),
    ];
    for (case, mutate, fields) in cases {
        let mut request = CreateProductRequest {
            product: Some(mug("Mug", "VAL", 1000)),
            idempotency_key: Uuid::new_v4().to_string(),
            seller_id: String::new(),
        };
        mutate(&mut request);
        let err = h
            .client
            .clone()
            .create_product(as_seller(request, seller))
            .await
            .expect_err(case);
        assert_eq!(err.code(), Code::InvalidArgument, "{case}: {err:?}");
        assert_eq!(reason(&err), "VALIDATION_FAILED", "{case}");
        assert_eq!(violated_fields(&err), fields, "{case}");
    }

    let mut request = CreateProductRequest {
        product: Some(mug("Mug", "VAL", 1000)),
        idempotency_key: Uuid::new_v4().to_string(),
        seller_id: String::new(),
    };
    if let Some(sku) = request.product.as_mut().and_then(|p| p.skus.get_mut(1)) {
        sku.price = Some(Money {
            currency_code: "USD".to_owned(),
            amount_minor: 1000,
        });
    }
    let err = h
        .client
        .clone()
        .create_product(as_seller(request, seller))
        .await
        .expect_err("foreign currency");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "CURRENCY_MISMATCH");
    assert_eq!(metadata(&err, "expected_currency"), "JPY");
    assert_eq!(
        metadata(&err, "field"),
        "product.skus[1].price.currency_code"
    );

    for table in [
        "products",
        "skus",
        "stock_levels",
        "catalog_idempotency_keys",
    ] {
        assert_eq!(h.count(table).await, 0, "nothing written to {table}");
    }
}

#[tokio::test]
async fn a_taken_sku_code_is_already_exists_and_writes_nothing() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    h.create(seller, mug("Mug", "TAKEN", 1000)).await;
    let mut other = mug("Other mug", "FRESH", 1000);
    if let Some(sku) = other.skus.get_mut(1) {
        sku.sku_code = "TAKEN-B".to_owned();
    }
    let err = h
        .client
        .clone()
        .create_product(as_seller(
            CreateProductRequest {
                product: Some(other),
                idempotency_key: Uuid::new_v4().to_string(),
                seller_id: String::new(),
            },
            Uuid::new_v4(),
        ))
        .await
        .expect_err("code taken");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(reason(&err), "SKU_CODE_TAKEN");
    assert_eq!(metadata(&err, "sku_code"), "TAKEN-B");
    assert_eq!(h.count("products").await, 1);
    assert_eq!(h.count("skus").await, 2);
    assert_eq!(h.count("stock_levels").await, 2);
    assert_eq!(h.count("catalog_idempotency_keys").await, 1);
}

#[tokio::test]
async fn malformed_ids_name_their_field() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let err = client
        .get_product(GetProductRequest {
            product_id: "123".to_owned(),
            show_deleted: false,
        })
        .await
        .expect_err("bad id");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["product_id"]);
    let err = client
        .delete_product(as_seller(
            DeleteProductRequest {
                product_id: "x".to_owned(),
            },
            Uuid::new_v4(),
        ))
        .await
        .expect_err("bad id");
    assert_eq!(violated_fields(&err), vec!["product_id"]);
    let err = client
        .update_sku(as_seller(
            UpdateSkuRequest {
                sku: Some(Sku {
                    sku_id: "sku-1".to_owned(),
                    ..Default::default()
                }),
                update_mask: None,
            },
            Uuid::new_v4(),
        ))
        .await
        .expect_err("bad id");
    assert_eq!(violated_fields(&err), vec!["sku.sku_id"]);
    let err = client
        .get_product(GetProductRequest {
            product_id: Uuid::new_v4().to_string(),
            show_deleted: false,
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let info = tonic_types::StatusExt::get_error_details(&err);
    assert_eq!(
        info.resource_info().map(|r| r.resource_type.clone()),
        Some("product".to_owned())
    );
}
