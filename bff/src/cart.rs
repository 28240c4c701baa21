//! The shopper's cart (`mercato.bff.v1.CartService`), backed by the order service's
//! `CartService`. The cart is always the caller's: the order service takes the user from the
//! forwarded principal, and no request names one.

use mercato_platform::grpc::ClientChannel;
use mercato_platform::principal;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::order::v1 as order;
use order::cart_service_client::CartServiceClient;
use tonic::{Request, Response, Status};

use crate::error::{broken_contract, downstream};

/// `mercato.bff.v1.CartService`.
#[derive(Debug, Clone)]
pub struct CartGrpc {
    carts: CartServiceClient<ClientChannel>,
}

impl CartGrpc {
    /// The handler over an order-service channel.
    pub fn new(channel: ClientChannel) -> Self {
        Self {
            carts: CartServiceClient::new(channel),
        }
    }
}

/// The public cart, or INTERNAL when the order service answered without one.
fn cart(found: Option<order::Cart>, what: &str) -> Result<Option<bff::Cart>, Status> {
    let found = found.ok_or_else(|| broken_contract(what))?;
    Ok(Some(bff::Cart {
        lines: found
            .lines
            .into_iter()
            .map(|line| bff::CartLine {
                sku_id: line.sku_id,
                quantity: line.quantity,
                status: line.status,
                product_id: line.product_id,
                product_name: line.product_name,
                sku_code: line.sku_code,
                option_values: line.option_values,
                main_image_url: line.main_image_url,
                unit_price: line.unit_price,
                line_total: line.line_total,
                available_quantity: line.available_quantity,
            })
            .collect(),
        subtotal: found.subtotal,
        item_count: found.item_count,
        checkoutable: found.checkoutable,
        update_time: found.update_time,
    }))
}

#[tonic::async_trait]
impl bff::cart_service_server::CartService for CartGrpc {
    async fn get_cart(
        &self,
        request: Request<bff::GetCartRequest>,
    ) -> Result<Response<bff::GetCartResponse>, Status> {
        principal::require_user(&request)?;
        let response = self
            .carts
            .clone()
            .get_cart(order::GetCartRequest {})
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GetCartResponse {
            cart: cart(response.cart, "GetCartResponse.cart")?,
        }))
    }

    async fn add_cart_item(
        &self,
        request: Request<bff::AddCartItemRequest>,
    ) -> Result<Response<bff::AddCartItemResponse>, Status> {
        principal::require_user(&request)?;
        let bff::AddCartItemRequest {
            sku_id,
            quantity,
            idempotency_key,
        } = request.into_inner();
        let response = self
            .carts
            .clone()
            .add_cart_item(order::AddCartItemRequest {
                sku_id,
                quantity,
                idempotency_key,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::AddCartItemResponse {
            cart: cart(response.cart, "AddCartItemResponse.cart")?,
        }))
    }

    async fn set_cart_item_quantity(
        &self,
        request: Request<bff::SetCartItemQuantityRequest>,
    ) -> Result<Response<bff::SetCartItemQuantityResponse>, Status> {
        principal::require_user(&request)?;
        let bff::SetCartItemQuantityRequest { sku_id, quantity } = request.into_inner();
        let response = self
            .carts
            .clone()
            .set_cart_item_quantity(order::SetCartItemQuantityRequest { sku_id, quantity })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::SetCartItemQuantityResponse {
            cart: cart(response.cart, "SetCartItemQuantityResponse.cart")?,
        }))
    }

    async fn remove_cart_item(
        &self,
        request: Request<bff::RemoveCartItemRequest>,
    ) -> Result<Response<bff::RemoveCartItemResponse>, Status> {
        principal::require_user(&request)?;
        let bff::RemoveCartItemRequest {
            sku_id,
            quantity,
            idempotency_key,
        } = request.into_inner();
        let response = self
            .carts
            .clone()
            .remove_cart_item(order::RemoveCartItemRequest {
                sku_id,
                quantity,
                idempotency_key,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::RemoveCartItemResponse {
            cart: cart(response.cart, "RemoveCartItemResponse.cart")?,
        }))
    }

    async fn clear_cart(
        &self,
        request: Request<bff::ClearCartRequest>,
    ) -> Result<Response<bff::ClearCartResponse>, Status> {
        principal::require_user(&request)?;
        let response = self
            .carts
            .clone()
            .clear_cart(order::ClearCartRequest {})
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ClearCartResponse {
            cart: cart(response.cart, "ClearCartResponse.cart")?,
        }))
    }
}
