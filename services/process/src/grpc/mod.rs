//! The gRPC surface: `ShipmentService` (admins and internal callers) and `NotificationService`
//! (admins), and the small validation helpers they share. The only module that knows protobuf
//! requests.

pub mod notifications;
pub mod shipments;

use chrono::{DateTime, Utc};
use mercato_platform::grpc::GrpcServer;
use mercato_platform::principal::{self, Role};
use mercato_proto::mercato::process::v1::notification_service_server::NotificationServiceServer;
use mercato_proto::mercato::process::v1::shipment_service_server::ShipmentServiceServer;
use uuid::Uuid;

use crate::context::ProcessContext;
use crate::error::{ProcessError, Violation};

/// Adds both services to `server`.
pub fn register(server: GrpcServer, context: &ProcessContext) -> GrpcServer {
    server
        .add_service(ShipmentServiceServer::new(shipments::ShipmentGrpc::new(
            context.clone(),
        )))
        .add_service(NotificationServiceServer::new(
            notifications::NotificationGrpc::new(context.clone()),
        ))
}

/// An admin, or a service acting on its own behalf; `UNAUTHENTICATED` for an anonymous browser
/// call, `PERMISSION_DENIED` / `ROLE_REQUIRED` otherwise.
pub fn require_admin_or_internal<T>(request: &tonic::Request<T>) -> Result<(), tonic::Status> {
    if principal::is_internal_service(request) {
        return Ok(());
    }
    principal::require_role(request, Role::Admin).map(|_| ())
}

/// A required UUID field.
pub fn uuid_field(raw: &str, field: &str) -> Result<Uuid, ProcessError> {
    if raw.is_empty() {
        return Err(ProcessError::field(field, "is required"));
    }
    Uuid::parse_str(raw).map_err(|_| ProcessError::field(field, "must be a uuid"))
}

/// An optional UUID filter (empty = none).
pub fn optional_uuid(raw: &str, field: &str, violations: &mut Vec<Violation>) -> Option<Uuid> {
    if raw.is_empty() {
        return None;
    }
    match Uuid::parse_str(raw) {
        Ok(id) => Some(id),
        Err(_) => {
            violations.push(Violation::new(field, "must be a uuid"));
            None
        }
    }
}

/// An optional timestamp that must be valid and not after `now`.
pub fn past_time(
    raw: Option<&prost_types::Timestamp>,
    field: &str,
    now: DateTime<Utc>,
    violations: &mut Vec<Violation>,
) -> Option<DateTime<Utc>> {
    let raw = raw?;
    let parsed = u32::try_from(raw.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(raw.seconds, nanos));
    match parsed {
        None => {
            violations.push(Violation::new(field, "must be a valid timestamp"));
            None
        }
        Some(time) if time > now => {
            violations.push(Violation::new(field, "must not be in the future"));
            None
        }
        Some(time) => Some(time),
    }
}
