//! `notification.requested`: what the process service writes to its outbox when a shipment step
//! should tell the buyer (in the step's own transaction), and what its notifier consumes from
//! any service.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mercato_messaging::envelope::new_envelope;
use mercato_messaging::outbox;
use mercato_proto::mercato::common::v1::NotificationKind as PbKind;
use mercato_proto::mercato::events::v1::NotificationRequested;
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::NotificationKind;
use crate::error::ProcessError;
use crate::settings::SERVICE;

/// `notification.requested`.
pub const NOTIFICATION_REQUESTED: &str = "notification.requested";

/// A protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The wire kind.
pub fn kind_to_proto(kind: NotificationKind) -> PbKind {
    match kind {
        NotificationKind::Welcome => PbKind::Welcome,
        NotificationKind::OrderConfirmed => PbKind::OrderConfirmed,
        NotificationKind::PaymentFailed => PbKind::PaymentFailed,
        NotificationKind::OrderShipped => PbKind::OrderShipped,
        NotificationKind::OrderDelivered => PbKind::OrderDelivered,
        NotificationKind::OrderCancelled => PbKind::OrderCancelled,
        NotificationKind::OrderExpired => PbKind::OrderExpired,
        NotificationKind::RefundIssued => PbKind::RefundIssued,
        NotificationKind::LowStock => PbKind::LowStock,
    }
}

/// The domain kind of a wire value; `None` for UNSPECIFIED or unknown values.
pub fn kind_from_proto(raw: i32) -> Option<NotificationKind> {
    match PbKind::try_from(raw).ok()? {
        PbKind::Unspecified => None,
        PbKind::Welcome => Some(NotificationKind::Welcome),
        PbKind::OrderConfirmed => Some(NotificationKind::OrderConfirmed),
        PbKind::PaymentFailed => Some(NotificationKind::PaymentFailed),
        PbKind::OrderShipped => Some(NotificationKind::OrderShipped),
        PbKind::OrderDelivered => Some(NotificationKind::OrderDelivered),
        PbKind::OrderCancelled => Some(NotificationKind::OrderCancelled),
        PbKind::OrderExpired => Some(NotificationKind::OrderExpired),
        PbKind::RefundIssued => Some(NotificationKind::RefundIssued),
        PbKind::LowStock => Some(NotificationKind::LowStock),
    }
}

/// Writes `notification.requested` for `kind` about `order_id` to the outbox, deduplicated per
/// order and kind.
pub async fn request_for_order(
    conn: &mut PgConnection,
    user_id: Uuid,
    order_id: Uuid,
    kind: NotificationKind,
    parameters: BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(), ProcessError> {
    let dedupe_key = kind.order_key(&order_id.to_string());
    let payload = NotificationRequested {
        user_id: user_id.to_string(),
        kind: kind_to_proto(kind).into(),
        parameters: parameters.into_iter().collect(),
        dedupe_key: dedupe_key.clone(),
        order_id: order_id.to_string(),
        request_time: Some(timestamp(now)),
    };
    let envelope = new_envelope(
        NOTIFICATION_REQUESTED,
        "notification",
        dedupe_key,
        1,
        SERVICE,
        Some(prost_types::Any {
            type_url: "type.googleapis.com/mercato.events.v1.NotificationRequested".to_owned(),
            value: payload.encode_to_vec(),
        }),
    );
    outbox::enqueue(conn, &envelope).await?;
    Ok(())
}
