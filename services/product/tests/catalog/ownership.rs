//! Who may write: the owning seller and admins; another seller is NOT_RESOURCE_OWNER on a
//! visible product and NOT_FOUND on a draft; a buyer lacks the role; anonymous callers are
//! unauthenticated. Nothing changes on a refused write.

use mercato_platform::principal::Role;
use mercato_proto::mercato::product::v1::{
    CreateSkuRequest, DeleteProductRequest, DeleteSkuRequest, HideProductRequest, Product,
    PublishProductRequest, Sku, UpdateProductRequest, UpdateSkuRequest,
};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[derive(Clone, Copy, Debug)]
enum Caller {
    Owner,
    OtherSeller,
    Buyer,
    Anonymous,
    Admin,
}

fn request<T>(message: T, caller: Caller, owner: Uuid) -> tonic::Request<T> {
    match caller {
        Caller::Owner => as_seller(message, owner),
        Caller::OtherSeller => as_seller(message, Uuid::new_v4()),
        Caller::Buyer => as_buyer(message, Uuid::new_v4()),
        Caller::Anonymous => tonic::Request::new(message),
        Caller::Admin => with_principal(message, Uuid::new_v4(), &[Role::Admin]),
    }
}

/// Runs every write on the product as `caller`; returns each write's outcome code.
async fn writes(
    h: &Harness,
    caller: Caller,
    owner: Uuid,
    product: &Product,
) -> Vec<(&'static str, Code)> {
    let mut client = h.client.clone();
    let id = product.product_id.clone();
    let sku_id = product.skus.first().expect("a sku").sku_id.clone();
    let code = |r: Result<(), tonic::Status>| r.map_or_else(|e| e.code(), |()| Code::Ok);
    let mut out = Vec::new();
    let update = UpdateProductRequest {
        product: Some(Product {
            product_id: id.clone(),
            description: format!("edited by {caller:?}"),
            ..Default::default()
        }),
        update_mask: None,
        expected_version: 0,
    };
    out.push((
        "UpdateProduct",
        code(
            client
                .update_product(request(update, caller, owner))
                .await
                .map(|_| ()),
        ),
    ));
    let new_sku = CreateSkuRequest {
        product_id: id.clone(),
        sku: Some(Sku {
            sku_code: format!("NEW-{}", Uuid::new_v4().simple()),
            option_values: [("Colour".to_owned(), "Green".to_owned())].into(),
            price: yen(100),
            active: false,
            ..Default::default()
        }),
        idempotency_key: Uuid::new_v4().to_string(),
    };
    out.push((
        "CreateSku",
        code(
            client
                .create_sku(request(new_sku, caller, owner))
                .await
                .map(|_| ()),
        ),
    ));
    let price = UpdateSkuRequest {
        sku: Some(Sku {
            sku_id: sku_id.clone(),
            price: yen(4242),
            ..Default::default()
        }),
        update_mask: None,
    };
    out.push((
        "UpdateSku",
        code(
            client
                .update_sku(request(price, caller, owner))
                .await
                .map(|_| ()),
        ),
    ));
    out.push((
        "HideProduct",
        code(
            client
                .hide_product(request(
                    HideProductRequest {
                        product_id: id.clone(),
                    },
                    caller,
                    owner,
                ))
                .await
                .map(|_| ()),
        ),
    ));
    out.push((
        "PublishProduct",
        code(
            client
                .publish_product(request(
                    PublishProductRequest {
                        product_id: id.clone(),
                    },
                    caller,
                    owner,
                ))
                .await
                .map(|_| ()),
        ),
    ));
    out.push((
        "DeleteSku",
        code(
            client
                .delete_sku(request(DeleteSkuRequest { sku_id }, caller, owner))
                .await
                .map(|_| ()),
        ),
    ));
    out.push((
        "DeleteProduct",
        code(
            client
                .delete_product(request(
                    DeleteProductRequest { product_id: id },
                    caller,
                    owner,
                ))
                .await
                .map(|_| ()),
        ),
    ));
    out
}

fn with_green(mut product: Product) -> Product {
    if let Some(option) = product.options.first_mut() {
        option.values.push("Green".to_owned());
    }
    product
}

#[tokio::test]
async fn only_the_owner_and_admins_write_a_published_product() {
    let h = Harness::start().await;
    let owner = Uuid::new_v4();
    for (caller, expected) in [
        (Caller::OtherSeller, Code::PermissionDenied),
        (Caller::Buyer, Code::PermissionDenied),
        (Caller::Anonymous, Code::Unauthenticated),
        (Caller::Owner, Code::Ok),
        (Caller::Admin, Code::Ok),
    ] {
        let code = format!("{caller:?}").to_uppercase();
        let product = h
            .create_published(owner, with_green(mug("Mug", &code, 1000)))
            .await;
        let before: (i64, String) =
            sqlx::query_as("SELECT version, description FROM products WHERE id = $1::uuid")
                .bind(&product.product_id)
                .fetch_one(h.pool())
                .await
                .expect("product row");
        for (rpc, got) in writes(&h, caller, owner, &product).await {
            assert_eq!(got, expected, "{rpc} as {caller:?}");
        }
        let after: (i64, String) =
            sqlx::query_as("SELECT version, description FROM products WHERE id = $1::uuid")
                .bind(&product.product_id)
                .fetch_one(h.pool())
                .await
                .expect("product row");
        if expected == Code::Ok {
            assert!(after.0 > before.0, "{caller:?} changed the product");
        } else {
            assert_eq!(
                after, before,
                "a refused write changes nothing ({caller:?})"
            );
        }
    }
}

#[tokio::test]
async fn refusals_carry_the_reason_and_hide_other_sellers_drafts() {
    let h = Harness::start().await;
    let owner = Uuid::new_v4();
    let mut client = h.client.clone();
    let published = h.create_published(owner, mug("Mug", "PUB", 1000)).await;
    let draft = h.create(owner, mug("Draft mug", "DRAFT", 1000)).await;
    let hide = |id: &str| HideProductRequest {
        product_id: id.to_owned(),
    };

    let err = client
        .hide_product(as_seller(hide(&published.product_id), Uuid::new_v4()))
        .await
        .expect_err("other seller");
    assert_eq!(reason(&err), "NOT_RESOURCE_OWNER");
    let err = client
        .hide_product(as_buyer(hide(&published.product_id), Uuid::new_v4()))
        .await
        .expect_err("buyer");
    assert_eq!(reason(&err), "ROLE_REQUIRED");
    assert_eq!(metadata(&err, "required_role"), "ROLE_SELLER");
    let err = client
        .hide_product(tonic::Request::new(hide(&published.product_id)))
        .await
        .expect_err("anonymous");
    assert_eq!(reason(&err), "TOKEN_MISSING");
    let err = client
        .publish_product(as_seller(
            PublishProductRequest {
                product_id: draft.product_id.clone(),
            },
            Uuid::new_v4(),
        ))
        .await
        .expect_err("another seller's draft does not exist for them");
    assert_eq!(err.code(), Code::NotFound);
}
