//! `seed`: demo data a fresh shop can be tried with, safe to run again.
//!
//! What it makes, as the operator:
//!
//! 1. a seller and a shopper account (`AuthService.Register`), the seller granted
//!    `ROLE_SELLER` (`UserService.GrantRole`);
//! 2. `--products` products of that seller (`ProductService.CreateProduct` as an admin naming
//!    the seller), each with a size option and two SKUs `<prefix>-0001-S` / `-M` (a missing one
//!    is added with `CreateSku`), published (`PublishProduct`) with `--stock` units on hand per
//!    SKU (`StockService.AdjustStock`, only on a SKU whose stock history has no adjustment);
//! 3. a fixed-amount coupon and a first-come-first-served campaign for it (`CouponService`).
//!
//! Idempotent by what exists, not by idempotency keys (which the services keep for 24 hours
//! only): accounts are found by e-mail, products by their SKU codes among the seller's products,
//! the coupon and the campaign by name. A second run reports every item as `exists`; a run after
//! an interrupted one completes what is missing (a SKU, the publication, the first stock level)
//! and reports `completed`. Stock that was ever adjusted is left alone, and so is a product an
//! operator hid.

use std::collections::HashMap;

use chrono::Utc;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::order::v1 as order;
use mercato_proto::mercato::product::v1 as product;
use mercato_proto::mercato::user::v1 as user;
use serde_json::{Value, json};
use tonic::Code;
use uuid::Uuid;

use crate::connect::Operator;
use crate::coupons::{list_campaigns, list_coupons};
use crate::error::{Answer as _, CliError, RpcError};
use crate::progress::Progress;
use crate::render::{self, Table};

/// The demo coupon's name (how a second run finds it).
pub const COUPON_NAME: &str = "Demo welcome coupon";
/// The demo campaign's name.
pub const CAMPAIGN_NAME: &str = "Demo launch campaign";
/// The demo products' category.
pub const CATEGORY: &str = "demo";
/// The sizes every demo product comes in (one SKU each).
pub const SIZES: [&str; 2] = ["S", "M"];

/// `seed` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Products to create.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=9999))]
    pub products: u16,
    /// Units on hand of every SKU.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    pub stock: i64,
    /// The shop currency prices and the coupon are in.
    #[arg(long, env = "MERCATO_CURRENCY", default_value = "JPY")]
    pub currency: String,
    /// The seller account's e-mail.
    #[arg(long, default_value = "demo-seller@example.com")]
    pub seller_email: String,
    /// The shopper account's e-mail.
    #[arg(long, default_value = "demo-shopper@example.com")]
    pub shopper_email: String,
    /// Password of new accounts (default: a random one, printed once with the result).
    #[arg(long, env = "MERCATO_SEED_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Prefix of the SKU codes (`DEMO-0001-S`).
    #[arg(long, default_value = "DEMO")]
    pub sku_prefix: String,
}

impl Default for SeedArgs {
    fn default() -> Self {
        Self {
            products: 20,
            stock: 100,
            currency: "JPY".to_owned(),
            seller_email: "demo-seller@example.com".to_owned(),
            shopper_email: "demo-shopper@example.com".to_owned(),
            password: None,
            sku_prefix: "DEMO".to_owned(),
        }
    }
}

/// What a run did with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Made by this run.
    Created,
    /// Already there and complete.
    Existed,
    /// Already there; this run added what was missing (listed).
    Completed(Vec<String>),
}

impl Outcome {
    /// `created`, `exists`, or `completed (…)`.
    pub fn label(&self) -> String {
        match self {
            Self::Created => "created".to_owned(),
            Self::Existed => "exists".to_owned(),
            Self::Completed(what) => format!("completed ({})", what.join(", ")),
        }
    }

    fn completing(self, what: &str) -> Self {
        match self {
            Self::Created => Self::Created,
            Self::Existed => Self::Completed(vec![what.to_owned()]),
            Self::Completed(mut done) => {
                done.push(what.to_owned());
                Self::Completed(done)
            }
        }
    }
}

/// One demo account.
#[derive(Debug, Clone)]
pub struct SeededAccount {
    /// The user id.
    pub user_id: String,
    /// The e-mail.
    pub email: String,
    /// What the run did.
    pub outcome: Outcome,
}

/// One demo product.
#[derive(Debug, Clone)]
pub struct SeededProduct {
    /// The product id.
    pub product_id: String,
    /// Its name.
    pub name: String,
    /// Its SKU ids, in [`SIZES`] order.
    pub sku_ids: Vec<String>,
    /// What the run did.
    pub outcome: Outcome,
}

/// A demo coupon or campaign.
#[derive(Debug, Clone)]
pub struct SeededItem {
    /// The coupon or campaign id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What the run did.
    pub outcome: Outcome,
}

/// Everything a run touched.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seller account.
    pub seller: SeededAccount,
    /// The shopper account.
    pub shopper: SeededAccount,
    /// The password of the accounts this run created, when it chose one.
    pub generated_password: Option<String>,
    /// The products.
    pub products: Vec<SeededProduct>,
    /// The coupon.
    pub coupon: SeededItem,
    /// The campaign.
    pub campaign: SeededItem,
}

/// Seeds the demo data `args` describe, reporting progress as it goes.
pub async fn run(
    operator: &Operator,
    args: &SeedArgs,
    progress: &mut Progress,
) -> Result<SeedReport, CliError> {
    let generated = args
        .password
        .is_none()
        .then(|| format!("demo-{}", Uuid::new_v4().simple()));
    let password = args
        .password
        .clone()
        .or_else(|| generated.clone())
        .unwrap_or_default();

    let seller = account(operator, &args.seller_email, "Demo seller", &password, true).await?;
    progress.say(format_args!(
        "seller {} {}",
        seller.email,
        seller.outcome.label()
    ));
    let shopper = account(
        operator,
        &args.shopper_email,
        "Demo shopper",
        &password,
        false,
    )
    .await?;
    progress.say(format_args!(
        "shopper {} {}",
        shopper.email,
        shopper.outcome.label()
    ));

    let products = products(operator, args, &seller.user_id, progress).await?;
    let coupon = coupon(operator, &args.currency).await?;
    progress.say(format_args!(
        "coupon {:?} {}",
        coupon.name,
        coupon.outcome.label()
    ));
    let campaign = campaign(operator, &coupon.id).await?;
    progress.say(format_args!(
        "campaign {:?} {}",
        campaign.name,
        campaign.outcome.label()
    ));

    let created_any = [&seller.outcome, &shopper.outcome].contains(&&Outcome::Created);
    Ok(SeedReport {
        seller,
        shopper,
        generated_password: generated.filter(|_| created_any),
        products,
        coupon,
        campaign,
    })
}

/// Registers `email`, or finds it when it is taken; a seller gets `ROLE_SELLER`.
async fn account(
    operator: &Operator,
    email: &str,
    display_name: &str,
    password: &str,
    seller: bool,
) -> Result<SeededAccount, CliError> {
    let registered = operator
        .auth()?
        .register(operator.request(user::RegisterRequest {
            email: email.to_owned(),
            password: password.to_owned(),
            display_name: display_name.to_owned(),
        }))
        .await;
    let (found, mut outcome) = match registered {
        Ok(response) => (response.into_inner().user, Outcome::Created),
        Err(status) if status.code() == Code::AlreadyExists => {
            (find_user(operator, email).await?, Outcome::Existed)
        }
        Err(status) => {
            return Err(RpcError::from_status("AuthService.Register", &status).into());
        }
    };
    let found = found.ok_or_else(|| {
        CliError::Failed(format!(
            "{email} is registered but ListUsers does not find it"
        ))
    })?;
    if seller && !found.roles.contains(&(common::Role::Seller as i32)) {
        operator
            .users()?
            .grant_role(operator.request(user::GrantRoleRequest {
                user_id: found.user_id.clone(),
                role: common::Role::Seller.into(),
            }))
            .await
            .answer("UserService.GrantRole")?;
        outcome = outcome.completing("seller role");
    }
    Ok(SeededAccount {
        user_id: found.user_id,
        email: found.email,
        outcome,
    })
}

/// The account registered with `email` (e-mails are stored lower-cased and trimmed).
async fn find_user(operator: &Operator, email: &str) -> Result<Option<user::User>, CliError> {
    let wanted = email.trim().to_lowercase();
    let mut client = operator.users()?;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_users(operator.request(user::ListUsersRequest {
                page_size: 100,
                page_token,
                query: wanted.clone(),
                ..user::ListUsersRequest::default()
            }))
            .await
            .answer("UserService.ListUsers")?;
        if let Some(found) = page.users.into_iter().find(|user| user.email == wanted) {
            return Ok(Some(found));
        }
        if page.next_page_token.is_empty() {
            return Ok(None);
        }
        page_token = page.next_page_token;
    }
}

/// One product of the plan.
#[derive(Debug, Clone)]
struct Planned {
    name: String,
    /// (size, code, price in minor units), in [`SIZES`] order.
    skus: Vec<(&'static str, String, i64)>,
}

fn plan(args: &SeedArgs) -> Vec<Planned> {
    (1..=usize::from(args.products))
        .map(|index| {
            // Prices from 500 to 1,400 minor units, the larger size 200 more.
            let base = 500 + i64::try_from(index % 10).unwrap_or(0) * 100;
            Planned {
                name: format!("Demo product {index:03}"),
                skus: SIZES
                    .iter()
                    .zip([base, base + 200])
                    .map(|(size, price)| {
                        (
                            *size,
                            format!("{}-{index:04}-{size}", args.sku_prefix),
                            price,
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

async fn products(
    operator: &Operator,
    args: &SeedArgs,
    seller_id: &str,
    progress: &mut Progress,
) -> Result<Vec<SeededProduct>, CliError> {
    let existing = products_of(operator, seller_id).await?;
    let by_code: HashMap<&str, &product::Product> = existing
        .iter()
        .flat_map(|product| {
            product
                .skus
                .iter()
                .map(move |sku| (sku.sku_code.as_str(), product))
        })
        .collect();
    let planned = plan(args);
    let total = planned.len();
    let mut seeded = Vec::with_capacity(total);
    for (done, item) in planned.iter().enumerate() {
        let found = item
            .skus
            .iter()
            .find_map(|(_, code, _)| by_code.get(code.as_str()).copied());
        let product = ensure_product(operator, args, seller_id, item, found).await?;
        seeded.push(product);
        progress.step("seeded", done + 1, total, "products");
    }
    Ok(seeded)
}

/// The seller's products in every state (all pages).
async fn products_of(
    operator: &Operator,
    seller_id: &str,
) -> Result<Vec<product::Product>, CliError> {
    let mut client = operator.products()?;
    let mut products = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_products(operator.request(product::ListProductsRequest {
                page_size: 100,
                page_token,
                seller_id: seller_id.to_owned(),
                statuses: vec![
                    common::ProductStatus::Draft.into(),
                    common::ProductStatus::Published.into(),
                    common::ProductStatus::Hidden.into(),
                ],
                ..product::ListProductsRequest::default()
            }))
            .await
            .answer("ProductService.ListProducts")?;
        products.extend(page.products);
        if page.next_page_token.is_empty() {
            return Ok(products);
        }
        page_token = page.next_page_token;
    }
}

fn sku_of(args: &SeedArgs, size: &str, code: &str, price: i64) -> product::Sku {
    product::Sku {
        sku_code: code.to_owned(),
        option_values: HashMap::from([("Size".to_owned(), size.to_owned())]),
        price: Some(common::Money {
            currency_code: args.currency.clone(),
            amount_minor: price,
        }),
        active: true,
        ..product::Sku::default()
    }
}

/// Creates `item` (or completes `found`), publishes a draft and stocks never-stocked SKUs.
async fn ensure_product(
    operator: &Operator,
    args: &SeedArgs,
    seller_id: &str,
    item: &Planned,
    found: Option<&product::Product>,
) -> Result<SeededProduct, CliError> {
    let mut client = operator.products()?;
    let (mut current, mut outcome) = match found {
        Some(product) => (product.clone(), Outcome::Existed),
        None => {
            let created = client
                .create_product(
                    operator.request(product::CreateProductRequest {
                        product: Some(product::Product {
                            name: item.name.clone(),
                            description: "Demo data made by `mercato seed`.".to_owned(),
                            category: CATEGORY.to_owned(),
                            tags: vec!["demo".to_owned()],
                            options: vec![product::ProductOption {
                                name: "Size".to_owned(),
                                values: SIZES.iter().map(|size| (*size).to_owned()).collect(),
                            }],
                            skus: item
                                .skus
                                .iter()
                                .map(|(size, code, price)| sku_of(args, size, code, *price))
                                .collect(),
                            ..product::Product::default()
                        }),
                        idempotency_key: Uuid::new_v4().to_string(),
                        seller_id: seller_id.to_owned(),
                    }),
                )
                .await
                .answer("ProductService.CreateProduct")?
                .product
                .ok_or_else(|| CliError::Failed("CreateProduct answered without it".to_owned()))?;
            (created, Outcome::Created)
        }
    };
    for (size, code, price) in &item.skus {
        if current.skus.iter().any(|sku| &sku.sku_code == code) {
            continue;
        }
        let sku = client
            .create_sku(operator.request(product::CreateSkuRequest {
                product_id: current.product_id.clone(),
                sku: Some(sku_of(args, size, code, *price)),
                idempotency_key: Uuid::new_v4().to_string(),
            }))
            .await
            .answer("ProductService.CreateSku")?
            .sku
            .ok_or_else(|| CliError::Failed("CreateSku answered without it".to_owned()))?;
        current.skus.push(sku);
        outcome = outcome.completing(&format!("sku {code}"));
    }
    if current.status == common::ProductStatus::Draft as i32 {
        client
            .publish_product(operator.request(product::PublishProductRequest {
                product_id: current.product_id.clone(),
            }))
            .await
            .answer("ProductService.PublishProduct")?;
        outcome = outcome.completing("published");
    }
    let mut sku_ids = Vec::with_capacity(item.skus.len());
    for (_, code, _) in &item.skus {
        let Some(sku) = current.skus.iter().find(|sku| &sku.sku_code == code) else {
            continue;
        };
        if stock_first_time(operator, &sku.sku_id, args.stock).await? {
            outcome = outcome.completing(&format!("stock {code}"));
        }
        sku_ids.push(sku.sku_id.clone());
    }
    Ok(SeededProduct {
        product_id: current.product_id,
        name: current.name,
        sku_ids,
        outcome,
    })
}

/// Sets `on_hand` on a SKU whose stock was never adjusted (no ADJUSTMENT in its stock history);
/// whether it did.
async fn stock_first_time(
    operator: &Operator,
    sku_id: &str,
    on_hand: i64,
) -> Result<bool, CliError> {
    let mut stock = operator.stock()?;
    let adjusted = stock
        .list_stock_history(operator.request(product::ListStockHistoryRequest {
            sku_id: sku_id.to_owned(),
            page_size: 1,
            page_token: String::new(),
            kinds: vec![product::StockChangeKind::Adjustment.into()],
        }))
        .await
        .answer("StockService.ListStockHistory")?;
    if !adjusted.entries.is_empty() {
        return Ok(false);
    }
    let level = stock
        .get_stock(operator.request(product::GetStockRequest {
            sku_id: sku_id.to_owned(),
        }))
        .await
        .answer("StockService.GetStock")?
        .stock
        .ok_or_else(|| CliError::Failed(format!("GetStock answered without {sku_id}'s stock")))?;
    stock
        .adjust_stock(operator.request(product::AdjustStockRequest {
            sku_id: sku_id.to_owned(),
            on_hand,
            expected_version: level.version,
            reason: "demo data".to_owned(),
            idempotency_key: Uuid::new_v4().to_string(),
        }))
        .await
        .answer("StockService.AdjustStock")?;
    Ok(true)
}

async fn coupon(operator: &Operator, currency: &str) -> Result<SeededItem, CliError> {
    if let Some(found) = list_coupons(operator)
        .await?
        .into_iter()
        .find(|coupon| coupon.name == COUPON_NAME)
    {
        return Ok(SeededItem {
            id: found.coupon_id,
            name: found.name,
            outcome: Outcome::Existed,
        });
    }
    let created = operator
        .coupons()?
        .create_coupon(operator.request(order::CreateCouponRequest {
            coupon: Some(order::Coupon {
                name: COUPON_NAME.to_owned(),
                description: "500 off any order, from the demo data.".to_owned(),
                kind: common::CouponKind::Fixed.into(),
                fixed_discount: Some(common::Money {
                    currency_code: currency.to_owned(),
                    amount_minor: 500,
                }),
                validity_days: 30,
                ..order::Coupon::default()
            }),
            idempotency_key: Uuid::new_v4().to_string(),
        }))
        .await
        .answer("CouponService.CreateCoupon")?
        .coupon
        .ok_or_else(|| CliError::Failed("CreateCoupon answered without it".to_owned()))?;
    Ok(SeededItem {
        id: created.coupon_id,
        name: created.name,
        outcome: Outcome::Created,
    })
}

async fn campaign(operator: &Operator, coupon_id: &str) -> Result<SeededItem, CliError> {
    if let Some(found) = list_campaigns(operator)
        .await?
        .into_iter()
        .find(|campaign| campaign.name == CAMPAIGN_NAME && campaign.coupon_id == coupon_id)
    {
        return Ok(SeededItem {
            id: found.campaign_id,
            name: found.name,
            outcome: Outcome::Existed,
        });
    }
    let start = Utc::now();
    let created = operator
        .coupons()?
        .create_campaign(operator.request(order::CreateCampaignRequest {
            campaign: Some(order::CouponCampaign {
                coupon_id: coupon_id.to_owned(),
                name: CAMPAIGN_NAME.to_owned(),
                start_time: Some(render::timestamp(start)),
                end_time: Some(render::timestamp(start + chrono::Duration::days(30))),
                total_quantity: 100,
                ..order::CouponCampaign::default()
            }),
            idempotency_key: Uuid::new_v4().to_string(),
        }))
        .await
        .answer("CouponService.CreateCampaign")?
        .campaign
        .ok_or_else(|| CliError::Failed("CreateCampaign answered without it".to_owned()))?;
    Ok(SeededItem {
        id: created.campaign_id,
        name: created.name,
        outcome: Outcome::Created,
    })
}

impl SeedReport {
    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let account = |account: &SeededAccount| {
            json!({
                "user_id": account.user_id,
                "email": account.email,
                "outcome": account.outcome.label(),
            })
        };
        let item = |item: &SeededItem| json!({ "id": item.id, "name": item.name, "outcome": item.outcome.label() });
        json!({
            "seller": account(&self.seller),
            "shopper": account(&self.shopper),
            "generated_password": self.generated_password,
            "products": self.products.iter().map(|product| json!({
                "product_id": product.product_id,
                "name": product.name,
                "sku_ids": product.sku_ids,
                "outcome": product.outcome.label(),
            })).collect::<Vec<_>>(),
            "coupon": item(&self.coupon),
            "campaign": item(&self.campaign),
        })
    }

    /// The report as a table, one row per item.
    pub fn to_table(&self) -> String {
        let mut table = Table::with_header(["item", "id", "name", "outcome"]);
        for (kind, account) in [("seller", &self.seller), ("shopper", &self.shopper)] {
            table.row([
                kind.to_owned(),
                account.user_id.clone(),
                account.email.clone(),
                account.outcome.label(),
            ]);
        }
        for product in &self.products {
            table.row([
                "product".to_owned(),
                product.product_id.clone(),
                product.name.clone(),
                product.outcome.label(),
            ]);
        }
        for (kind, item) in [("coupon", &self.coupon), ("campaign", &self.campaign)] {
            table.row([
                kind.to_owned(),
                item.id.clone(),
                item.name.clone(),
                item.outcome.label(),
            ]);
        }
        let mut out = table.render();
        if let Some(password) = &self.generated_password {
            out.push_str(&format!("password of the new accounts: {password}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_names_every_sku_by_product_and_size() {
        let args = SeedArgs {
            products: 2,
            ..SeedArgs::default()
        };
        let planned = plan(&args);
        assert_eq!(planned.len(), 2);
        let codes: Vec<&str> = planned[1]
            .skus
            .iter()
            .map(|(_, code, _)| code.as_str())
            .collect();
        assert_eq!(codes, ["DEMO-0002-S", "DEMO-0002-M"]);
        assert_eq!(planned[1].skus[1].2 - planned[1].skus[0].2, 200);
    }

    #[test]
    fn an_existing_item_that_needed_work_is_completed_not_created() {
        let outcome = Outcome::Existed
            .completing("published")
            .completing("stock X");
        assert_eq!(outcome.label(), "completed (published, stock X)");
        assert_eq!(Outcome::Created.completing("published"), Outcome::Created);
    }
}
