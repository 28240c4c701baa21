//! Building and validating `EventEnvelope`s, the body of every message on the bus.

use mercato_proto::mercato::events::v1::EventEnvelope;
use uuid::Uuid;

use crate::Error;

/// A new envelope with a fresh time-ordered event id (UUIDv7) and
/// `occurred_at` = now. Producers call this inside the transaction that makes
/// the change, then hand the envelope to `outbox::enqueue`.
pub fn new_envelope(
    event_type: impl Into<String>,
    aggregate_type: impl Into<String>,
    aggregate_id: impl Into<String>,
    aggregate_version: i64,
    producer: impl Into<String>,
    payload: Option<prost_types::Any>,
) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7().to_string(),
        event_type: event_type.into(),
        occurred_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        aggregate_type: aggregate_type.into(),
        aggregate_id: aggregate_id.into(),
        aggregate_version,
        producer: producer.into(),
        payload,
    }
}

/// Checks the fields the bus relies on and returns the parsed event id:
/// `event_id` is a UUID (consumers deduplicate by it), `event_type` is a
/// non-empty routing key of at most 255 bytes, `producer` fits an AMQP short string.
pub fn validate(envelope: &EventEnvelope) -> Result<Uuid, Error> {
    let id = Uuid::parse_str(&envelope.event_id).map_err(|_| {
        Error::InvalidEnvelope(format!("event_id {:?} is not a uuid", envelope.event_id))
    })?;
    if envelope.event_type.is_empty() || envelope.event_type.len() > 255 {
        return Err(Error::InvalidEnvelope(
            "event_type must be 1 to 255 bytes".to_owned(),
        ));
    }
    if envelope.producer.len() > 255 {
        return Err(Error::InvalidEnvelope(
            "producer must be at most 255 bytes".to_owned(),
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_envelopes_are_valid_and_unique() {
        let a = new_envelope("order.created", "order", "o-1", 1, "order", None);
        let b = new_envelope("order.created", "order", "o-1", 1, "order", None);
        assert!(validate(&a).is_ok());
        assert_ne!(a.event_id, b.event_id);
        assert!(a.occurred_at.is_some());
    }

    #[test]
    fn an_envelope_without_a_uuid_is_refused() {
        let mut envelope = new_envelope("order.created", "order", "o-1", 1, "order", None);
        envelope.event_id = "not-a-uuid".to_owned();
        assert!(matches!(
            validate(&envelope),
            Err(Error::InvalidEnvelope(_))
        ));
    }

    #[test]
    fn an_envelope_without_an_event_type_is_refused() {
        let mut envelope = new_envelope("order.created", "order", "o-1", 1, "order", None);
        envelope.event_type.clear();
        assert!(matches!(
            validate(&envelope),
            Err(Error::InvalidEnvelope(_))
        ));
        envelope.event_type = "x".repeat(256);
        assert!(matches!(
            validate(&envelope),
            Err(Error::InvalidEnvelope(_))
        ));
    }
}
