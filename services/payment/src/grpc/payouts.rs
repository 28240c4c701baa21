//! `PayoutService`: seller payout accounts and payouts are not built yet. Every RPC checks the
//! seller role as the contract says, then answers `UNIMPLEMENTED`, so clients can tell "not
//! available yet" from a failure.

use mercato_platform::principal::{self, Role};
use mercato_proto::mercato::payment::v1 as pb;
use pb::payout_service_server::PayoutService;
use tonic::{Request, Response, Status};

/// The `PayoutService` placeholder.
#[derive(Debug, Clone, Copy)]
pub struct PayoutGrpc;

fn unimplemented<T, R>(request: &Request<T>) -> Result<Response<R>, Status> {
    principal::require_role(request, Role::Seller)?;
    Err(Status::unimplemented(
        "seller payouts are not available yet",
    ))
}

#[tonic::async_trait]
impl PayoutService for PayoutGrpc {
    async fn get_seller_account(
        &self,
        request: Request<pb::GetSellerAccountRequest>,
    ) -> Result<Response<pb::GetSellerAccountResponse>, Status> {
        unimplemented(&request)
    }

    async fn create_seller_account(
        &self,
        request: Request<pb::CreateSellerAccountRequest>,
    ) -> Result<Response<pb::CreateSellerAccountResponse>, Status> {
        unimplemented(&request)
    }

    async fn create_seller_account_link(
        &self,
        request: Request<pb::CreateSellerAccountLinkRequest>,
    ) -> Result<Response<pb::CreateSellerAccountLinkResponse>, Status> {
        unimplemented(&request)
    }

    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> Result<Response<pb::ListPayoutsResponse>, Status> {
        unimplemented(&request)
    }
}
