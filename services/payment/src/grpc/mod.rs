//! The gRPC surface: `PaymentService`, `WalletService` and `PayoutService`, and the small
//! validation helpers they share.

pub mod payments;
pub mod payouts;
pub mod wallet;

use mercato_platform::grpc::GrpcServer;
use mercato_proto::mercato::payment::v1::payment_service_server::PaymentServiceServer;
use mercato_proto::mercato::payment::v1::payout_service_server::PayoutServiceServer;
use mercato_proto::mercato::payment::v1::wallet_service_server::WalletServiceServer;
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::error::PaymentError;

/// Adds the three services to `server`.
pub fn register(server: GrpcServer, context: &PaymentContext) -> GrpcServer {
    server
        .add_service(PaymentServiceServer::new(payments::PaymentGrpc::new(
            context.clone(),
        )))
        .add_service(WalletServiceServer::new(wallet::WalletGrpc::new(
            context.clone(),
        )))
        .add_service(PayoutServiceServer::new(payouts::PayoutGrpc::new(
            context.clone(),
        )))
}

/// `page_size`: 0 means 20, above 100 means 100, negative is refused.
pub fn page_limit(page_size: i32) -> Result<usize, PaymentError> {
    match page_size {
        n if n < 0 => Err(PaymentError::field("page_size", "must not be negative")),
        0 => Ok(20),
        n => Ok(usize::try_from(n.min(100)).unwrap_or(100)),
    }
}

/// A required UUID field.
pub fn uuid_field(raw: &str, field: &str) -> Result<Uuid, PaymentError> {
    if raw.is_empty() {
        return Err(PaymentError::field(field, "is required"));
    }
    Uuid::parse_str(raw).map_err(|_| PaymentError::field(field, "must be a uuid"))
}

/// SHA-256 over the parts of a request, binding an idempotency key to it.
pub fn request_hash(parts: &[String]) -> String {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize())
}
