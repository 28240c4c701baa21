//! The gRPC surface of `StockService`: the only stock module that knows protobuf. It decides who
//! may call what from the forwarded caller, converts messages field by field and hands plain
//! values to [`StockApp`].

use chrono::{DateTime, Utc};
use mercato_platform::principal::{self, Principal, Role};
use mercato_proto::mercato::product::v1 as pb;
use pb::stock_service_server::StockService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::app::{AdjustCommand, StockApp};
use super::domain::{self, ChangeKind, RawLine, ReservationStatus, Violation};
use super::error::StockError;
use super::ops::ReservationState;
use super::store::{HistoryRow, StockRow};

/// Implements `StockService` over one [`StockApp`].
#[derive(Debug, Clone)]
pub struct StockGrpc {
    app: StockApp,
}

impl StockGrpc {
    /// The service over `app`.
    pub fn new(app: StockApp) -> Self {
        Self { app }
    }
}

type GrpcResult<T> = Result<Response<T>, Status>;

/// Who is calling, as far as stock rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Another Mercato service (not the BFF) acting on its own.
    Internal,
    /// An admin.
    Admin(Uuid),
    /// A seller, limited to its own SKUs.
    Seller(Uuid),
}

/// Whether the request comes from an internal service other than the public edge. The BFF
/// forwards browsers' calls and is not trusted with internal RPCs.
fn is_internal<T>(request: &Request<T>) -> bool {
    principal::is_internal_service(request)
}

fn principal_of<T>(request: &Request<T>) -> Result<&Principal, StockError> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or(StockError::TokenMissing)
}

/// Internal services, admins, and sellers (for their own SKUs).
fn stock_access<T>(request: &Request<T>) -> Result<Access, StockError> {
    if is_internal(request) {
        return Ok(Access::Internal);
    }
    owner_access(request)
}

/// Admins, and sellers for their own SKUs.
fn owner_access<T>(request: &Request<T>) -> Result<Access, StockError> {
    let principal = principal_of(request)?;
    if principal.is_admin() {
        Ok(Access::Admin(principal.user_id))
    } else if principal.has_role(Role::Seller) {
        Ok(Access::Seller(principal.user_id))
    } else {
        Err(StockError::RoleRequired("ROLE_SELLER"))
    }
}

/// Internal services only (or also admins when `admin_too`).
fn require_internal<T>(request: &Request<T>, admin_too: bool) -> Result<(), StockError> {
    if is_internal(request) {
        return Ok(());
    }
    let principal = principal_of(request)?;
    if admin_too && principal.is_admin() {
        Ok(())
    } else {
        Err(StockError::RoleRequired("internal service"))
    }
}

fn check_owner(access: Access, stock: &StockRow) -> Result<(), StockError> {
    match access {
        Access::Seller(seller) if seller != stock.seller_id => Err(StockError::NotResourceOwner),
        Access::Seller(_) | Access::Internal | Access::Admin(_) => Ok(()),
    }
}

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn parse_id(raw: &str, field: &str) -> Result<Uuid, StockError> {
    domain::parse_uuid(raw, field).map_err(StockError::from)
}

fn stock_to_proto(row: &StockRow) -> pb::StockLevel {
    pb::StockLevel {
        sku_id: row.sku_id.to_string(),
        on_hand: row.on_hand,
        reserved: row.reserved,
        available: row.available(),
        version: row.version,
        update_time: Some(timestamp(row.updated_at)),
    }
}

fn status_to_proto(status: ReservationStatus) -> pb::ReservationStatus {
    match status {
        ReservationStatus::Pending => pb::ReservationStatus::Pending,
        ReservationStatus::Committed => pb::ReservationStatus::Committed,
        ReservationStatus::Released => pb::ReservationStatus::Released,
        ReservationStatus::Expired => pb::ReservationStatus::Expired,
        ReservationStatus::Returned => pb::ReservationStatus::Returned,
    }
}

fn kind_to_proto(kind: ChangeKind) -> pb::StockChangeKind {
    match kind {
        ChangeKind::Adjustment => pb::StockChangeKind::Adjustment,
        ChangeKind::Reservation => pb::StockChangeKind::Reservation,
        ChangeKind::Commit => pb::StockChangeKind::Commit,
        ChangeKind::Release => pb::StockChangeKind::Release,
        ChangeKind::Expiry => pb::StockChangeKind::Expiry,
        ChangeKind::Return => pb::StockChangeKind::Return,
    }
}

fn kind_from_proto(value: i32, field: String) -> Result<ChangeKind, Violation> {
    match pb::StockChangeKind::try_from(value) {
        Ok(pb::StockChangeKind::Adjustment) => Ok(ChangeKind::Adjustment),
        Ok(pb::StockChangeKind::Reservation) => Ok(ChangeKind::Reservation),
        Ok(pb::StockChangeKind::Commit) => Ok(ChangeKind::Commit),
        Ok(pb::StockChangeKind::Release) => Ok(ChangeKind::Release),
        Ok(pb::StockChangeKind::Expiry) => Ok(ChangeKind::Expiry),
        Ok(pb::StockChangeKind::Return) => Ok(ChangeKind::Return),
        Ok(pb::StockChangeKind::Unspecified) | Err(_) => Err(Violation::new(
            field,
            "must be a specified stock change kind",
        )),
    }
}

fn reservation_to_proto(state: &ReservationState) -> Result<pb::Reservation, StockError> {
    let reservation = &state.reservation;
    let lines = state
        .lines
        .iter()
        .map(|line| pb::ReservationLine {
            sku_id: line.sku_id.to_string(),
            quantity: line.quantity,
            // Reported by the creating call only.
            available_after: state
                .changes
                .iter()
                .find(|c| c.sku_id == line.sku_id && !state.replayed)
                .map_or(0, HistoryRow::available_after),
        })
        .collect();
    Ok(pb::Reservation {
        reservation_id: reservation.id.to_string(),
        order_id: reservation.order_id.to_string(),
        status: status_to_proto(reservation.status()?).into(),
        lines,
        expire_time: Some(timestamp(reservation.expires_at)),
        create_time: Some(timestamp(reservation.created_at)),
        settle_time: reservation.settled_at.map(timestamp),
    })
}

fn history_to_proto(row: &HistoryRow) -> Result<pb::StockHistoryEntry, StockError> {
    let kind = ChangeKind::parse(&row.kind)
        .ok_or_else(|| StockError::Corrupt(format!("unknown stock change kind {}", row.kind)))?;
    Ok(pb::StockHistoryEntry {
        entry_id: row.id.to_string(),
        sku_id: row.sku_id.to_string(),
        kind: kind_to_proto(kind).into(),
        on_hand_before: row.on_hand_before,
        on_hand_after: row.on_hand_after,
        reserved_before: row.reserved_before,
        reserved_after: row.reserved_after,
        reason: row.reason.clone(),
        order_id: row.order_id.map(|id| id.to_string()).unwrap_or_default(),
        actor_id: row.actor_id.map(|id| id.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
    })
}

/// A protobuf duration as a std one; `Err` for negative or malformed values.
fn ttl_from_proto(ttl: Option<prost_types::Duration>) -> Option<Result<std::time::Duration, ()>> {
    ttl.map(|d| {
        let seconds = u64::try_from(d.seconds).map_err(|_| ())?;
        let nanos = u32::try_from(d.nanos).map_err(|_| ())?;
        if nanos >= 1_000_000_000 {
            return Err(());
        }
        Ok(std::time::Duration::new(seconds, nanos))
    })
}

/// `page_size` per the paging convention: 0 → 20, above 100 → 100, negative refused.
fn page_size(raw: i32) -> Result<usize, StockError> {
    match raw {
        0 => Ok(20),
        n if n < 0 => Err(StockError::field("page_size", "must not be negative")),
        n => Ok(usize::try_from(n).unwrap_or(100).min(100)),
    }
}

fn order_id_of(raw: &str) -> Result<Uuid, StockError> {
    parse_id(raw, "order_id")
}

fn reason_of(raw: &str) -> Result<String, StockError> {
    domain::parse_reason(raw, "reason", false).map_err(StockError::from)
}

#[tonic::async_trait]
impl StockService for StockGrpc {
    #[tracing::instrument(name = "stock.get_stock", skip_all)]
    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> GrpcResult<pb::GetStockResponse> {
        let access = stock_access(&request)?;
        let pb::GetStockRequest { sku_id } = request.into_inner();
        let stock = self.app.stock(parse_id(&sku_id, "sku_id")?).await?;
        check_owner(access, &stock)?;
        Ok(Response::new(pb::GetStockResponse {
            stock: Some(stock_to_proto(&stock)),
        }))
    }

    #[tracing::instrument(name = "stock.batch_get_stock", skip_all)]
    async fn batch_get_stock(
        &self,
        request: Request<pb::BatchGetStockRequest>,
    ) -> GrpcResult<pb::BatchGetStockResponse> {
        let access = stock_access(&request)?;
        let pb::BatchGetStockRequest { sku_ids } = request.into_inner();
        if sku_ids.is_empty() || sku_ids.len() > 100 {
            return Err(StockError::field("sku_ids", "must hold 1 to 100 ids").into());
        }
        let mut ids = Vec::with_capacity(sku_ids.len());
        let mut violations = Vec::new();
        for (index, raw) in sku_ids.iter().enumerate() {
            match domain::parse_uuid(raw, &format!("sku_ids[{index}]")) {
                Ok(id) if !ids.contains(&id) => ids.push(id),
                Ok(_) => {}
                Err(violation) => violations.push(violation),
            }
        }
        if !violations.is_empty() {
            return Err(StockError::Validation(violations).into());
        }
        let rows = self.app.stocks(&ids).await?;
        for row in &rows {
            check_owner(access, row)?;
        }
        let mut stocks = Vec::with_capacity(rows.len());
        let mut missing_sku_ids = Vec::new();
        for id in ids {
            match rows.iter().find(|r| r.sku_id == id) {
                Some(row) => stocks.push(stock_to_proto(row)),
                None => missing_sku_ids.push(id.to_string()),
            }
        }
        Ok(Response::new(pb::BatchGetStockResponse {
            stocks,
            missing_sku_ids,
        }))
    }

    #[tracing::instrument(name = "stock.reserve_stock", skip_all, fields(order.id))]
    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> GrpcResult<pb::ReserveStockResponse> {
        require_internal(&request, false)?;
        let pb::ReserveStockRequest {
            order_id,
            lines,
            ttl,
        } = request.into_inner();
        tracing::Span::current().record("order.id", order_id.as_str());
        let raw_lines: Vec<RawLine<'_>> = lines
            .iter()
            .map(|line| RawLine {
                sku_id: &line.sku_id,
                quantity: line.quantity,
            })
            .collect();
        let settings = &self.app.context().settings.stock;
        let parsed = domain::parse_reserve_request(
            &order_id,
            &raw_lines,
            ttl_from_proto(ttl),
            settings.reservation_default_ttl,
            settings.reservation_max_ttl,
        )
        .map_err(StockError::Validation)?;
        let state = self.app.reserve(&parsed).await?;
        Ok(Response::new(pb::ReserveStockResponse {
            reservation: Some(reservation_to_proto(&state)?),
            replayed: state.replayed,
        }))
    }

    #[tracing::instrument(name = "stock.commit_reservation", skip_all, fields(order.id))]
    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> GrpcResult<pb::CommitReservationResponse> {
        require_internal(&request, false)?;
        let pb::CommitReservationRequest { order_id } = request.into_inner();
        tracing::Span::current().record("order.id", order_id.as_str());
        let state = self.app.commit(order_id_of(&order_id)?).await?;
        Ok(Response::new(pb::CommitReservationResponse {
            reservation: Some(reservation_to_proto(&state)?),
        }))
    }

    #[tracing::instrument(name = "stock.release_reservation", skip_all, fields(order.id))]
    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> GrpcResult<pb::ReleaseReservationResponse> {
        require_internal(&request, false)?;
        let pb::ReleaseReservationRequest { order_id, reason } = request.into_inner();
        tracing::Span::current().record("order.id", order_id.as_str());
        let order_id = order_id_of(&order_id)?;
        let reason = reason_of(&reason)?;
        let state = self.app.release(order_id, &reason).await?;
        Ok(Response::new(pb::ReleaseReservationResponse {
            reservation: Some(reservation_to_proto(&state)?),
        }))
    }

    #[tracing::instrument(name = "stock.restock_reservation", skip_all, fields(order.id))]
    async fn restock_reservation(
        &self,
        request: Request<pb::RestockReservationRequest>,
    ) -> GrpcResult<pb::RestockReservationResponse> {
        require_internal(&request, true)?;
        let pb::RestockReservationRequest { order_id, reason } = request.into_inner();
        tracing::Span::current().record("order.id", order_id.as_str());
        let order_id = order_id_of(&order_id)?;
        let reason = reason_of(&reason)?;
        let state = self.app.restock(order_id, &reason).await?;
        Ok(Response::new(pb::RestockReservationResponse {
            reservation: Some(reservation_to_proto(&state)?),
        }))
    }

    #[tracing::instrument(name = "stock.get_reservation", skip_all, fields(order.id))]
    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> GrpcResult<pb::GetReservationResponse> {
        require_internal(&request, true)?;
        let pb::GetReservationRequest { order_id } = request.into_inner();
        tracing::Span::current().record("order.id", order_id.as_str());
        let state = self.app.reservation(order_id_of(&order_id)?).await?;
        Ok(Response::new(pb::GetReservationResponse {
            reservation: Some(reservation_to_proto(&state)?),
        }))
    }

    #[tracing::instrument(name = "stock.adjust_stock", skip_all, fields(sku.id))]
    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> GrpcResult<pb::AdjustStockResponse> {
        let access = owner_access(&request)?;
        let pb::AdjustStockRequest {
            sku_id,
            on_hand,
            expected_version,
            reason,
            idempotency_key,
        } = request.into_inner();
        tracing::Span::current().record("sku.id", sku_id.as_str());
        let mut violations = Vec::new();
        let sku_id = domain::parse_uuid(&sku_id, "sku_id").map_err(|v| violations.push(v));
        if !(0..=domain::MAX_ON_HAND).contains(&on_hand) {
            violations.push(Violation::new(
                "on_hand",
                format!("must be between 0 and {}", domain::MAX_ON_HAND),
            ));
        }
        if expected_version < 0 {
            violations.push(Violation::new("expected_version", "must not be negative"));
        }
        let reason = domain::parse_reason(&reason, "reason", true).map_err(|v| violations.push(v));
        let key = domain::parse_idempotency_key(&idempotency_key).map_err(|v| violations.push(v));
        let (Ok(sku_id), Ok(reason), Ok(idempotency_key), true) =
            (sku_id, reason, key, violations.is_empty())
        else {
            return Err(StockError::Validation(violations).into());
        };
        let (actor_id, admin) = match access {
            Access::Admin(id) => (id, true),
            Access::Seller(id) => (id, false),
            Access::Internal => return Err(StockError::RoleRequired("ROLE_SELLER").into()),
        };
        let (stock, entry) = self
            .app
            .adjust(&AdjustCommand {
                sku_id,
                on_hand,
                expected_version,
                reason,
                idempotency_key,
                actor_id,
                admin,
            })
            .await?;
        Ok(Response::new(pb::AdjustStockResponse {
            stock: Some(stock_to_proto(&stock)),
            history_entry: Some(history_to_proto(&entry)?),
        }))
    }

    #[tracing::instrument(name = "stock.list_stock_history", skip_all, fields(sku.id))]
    async fn list_stock_history(
        &self,
        request: Request<pb::ListStockHistoryRequest>,
    ) -> GrpcResult<pb::ListStockHistoryResponse> {
        let access = owner_access(&request)?;
        let pb::ListStockHistoryRequest {
            sku_id,
            page_size: raw_page_size,
            page_token,
            kinds,
        } = request.into_inner();
        tracing::Span::current().record("sku.id", sku_id.as_str());
        let sku_id = parse_id(&sku_id, "sku_id")?;
        let size = page_size(raw_page_size)?;
        let kinds = kinds
            .into_iter()
            .enumerate()
            .map(|(index, kind)| kind_from_proto(kind, format!("kinds[{index}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StockError::from)?;
        let owner = match access {
            Access::Seller(id) => Some(id),
            Access::Admin(_) | Access::Internal => None,
        };
        let page = self
            .app
            .history(sku_id, owner, &kinds, &page_token, size)
            .await?;
        Ok(Response::new(pb::ListStockHistoryResponse {
            entries: page
                .entries
                .iter()
                .map(history_to_proto)
                .collect::<Result<Vec<_>, _>>()?,
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }
}
