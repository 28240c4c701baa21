//! The product detail cache: public reads of a PUBLISHED product are served from Redis until a
//! write invalidates them.

use mercato_product::cache::product_key;
use mercato_proto::mercato::product::v1::{
    GetProductRequest, Product, Sku, UpdateProductRequest, UpdateSkuRequest,
};
use redis::AsyncCommands as _;
use uuid::Uuid;

use crate::support::*;

async fn public_get(h: &Harness, id: &str) -> Product {
    h.client
        .clone()
        .get_product(GetProductRequest {
            product_id: id.to_owned(),
            show_deleted: false,
        })
        .await
        .expect("get")
        .into_inner()
        .product
        .expect("product")
}

async fn rename_in_sql(h: &Harness, id: &str, name: &str) {
    sqlx::query("UPDATE products SET name = $2 WHERE id = $1::uuid")
        .bind(id)
        .bind(name)
        .execute(h.pool())
        .await
        .expect("rename behind the service's back");
}

#[tokio::test]
async fn get_product_is_served_from_cache_until_a_write_invalidates_it() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let product = h
        .create_published(seller, mug("Cached mug", "CACHE", 1000))
        .await;
    let id = product.product_id.clone();
    let key = product_key(&h.service.context, Uuid::parse_str(&id).expect("uuid"));
    let mut redis = h.service.context.redis.clone();
    let cached: Option<String> = redis.get(&key).await.expect("redis");
    assert!(cached.is_none(), "nothing cached before the first read");

    assert_eq!(public_get(&h, &id).await.name, "Cached mug");
    let cached: Option<String> = redis.get(&key).await.expect("redis");
    assert!(cached.is_some(), "the first public read fills the cache");

    rename_in_sql(&h, &id, "Renamed in SQL").await;
    assert_eq!(
        public_get(&h, &id).await.name,
        "Cached mug",
        "served from the cache"
    );
    let owner_view = h
        .client
        .clone()
        .get_product(as_seller(
            GetProductRequest {
                product_id: id.clone(),
                show_deleted: false,
            },
            seller,
        ))
        .await
        .expect("owner get")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(
        owner_view.name, "Renamed in SQL",
        "owners read the database"
    );

    h.client
        .clone()
        .update_product(as_seller(
            UpdateProductRequest {
                product: Some(Product {
                    product_id: id.clone(),
                    description: "now dishwasher safe".to_owned(),
                    ..Default::default()
                }),
                update_mask: None,
                expected_version: 0,
            },
            seller,
        ))
        .await
        .expect("update");
    let fresh = public_get(&h, &id).await;
    assert_eq!(
        fresh.name, "Renamed in SQL",
        "UpdateProduct invalidated the entry"
    );
    assert_eq!(fresh.description, "now dishwasher safe");

    rename_in_sql(&h, &id, "Renamed again").await;
    assert_eq!(
        public_get(&h, &id).await.name,
        "Renamed in SQL",
        "cached again"
    );
    let red = product.skus.first().expect("sku").sku_id.clone();
    h.client
        .clone()
        .update_sku(as_seller(
            UpdateSkuRequest {
                sku: Some(Sku {
                    sku_id: red,
                    price: yen(700),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["price".to_owned()],
                }),
            },
            seller,
        ))
        .await
        .expect("price change");
    let repriced = public_get(&h, &id).await;
    assert_eq!(
        repriced.name, "Renamed again",
        "UpdateSku invalidated the entry"
    );
    assert_eq!(repriced.min_price.map(|m| m.amount_minor), Some(700));
}
