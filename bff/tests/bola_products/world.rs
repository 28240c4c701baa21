//! The parties of the product BOLA table (registered through the BFF, given their roles on the
//! user service, signed in again so their tokens carry them), each case's fresh product, and the
//! product as the product service holds it, read as an internal caller.

use mercato_platform::principal::{CALLER_HEADER, Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::product::v1 as product;
use mercato_proto::mercato::user::v1 as user;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::Party;

const PASSWORD: &str = "correct horse battery";

/// A signed-in party.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) user_id: Uuid,
    pub(crate) access_token: String,
    roles: Vec<Role>,
}

impl Member {
    /// The principal the BFF would forward for this member.
    pub(crate) fn principal(&self) -> Principal {
        Principal::new(self.user_id, self.roles.iter().copied())
    }
}

/// Every party, signed in with its roles.
pub(crate) struct Parties {
    members: Vec<(Party, Member)>,
}

impl Parties {
    pub(crate) async fn register(bff_channel: &Channel, user_uri: &str) -> Self {
        let mut auth = bff::auth_service_client::AuthServiceClient::new(bff_channel.clone());
        let users = user::user_service_client::UserServiceClient::new(
            Channel::from_shared(user_uri.to_owned())
                .expect("user service uri")
                .connect_lazy(),
        );
        let mut members = Vec::new();
        for party in [Party::Owner, Party::OtherSeller, Party::Buyer, Party::Admin] {
            let email = format!("{party:?}-{}@example.com", Uuid::new_v4().simple()).to_lowercase();
            let registered = auth
                .register(bff::RegisterRequest {
                    email: email.clone(),
                    password: PASSWORD.to_owned(),
                    display_name: format!("{party:?}"),
                })
                .await
                .unwrap_or_else(|status| panic!("{party:?} registers: {status:?}"))
                .into_inner();
            let user_id: Uuid = registered
                .account
                .expect("account")
                .user_id
                .parse()
                .expect("uuid");
            let mut roles = vec![Role::Buyer];
            let granted = match party {
                Party::Owner | Party::OtherSeller => Some((common::Role::Seller, Role::Seller)),
                Party::Admin => Some((common::Role::Admin, Role::Admin)),
                Party::Buyer => None,
            };
            if let Some((wire, role)) = granted {
                let mut request = Request::new(user::GrantRoleRequest {
                    user_id: user_id.to_string(),
                    role: wire.into(),
                });
                Principal::new(Uuid::new_v4(), [Role::Admin])
                    .write_metadata(request.metadata_mut());
                users
                    .clone()
                    .grant_role(request)
                    .await
                    .unwrap_or_else(|status| panic!("granting {party:?} its role: {status:?}"));
                roles.push(role);
            }
            let access_token = auth
                .login(bff::LoginRequest {
                    email,
                    password: PASSWORD.to_owned(),
                })
                .await
                .unwrap_or_else(|status| panic!("{party:?} signs in: {status:?}"))
                .into_inner()
                .tokens
                .expect("tokens")
                .access_token;
            members.push((
                party,
                Member {
                    user_id,
                    access_token,
                    roles,
                },
            ));
        }
        Self { members }
    }

    pub(crate) fn member(&self, party: Party) -> &Member {
        &self
            .members
            .iter()
            .find(|(candidate, _)| *candidate == party)
            .expect("every party is registered")
            .1
    }
}

/// A case's product: published, one SKU with 5 units, owned by the owner.
#[derive(Debug, Clone)]
pub(crate) struct CaseProduct {
    pub(crate) product_id: String,
    pub(crate) sku_id: String,
}

/// The product as the product service holds it: what a call may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProductState {
    pub(crate) name: String,
    pub(crate) status: i32,
    pub(crate) featured: bool,
    pub(crate) deleted: bool,
    pub(crate) sku_codes: Vec<String>,
    pub(crate) first_sku_price: i64,
    /// The SKU's stock, or why it cannot be read (a deleted product's SKUs are gone).
    pub(crate) stock: Result<Stock, Code>,
}

/// A SKU's stock and how many changes its history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stock {
    pub(crate) on_hand: i64,
    pub(crate) version: i64,
    pub(crate) history_entries: usize,
}

/// Creates products and reads them on the product service directly.
pub(crate) struct Observer {
    products: product::product_service_client::ProductServiceClient<Channel>,
    stock: product::stock_service_client::StockServiceClient<Channel>,
}

/// A request as an internal caller acting for an admin: the observer sees everything, deleted
/// products and every stock RPC included.
fn internal<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(CALLER_HEADER, MetadataValue::from_static("bola-test"));
    Principal::new(Uuid::nil(), [Role::Admin]).write_metadata(request.metadata_mut());
    request
}

fn as_member<T>(member: &Member, message: T) -> Request<T> {
    let mut request = Request::new(message);
    member.principal().write_metadata(request.metadata_mut());
    request
}

impl Observer {
    pub(crate) fn new(uri: &str) -> Self {
        let channel = Channel::from_shared(uri.to_owned())
            .expect("product service uri")
            .connect_lazy();
        Self {
            products: product::product_service_client::ProductServiceClient::new(channel.clone()),
            stock: product::stock_service_client::StockServiceClient::new(channel),
        }
    }

    /// A fresh published product of `owner` with one SKU holding 5 units.
    pub(crate) async fn create(&self, owner: &Member, name: &str) -> CaseProduct {
        let created = self
            .products
            .clone()
            .create_product(as_member(
                owner,
                product::CreateProductRequest {
                    product: Some(product::Product {
                        name: "Owner's product".to_owned(),
                        category: "bola".to_owned(),
                        options: vec![product::ProductOption {
                            name: "colour".to_owned(),
                            values: vec!["red".to_owned(), "blue".to_owned()],
                        }],
                        skus: vec![product::Sku {
                            sku_code: format!("BOLA-{}", Uuid::new_v4().simple()),
                            option_values: [("colour".to_owned(), "red".to_owned())].into(),
                            price: Some(common::Money {
                                currency_code: "JPY".to_owned(),
                                amount_minor: 1_000,
                            }),
                            active: true,
                            ..product::Sku::default()
                        }],
                        ..product::Product::default()
                    }),
                    idempotency_key: Uuid::new_v4().to_string(),
                    seller_id: String::new(),
                },
            ))
            .await
            .unwrap_or_else(|status| panic!("{name}: creating the owner's product: {status:?}"))
            .into_inner()
            .product
            .expect("product");
        let sku_id = created.skus[0].sku_id.clone();
        self.products
            .clone()
            .publish_product(as_member(
                owner,
                product::PublishProductRequest {
                    product_id: created.product_id.clone(),
                },
            ))
            .await
            .unwrap_or_else(|status| panic!("{name}: publishing: {status:?}"));
        let stock = self
            .stock_level(&sku_id)
            .await
            .unwrap_or_else(|code| panic!("{name}: reading the new SKU's stock: {code:?}"));
        self.stock
            .clone()
            .adjust_stock(as_member(
                owner,
                product::AdjustStockRequest {
                    sku_id: sku_id.clone(),
                    on_hand: 5,
                    expected_version: stock.version,
                    reason: "bola seed".to_owned(),
                    idempotency_key: Uuid::new_v4().to_string(),
                },
            ))
            .await
            .unwrap_or_else(|status| panic!("{name}: stocking: {status:?}"));
        CaseProduct {
            product_id: created.product_id,
            sku_id,
        }
    }

    async fn stock_level(&self, sku_id: &str) -> Result<product::StockLevel, Code> {
        self.stock
            .clone()
            .get_stock(internal(product::GetStockRequest {
                sku_id: sku_id.to_owned(),
            }))
            .await
            .map(|response| response.into_inner().stock.unwrap_or_default())
            .map_err(|status| status.code())
    }

    async fn stock(&self, sku_id: &str) -> Result<Stock, Code> {
        let level = self.stock_level(sku_id).await?;
        let history = self
            .stock
            .clone()
            .list_stock_history(internal(product::ListStockHistoryRequest {
                sku_id: sku_id.to_owned(),
                page_size: 100,
                page_token: String::new(),
                kinds: Vec::new(),
            }))
            .await
            .map_err(|status| status.code())?
            .into_inner()
            .entries
            .len();
        Ok(Stock {
            on_hand: level.on_hand,
            version: level.version,
            history_entries: history,
        })
    }

    pub(crate) async fn snapshot(&self, case: &CaseProduct) -> ProductState {
        let request = internal(product::GetProductRequest {
            product_id: case.product_id.clone(),
            show_deleted: true,
        });
        let found = self
            .products
            .clone()
            .get_product(request)
            .await
            .expect("the case's product, deleted or not")
            .into_inner()
            .product
            .expect("product");
        let first = found
            .skus
            .iter()
            .find(|sku| sku.sku_id == case.sku_id)
            .cloned()
            .unwrap_or_default();
        let stock = self.stock(&case.sku_id).await;
        let mut sku_codes: Vec<String> =
            found.skus.iter().map(|sku| sku.sku_code.clone()).collect();
        sku_codes.sort();
        ProductState {
            name: found.name,
            status: found.status,
            featured: found.featured,
            deleted: found.delete_time.is_some(),
            sku_codes,
            first_sku_price: first
                .price
                .map(|price| price.amount_minor)
                .unwrap_or_default(),
            stock,
        }
    }
}
