//! Deleting a product or a SKU whose stock a PENDING reservation holds is refused until the
//! reservation settles.

use mercato_proto::mercato::product::v1::{DeleteProductRequest, DeleteSkuRequest};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn pending_reservations_block_deletion_until_they_settle() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let mut client = h.client.clone();
    let product = h
        .create_published(seller, mug("Reserved mug", "RES", 1000))
        .await;
    let red = product.skus.first().expect("sku").sku_id.clone();
    let blue = product.skus.get(1).expect("sku").sku_id.clone();
    let reservation = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO reservations (id, order_id, status, lines_hash, expires_at, created_at) \
         VALUES ($1, $2, 'PENDING', 'h', now() + interval '1 hour', now())",
    )
    .bind(reservation)
    .bind(Uuid::now_v7())
    .execute(h.pool())
    .await
    .expect("reservation");
    sqlx::query(
        "INSERT INTO reservation_lines (reservation_id, sku_id, quantity) VALUES ($1, $2::uuid, 1)",
    )
    .bind(reservation)
    .bind(&red)
    .execute(h.pool())
    .await
    .expect("reservation line");

    let err = client
        .delete_sku(as_seller(
            DeleteSkuRequest {
                sku_id: red.clone(),
            },
            seller,
        ))
        .await
        .expect_err("reserved sku");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "PRODUCT_HAS_PENDING_RESERVATIONS");
    let err = client
        .delete_product(as_seller(
            DeleteProductRequest {
                product_id: product.product_id.clone(),
            },
            seller,
        ))
        .await
        .expect_err("reserved product");
    assert_eq!(reason(&err), "PRODUCT_HAS_PENDING_RESERVATIONS");
    client
        .delete_sku(as_seller(DeleteSkuRequest { sku_id: blue }, seller))
        .await
        .expect("an unreserved sku of the same product can go");

    sqlx::query("UPDATE reservations SET status = 'RELEASED', settled_at = now() WHERE id = $1")
        .bind(reservation)
        .execute(h.pool())
        .await
        .expect("release");
    client
        .delete_product(as_seller(
            DeleteProductRequest {
                product_id: product.product_id,
            },
            seller,
        ))
        .await
        .expect("deletable once the reservation settled");
}
