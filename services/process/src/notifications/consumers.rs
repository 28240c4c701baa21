//! The notifier's consumer (`process.notification-requests`, bound to `notification.requested`):
//! renders the template and queues the notification in the notification outbox, in the
//! transaction that records the event in the inbox. A second request with the same dedupe key
//! (from any service, with any event id) is dropped by the table's unique key.

use std::collections::BTreeMap;

use mercato_messaging::{ConsumerTopology, Handler, HandlerError, IncomingEvent, Namespace};
use mercato_proto::mercato::events::v1::NotificationRequested;
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::context::ProcessContext;
use crate::error::ProcessError;
use crate::notifications::events::{NOTIFICATION_REQUESTED, kind_from_proto};
use crate::notifications::sink::Sink;
use crate::notifications::store::{self, NewNotification};
use crate::settings::SERVICE;
use crate::wake;

/// Consumer name of the notification request queue.
pub const NOTIFICATION_REQUESTS: &str = "notification-requests";

/// The longest dedupe key accepted.
pub const MAX_DEDUPE_KEY: usize = 200;

/// The queue of [`NotificationRequestHandler`].
pub fn topology(namespace: &Namespace) -> Result<ConsumerTopology, mercato_messaging::Error> {
    ConsumerTopology::new(
        namespace,
        SERVICE,
        NOTIFICATION_REQUESTS,
        [NOTIFICATION_REQUESTED],
    )
}

/// Queues requested notifications.
#[derive(Debug, Clone)]
pub struct NotificationRequestHandler {
    context: ProcessContext,
}

impl NotificationRequestHandler {
    /// A handler over `context`.
    pub fn new(context: ProcessContext) -> Self {
        Self { context }
    }
}

/// The notification a request asks for, or why it can never be queued.
pub fn parse(request: &NotificationRequested, sink: &Sink) -> Result<NewNotification, String> {
    let user_id = Uuid::parse_str(&request.user_id)
        .map_err(|_| format!("user_id {:?} is not a uuid", request.user_id))?;
    let kind = kind_from_proto(request.kind)
        .ok_or_else(|| format!("kind {} is not a notification kind", request.kind))?;
    if request.dedupe_key.is_empty() || request.dedupe_key.len() > MAX_DEDUPE_KEY {
        return Err(format!("dedupe_key must be 1 to {MAX_DEDUPE_KEY} bytes"));
    }
    let order_id = if request.order_id.is_empty() {
        None
    } else {
        Some(
            Uuid::parse_str(&request.order_id)
                .map_err(|_| format!("order_id {:?} is not a uuid", request.order_id))?,
        )
    };
    let parameters: BTreeMap<String, String> = request
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (subject, body) = kind.render(&parameters);
    Ok(NewNotification {
        dedupe_key: request.dedupe_key.clone(),
        user_id,
        kind,
        channel: sink.channel(),
        recipient: sink.queued_recipient(user_id),
        subject,
        body,
        parameters,
        order_id,
    })
}

fn handler_error(err: ProcessError) -> HandlerError {
    if err.is_transient() {
        HandlerError::retryable(err)
    } else {
        HandlerError::permanent(err)
    }
}

impl Handler for NotificationRequestHandler {
    async fn handle(
        &self,
        event: &IncomingEvent,
        conn: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        if event.envelope.event_type != NOTIFICATION_REQUESTED {
            return Err(HandlerError::permanent(format!(
                "unexpected event type {}",
                event.envelope.event_type
            )));
        }
        let payload = event
            .envelope
            .payload
            .as_ref()
            .ok_or_else(|| HandlerError::permanent("the event has no payload"))?;
        let request = NotificationRequested::decode(payload.value.as_slice()).map_err(|e| {
            HandlerError::permanent(format!("undecodable NotificationRequested: {e}"))
        })?;
        let new = parse(&request, &self.context.notifier).map_err(HandlerError::permanent)?;
        let queued = store::insert_if_absent(conn, &new, self.context.clock.now())
            .await
            .map_err(handler_error)?;
        if queued {
            wake::notify(conn, store::CHANNEL).await?;
        } else {
            tracing::info!(notification.dedupe_key = %new.dedupe_key,
                "a notification with this dedupe key exists; dropped");
        }
        Ok(())
    }
}
