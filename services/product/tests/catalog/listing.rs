//! `ListProducts`: paging visits every product once under every ordering; filters, full-text
//! search and who may list what.

use std::collections::HashSet;

use mercato_proto::mercato::common::v1::{Money, ProductStatus};
use mercato_proto::mercato::product::v1::{ListProductsRequest, Product, ProductSort};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

/// Every page of `request` as an anonymous caller (page size 7).
async fn walk(h: &Harness, mut request: ListProductsRequest) -> Vec<Product> {
    request.page_size = 7;
    let mut all = Vec::new();
    for _ in 0..50 {
        let page = h
            .client
            .clone()
            .list_products(request.clone())
            .await
            .expect("list")
            .into_inner();
        assert!(page.products.len() <= 7);
        all.extend(page.products);
        if page.next_page_token.is_empty() {
            return all;
        }
        request.page_token = page.next_page_token;
    }
    panic!("paging did not end");
}

fn price_of(p: &Product) -> i64 {
    p.min_price.as_ref().map_or(i64::MAX, |m| m.amount_minor)
}

#[tokio::test]
async fn paging_visits_every_published_product_exactly_once_in_every_order() {
    let h = Harness::start().await;
    let seller = Uuid::new_v4();
    let mut published = HashSet::new();
    for i in 0..23_i64 {
        // Prices repeat so that ties are broken by id.
        let product = h
            .create_published(
                seller,
                mug(&format!("Mug {i}"), &format!("PAGE{i}"), 100 + (i % 5) * 10),
            )
            .await;
        published.insert(product.product_id);
    }
    h.create(seller, mug("Draft", "PAGEDRAFT", 100)).await;

    for order in [
        ProductSort::Unspecified,
        ProductSort::PriceAscending,
        ProductSort::PriceDescending,
        ProductSort::Relevance,
    ] {
        // Every mug's description says "ceramic": equal ranks, so ties are broken by id.
        let query = if order == ProductSort::Relevance {
            "ceramic".to_owned()
        } else {
            String::new()
        };
        let products = walk(
            &h,
            ListProductsRequest {
                order_by: order as i32,
                query,
                ..Default::default()
            },
        )
        .await;
        let ids: Vec<String> = products.iter().map(|p| p.product_id.clone()).collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(ids.len(), 23, "{order:?}: every product once");
        assert_eq!(unique, published, "{order:?}: exactly the published ones");
        let prices: Vec<i64> = products.iter().map(price_of).collect();
        match order {
            ProductSort::PriceAscending => assert!(prices.is_sorted(), "{prices:?}"),
            ProductSort::PriceDescending => {
                assert!(prices.iter().rev().is_sorted(), "{prices:?}");
            }
            ProductSort::Relevance => {}
            ProductSort::Unspecified | ProductSort::Newest => {
                let times: Vec<_> = products
                    .iter()
                    .map(|p| p.publish_time.map(|t| (t.seconds, t.nanos)))
                    .collect();
                assert!(times.iter().rev().is_sorted(), "newest first");
            }
        }
    }

    let first = h
        .client
        .clone()
        .list_products(ListProductsRequest {
            page_size: 5,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let err = h
        .client
        .clone()
        .list_products(ListProductsRequest {
            page_size: 5,
            page_token: first.next_page_token,
            category: "other".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("token of other filters");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "INVALID_PAGE_TOKEN");
}

#[tokio::test]
async fn filters_and_full_text_search_narrow_the_listing() {
    let h = Harness::start().await;
    let alice = Uuid::new_v4();
    let bob = Uuid::new_v4();
    let mut lamp = mug("Brass desk lamp", "LAMP", 5000);
    lamp.category = "lighting".to_owned();
    lamp.description = "a warm reading light".to_owned();
    lamp.tags = vec!["brass".to_owned()];
    let lamp = h.create_published(alice, lamp).await;
    let cheap = h
        .create_published(alice, mug("Ceramic espresso cup", "CUP", 300))
        .await;
    let pricey = h
        .create_published(bob, mug("Porcelain teapot", "POT", 9000))
        .await;
    let draft = h
        .create(bob, mug("Secret ceramic prototype", "PROTO", 100))
        .await;
    let names = |products: &[Product]| -> Vec<String> {
        let mut names: Vec<String> = products.iter().map(|p| p.name.clone()).collect();
        names.sort();
        names
    };
    let list = |request: ListProductsRequest| {
        let mut client = h.client.clone();
        async move {
            client
                .list_products(request)
                .await
                .expect("list")
                .into_inner()
                .products
        }
    };

    let by_category = list(ListProductsRequest {
        category: "lighting".to_owned(),
        ..Default::default()
    })
    .await;
    assert_eq!(names(&by_category), vec![lamp.name.clone()]);
    let by_seller = list(ListProductsRequest {
        seller_id: bob.to_string(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        names(&by_seller),
        vec![pricey.name.clone()],
        "drafts stay out"
    );
    let by_price = list(ListProductsRequest {
        min_price: Some(Money {
            currency_code: "JPY".to_owned(),
            amount_minor: 1000,
        }),
        max_price: Some(Money {
            currency_code: "JPY".to_owned(),
            amount_minor: 6000,
        }),
        ..Default::default()
    })
    .await;
    assert_eq!(names(&by_price), vec![lamp.name.clone()]);
    let by_tag = list(ListProductsRequest {
        tags: vec!["BRASS".to_owned()],
        ..Default::default()
    })
    .await;
    assert_eq!(names(&by_tag), vec![lamp.name.clone()]);
    let searched = list(ListProductsRequest {
        query: "ceramic".to_owned(),
        order_by: ProductSort::Relevance as i32,
        ..Default::default()
    })
    .await;
    // Every mug's description says "ceramic"; the cup has it in its name too, so it ranks first.
    assert_eq!(
        searched.first().map(|p| p.name.clone()),
        Some(cheap.name.clone())
    );
    assert!(!searched.iter().any(|p| p.name == lamp.name));
    let reading = list(ListProductsRequest {
        query: "reading light".to_owned(),
        ..Default::default()
    })
    .await;
    assert_eq!(names(&reading), vec![lamp.name.clone()]);
    let featured = list(ListProductsRequest {
        featured_only: true,
        ..Default::default()
    })
    .await;
    assert!(featured.is_empty());

    // Non-published statuses: the seller's own listing or an admin only.
    let drafts = ListProductsRequest {
        statuses: vec![ProductStatus::Draft as i32],
        seller_id: bob.to_string(),
        ..Default::default()
    };
    let err = h
        .client
        .clone()
        .list_products(drafts.clone())
        .await
        .expect_err("anonymous asks for drafts");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = h
        .client
        .clone()
        .list_products(as_seller(drafts.clone(), alice))
        .await
        .expect_err("another seller's drafts");
    assert_eq!(err.code(), Code::PermissionDenied);
    let own = h
        .client
        .clone()
        .list_products(as_seller(drafts, bob))
        .await
        .expect("own drafts")
        .into_inner()
        .products;
    assert_eq!(names(&own), vec![draft.name.clone()]);

    let err = h
        .client
        .clone()
        .list_products(ListProductsRequest {
            order_by: ProductSort::Relevance as i32,
            ..Default::default()
        })
        .await
        .expect_err("relevance needs a query");
    assert_eq!(violated_fields(&err), vec!["order_by"]);
    let err = h
        .client
        .clone()
        .list_products(ListProductsRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("negative page size");
    assert_eq!(violated_fields(&err), vec!["page_size"]);
}
