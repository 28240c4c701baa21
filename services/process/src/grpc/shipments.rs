//! `ShipmentService`: reads of any shipment and the operator (or carrier integration) steps
//! MarkShipmentShipped / MarkShipmentDelivered, which take the same steps as the simulated
//! carrier under the shipment's row lock.

use mercato_proto::mercato::common::v1::{PostalAddress, ShipmentStatus as PbStatus};
use mercato_proto::mercato::process::v1 as pb;
use pb::shipment_service_server::ShipmentService;
use prost::Message as _;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::context::ProcessContext;
use crate::domain::{ShipmentStatus, valid_tracking_number};
use crate::error::{ProcessError, Violation};
use crate::grpc::{optional_uuid, past_time, require_admin_or_internal, uuid_field};
use crate::notifications::events::timestamp;
use crate::paging::{PageToken, page_limit};
use crate::shipments::fulfil;
use crate::shipments::store::{self, Handover, LineRow, ListFilter, ShipmentRow};

type GrpcResult<T> = Result<Response<T>, Status>;

/// The `ShipmentService` implementation.
#[derive(Debug, Clone)]
pub struct ShipmentGrpc {
    context: ProcessContext,
}

impl ShipmentGrpc {
    /// The service over `context`.
    pub fn new(context: ProcessContext) -> Self {
        Self { context }
    }

    async fn load(&self, id: Uuid) -> Result<pb::Shipment, ProcessError> {
        let mut conn = self.context.pool.acquire().await?;
        let row = store::get(&mut conn, id)
            .await?
            .ok_or_else(|| ProcessError::shipment_not_found(id))?;
        let lines = store::lines(&mut conn, id).await?;
        to_proto(&row, &lines)
    }
}

fn status_to_proto(status: ShipmentStatus) -> PbStatus {
    match status {
        ShipmentStatus::Preparing => PbStatus::Preparing,
        ShipmentStatus::Shipped => PbStatus::Shipped,
        ShipmentStatus::Delivered => PbStatus::Delivered,
        ShipmentStatus::Cancelled => PbStatus::Cancelled,
    }
}

fn status_from_proto(raw: i32) -> Option<ShipmentStatus> {
    match PbStatus::try_from(raw).ok()? {
        PbStatus::Unspecified => None,
        PbStatus::Preparing => Some(ShipmentStatus::Preparing),
        PbStatus::Shipped => Some(ShipmentStatus::Shipped),
        PbStatus::Delivered => Some(ShipmentStatus::Delivered),
        PbStatus::Cancelled => Some(ShipmentStatus::Cancelled),
    }
}

/// The wire form of a shipment. The tracking number is shown only once the parcel was handed
/// over (the simulated carrier's number exists from the start, but is not a promise yet).
pub fn to_proto(row: &ShipmentRow, lines: &[LineRow]) -> Result<pb::Shipment, ProcessError> {
    let status = row.status()?;
    let handed_over = status != ShipmentStatus::Preparing
        && !(status == ShipmentStatus::Cancelled && row.ship_time.is_none());
    let address = PostalAddress::decode(row.shipping_address.as_slice())
        .map_err(|e| ProcessError::Corrupt(format!("stored shipping address: {e}")))?;
    Ok(pb::Shipment {
        shipment_id: row.shipment_id.to_string(),
        order_id: row.order_id.to_string(),
        user_id: row.user_id.to_string(),
        status: status_to_proto(status).into(),
        carrier: row.carrier.clone(),
        tracking_number: if handed_over {
            row.tracking_number.clone()
        } else {
            String::new()
        },
        tracking_url: if handed_over {
            row.tracking_url.clone().unwrap_or_default()
        } else {
            String::new()
        },
        shipping_address: Some(address),
        lines: lines
            .iter()
            .map(|l| pb::ShipmentLine {
                sku_id: l.sku_id.clone(),
                sku_code: l.sku_code.clone(),
                product_name: l.product_name.clone(),
                quantity: l.quantity,
            })
            .collect(),
        create_time: Some(timestamp(row.create_time)),
        ship_time: row.ship_time.map(timestamp),
        deliver_time: row.deliver_time.map(timestamp),
        cancel_time: row.cancel_time.map(timestamp),
    })
}

fn illegal(row: &ShipmentRow, why: &str) -> Result<ProcessError, ProcessError> {
    Ok(ProcessError::IllegalState {
        resource_type: "shipment",
        current: row.status()?.as_str(),
        why: why.to_owned(),
    })
}

fn handover(
    r: &pb::MarkShipmentShippedRequest,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Uuid, Handover), ProcessError> {
    let mut violations = Vec::new();
    let id = match uuid_field(&r.shipment_id, "shipment_id") {
        Ok(id) => Some(id),
        Err(ProcessError::Validation(mut v)) => {
            violations.append(&mut v);
            None
        }
        Err(other) => return Err(other),
    };
    let carrier = r.carrier.trim();
    if carrier.is_empty() || carrier.chars().count() > 50 {
        violations.push(Violation::new("carrier", "must be 1 to 50 characters"));
    }
    if !valid_tracking_number(&r.tracking_number) {
        violations.push(Violation::new(
            "tracking_number",
            "must be 1 to 64 characters of letters, digits and -",
        ));
    }
    if !r.tracking_url.is_empty()
        && (!r.tracking_url.starts_with("https://")
            || r.tracking_url.len() > 2_048
            || r.tracking_url.len() <= "https://".len()
            || r.tracking_url.chars().any(char::is_whitespace))
    {
        violations.push(Violation::new(
            "tracking_url",
            "must be an https url of at most 2048 bytes",
        ));
    }
    let ship_time = past_time(r.ship_time.as_ref(), "ship_time", now, &mut violations);
    match id {
        Some(id) if violations.is_empty() => Ok((
            id,
            Handover {
                carrier: carrier.to_owned(),
                tracking_number: r.tracking_number.clone(),
                tracking_url: (!r.tracking_url.is_empty()).then(|| r.tracking_url.clone()),
                ship_time: ship_time.unwrap_or(now),
            },
        )),
        _ => Err(ProcessError::Validation(violations)),
    }
}

#[tonic::async_trait]
impl ShipmentService for ShipmentGrpc {
    #[tracing::instrument(name = "process.get_shipment", skip_all, fields(shipment.id))]
    async fn get_shipment(
        &self,
        request: Request<pb::GetShipmentRequest>,
    ) -> GrpcResult<pb::GetShipmentResponse> {
        require_admin_or_internal(&request)?;
        let id = uuid_field(&request.get_ref().shipment_id, "shipment_id")?;
        tracing::Span::current().record("shipment.id", id.to_string());
        Ok(Response::new(pb::GetShipmentResponse {
            shipment: Some(self.load(id).await?),
        }))
    }

    #[tracing::instrument(name = "process.list_shipments", skip_all)]
    async fn list_shipments(
        &self,
        request: Request<pb::ListShipmentsRequest>,
    ) -> GrpcResult<pb::ListShipmentsResponse> {
        require_admin_or_internal(&request)?;
        let r = request.get_ref();
        let mut violations = Vec::new();
        if r.page_size < 0 {
            violations.push(Violation::new("page_size", "must not be negative"));
        }
        let order_id = optional_uuid(&r.order_id, "order_id", &mut violations);
        let mut statuses = Vec::new();
        for (i, raw) in r.statuses.iter().enumerate() {
            match status_from_proto(*raw) {
                Some(status) => statuses.push(status),
                None => violations.push(Violation::new(
                    format!("statuses[{i}]"),
                    "must be a shipment status other than UNSPECIFIED",
                )),
            }
        }
        if !violations.is_empty() {
            return Err(ProcessError::Validation(violations).into());
        }
        let limit = page_limit(r.page_size)?;
        let filter = ListFilter { order_id, statuses };
        let hash = filter.hash();
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(PageToken::decode(&r.page_token, &hash)?)
        };
        let mut conn = self
            .context
            .pool
            .acquire()
            .await
            .map_err(ProcessError::from)?;
        let (rows, more) = store::list(&mut conn, &filter, after.as_ref(), limit).await?;
        let next_page_token = match rows.last() {
            Some(last) if more => PageToken {
                create_micros: last.create_time.timestamp_micros(),
                id: last.shipment_id,
                filter: hash,
            }
            .encode(),
            _ => String::new(),
        };
        let mut shipments = Vec::with_capacity(rows.len());
        for row in &rows {
            let lines = store::lines(&mut conn, row.shipment_id).await?;
            shipments.push(to_proto(row, &lines)?);
        }
        Ok(Response::new(pb::ListShipmentsResponse {
            shipments,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "process.mark_shipment_shipped", skip_all, fields(shipment.id))]
    async fn mark_shipment_shipped(
        &self,
        request: Request<pb::MarkShipmentShippedRequest>,
    ) -> GrpcResult<pb::MarkShipmentShippedResponse> {
        require_admin_or_internal(&request)?;
        let now = self.context.clock.now();
        let (id, handover) = handover(request.get_ref(), now)?;
        tracing::Span::current().record("shipment.id", id.to_string());
        let mut tx = self
            .context
            .pool
            .begin()
            .await
            .map_err(ProcessError::from)?;
        let row = store::get_for_update(&mut tx, id)
            .await?
            .ok_or_else(|| ProcessError::shipment_not_found(id))?;
        let row = match row.status()? {
            ShipmentStatus::Shipped if row.tracking_number == handover.tracking_number => row,
            ShipmentStatus::Shipped => {
                return Err(illegal(&row, "already shipped with another tracking number")?.into());
            }
            ShipmentStatus::Delivered | ShipmentStatus::Cancelled => {
                return Err(illegal(&row, "only a preparing shipment can be shipped")?.into());
            }
            ShipmentStatus::Preparing => {
                let row = if row.stock_committed {
                    row
                } else {
                    fulfil::commit_stock(&self.context, &mut tx, &row).await?
                };
                fulfil::ship(&self.context, &mut tx, &row, &handover).await?
            }
        };
        tx.commit().await.map_err(ProcessError::from)?;
        let lines = {
            let mut conn = self
                .context
                .pool
                .acquire()
                .await
                .map_err(ProcessError::from)?;
            store::lines(&mut conn, id).await?
        };
        Ok(Response::new(pb::MarkShipmentShippedResponse {
            shipment: Some(to_proto(&row, &lines)?),
        }))
    }

    #[tracing::instrument(name = "process.mark_shipment_delivered", skip_all, fields(shipment.id))]
    async fn mark_shipment_delivered(
        &self,
        request: Request<pb::MarkShipmentDeliveredRequest>,
    ) -> GrpcResult<pb::MarkShipmentDeliveredResponse> {
        require_admin_or_internal(&request)?;
        let now = self.context.clock.now();
        let r = request.get_ref();
        let id = uuid_field(&r.shipment_id, "shipment_id");
        let mut violations = match &id {
            Err(ProcessError::Validation(v)) => v.clone(),
            Ok(_) | Err(_) => Vec::new(),
        };
        let deliver_time = past_time(
            r.deliver_time.as_ref(),
            "deliver_time",
            now,
            &mut violations,
        );
        if !violations.is_empty() {
            return Err(ProcessError::Validation(violations).into());
        }
        let id = id?;
        tracing::Span::current().record("shipment.id", id.to_string());
        let mut tx = self
            .context
            .pool
            .begin()
            .await
            .map_err(ProcessError::from)?;
        let row = store::get_for_update(&mut tx, id)
            .await?
            .ok_or_else(|| ProcessError::shipment_not_found(id))?;
        let row = match row.status()? {
            ShipmentStatus::Delivered => row,
            ShipmentStatus::Preparing => {
                return Err(illegal(&row, "the shipment has not shipped yet")?.into());
            }
            ShipmentStatus::Cancelled => {
                return Err(illegal(&row, "the shipment was withdrawn")?.into());
            }
            ShipmentStatus::Shipped => {
                let deliver_time = deliver_time.unwrap_or(now);
                if row.ship_time.is_some_and(|shipped| deliver_time < shipped) {
                    return Err(ProcessError::field(
                        "deliver_time",
                        "must not be before the ship time",
                    )
                    .into());
                }
                fulfil::deliver(&self.context, &mut tx, &row, deliver_time).await?
            }
        };
        tx.commit().await.map_err(ProcessError::from)?;
        let lines = {
            let mut conn = self
                .context
                .pool
                .acquire()
                .await
                .map_err(ProcessError::from)?;
            store::lines(&mut conn, id).await?
        };
        Ok(Response::new(pb::MarkShipmentDeliveredResponse {
            shipment: Some(to_proto(&row, &lines)?),
        }))
    }
}
