//! Create → publish → hide → delete, what each caller sees on the way, and optimistic updates.

use mercato_proto::mercato::common::v1::ProductStatus;
use mercato_proto::mercato::product::v1::{
    CreateProductRequest, DeleteProductRequest, DeleteSkuRequest, GetProductRequest,
    HideProductRequest, Product, PublishProductRequest, UpdateProductRequest,
};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

fn get(id: &str) -> GetProductRequest {
    GetProductRequest {
        product_id: id.to_owned(),
        show_deleted: false,
    }
}

#[tokio::test]
async fn a_product_goes_from_draft_to_published_to_hidden_to_deleted() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let mut client = h.client.clone();

    let created = h.create(seller, mug("Blue mug", "MUG1", 1200)).await;
    assert_eq!(created.status, ProductStatus::Draft as i32);
    assert_eq!(created.seller_id, seller.to_string());
    assert_eq!(created.version, 1);
    assert_eq!(created.tags, vec!["handmade", "mug"]);
    assert_eq!(created.skus.len(), 2);
    assert!(created.skus.iter().all(|s| s.available_quantity == 0));
    assert_eq!(
        created.min_price.as_ref().map(|m| m.amount_minor),
        Some(1200)
    );
    assert_eq!(
        created.max_price.as_ref().map(|m| m.amount_minor),
        Some(1300)
    );
    assert!(
        created.images.first().is_some_and(|i| i.main),
        "first image becomes main"
    );
    assert_eq!(h.count("stock_levels").await, 2, "one stock row per sku");
    let id = created.product_id.clone();

    // A draft is invisible to the public, other sellers and buyers, visible to owner and admin.
    for request in [
        tonic::Request::new(get(&id)),
        as_buyer(get(&id), Uuid::new_v4()),
        as_seller(get(&id), Uuid::new_v4()),
    ] {
        let err = client.get_product(request).await.expect_err("draft hidden");
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(reason(&err), "RESOURCE_NOT_FOUND");
    }
    client
        .get_product(as_seller(get(&id), seller))
        .await
        .expect("owner sees the draft");
    client
        .get_product(as_admin(get(&id), Uuid::new_v4()))
        .await
        .expect("admin sees the draft");
    client
        .get_product(as_service(get(&id)))
        .await
        .expect("internal callers read everything");

    let published = client
        .publish_product(as_seller(
            PublishProductRequest {
                product_id: id.clone(),
            },
            seller,
        ))
        .await
        .expect("publish")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(published.status, ProductStatus::Published as i32);
    assert!(published.publish_time.is_some());
    assert_eq!(published.version, 2);
    let public = client
        .get_product(get(&id))
        .await
        .expect("anonymous reads a published product")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(public.name, "Blue mug");
    let again = client
        .publish_product(as_seller(
            PublishProductRequest {
                product_id: id.clone(),
            },
            seller,
        ))
        .await
        .expect("publishing twice is a no-op")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(again.version, 2);

    client
        .hide_product(as_seller(
            HideProductRequest {
                product_id: id.clone(),
            },
            seller,
        ))
        .await
        .expect("hide");
    let err = client.get_product(get(&id)).await.expect_err("hidden");
    assert_eq!(err.code(), Code::NotFound);
    client
        .publish_product(as_seller(
            PublishProductRequest {
                product_id: id.clone(),
            },
            seller,
        ))
        .await
        .expect("hidden products can be published again");

    let deleted = client
        .delete_product(as_seller(
            DeleteProductRequest {
                product_id: id.clone(),
            },
            seller,
        ))
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.delete_time.is_some());
    for request in [tonic::Request::new(get(&id)), as_seller(get(&id), seller)] {
        let err = client.get_product(request).await.expect_err("deleted");
        assert_eq!(err.code(), Code::NotFound);
    }
    let mut show = get(&id);
    show.show_deleted = true;
    let tombstone = client
        .get_product(as_admin(show, Uuid::new_v4()))
        .await
        .expect("admins see deleted products on request")
        .into_inner()
        .product
        .expect("product");
    assert!(tombstone.delete_time.is_some());
    assert!(
        tombstone.skus.is_empty(),
        "a deleted product's skus are deleted too"
    );
    let err = client
        .delete_product(as_seller(
            DeleteProductRequest {
                product_id: id.clone(),
            },
            seller,
        ))
        .await
        .expect_err("already deleted");
    assert_eq!(err.code(), Code::NotFound);
    let deleted_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM products WHERE deleted_at IS NOT NULL")
            .fetch_one(h.pool())
            .await
            .expect("count");
    assert_eq!(deleted_rows, 1, "soft delete keeps the row");

    // The deleted product's sku codes are free again.
    h.create(seller, mug("Second mug", "MUG1", 900)).await;
}

#[tokio::test]
async fn publishing_needs_an_active_sku_and_a_draft_cannot_be_hidden() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let mut client = h.client.clone();
    let mut inactive = mug("Sleepy mug", "SLEEPY", 500);
    inactive.skus.truncate(1);
    if let Some(sku) = inactive.skus.first_mut() {
        sku.active = false;
    }
    let draft = h.create(seller, inactive).await;
    assert!(draft.min_price.is_none(), "no active sku, no min price");

    let err = client
        .publish_product(as_seller(
            PublishProductRequest {
                product_id: draft.product_id.clone(),
            },
            seller,
        ))
        .await
        .expect_err("no active sku");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "PRODUCT_INCOMPLETE");
    let failure = tonic_types::StatusExt::get_error_details(&err);
    let subjects: Vec<String> = failure
        .precondition_failure()
        .map(|pf| pf.violations.iter().map(|v| v.subject.clone()).collect())
        .unwrap_or_default();
    assert_eq!(subjects, vec![draft.product_id.clone()]);

    let err = client
        .hide_product(as_seller(
            HideProductRequest {
                product_id: draft.product_id.clone(),
            },
            seller,
        ))
        .await
        .expect_err("drafts cannot be hidden");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "ILLEGAL_STATE_TRANSITION");
    assert_eq!(metadata(&err, "current_state"), "DRAFT");

    // The last active sku of a published product cannot be deleted.
    let mut single = mug("Single mug", "SINGLE", 700);
    single.skus.truncate(1);
    let published = h.create_published(seller, single).await;
    let sku_id = published.skus.first().expect("a sku").sku_id.clone();
    let err = client
        .delete_sku(as_seller(DeleteSkuRequest { sku_id }, seller))
        .await
        .expect_err("last active sku");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "PRODUCT_INCOMPLETE");
}

#[tokio::test]
async fn updates_follow_the_mask_and_the_expected_version() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let mut client = h.client.clone();
    let created = h.create(seller, mug("Mug", "UPD", 1000)).await;
    let id = created.product_id.clone();

    let updated = client
        .update_product(as_seller(
            UpdateProductRequest {
                product: Some(Product {
                    product_id: id.clone(),
                    name: "  Renamed mug ".to_owned(),
                    description: "ignored: not in the mask".to_owned(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".to_owned()],
                }),
                expected_version: 1,
            },
            seller,
        ))
        .await
        .expect("update")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(updated.name, "Renamed mug");
    assert_eq!(updated.description, created.description);
    assert_eq!(updated.version, 2);

    let err = client
        .update_product(as_seller(
            UpdateProductRequest {
                product: Some(Product {
                    product_id: id.clone(),
                    name: "Stale".to_owned(),
                    ..Default::default()
                }),
                update_mask: None,
                expected_version: 1,
            },
            seller,
        ))
        .await
        .expect_err("stale version");
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(reason(&err), "VERSION_MISMATCH");
    assert_eq!(metadata(&err, "current_version"), "2");

    let featured = Product {
        product_id: id.clone(),
        featured: true,
        ..Default::default()
    };
    let err = client
        .update_product(as_seller(
            UpdateProductRequest {
                product: Some(featured.clone()),
                update_mask: None,
                expected_version: 0,
            },
            seller,
        ))
        .await
        .expect_err("sellers cannot feature");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "ROLE_REQUIRED");
    let by_admin = client
        .update_product(as_admin(
            UpdateProductRequest {
                product: Some(featured),
                update_mask: None,
                expected_version: 0,
            },
            Uuid::new_v4(),
        ))
        .await
        .expect("admins feature products")
        .into_inner()
        .product
        .expect("product");
    assert!(by_admin.featured);
    assert_eq!(
        by_admin.name, "Renamed mug",
        "an empty mask updates only set fields"
    );

    // Options that would orphan a sku's value are refused.
    let err = client
        .update_product(as_seller(
            UpdateProductRequest {
                product: Some(Product {
                    product_id: id.clone(),
                    options: vec![mercato_proto::mercato::product::v1::ProductOption {
                        name: "Colour".to_owned(),
                        values: vec!["Red".to_owned()],
                    }],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["options".to_owned()],
                }),
                expected_version: 0,
            },
            seller,
        ))
        .await
        .expect_err("blue sku would be orphaned");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["product.options"]);
}

#[tokio::test]
async fn create_product_is_idempotent_per_caller_and_key() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let mut client = h.client.clone();
    let request = |product: Product, key: &str| CreateProductRequest {
        product: Some(product),
        idempotency_key: key.to_owned(),
        seller_id: String::new(),
    };
    let first = client
        .create_product(as_seller(request(mug("Mug", "IDEM", 800), "key-1"), seller))
        .await
        .expect("create")
        .into_inner()
        .product
        .expect("product");
    let replay = client
        .create_product(as_seller(request(mug("Mug", "IDEM", 800), "key-1"), seller))
        .await
        .expect("replay")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(first.product_id, replay.product_id);
    assert_eq!(h.count("products").await, 1);

    let err = client
        .create_product(as_seller(
            request(mug("Other", "IDEM2", 800), "key-1"),
            seller,
        ))
        .await
        .expect_err("same key, different request");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");

    // The key is scoped to the caller.
    client
        .create_product(as_seller(
            request(mug("Other", "IDEM3", 800), "key-1"),
            Uuid::new_v4(),
        ))
        .await
        .expect("another seller may use the same key");
    assert_eq!(h.count("products").await, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_product() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let calls = (0..8).map(|_| {
        let mut client = h.client.clone();
        async move {
            client
                .create_product(as_seller(
                    CreateProductRequest {
                        product: Some(mug("Raced mug", "RACE", 800)),
                        idempotency_key: "same-key".to_owned(),
                        seller_id: String::new(),
                    },
                    seller,
                ))
                .await
                .expect("every retry succeeds")
                .into_inner()
                .product
                .expect("product")
                .product_id
        }
    });
    let ids = futures::future::join_all(calls).await;
    assert!(ids.iter().all(|id| Some(id) == ids.first()), "{ids:?}");
    assert_eq!(h.count("products").await, 1);
    assert_eq!(h.count("skus").await, 2);
}
