//! The steps of a shipment, shared by the worker (the simulated carrier) and the operators' RPCs
//! (a real carrier): commit the stock, ship, deliver. Each runs with the shipment's row locked by
//! the caller's transaction, calls the other service first and writes the local change only
//! after that call succeeded, together with the buyer's notification request. The remote calls
//! are idempotent (a committed reservation commits again without change; a SHIPPED or FINISHED
//! order ignores a repeated Mark*), so a step interrupted anywhere — before the call, after it,
//! before the commit — is simply taken again, and the order sees one set of transitions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mercato_proto::mercato::common::v1::OrderStatus;
use mercato_proto::mercato::order::v1 as order_pb;
use mercato_proto::mercato::product::v1::CommitReservationRequest;
use sqlx::PgConnection;

use crate::context::ProcessContext;
use crate::domain::NotificationKind;
use crate::error::ProcessError;
use crate::notifications::events::{request_for_order, timestamp};
use crate::settings::CarrierMode;
use crate::shipments::store::{self, Handover, ShipmentRow};

/// Maps a status from `service` to our error: transient codes are `Unavailable` (retried),
/// everything else is a refusal that waiting will not heal.
pub fn remote_error(service: &'static str, status: &tonic::Status) -> ProcessError {
    use tonic::Code;
    let message = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Unknown
        | Code::Internal
        | Code::ResourceExhausted
        | Code::Aborted => ProcessError::Unavailable(format!("{service} service: {message}")),
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::DataLoss
        | Code::Unauthenticated => ProcessError::Refused { service, message },
    }
}

fn next_after(context: &ProcessContext, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let settings = &context.settings.fulfilment;
    match settings.carrier {
        CarrierMode::Simulated => Some(
            from + chrono::Duration::from_std(settings.shipment_delay)
                .unwrap_or(chrono::Duration::zero()),
        ),
        CarrierMode::Manual => None,
    }
}

/// Commits the order's stock reservation, records it and asks for the buyer's order-confirmed
/// notification.
pub async fn commit_stock(
    context: &ProcessContext,
    conn: &mut PgConnection,
    shipment: &ShipmentRow,
) -> Result<ShipmentRow, ProcessError> {
    let request = CommitReservationRequest {
        order_id: shipment.order_id.to_string(),
    };
    context
        .stock
        .clone()
        .commit_reservation(request)
        .await
        .map_err(|status| remote_error("product", &status))?;
    let now = context.clock.now();
    tracing::info!(shipment.id = %shipment.shipment_id, "stock reservation committed");
    let row =
        store::mark_committed(conn, shipment.shipment_id, next_after(context, now), now).await?;
    // Confirmed only now: an order.paid for an order that ended first never gets this far.
    let parameters: BTreeMap<String, String> = [
        ("order_id".to_owned(), shipment.order_id.to_string()),
        ("total".to_owned(), shipment.order_total.clone()),
    ]
    .into_iter()
    .collect();
    request_for_order(
        conn,
        shipment.user_id,
        shipment.order_id,
        NotificationKind::OrderConfirmed,
        parameters,
        now,
    )
    .await?;
    Ok(row)
}

/// Moves the order to SHIPPED with `handover`, then records the shipment SHIPPED and asks for
/// the buyer's shipped notification.
pub async fn ship(
    context: &ProcessContext,
    conn: &mut PgConnection,
    shipment: &ShipmentRow,
    handover: &Handover,
) -> Result<ShipmentRow, ProcessError> {
    let request = order_pb::MarkOrderShippedRequest {
        order_id: shipment.order_id.to_string(),
        shipment_id: shipment.shipment_id.to_string(),
        carrier: handover.carrier.clone(),
        tracking_number: handover.tracking_number.clone(),
        tracking_url: handover.tracking_url.clone().unwrap_or_default(),
        ship_time: Some(timestamp(handover.ship_time)),
    };
    context
        .orders
        .clone()
        .mark_order_shipped(request)
        .await
        .map_err(|status| remote_error("order", &status))?;
    let now = context.clock.now();
    let row = store::mark_shipped(
        conn,
        shipment.shipment_id,
        handover,
        next_after(context, handover.ship_time.max(now)),
        now,
    )
    .await?;
    let parameters: BTreeMap<String, String> = [
        ("order_id", shipment.order_id.to_string()),
        ("carrier", handover.carrier.clone()),
        ("tracking_number", handover.tracking_number.clone()),
        (
            "tracking_url",
            handover.tracking_url.clone().unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    request_for_order(
        conn,
        shipment.user_id,
        shipment.order_id,
        NotificationKind::OrderShipped,
        parameters,
        now,
    )
    .await?;
    tracing::info!(shipment.id = %shipment.shipment_id, tracking_number = %handover.tracking_number,
        "shipment handed to the carrier");
    Ok(row)
}

/// Moves the order to FINISHED, then records the shipment DELIVERED and asks for the buyer's
/// delivered notification.
pub async fn deliver(
    context: &ProcessContext,
    conn: &mut PgConnection,
    shipment: &ShipmentRow,
    deliver_time: DateTime<Utc>,
) -> Result<ShipmentRow, ProcessError> {
    let request = order_pb::MarkOrderFinishedRequest {
        order_id: shipment.order_id.to_string(),
        deliver_time: Some(timestamp(deliver_time)),
    };
    context
        .orders
        .clone()
        .mark_order_finished(request)
        .await
        .map_err(|status| remote_error("order", &status))?;
    let now = context.clock.now();
    let row = store::mark_delivered(conn, shipment.shipment_id, deliver_time, now).await?;
    let parameters: BTreeMap<String, String> =
        [("order_id".to_owned(), shipment.order_id.to_string())]
            .into_iter()
            .collect();
    request_for_order(
        conn,
        shipment.user_id,
        shipment.order_id,
        NotificationKind::OrderDelivered,
        parameters,
        now,
    )
    .await?;
    tracing::info!(shipment.id = %shipment.shipment_id, "shipment delivered");
    Ok(row)
}

/// The order's status as the order service reports it now.
pub async fn order_status(
    context: &ProcessContext,
    shipment: &ShipmentRow,
) -> Result<OrderStatus, ProcessError> {
    let response = context
        .orders
        .clone()
        .lookup_order(order_pb::LookupOrderRequest {
            order_id: shipment.order_id.to_string(),
        })
        .await
        .map_err(|status| remote_error("order", &status))?;
    let status = response
        .into_inner()
        .order
        .map(|o| o.status)
        .unwrap_or_default();
    Ok(OrderStatus::try_from(status).unwrap_or(OrderStatus::Unspecified))
}
