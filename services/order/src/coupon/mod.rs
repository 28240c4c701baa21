//! Coupons: definitions (fixed amount or percent off, minimum order amount, validity days),
//! first-come-first-served campaigns that hand them out one per user, the coupons users hold,
//! and their use by orders.
//!
//! Layout: `rules` (pure: validation, the discount, status at a time, campaign state; unit
//! tested), `store` (SQL), `claim` (the FCFS ClaimCoupon and its Redis sold-out gate), `admin`
//! (the idempotent creates), `apply` (used by checkout and compensation inside the order's own
//! transaction), `sweeper` (expires unused coupons), `grpc` (the `CouponService` surface),
//! `error` (the one mapping to gRPC statuses).

pub mod admin;
pub mod apply;
pub mod claim;
pub mod error;
pub mod grpc;
pub mod rules;
pub mod store;
pub mod sweeper;

use mercato_platform::grpc::GrpcServer;
use mercato_platform::shutdown::Shutdown;
use mercato_proto::mercato::order::v1::coupon_service_server::CouponServiceServer;

pub use self::error::CouponError;
use crate::context::OrderContext;

/// Adds `CouponService` to `server`.
pub fn register(server: GrpcServer, context: &OrderContext) -> GrpcServer {
    server.add_service(CouponServiceServer::new(grpc::CouponGrpc::new(
        context.clone(),
    )))
}

/// Starts the coupons' background task under `shutdown`: the expiry sweeper.
pub fn spawn_background(context: &OrderContext, shutdown: &Shutdown) {
    shutdown.spawn(sweeper::run(context.clone(), shutdown.token()));
}
