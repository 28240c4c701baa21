//! The service's HTTP side beyond the probes: the webhook endpoint and the sandbox payment page.
//!
//! `GET /sandbox/payments/{intent}` shows what is being paid with a Pay and a Fail button;
//! `POST /sandbox/payments/{intent}/pay` (or `/fail`) settles the sandbox intent, then builds the
//! Stripe-format event (`payment_intent.succeeded` / `payment_intent.payment_failed`), signs it
//! with the first webhook secret and hands the raw bytes to [`webhook::receive`], the very code
//! that verifies and applies a provider's webhook.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Html;
use axum::routing::{get, post};
use secrecy::ExposeSecret as _;
use serde_json::json;
use uuid::Uuid;

use crate::context::PaymentContext;
use crate::domain::Observed;
use crate::provider::ProviderError;
use crate::provider::sandbox::Outcome;
use crate::{signature, webhook};

/// The webhook and sandbox routes.
pub fn router(context: PaymentContext) -> Router {
    let sandbox = Router::new()
        .route("/sandbox/payments/{intent_id}", get(page))
        .route("/sandbox/payments/{intent_id}/pay", post(pay))
        .route("/sandbox/payments/{intent_id}/fail", post(fail))
        .with_state(context.clone());
    webhook::router(context).merge(sandbox)
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

fn status_name(status: &Observed) -> &'static str {
    match status {
        Observed::RequiresAction => "requires_action",
        Observed::Processing => "processing",
        Observed::Succeeded => "succeeded",
        Observed::Failed { .. } => "failed",
        Observed::Cancelled => "canceled",
    }
}

fn shell(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title></head><body><main>{body}</main></body></html>",
        escape(title)
    ))
}

async fn page(
    State(context): State<PaymentContext>,
    Path(intent_id): Path<String>,
) -> (StatusCode, Html<String>) {
    match context.sandbox.describe(&intent_id).await {
        Ok((order_id, intent)) => {
            let status = status_name(&intent.status);
            let id = escape(&intent.id);
            let buttons = if matches!(
                intent.status,
                Observed::RequiresAction | Observed::Processing
            ) {
                format!(
                    "<form method=\"post\" action=\"/sandbox/payments/{id}/pay\">\
                     <button type=\"submit\">Pay</button></form>\
                     <form method=\"post\" action=\"/sandbox/payments/{id}/fail\">\
                     <button type=\"submit\">Fail</button></form>"
                )
            } else {
                String::new()
            };
            let body = format!(
                "<h1>Sandbox payment</h1><p>Order <code>{order_id}</code></p>\
                 <p>Amount <strong>{} {}</strong></p><p>Status <code>{status}</code></p>{buttons}",
                intent.amount,
                escape(&intent.currency)
            );
            (StatusCode::OK, shell("Sandbox payment", &body))
        }
        Err(ProviderError::NotFound(_)) => (
            StatusCode::NOT_FOUND,
            shell("Not found", "<h1>No such sandbox payment</h1>"),
        ),
        Err(error) => {
            tracing::warn!(%error, "sandbox page failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                shell("Unavailable", "<h1>Try again shortly</h1>"),
            )
        }
    }
}

async fn pay(
    State(context): State<PaymentContext>,
    Path(intent_id): Path<String>,
) -> (StatusCode, Html<String>) {
    press(&context, &intent_id, Outcome::Succeed).await
}

async fn fail(
    State(context): State<PaymentContext>,
    Path(intent_id): Path<String>,
) -> (StatusCode, Html<String>) {
    press(&context, &intent_id, Outcome::Fail).await
}

/// The Stripe-format event the sandbox posts for a settled intent.
pub fn sandbox_event(intent_id: &str, order_id: Uuid, outcome: Outcome, created: i64) -> Vec<u8> {
    let (event_type, status) = match outcome {
        Outcome::Succeed => ("payment_intent.succeeded", "succeeded"),
        Outcome::Fail => ("payment_intent.payment_failed", "requires_payment_method"),
    };
    json!({
        "id": format!("evt_sbx_{}", Uuid::now_v7().simple()),
        "object": "event",
        "created": created,
        "livemode": false,
        "type": event_type,
        "data": { "object": {
            "id": intent_id,
            "object": "payment_intent",
            "status": status,
            "metadata": { "order_id": order_id.to_string() }
        }}
    })
    .to_string()
    .into_bytes()
}

async fn press(
    context: &PaymentContext,
    intent_id: &str,
    outcome: Outcome,
) -> (StatusCode, Html<String>) {
    let intent = match context.sandbox.complete(intent_id, outcome).await {
        Ok(intent) => intent,
        Err(ProviderError::NotFound(_)) => {
            return (
                StatusCode::NOT_FOUND,
                shell("Not found", "<h1>No such sandbox payment</h1>"),
            );
        }
        Err(ProviderError::Rejected { message, .. }) => {
            return (
                StatusCode::CONFLICT,
                shell(
                    "Already settled",
                    &format!("<h1>Already settled</h1><p>{}</p>", escape(&message)),
                ),
            );
        }
        Err(error @ ProviderError::Unavailable(_)) => {
            tracing::warn!(%error, "sandbox button failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                shell("Unavailable", "<h1>Try again shortly</h1>"),
            );
        }
    };
    let (order_id, _) = match context.sandbox.describe(&intent.id).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "sandbox intent vanished");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                shell("Unavailable", "<h1>Try again shortly</h1>"),
            );
        }
    };
    let now = context.clock.now().timestamp();
    let body = sandbox_event(&intent.id, order_id, outcome, now);
    let secret = context
        .webhook_secrets
        .first()
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&signature::header(&[&secret], now, &body)) {
        headers.insert(webhook::SIGNATURE_HEADER, value);
    }
    let (status, answer) = webhook::receive(context, &headers, &body).await;
    let title = match outcome {
        Outcome::Succeed => "Paid",
        Outcome::Fail => "Payment failed",
    };
    (
        status,
        shell(
            title,
            &format!(
                "<h1>{title}</h1><p>Order <code>{order_id}</code></p><p>{}</p>",
                escape(&answer)
            ),
        ),
    )
}
