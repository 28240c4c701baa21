//! `seed` twice: the first run creates the demo data, the second finds all of it; the catalog
//! then lists exactly the demo products, published with their SKUs and stock; a SKU deleted
//! in between is recreated by the next run.

use mercato_cli::seed::{self, CAMPAIGN_NAME, COUPON_NAME, Outcome, SeedArgs};
use mercato_cli::{Progress, coupons};
use mercato_e2e::stack::{Stack, StackOptions};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as product;
use mercato_proto::mercato::user::v1 as user;
use tonic::transport::Channel;

use crate::support::operator;

const PRODUCTS: u16 = 3;
const STOCK: i64 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_twice_creates_the_demo_data_once_and_the_catalog_lists_it() {
    let stack = Stack::start(StackOptions::default()).await;
    let operator = operator(&stack);
    let args = SeedArgs {
        products: PRODUCTS,
        stock: STOCK,
        ..SeedArgs::default()
    };

    let mut progress = Progress::quiet();
    let first = seed::run(&operator, &args, &mut progress)
        .await
        .expect("the first run seeds");
    assert_eq!(first.seller.outcome, Outcome::Created);
    assert_eq!(first.shopper.outcome, Outcome::Created);
    assert_eq!(first.products.len(), usize::from(PRODUCTS));
    assert!(first.products.iter().all(|p| p.outcome == Outcome::Created));
    assert!(first.products.iter().all(|p| p.sku_ids.len() == 2));
    assert_eq!(first.coupon.outcome, Outcome::Created);
    assert_eq!(first.campaign.outcome, Outcome::Created);
    let password = first
        .generated_password
        .clone()
        .expect("new accounts get a generated password");
    for done in 1..=PRODUCTS {
        let line = format!("seeded {done}/{PRODUCTS} products");
        assert!(
            progress.lines().contains(&line),
            "{line} in {:?}",
            progress.lines()
        );
    }

    let mut again = Progress::quiet();
    let second = seed::run(&operator, &args, &mut again)
        .await
        .expect("the second run succeeds");
    assert_eq!(second.seller.outcome, Outcome::Existed);
    assert_eq!(second.seller.user_id, first.seller.user_id);
    assert_eq!(second.shopper.outcome, Outcome::Existed);
    assert_eq!(second.shopper.user_id, first.shopper.user_id);
    for (before, after) in first.products.iter().zip(&second.products) {
        assert_eq!(after.outcome, Outcome::Existed, "{}", after.name);
        assert_eq!(after.product_id, before.product_id);
        assert_eq!(after.sku_ids, before.sku_ids);
    }
    assert_eq!(second.coupon.outcome, Outcome::Existed);
    assert_eq!(second.coupon.id, first.coupon.id);
    assert_eq!(second.campaign.outcome, Outcome::Existed);
    assert_eq!(second.campaign.id, first.campaign.id);
    assert_eq!(second.generated_password, None, "no account was created");
    assert!(second.to_table().contains("exists"));

    // The public catalog (an anonymous read) lists the seller's products, published.
    let channel = Channel::from_shared(stack.products.grpc_uri())
        .expect("product uri")
        .connect_lazy();
    let mut catalog = product::product_service_client::ProductServiceClient::new(channel.clone());
    let listed = catalog
        .list_products(product::ListProductsRequest {
            seller_id: first.seller.user_id.clone(),
            page_size: 100,
            ..product::ListProductsRequest::default()
        })
        .await
        .expect("the catalog lists")
        .into_inner()
        .products;
    assert_eq!(
        listed.len(),
        usize::from(PRODUCTS),
        "no duplicates: {listed:?}"
    );
    let mut codes: Vec<String> = listed
        .iter()
        .inspect(|p| assert_eq!(p.status, common::ProductStatus::Published as i32))
        .flat_map(|p| p.skus.iter().map(|sku| sku.sku_code.clone()))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "DEMO-0001-M",
            "DEMO-0001-S",
            "DEMO-0002-M",
            "DEMO-0002-S",
            "DEMO-0003-M",
            "DEMO-0003-S"
        ]
    );
    let mut stock = product::stock_service_client::StockServiceClient::new(channel);
    for sku_id in first.products.iter().flat_map(|p| &p.sku_ids) {
        let level = stock
            .get_stock(operator.request(product::GetStockRequest {
                sku_id: sku_id.clone(),
            }))
            .await
            .expect("stock reads")
            .into_inner()
            .stock
            .expect("a level");
        assert_eq!(level.on_hand, STOCK, "{sku_id} stocked once");
    }

    // One coupon and one campaign, however often seed ran.
    let coupons_named = coupons::list_coupons(&operator)
        .await
        .expect("coupons list")
        .into_iter()
        .filter(|coupon| coupon.name == COUPON_NAME)
        .count();
    assert_eq!(coupons_named, 1);
    let campaigns_named = coupons::list_campaigns(&operator)
        .await
        .expect("campaigns list")
        .into_iter()
        .filter(|campaign| campaign.name == CAMPAIGN_NAME)
        .count();
    assert_eq!(campaigns_named, 1);

    // The seller holds the seller role; the shopper signs in with the printed password.
    let seller = operator
        .users()
        .expect("client")
        .get_user(operator.request(user::GetUserRequest {
            user_id: first.seller.user_id.clone(),
            show_deleted: false,
        }))
        .await
        .expect("the seller exists")
        .into_inner()
        .user
        .expect("user");
    assert!(seller.roles.contains(&(common::Role::Seller as i32)));
    let mut shop = stack.shop().await;
    shop.auth
        .login(bff::LoginRequest {
            email: first.shopper.email.clone(),
            password,
        })
        .await
        .expect("the shopper signs in with the generated password");

    // A SKU lost in between is recreated and stocked by the next run.
    let lost = &first.products[0];
    operator
        .products()
        .expect("client")
        .delete_sku(operator.request(product::DeleteSkuRequest {
            sku_id: lost.sku_ids[1].clone(),
        }))
        .await
        .expect("one SKU deleted");
    let third = seed::run(&operator, &args, &mut Progress::quiet())
        .await
        .expect("the third run succeeds");
    assert_eq!(
        third.products[0].outcome,
        Outcome::Completed(vec![
            "sku DEMO-0001-M".to_owned(),
            "stock DEMO-0001-M".to_owned()
        ])
    );
    assert_ne!(third.products[0].sku_ids[1], lost.sku_ids[1], "a new SKU");
    assert!(
        third.products[1..]
            .iter()
            .all(|p| p.outcome == Outcome::Existed)
    );

    stack.stop().await;
}
