//! SKU writes (codes, combinations, idempotency, prices) and `BatchGetSkus` for the order
//! service.

use mercato_proto::mercato::common::v1::ProductStatus;
use mercato_proto::mercato::product::v1::{
    BatchGetSkusRequest, CreateSkuRequest, DeleteSkuRequest, GetProductRequest, Sku,
    UpdateSkuRequest,
};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

fn green(code: &str, key: &str, product_id: &str) -> CreateSkuRequest {
    CreateSkuRequest {
        product_id: product_id.to_owned(),
        sku: Some(sku(code, "Green", 1500)),
        idempotency_key: key.to_owned(),
    }
}

#[tokio::test]
async fn skus_are_added_changed_and_deleted_with_their_rules() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let mut client = h.client.clone();
    let mut product = mug("Mug", "SKU", 1000);
    if let Some(option) = product.options.first_mut() {
        option.values.push("Green".to_owned());
    }
    let product = h.create(seller, product).await;
    let id = product.product_id.clone();

    let created = client
        .create_sku(as_seller(green("SKU-G", "k1", &id), seller))
        .await
        .expect("create sku")
        .into_inner()
        .sku
        .expect("sku");
    assert_eq!(created.available_quantity, 0);
    let replay = client
        .create_sku(as_seller(green("SKU-G", "k1", &id), seller))
        .await
        .expect("replay")
        .into_inner()
        .sku
        .expect("sku");
    assert_eq!(
        replay.sku_id, created.sku_id,
        "the same key returns the first sku"
    );
    let err = client
        .create_sku(as_seller(green("SKU-G2", "k1", &id), seller))
        .await
        .expect_err("same key, other sku");
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");

    let err = client
        .create_sku(as_seller(green("SKU-G3", "k2", &id), seller))
        .await
        .expect_err("green exists already");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["sku.option_values"]);

    let mut taken = green("SKU-R", "k3", &id);
    if let Some(sku) = taken.sku.as_mut() {
        sku.active = false;
    }
    let err = client
        .create_sku(as_seller(taken, seller))
        .await
        .expect_err("code taken");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(reason(&err), "SKU_CODE_TAKEN");
    assert_eq!(metadata(&err, "sku_code"), "SKU-R");
    assert_eq!(h.count("skus").await, 3);
    assert_eq!(h.count("stock_levels").await, 3);

    let updated = client
        .update_sku(as_seller(
            UpdateSkuRequest {
                sku: Some(Sku {
                    sku_id: created.sku_id.clone(),
                    price: yen(500),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["price".to_owned()],
                }),
            },
            seller,
        ))
        .await
        .expect("update price")
        .into_inner()
        .sku
        .expect("sku");
    assert_eq!(updated.price.as_ref().map(|m| m.amount_minor), Some(500));
    assert!(updated.active, "fields outside the mask keep their values");
    let read = client
        .get_product(as_seller(
            GetProductRequest {
                product_id: id.clone(),
                show_deleted: false,
            },
            seller,
        ))
        .await
        .expect("get")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(read.min_price.as_ref().map(|m| m.amount_minor), Some(500));
    assert_eq!(read.version, 3, "every sku write bumps the product version");

    let err = client
        .update_sku(as_seller(
            UpdateSkuRequest {
                sku: Some(Sku {
                    sku_id: created.sku_id.clone(),
                    sku_code: "SKU-B".to_owned(),
                    ..Default::default()
                }),
                update_mask: None,
            },
            seller,
        ))
        .await
        .expect_err("code of another live sku");
    assert_eq!(reason(&err), "SKU_CODE_TAKEN");

    client
        .delete_sku(as_seller(
            DeleteSkuRequest {
                sku_id: created.sku_id.clone(),
            },
            seller,
        ))
        .await
        .expect("delete sku");
    // Its code is free again.
    client
        .create_sku(as_seller(green("SKU-G", "k4", &id), seller))
        .await
        .expect("the deleted sku's code is reusable");
}

#[tokio::test]
async fn batch_get_skus_reports_availability_purchasability_and_missing_ids() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let mut client = h.client.clone();
    let published = h.create_published(seller, mug("Mug", "BATCH", 1000)).await;
    let draft = h.create(seller, mug("Draft", "BDRAFT", 1000)).await;
    let red = published.skus.first().expect("sku").sku_id.clone();
    let blue = published.skus.get(1).expect("sku").sku_id.clone();
    let draft_sku = draft.skus.first().expect("sku").sku_id.clone();
    sqlx::query("UPDATE stock_levels SET on_hand = 10, reserved = 3 WHERE sku_id = $1::uuid")
        .bind(&red)
        .execute(h.pool())
        .await
        .expect("stock");
    client
        .delete_sku(as_seller(
            DeleteSkuRequest {
                sku_id: blue.clone(),
            },
            seller,
        ))
        .await
        .expect("delete blue");
    let unknown = Uuid::new_v4().to_string();

    let response = client
        .batch_get_skus(as_service(BatchGetSkusRequest {
            sku_ids: vec![
                red.clone(),
                blue.clone(),
                draft_sku.clone(),
                unknown.clone(),
                red.clone(),
            ],
        }))
        .await
        .expect("batch get")
        .into_inner();
    assert_eq!(response.missing_sku_ids, vec![blue, unknown]);
    assert_eq!(response.skus.len(), 2, "duplicates are ignored");
    let first = response.skus.first().expect("red");
    assert_eq!(first.sku.as_ref().map(|s| s.sku_id.clone()), Some(red));
    assert_eq!(first.sku.as_ref().map(|s| s.available_quantity), Some(7));
    assert!(first.purchasable);
    assert_eq!(first.product_name, "Mug");
    assert_eq!(first.seller_id, seller.to_string());
    assert_eq!(first.main_image_url, "https://cdn.example.com/BATCH.jpg");
    let second = response.skus.get(1).expect("draft sku");
    assert_eq!(second.product_status, ProductStatus::Draft as i32);
    assert!(!second.purchasable, "a draft's sku cannot be bought");

    let err = client
        .batch_get_skus(as_buyer(
            BatchGetSkusRequest {
                sku_ids: vec![draft_sku.clone()],
            },
            Uuid::new_v4(),
        ))
        .await
        .expect_err("internal only");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .batch_get_skus(as_service(BatchGetSkusRequest {
            sku_ids: vec![draft_sku, "nope".to_owned()],
        }))
        .await
        .expect_err("bad id");
    assert_eq!(violated_fields(&err), vec!["sku_ids[1]"]);
}
