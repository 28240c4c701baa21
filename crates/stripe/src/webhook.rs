//! Reading a webhook's event: raw JSON → the few fields we act on.
//!
//! **Verify the `Stripe-Signature` header on the raw bytes first** (HMAC-SHA256 of
//! `"{t}.{body}"` with the endpoint secret, compared in constant time against every `v1=` value,
//! `t` within the tolerance); that belongs to the webhook endpoint, which owns the secret and
//! the clock. Only then call [`parse_event`]. Parsing is deliberately lenient about everything
//! but the fields below, so the same code reads events from Stripe's current API and from
//! localstripe's older one. The object inside is not trusted either: re-fetch the PaymentIntent
//! with [`crate::StripeClient::retrieve_payment_intent`] before changing any state.

use serde::Deserialize;

/// The part of a Stripe event we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `evt_…`: deduplicate on it (Stripe delivers at least once).
    pub id: String,
    pub kind: EventKind,
    /// Unix seconds when the event was created (not when it was delivered).
    pub created: i64,
    pub livemode: bool,
    /// The PaymentIntent the event is about: `data.object.id` for `payment_intent.*` events,
    /// `data.object.payment_intent` for charges and refunds.
    pub payment_intent_id: Option<String>,
    /// The connected account an `account.*` event is about (`data.object.id`); re-fetch it
    /// with [`crate::StripeClient::retrieve_account`].
    pub account_id: Option<String>,
}

/// Event types we react to; the rest are [`EventKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    PaymentIntentCreated,
    PaymentIntentProcessing,
    PaymentIntentRequiresAction,
    PaymentIntentSucceeded,
    PaymentIntentPaymentFailed,
    PaymentIntentCanceled,
    ChargeRefunded,
    /// A connected account changed (onboarding finished, capabilities enabled or disabled).
    AccountUpdated,
    Other(String),
}

impl EventKind {
    pub fn from_type(event_type: &str) -> Self {
        match event_type {
            "payment_intent.created" => Self::PaymentIntentCreated,
            "payment_intent.processing" => Self::PaymentIntentProcessing,
            "payment_intent.requires_action" => Self::PaymentIntentRequiresAction,
            "payment_intent.succeeded" => Self::PaymentIntentSucceeded,
            "payment_intent.payment_failed" => Self::PaymentIntentPaymentFailed,
            "payment_intent.canceled" => Self::PaymentIntentCanceled,
            "charge.refunded" => Self::ChargeRefunded,
            "account.updated" => Self::AccountUpdated,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Stripe's `type` string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::PaymentIntentCreated => "payment_intent.created",
            Self::PaymentIntentProcessing => "payment_intent.processing",
            Self::PaymentIntentRequiresAction => "payment_intent.requires_action",
            Self::PaymentIntentSucceeded => "payment_intent.succeeded",
            Self::PaymentIntentPaymentFailed => "payment_intent.payment_failed",
            Self::PaymentIntentCanceled => "payment_intent.canceled",
            Self::ChargeRefunded => "charge.refunded",
            Self::AccountUpdated => "account.updated",
            Self::Other(other) => other,
        }
    }
}

/// The payload is not a Stripe event.
#[derive(Debug, thiserror::Error)]
#[error("not a stripe event: {0}")]
pub struct EventParseError(String);

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: RawObject,
}

#[derive(Deserialize)]
struct RawObject {
    id: Option<String>,
    object: Option<String>,
    payment_intent: Option<serde_json::Value>,
}

/// Parses a (signature-verified) webhook body.
pub fn parse_event(payload: &[u8]) -> Result<WebhookEvent, EventParseError> {
    let raw: RawEvent =
        serde_json::from_slice(payload).map_err(|err| EventParseError(err.to_string()))?;
    if !raw.id.starts_with("evt_") {
        return Err(EventParseError(format!(
            "event id {:?} does not start with evt_",
            raw.id
        )));
    }
    let object = raw.data.object;
    let account_id = if object.object.as_deref() == Some("account") {
        object.id.clone()
    } else {
        None
    };
    let payment_intent_id = if object.object.as_deref() == Some("payment_intent") {
        object.id
    } else {
        // A charge or refund names its PaymentIntent by id, or embeds it when expanded.
        match object.payment_intent {
            Some(serde_json::Value::String(id)) => Some(id),
            Some(serde_json::Value::Object(pi)) => {
                pi.get("id").and_then(|id| id.as_str()).map(str::to_owned)
            }
            Some(_) | None => None,
        }
    };
    Ok(WebhookEvent {
        id: raw.id,
        kind: EventKind::from_type(&raw.event_type),
        created: raw.created,
        livemode: raw.livemode,
        payment_intent_id,
        account_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_intent_event_names_its_payment_intent() {
        let body = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":1700000000,
            "livemode":false,"data":{"object":{"id":"pi_1","object":"payment_intent","status":"succeeded"}}}"#;
        let event = parse_event(body).expect("an event");
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.kind, EventKind::PaymentIntentSucceeded);
        assert_eq!(event.created, 1_700_000_000);
        assert_eq!(event.payment_intent_id.as_deref(), Some("pi_1"));
    }

    #[test]
    fn a_charge_event_names_the_payment_intent_it_belongs_to() {
        let body = br#"{"id":"evt_2","type":"charge.refunded","created":1,
            "data":{"object":{"id":"ch_1","object":"charge","payment_intent":"pi_2"}}}"#;
        let event = parse_event(body).expect("an event");
        assert_eq!(event.kind, EventKind::ChargeRefunded);
        assert_eq!(event.payment_intent_id.as_deref(), Some("pi_2"));
    }

    #[test]
    fn an_account_event_names_its_account() {
        let body = br#"{"id":"evt_4","type":"account.updated","created":1,
            "data":{"object":{"id":"acct_1","object":"account","payouts_enabled":true}}}"#;
        let event = parse_event(body).expect("an event");
        assert_eq!(event.kind, EventKind::AccountUpdated);
        assert_eq!(event.account_id.as_deref(), Some("acct_1"));
        assert_eq!(event.payment_intent_id, None);
    }

    #[test]
    fn unknown_event_types_are_kept_by_name() {
        let body = br#"{"id":"evt_3","type":"customer.created","created":1,
            "data":{"object":{"id":"cus_1","object":"customer"}}}"#;
        let event = parse_event(body).expect("an event");
        assert_eq!(event.kind, EventKind::Other("customer.created".to_owned()));
        assert_eq!(event.kind.as_str(), "customer.created");
        assert_eq!(event.payment_intent_id, None);
    }

    #[test]
    fn payloads_that_are_not_events_are_refused() {
        for body in [
            &b""[..],
            b"{}",
            b"[]",
            br#"{"id":"evt_1","type":"payment_intent.succeeded","created":1}"#,
            br#"{"id":"pi_1","type":"payment_intent.succeeded","created":1,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"payment_intent.succeeded","created":"yesterday","data":{"object":{}}}"#,
        ] {
            assert!(parse_event(body).is_err(), "{} accepted", String::from_utf8_lossy(body));
        }
    }
}
