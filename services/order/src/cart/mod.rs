//! The cart: one persistent cart per user, keyed by the forwarded principal's user id. The
//! database stores only SKU ids, quantities and add times; every response enriches the lines
//! live from the product service (see [`view`] for statuses, subtotal and checkoutability).
//!
//! Layout: `store` (SQL, one transaction per mutation), `view` (catalog facts and rendering),
//! `grpc` (validation and the `CartService` surface), `error` (the one mapping to gRPC statuses).

pub mod error;
pub mod grpc;
pub mod store;
pub mod view;

use mercato_platform::grpc::GrpcServer;
use mercato_proto::mercato::order::v1::cart_service_server::CartServiceServer;

pub use self::error::CartError;
use crate::context::OrderContext;

/// Adds `CartService` to `server`.
pub fn register(server: GrpcServer, context: &OrderContext) -> GrpcServer {
    server.add_service(CartServiceServer::new(grpc::CartGrpc::new(context.clone())))
}
