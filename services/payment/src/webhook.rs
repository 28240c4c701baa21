//! The provider webhook endpoint (`POST /webhooks/stripe`), in Stripe's event format, used by the
//! sandbox too.
//!
//! In order: the body is capped at 64 KiB (413 beyond); the `Stripe-Signature` header is
//! verified on the raw bytes (400 on any failure, with nothing written); the event is parsed only
//! for its id, type and object id (never for amounts or statuses); the payment of the intent is
//! looked up; the intent is re-fetched from its provider; then one transaction records the event
//! id (a duplicate is answered 200 and changes nothing) and applies the provider's status through
//! the monotonic state machine, with `order.paid` / `payment.failed` in the outbox. Events about
//! a connected account (`account.updated`) re-read the seller's account instead.
//!
//! The `payment.webhook` span is the root of a trace of its own (a provider sends no trace
//! context) with a link to the trace the payment was created in; `order.paid` continues the
//! webhook's trace.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use mercato_messaging::headers;
use serde::Deserialize;

use crate::context::PaymentContext;
use crate::error::PaymentError;
use crate::payments::settle::{self, Applied, EventRecord};
use crate::payments::store;
use crate::payouts;
use crate::signature;

/// Where providers post events.
pub const PATH: &str = "/webhooks/stripe";
/// The largest accepted body.
pub const MAX_BODY: usize = 64 * 1024;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: EventObject,
}

#[derive(Debug, Deserialize)]
struct EventObject {
    id: Option<String>,
    object: Option<String>,
}

/// The webhook route, with its body limit.
pub fn router(context: PaymentContext) -> Router {
    Router::new()
        .route(PATH, post(endpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(context)
}

async fn endpoint(
    State(context): State<PaymentContext>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    receive(&context, &headers, &body).await
}

/// Verifies and applies one event; the HTTP status and a short plain-text answer. The sandbox's
/// buttons call this with the events they sign, so both paths share every check.
#[tracing::instrument(name = "payment.webhook", skip_all, fields(event.id, event.r#type))]
pub async fn receive(
    context: &PaymentContext,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, String) {
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok());
    let tolerance = context.settings.payments.webhook_tolerance.as_secs();
    let now = context.clock.now().timestamp();
    if let Err(error) = signature::verify(header, body, &context.webhook_secrets, now, tolerance) {
        tracing::warn!(%error, "webhook refused");
        return (StatusCode::BAD_REQUEST, error.to_string());
    }
    let event: Event = match serde_json::from_slice(body) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "signed webhook body is not an event");
            return (StatusCode::BAD_REQUEST, "not an event".to_owned());
        }
    };
    let span = tracing::Span::current();
    span.record("event.id", event.id.as_str());
    // The field declared as `event.r#type` is named `event.type`.
    span.record("event.type", event.event_type.as_str());
    match apply(context, &event).await {
        Ok(answer) => (StatusCode::OK, answer),
        Err(error) if error.is_transient() => {
            // The provider retries a non-2xx answer later; our state is unchanged.
            tracing::warn!(%error, "webhook could not be applied now");
            (StatusCode::SERVICE_UNAVAILABLE, "retry later".to_owned())
        }
        Err(error) => {
            tracing::error!(%error, "webhook could not be applied");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            )
        }
    }
}

async fn apply(context: &PaymentContext, event: &Event) -> Result<String, PaymentError> {
    let record = EventRecord {
        id: &event.id,
        event_type: &event.event_type,
    };
    if let (Some(kind), Some(id)) = (&event.data.object.object, &event.data.object.id)
        && kind == "account"
    {
        // A seller's connected account changed (onboarding finished, disabled): re-read it.
        return payouts::accounts::account_updated(context, id, &record).await;
    }
    let intent_id = match (&event.data.object.object, &event.data.object.id) {
        (Some(kind), Some(id)) if kind == "payment_intent" => id,
        _ => {
            // Not about a payment intent: acknowledged so the provider stops sending it.
            let mut tx = context.pool.begin().await?;
            settle::record_event(&mut tx, &record, event.data.object.id.as_deref()).await?;
            tx.commit().await?;
            return Ok("ignored".to_owned());
        }
    };
    let mut conn = context.pool.acquire().await?;
    let payment = store::by_provider_id(&mut conn, intent_id).await?;
    drop(conn);
    let Some(payment) = payment else {
        tracing::warn!(intent.id = %intent_id, "webhook for an unknown intent");
        let mut tx = context.pool.begin().await?;
        settle::record_event(&mut tx, &record, Some(intent_id)).await?;
        tx.commit().await?;
        return Ok("unknown intent".to_owned());
    };
    // The event arrives in a trace of its own (the provider's request, or the sandbox page's);
    // a link to the trace the payment was created in ties the settlement to the checkout.
    headers::add_stored_link(&tracing::Span::current(), &payment.trace_context);
    Ok(
        match settle::settle_from_provider(context, &payment, Some(&record)).await? {
            Applied::Moved(status) => format!("payment {}", status.as_str()),
            Applied::Unchanged(status) => format!("unchanged {}", status.as_str()),
            Applied::Duplicate => "duplicate".to_owned(),
        },
    )
}
