//! BOLA through the BFF for the seller and admin product surfaces, table-driven: every RPC that
//! reads or changes a seller's product or stock, called by the owning seller, another seller, a
//! buyer, an anonymous caller and an admin, against the real user and product services. Each
//! case gets a fresh product; the product is read straight from the product service before and
//! after the call, so a case passes only if the call changed exactly what it should have.
//!
//! The account RPCs have their own table in `bff/tests/bola/`; RPCs of later services extend
//! this one (or that one) with a row per caller.

#[path = "../support/mod.rs"]
mod support;

mod world;

use mercato_product::testing::TestEnv as ProductEnv;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_user::testing::TestEnv as UserEnv;
use support::{RedisPrefix, TestBff, real_services_settings, reason, with_token};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use uuid::Uuid;

use Caller::{Admin, Anonymous, Buyer, OtherSeller, Owner};
use Expected::{Acts, Refused};
use world::{CaseProduct, Observer, Parties, ProductState};

/// An RPC under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    GetSellerProduct,
    UpdateProduct,
    DeleteProduct,
    HideProduct,
    CreateSku,
    UpdateSku,
    GetSkuStock,
    AdjustStock,
    ListStockHistory,
    SetProductFeatured,
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Owner,
    OtherSeller,
    Buyer,
    Anonymous,
    Admin,
}

/// A registered user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Owner,
    OtherSeller,
    Buyer,
    Admin,
}

impl Caller {
    fn party(self) -> Option<Party> {
        match self {
            Self::Owner => Some(Party::Owner),
            Self::OtherSeller => Some(Party::OtherSeller),
            Self::Buyer => Some(Party::Buyer),
            Self::Admin => Some(Party::Admin),
            Self::Anonymous => None,
        }
    }
}

/// What a case must observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// The call succeeds and changes the product as the RPC does (reads change nothing).
    Acts,
    /// The call fails with this code and `ErrorInfo` reason, and changes nothing.
    Refused(Code, &'static str),
}

const NOT_OWNER: Expected = Refused(Code::PermissionDenied, "NOT_RESOURCE_OWNER");
const NO_ROLE: Expected = Refused(Code::PermissionDenied, "ROLE_REQUIRED");
const NO_TOKEN: Expected = Refused(Code::Unauthenticated, "TOKEN_MISSING");

/// The seller console's rows: owner and admin act; another seller is not the owner; a buyer
/// lacks the seller role; no token, no call.
const fn seller_rows(rpc: Rpc) -> [(Rpc, Caller, Expected); 5] {
    [
        (rpc, Owner, Acts),
        (rpc, OtherSeller, NOT_OWNER),
        (rpc, Buyer, NO_ROLE),
        (rpc, Anonymous, NO_TOKEN),
        (rpc, Admin, Acts),
    ]
}

const SELLER_RPCS: [Rpc; 9] = [
    Rpc::GetSellerProduct,
    Rpc::UpdateProduct,
    Rpc::DeleteProduct,
    Rpc::HideProduct,
    Rpc::CreateSku,
    Rpc::UpdateSku,
    Rpc::GetSkuStock,
    Rpc::AdjustStock,
    Rpc::ListStockHistory,
];

/// The admin console's rows: only the admin acts.
const ADMIN_ROWS: [(Rpc, Caller, Expected); 5] = [
    (Rpc::SetProductFeatured, Owner, NO_ROLE),
    (Rpc::SetProductFeatured, OtherSeller, NO_ROLE),
    (Rpc::SetProductFeatured, Buyer, NO_ROLE),
    (Rpc::SetProductFeatured, Anonymous, NO_TOKEN),
    (Rpc::SetProductFeatured, Admin, Acts),
];

fn cases() -> Vec<(Rpc, Caller, Expected)> {
    let mut cases: Vec<_> = SELLER_RPCS.into_iter().flat_map(seller_rows).collect();
    cases.extend(ADMIN_ROWS);
    cases
}

/// What a successful call of `rpc` makes of the product.
fn effect(rpc: Rpc, before: &ProductState, new_sku_code: &str) -> ProductState {
    let mut after = before.clone();
    match rpc {
        Rpc::GetSellerProduct | Rpc::GetSkuStock | Rpc::ListStockHistory => {}
        Rpc::UpdateProduct => after.name = "Renamed through the BFF".to_owned(),
        // The product's SKUs go with it.
        Rpc::DeleteProduct => {
            after.deleted = true;
            after.sku_codes.clear();
            after.first_sku_price = 0;
            after.stock = Err(Code::NotFound);
        }
        Rpc::HideProduct => after.status = common::ProductStatus::Hidden.into(),
        Rpc::CreateSku => {
            after.sku_codes.push(new_sku_code.to_owned());
            after.sku_codes.sort();
        }
        Rpc::UpdateSku => after.first_sku_price = 2_000,
        Rpc::AdjustStock => {
            if let Ok(stock) = &mut after.stock {
                stock.on_hand = 7;
                stock.version += 1;
                stock.history_entries += 1;
            }
        }
        Rpc::SetProductFeatured => after.featured = true,
    }
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_reaches_only_the_products_it_may_through_the_bff() {
    let user_env = UserEnv::new().await.expect("user service resources");
    let users = user_env.start(|_| {}).await.expect("user service starts");
    let product_env = ProductEnv::new().await.expect("product service resources");
    let products = product_env
        .start(|_| {})
        .await
        .expect("product service starts");
    let prefix = RedisPrefix::new();
    let bff = TestBff::start(real_services_settings(
        &users,
        Some(&products.grpc_uri()),
        &prefix,
        &[],
    ))
    .await;
    let channel = bff.channel().await;
    let parties = Parties::register(&channel, &users.grpc_uri()).await;
    let observer = Observer::new(&products.grpc_uri());

    let cases = cases();
    let mut failures = Vec::new();
    for (rpc, caller, expected) in &cases {
        let name = format!("{rpc:?} as {caller:?}");
        let owner = parties.member(Party::Owner);
        let product = observer.create(owner, &name).await;
        let before = observer.snapshot(&product).await;
        let new_sku_code = format!("NEW-{}", Uuid::new_v4().simple());
        let token = caller
            .party()
            .map(|party| parties.member(party).access_token.clone());
        let outcome = call(
            &channel,
            *rpc,
            token.as_deref(),
            &product,
            &before,
            &new_sku_code,
        )
        .await;
        let after = observer.snapshot(&product).await;
        match (expected, outcome) {
            (Acts, Ok(())) => {
                let wanted = effect(*rpc, &before, &new_sku_code);
                if after != wanted {
                    failures.push(format!(
                        "{name}: product should be {wanted:?}, is {after:?}"
                    ));
                }
            }
            (Acts, Err(status)) => failures.push(format!(
                "{name}: expected success, got {:?} / {} ({})",
                status.code(),
                reason(&status),
                status.message()
            )),
            (Refused(code, wanted_reason), Ok(())) => {
                failures.push(format!(
                    "{name}: expected {code:?} / {wanted_reason}, got success"
                ));
            }
            (Refused(code, wanted_reason), Err(status)) => {
                if status.code() != *code || reason(&status) != *wanted_reason {
                    failures.push(format!(
                        "{name}: expected {code:?} / {wanted_reason}, got {:?} / {} ({})",
                        status.code(),
                        reason(&status),
                        status.message()
                    ));
                }
                if after != before {
                    failures.push(format!(
                        "{name}: a refused call changed the product: {before:?} became {after:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} product BOLA cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    drop(bff);
    products
        .stop()
        .await
        .expect("product service stops cleanly");
    users.stop().await.expect("user service stops cleanly");
}

/// A request with the caller's token, if it has one.
fn as_caller<T>(message: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(token) => with_token(message, token),
        None => Request::new(message),
    }
}

/// Calls `rpc` on the case's product through the BFF; reads are checked against `before`.
async fn call(
    channel: &Channel,
    rpc: Rpc,
    token: Option<&str>,
    product: &CaseProduct,
    before: &ProductState,
    new_sku_code: &str,
) -> Result<(), Status> {
    let mut seller = bff::seller_service_client::SellerServiceClient::new(channel.clone());
    let mut admin = bff::admin_service_client::AdminServiceClient::new(channel.clone());
    let product_id = product.product_id.clone();
    let sku_id = product.sku_id.clone();
    let yen = |amount_minor| common::Money {
        currency_code: "JPY".to_owned(),
        amount_minor,
    };
    let mask = |path: &str| {
        Some(prost_types::FieldMask {
            paths: vec![path.to_owned()],
        })
    };
    match rpc {
        Rpc::GetSellerProduct => {
            let found = seller
                .get_seller_product(as_caller(
                    bff::GetSellerProductRequest { product_id },
                    token,
                ))
                .await?
                .into_inner()
                .product
                .unwrap_or_default();
            read_matches(found.product_id == product.product_id && found.name == before.name)
        }
        Rpc::UpdateProduct => seller
            .update_product(as_caller(
                bff::UpdateProductRequest {
                    product_id,
                    product: Some(bff::ProductInput {
                        name: "Renamed through the BFF".to_owned(),
                        ..bff::ProductInput::default()
                    }),
                    update_mask: mask("name"),
                    expected_version: 0,
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::DeleteProduct => seller
            .delete_product(as_caller(bff::DeleteProductRequest { product_id }, token))
            .await
            .map(drop),
        Rpc::HideProduct => seller
            .hide_product(as_caller(bff::HideProductRequest { product_id }, token))
            .await
            .map(drop),
        Rpc::CreateSku => seller
            .create_sku(as_caller(
                bff::CreateSkuRequest {
                    product_id,
                    sku: Some(bff::SkuInput {
                        sku_code: new_sku_code.to_owned(),
                        option_values: [("colour".to_owned(), "blue".to_owned())].into(),
                        price: Some(yen(1_500)),
                        active: true,
                    }),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::UpdateSku => seller
            .update_sku(as_caller(
                bff::UpdateSkuRequest {
                    sku_id,
                    sku: Some(bff::SkuInput {
                        price: Some(yen(2_000)),
                        ..bff::SkuInput::default()
                    }),
                    update_mask: mask("price"),
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::GetSkuStock => {
            let stock = seller
                .get_sku_stock(as_caller(bff::GetSkuStockRequest { sku_id }, token))
                .await?
                .into_inner()
                .stock
                .unwrap_or_default();
            read_matches(before.stock.is_ok_and(|seen| seen.on_hand == stock.on_hand))
        }
        Rpc::AdjustStock => seller
            .adjust_stock(as_caller(
                bff::AdjustStockRequest {
                    sku_id,
                    on_hand: 7,
                    expected_version: before.stock.map(|stock| stock.version).unwrap_or_default(),
                    reason: "counted again".to_owned(),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
                token,
            ))
            .await
            .map(drop),
        Rpc::ListStockHistory => {
            let entries = seller
                .list_stock_history(as_caller(
                    bff::ListStockHistoryRequest {
                        sku_id,
                        page_size: 100,
                        page_token: String::new(),
                    },
                    token,
                ))
                .await?
                .into_inner()
                .entries;
            read_matches(
                before
                    .stock
                    .is_ok_and(|seen| seen.history_entries == entries.len()),
            )
        }
        Rpc::SetProductFeatured => admin
            .set_product_featured(as_caller(
                bff::SetProductFeaturedRequest {
                    product_id,
                    featured: true,
                },
                token,
            ))
            .await
            .map(drop),
    }
}

/// A read that answered something other than the case's data is a failure, reported as one.
fn read_matches(matches: bool) -> Result<(), Status> {
    if matches {
        Ok(())
    } else {
        Err(Status::data_loss(
            "the read answered data that is not the case's product",
        ))
    }
}
