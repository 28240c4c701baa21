//! The gRPC surface of `CartService`: reads the caller, validates the request (naming every
//! invalid field, writing nothing), checks the SKU with the catalog before adding, runs the
//! store's transaction and answers with the whole enriched cart.

use mercato_platform::principal;
use mercato_proto::mercato::order::v1 as pb;
use pb::cart_service_server::CartService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cart::error::{CartError, Violation};
use crate::cart::store::{self, IdempotencyKey, MAX_LINE_QUANTITY};
use crate::cart::view;
use crate::context::OrderContext;

type GrpcResult<T> = Result<Response<T>, Status>;

/// Implements `CartService` over the shared context.
#[derive(Debug, Clone)]
pub struct CartGrpc {
    context: OrderContext,
}

impl CartGrpc {
    /// The service over `context`.
    pub fn new(context: OrderContext) -> Self {
        Self { context }
    }

    /// The caller's current cart, enriched.
    async fn cart(&self, user_id: Uuid) -> Result<pb::Cart, CartError> {
        let stored = store::load(&self.context.pool, user_id).await?;
        view::enrich(&self.context, &stored).await
    }
}

/// The caller's user id, or `UNAUTHENTICATED` / `TOKEN_MISSING`.
fn user_id<T>(request: &Request<T>) -> Result<Uuid, Status> {
    principal::require_user(request).map(|p| p.user_id)
}

fn sku_id(raw: &str, violations: &mut Vec<Violation>) -> Option<Uuid> {
    if raw.is_empty() {
        violations.push(Violation::new("sku_id", "is required"));
        return None;
    }
    match Uuid::parse_str(raw) {
        Ok(id) => Some(id),
        Err(_) => {
            violations.push(Violation::new("sku_id", "must be a uuid"));
            None
        }
    }
}

fn quantity_in(raw: i64, min: i64, violations: &mut Vec<Violation>) {
    if !(min..=MAX_LINE_QUANTITY).contains(&raw) {
        violations.push(Violation::new(
            "quantity",
            format!("must be between {min} and {MAX_LINE_QUANTITY}"),
        ));
    }
}

/// An optional idempotency key: empty means none; otherwise 1-128 printable ASCII characters.
fn idempotency_key<'a>(raw: &'a str, violations: &mut Vec<Violation>) -> Option<&'a str> {
    if raw.is_empty() {
        return None;
    }
    if raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic()) {
        Some(raw)
    } else {
        violations.push(Violation::new(
            "idempotency_key",
            "must be 1-128 printable ascii characters",
        ));
        None
    }
}

/// The parsed id, or every violation collected.
fn checked(id: Option<Uuid>, violations: Vec<Violation>) -> Result<Uuid, CartError> {
    match id {
        Some(id) if violations.is_empty() => Ok(id),
        _ => Err(CartError::Validation(violations)),
    }
}

#[tonic::async_trait]
impl CartService for CartGrpc {
    #[tracing::instrument(name = "cart.get_cart", skip_all)]
    async fn get_cart(
        &self,
        request: Request<pb::GetCartRequest>,
    ) -> GrpcResult<pb::GetCartResponse> {
        let user_id = user_id(&request)?;
        let cart = self.cart(user_id).await?;
        Ok(Response::new(pb::GetCartResponse { cart: Some(cart) }))
    }

    #[tracing::instrument(name = "cart.add_cart_item", skip_all)]
    async fn add_cart_item(
        &self,
        request: Request<pb::AddCartItemRequest>,
    ) -> GrpcResult<pb::AddCartItemResponse> {
        let user_id = user_id(&request)?;
        let pb::AddCartItemRequest {
            sku_id: raw_sku_id,
            quantity,
            idempotency_key: raw_key,
        } = request.into_inner();
        let mut violations = Vec::new();
        let sku = sku_id(&raw_sku_id, &mut violations);
        quantity_in(quantity, 1, &mut violations);
        let key = idempotency_key(&raw_key, &mut violations);
        let sku = checked(sku, violations)?;
        let key = key.map(|key| IdempotencyKey::new("AddCartItem", key, sku, quantity));
        let now = self.context.clock.now();
        if let Some(key) = &key
            && store::is_replay(&self.context.pool, user_id, key, now).await?
        {
            let cart = self.cart(user_id).await?;
            return Ok(Response::new(pb::AddCartItemResponse { cart: Some(cart) }));
        }
        let facts = view::fetch(&self.context, &[sku]).await?;
        match facts.get(&sku) {
            None => return Err(CartError::sku_not_found(sku).into()),
            Some(facts) if !facts.purchasable => {
                return Err(CartError::SkuNotPurchasable(sku.to_string()).into());
            }
            Some(_) => {}
        }
        store::add(
            &self.context.pool,
            user_id,
            sku,
            quantity,
            key.as_ref(),
            self.context.settings.cart.max_lines,
            now,
        )
        .await?;
        let cart = self.cart(user_id).await?;
        Ok(Response::new(pb::AddCartItemResponse { cart: Some(cart) }))
    }

    #[tracing::instrument(name = "cart.set_cart_item_quantity", skip_all)]
    async fn set_cart_item_quantity(
        &self,
        request: Request<pb::SetCartItemQuantityRequest>,
    ) -> GrpcResult<pb::SetCartItemQuantityResponse> {
        let user_id = user_id(&request)?;
        let pb::SetCartItemQuantityRequest {
            sku_id: raw_sku_id,
            quantity,
        } = request.into_inner();
        let mut violations = Vec::new();
        let sku = sku_id(&raw_sku_id, &mut violations);
        quantity_in(quantity, 1, &mut violations);
        let sku = checked(sku, violations)?;
        store::set_quantity(
            &self.context.pool,
            user_id,
            sku,
            quantity,
            self.context.clock.now(),
        )
        .await?;
        let cart = self.cart(user_id).await?;
        Ok(Response::new(pb::SetCartItemQuantityResponse {
            cart: Some(cart),
        }))
    }

    #[tracing::instrument(name = "cart.remove_cart_item", skip_all)]
    async fn remove_cart_item(
        &self,
        request: Request<pb::RemoveCartItemRequest>,
    ) -> GrpcResult<pb::RemoveCartItemResponse> {
        let user_id = user_id(&request)?;
        let pb::RemoveCartItemRequest {
            sku_id: raw_sku_id,
            quantity,
            idempotency_key: raw_key,
        } = request.into_inner();
        let mut violations = Vec::new();
        let sku = sku_id(&raw_sku_id, &mut violations);
        quantity_in(quantity, 0, &mut violations);
        let key = idempotency_key(&raw_key, &mut violations);
        let sku = checked(sku, violations)?;
        // Removing the whole line is naturally idempotent; only partial removals use the key.
        let key = key
            .filter(|_| quantity > 0)
            .map(|key| IdempotencyKey::new("RemoveCartItem", key, sku, quantity));
        store::remove(
            &self.context.pool,
            user_id,
            sku,
            quantity,
            key.as_ref(),
            self.context.clock.now(),
        )
        .await?;
        let cart = self.cart(user_id).await?;
        Ok(Response::new(pb::RemoveCartItemResponse {
            cart: Some(cart),
        }))
    }

    #[tracing::instrument(name = "cart.clear_cart", skip_all)]
    async fn clear_cart(
        &self,
        request: Request<pb::ClearCartRequest>,
    ) -> GrpcResult<pb::ClearCartResponse> {
        let user_id = user_id(&request)?;
        store::clear(&self.context.pool, user_id, self.context.clock.now()).await?;
        let cart = self.cart(user_id).await?;
        Ok(Response::new(pb::ClearCartResponse { cart: Some(cart) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_named() {
        let mut violations = Vec::new();
        let sku = sku_id("not-a-uuid", &mut violations);
        quantity_in(0, 1, &mut violations);
        idempotency_key(&"k".repeat(129), &mut violations);
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["sku_id", "quantity", "idempotency_key"]);
        assert!(checked(sku, violations).is_err());
    }

    #[test]
    fn removal_allows_zero_but_not_negative_quantities() {
        let mut violations = Vec::new();
        quantity_in(0, 0, &mut violations);
        assert!(violations.is_empty());
        quantity_in(-1, 0, &mut violations);
        quantity_in(1000, 0, &mut violations);
        assert_eq!(violations.len(), 2);
    }
}
