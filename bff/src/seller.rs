//! The seller console (`mercato.bff.v1.SellerService`): the caller's products and their stock,
//! backed by the product service's `ProductService` and `StockService`.
//!
//! Every RPC needs ROLE_SELLER (admins may use the product and stock RPCs on any product). The
//! owner is always the caller from the token: the BFF never sends a seller id it read from a
//! request. Ownership of an existing product or SKU is decided by the product service, which
//! receives the forwarded principal; the one read the product service would answer for anyone
//! (a published product) is checked here so a seller's console shows only their own products.
//!
//! The payout RPCs go to the payment service's `PayoutService` as the caller, who must be a
//! seller, with the admin role left out of the forwarded principal: through this API an admin's
//! payout account and payouts are their own, never every seller's (the payment service lists
//! everyone's to an admin who names no seller, which is the admin API's business, not the
//! seller console's). No request names a seller. The Stripe account id stays internal.

use mercato_platform::grpc::ClientChannel;
use mercato_platform::principal::{self, Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::payment::v1 as payment;
use mercato_proto::mercato::product::v1 as product;
use payment::payout_service_client::PayoutServiceClient;
use product::product_service_client::ProductServiceClient;
use product::stock_service_client::StockServiceClient;
use tonic::{Request, Response, Status};

use crate::catalog::{product_from_input, public_product, public_sku, sku_from_input};
use crate::error::{broken_contract, downstream, missing_field};

/// `mercato.bff.v1.SellerService`.
#[derive(Debug, Clone)]
pub struct SellerGrpc {
    products: ProductServiceClient<ClientChannel>,
    stock: StockServiceClient<ClientChannel>,
    payouts: PayoutServiceClient<ClientChannel>,
}

impl SellerGrpc {
    /// The handler over a product-service and a payment-service channel.
    pub fn new(channel: ClientChannel, payment_channel: ClientChannel) -> Self {
        Self {
            products: ProductServiceClient::new(channel.clone()),
            stock: StockServiceClient::new(channel),
            payouts: PayoutServiceClient::new(payment_channel),
        }
    }
}

/// The caller, who must be a seller or an admin.
fn seller_or_admin<T>(request: &Request<T>) -> Result<Principal, Status> {
    let caller = principal::require_user(request)?;
    if caller.has_role(Role::Seller) || caller.is_admin() {
        Ok(caller.clone())
    } else {
        principal::require_role(request, Role::Seller).cloned()
    }
}

/// The caller, who must be a seller, as the payment service is told about them: without the
/// admin role, so payout RPCs are always the caller's own.
fn seller<T>(request: &Request<T>) -> Result<Principal, Status> {
    let caller = principal::require_role(request, Role::Seller)?;
    Ok(Principal::new(
        caller.user_id,
        caller
            .roles
            .iter()
            .copied()
            .filter(|role| *role != Role::Admin),
    ))
}

/// `message` as a call made for `seller` (an explicit principal wins over the task's current
/// one in the outbound channel).
fn as_seller<T>(seller: &Principal, message: T) -> Request<T> {
    let mut request = Request::new(message);
    seller.write_metadata(request.metadata_mut());
    request
}

/// A payout account as its seller sees it (the seller and Stripe account ids stay internal).
fn public_account(account: payment::SellerAccount) -> bff::SellerAccount {
    let payment::SellerAccount {
        seller_id: _,
        provider_account_id: _,
        status,
        country_code,
        create_time,
        update_time: _,
    } = account;
    bff::SellerAccount {
        status,
        country_code,
        create_time,
    }
}

fn account_of(
    found: Option<payment::SellerAccount>,
    what: &str,
) -> Result<bff::SellerAccount, Status> {
    found
        .map(public_account)
        .ok_or_else(|| broken_contract(what))
}

/// A payout as its seller sees it (the payment, the Stripe transfer and the reversal time stay
/// internal; the status says REVERSED).
fn public_payout(payout: payment::Payout) -> bff::Payout {
    let payment::Payout {
        payout_id,
        seller_id: _,
        order_id,
        payment_id: _,
        gross_amount,
        platform_fee,
        net_amount,
        status,
        provider_transfer_id: _,
        create_time,
        transfer_time,
        reverse_time: _,
    } = payout;
    bff::Payout {
        payout_id,
        order_id,
        gross_amount,
        platform_fee,
        net_amount,
        status,
        create_time,
        transfer_time,
    }
}

#[tonic::async_trait]
impl bff::seller_service_server::SellerService for SellerGrpc {
    async fn list_seller_products(
        &self,
        request: Request<bff::ListSellerProductsRequest>,
    ) -> Result<Response<bff::ListSellerProductsResponse>, Status> {
        let caller = seller_or_admin(&request)?;
        let bff::ListSellerProductsRequest {
            page_size,
            page_token,
            statuses,
            query,
        } = request.into_inner();
        let response = self
            .products
            .clone()
            .list_products(product::ListProductsRequest {
                page_size,
                page_token,
                query,
                seller_id: caller.user_id.to_string(),
                statuses: if statuses.is_empty() {
                    every_status()
                } else {
                    statuses
                },
                order_by: product::ProductSort::Newest.into(),
                ..product::ListProductsRequest::default()
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListSellerProductsResponse {
            products: response.products.into_iter().map(public_product).collect(),
            next_page_token: response.next_page_token,
        }))
    }

    async fn get_seller_product(
        &self,
        request: Request<bff::GetSellerProductRequest>,
    ) -> Result<Response<bff::GetSellerProductResponse>, Status> {
        let caller = seller_or_admin(&request)?;
        let bff::GetSellerProductRequest { product_id } = request.into_inner();
        let found = self
            .products
            .clone()
            .get_product(product::GetProductRequest {
                product_id,
                show_deleted: false,
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .product
            .ok_or_else(|| broken_contract("GetProductResponse.product"))?;
        if !caller.is_admin() && found.seller_id != caller.user_id.to_string() {
            return Err(not_owner(&found.product_id));
        }
        Ok(Response::new(bff::GetSellerProductResponse {
            product: Some(public_product(found)),
        }))
    }

    async fn create_product(
        &self,
        request: Request<bff::CreateProductRequest>,
    ) -> Result<Response<bff::CreateProductResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::CreateProductRequest {
            product: input,
            idempotency_key,
        } = request.into_inner();
        let input = input.ok_or_else(|| missing_field("product"))?;
        let created = self
            .products
            .clone()
            .create_product(product::CreateProductRequest {
                product: Some(product_from_input(String::new(), input)),
                idempotency_key,
                seller_id: String::new(),
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .product
            .ok_or_else(|| broken_contract("CreateProductResponse.product"))?;
        Ok(Response::new(bff::CreateProductResponse {
            product: Some(public_product(created)),
        }))
    }

    async fn update_product(
        &self,
        request: Request<bff::UpdateProductRequest>,
    ) -> Result<Response<bff::UpdateProductResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::UpdateProductRequest {
            product_id,
            product: input,
            update_mask,
            expected_version,
        } = request.into_inner();
        let input = input.ok_or_else(|| missing_field("product"))?;
        let updated = self
            .products
            .clone()
            .update_product(product::UpdateProductRequest {
                product: Some(product_from_input(product_id, input)),
                update_mask,
                expected_version,
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .product
            .ok_or_else(|| broken_contract("UpdateProductResponse.product"))?;
        Ok(Response::new(bff::UpdateProductResponse {
            product: Some(public_product(updated)),
        }))
    }

    async fn delete_product(
        &self,
        request: Request<bff::DeleteProductRequest>,
    ) -> Result<Response<bff::DeleteProductResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::DeleteProductRequest { product_id } = request.into_inner();
        let response = self
            .products
            .clone()
            .delete_product(product::DeleteProductRequest { product_id })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::DeleteProductResponse {
            delete_time: response.delete_time,
        }))
    }

    async fn publish_product(
        &self,
        request: Request<bff::PublishProductRequest>,
    ) -> Result<Response<bff::PublishProductResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::PublishProductRequest { product_id } = request.into_inner();
        let published = self
            .products
            .clone()
            .publish_product(product::PublishProductRequest { product_id })
            .await
            .map_err(downstream)?
            .into_inner()
            .product
            .ok_or_else(|| broken_contract("PublishProductResponse.product"))?;
        Ok(Response::new(bff::PublishProductResponse {
            product: Some(public_product(published)),
        }))
    }

    async fn hide_product(
        &self,
        request: Request<bff::HideProductRequest>,
    ) -> Result<Response<bff::HideProductResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::HideProductRequest { product_id } = request.into_inner();
        let hidden = self
            .products
            .clone()
            .hide_product(product::HideProductRequest { product_id })
            .await
            .map_err(downstream)?
            .into_inner()
            .product
            .ok_or_else(|| broken_contract("HideProductResponse.product"))?;
        Ok(Response::new(bff::HideProductResponse {
            product: Some(public_product(hidden)),
        }))
    }

    async fn create_sku(
        &self,
        request: Request<bff::CreateSkuRequest>,
    ) -> Result<Response<bff::CreateSkuResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::CreateSkuRequest {
            product_id,
            sku,
            idempotency_key,
        } = request.into_inner();
        let sku = sku.ok_or_else(|| missing_field("sku"))?;
        let created = self
            .products
            .clone()
            .create_sku(product::CreateSkuRequest {
                product_id,
                sku: Some(sku_from_input(String::new(), sku)),
                idempotency_key,
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .sku
            .ok_or_else(|| broken_contract("CreateSkuResponse.sku"))?;
        Ok(Response::new(bff::CreateSkuResponse {
            sku: Some(public_sku(created)),
        }))
    }

    async fn update_sku(
        &self,
        request: Request<bff::UpdateSkuRequest>,
    ) -> Result<Response<bff::UpdateSkuResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::UpdateSkuRequest {
            sku_id,
            sku,
            update_mask,
        } = request.into_inner();
        let sku = sku.ok_or_else(|| missing_field("sku"))?;
        let updated = self
            .products
            .clone()
            .update_sku(product::UpdateSkuRequest {
                sku: Some(sku_from_input(sku_id, sku)),
                update_mask,
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .sku
            .ok_or_else(|| broken_contract("UpdateSkuResponse.sku"))?;
        Ok(Response::new(bff::UpdateSkuResponse {
            sku: Some(public_sku(updated)),
        }))
    }

    async fn delete_sku(
        &self,
        request: Request<bff::DeleteSkuRequest>,
    ) -> Result<Response<bff::DeleteSkuResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::DeleteSkuRequest { sku_id } = request.into_inner();
        let response = self
            .products
            .clone()
            .delete_sku(product::DeleteSkuRequest { sku_id })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::DeleteSkuResponse {
            delete_time: response.delete_time,
        }))
    }

    async fn get_sku_stock(
        &self,
        request: Request<bff::GetSkuStockRequest>,
    ) -> Result<Response<bff::GetSkuStockResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::GetSkuStockRequest { sku_id } = request.into_inner();
        let stock = self
            .stock
            .clone()
            .get_stock(product::GetStockRequest { sku_id })
            .await
            .map_err(downstream)?
            .into_inner()
            .stock
            .ok_or_else(|| broken_contract("GetStockResponse.stock"))?;
        Ok(Response::new(bff::GetSkuStockResponse {
            stock: Some(stock_level(stock)),
        }))
    }

    async fn adjust_stock(
        &self,
        request: Request<bff::AdjustStockRequest>,
    ) -> Result<Response<bff::AdjustStockResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::AdjustStockRequest {
            sku_id,
            on_hand,
            expected_version,
            reason,
            idempotency_key,
        } = request.into_inner();
        let stock = self
            .stock
            .clone()
            .adjust_stock(product::AdjustStockRequest {
                sku_id,
                on_hand,
                expected_version,
                reason,
                idempotency_key,
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .stock
            .ok_or_else(|| broken_contract("AdjustStockResponse.stock"))?;
        Ok(Response::new(bff::AdjustStockResponse {
            stock: Some(stock_level(stock)),
        }))
    }

    async fn list_stock_history(
        &self,
        request: Request<bff::ListStockHistoryRequest>,
    ) -> Result<Response<bff::ListStockHistoryResponse>, Status> {
        seller_or_admin(&request)?;
        let bff::ListStockHistoryRequest {
            sku_id,
            page_size,
            page_token,
        } = request.into_inner();
        let response = self
            .stock
            .clone()
            .list_stock_history(product::ListStockHistoryRequest {
                sku_id,
                page_size,
                page_token,
                kinds: Vec::new(),
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListStockHistoryResponse {
            entries: response.entries.into_iter().map(history_entry).collect(),
            next_page_token: response.next_page_token,
        }))
    }

    async fn get_seller_account(
        &self,
        request: Request<bff::GetSellerAccountRequest>,
    ) -> Result<Response<bff::GetSellerAccountResponse>, Status> {
        let caller = seller(&request)?;
        let bff::GetSellerAccountRequest {} = request.into_inner();
        let response = self
            .payouts
            .clone()
            .get_seller_account(as_seller(
                &caller,
                payment::GetSellerAccountRequest {
                    seller_id: String::new(),
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GetSellerAccountResponse {
            seller_account: Some(account_of(response.seller_account, "GetSellerAccount")?),
        }))
    }

    async fn create_seller_account(
        &self,
        request: Request<bff::CreateSellerAccountRequest>,
    ) -> Result<Response<bff::CreateSellerAccountResponse>, Status> {
        let caller = seller(&request)?;
        let bff::CreateSellerAccountRequest {
            country_code,
            return_url,
            refresh_url,
            idempotency_key,
        } = request.into_inner();
        let response = self
            .payouts
            .clone()
            .create_seller_account(as_seller(
                &caller,
                payment::CreateSellerAccountRequest {
                    country_code,
                    return_url,
                    refresh_url,
                    idempotency_key,
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::CreateSellerAccountResponse {
            seller_account: Some(account_of(response.seller_account, "CreateSellerAccount")?),
            onboarding_url: response.onboarding_url,
            onboarding_url_expire_time: response.onboarding_url_expire_time,
        }))
    }

    async fn create_seller_account_link(
        &self,
        request: Request<bff::CreateSellerAccountLinkRequest>,
    ) -> Result<Response<bff::CreateSellerAccountLinkResponse>, Status> {
        let caller = seller(&request)?;
        let bff::CreateSellerAccountLinkRequest {
            return_url,
            refresh_url,
        } = request.into_inner();
        let response = self
            .payouts
            .clone()
            .create_seller_account_link(as_seller(
                &caller,
                payment::CreateSellerAccountLinkRequest {
                    return_url,
                    refresh_url,
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::CreateSellerAccountLinkResponse {
            url: response.url,
            expire_time: response.expire_time,
        }))
    }

    async fn list_payouts(
        &self,
        request: Request<bff::ListPayoutsRequest>,
    ) -> Result<Response<bff::ListPayoutsResponse>, Status> {
        let caller = seller(&request)?;
        let bff::ListPayoutsRequest {
            page_size,
            page_token,
            statuses,
        } = request.into_inner();
        let response = self
            .payouts
            .clone()
            .list_payouts(as_seller(
                &caller,
                payment::ListPayoutsRequest {
                    page_size,
                    page_token,
                    statuses,
                    seller_id: String::new(),
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListPayoutsResponse {
            payouts: response.payouts.into_iter().map(public_payout).collect(),
            next_page_token: response.next_page_token,
        }))
    }
}

/// Every product state: a seller's console lists drafts and hidden products too.
pub(crate) fn every_status() -> Vec<i32> {
    use mercato_proto::mercato::common::v1::ProductStatus;
    [
        ProductStatus::Draft,
        ProductStatus::Published,
        ProductStatus::Hidden,
    ]
    .into_iter()
    .map(i32::from)
    .collect()
}

fn not_owner(product_id: &str) -> Status {
    mercato_platform::error::status(
        mercato_platform::error::ErrorCode::PermissionDenied,
        "NOT_RESOURCE_OWNER",
        format!("product {product_id} belongs to another seller"),
        tonic_types::ErrorDetails::new(),
    )
}

/// A stock level as the public API shows it.
pub(crate) fn stock_level(stock: product::StockLevel) -> bff::StockLevel {
    bff::StockLevel {
        sku_id: stock.sku_id,
        on_hand: stock.on_hand,
        reserved: stock.reserved,
        available: stock.available,
        version: stock.version,
        update_time: stock.update_time,
    }
}

fn history_entry(entry: product::StockHistoryEntry) -> bff::StockHistoryEntry {
    bff::StockHistoryEntry {
        entry_id: entry.entry_id,
        sku_id: entry.sku_id,
        // The enums share their numbers.
        kind: entry.kind,
        on_hand_before: entry.on_hand_before,
        on_hand_after: entry.on_hand_after,
        reserved_before: entry.reserved_before,
        reserved_after: entry.reserved_after,
        reason: entry.reason,
        order_id: entry.order_id,
        create_time: entry.create_time,
    }
}
