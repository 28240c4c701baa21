//! AMQP header names, typed header access, and W3C trace-context propagation through AMQP headers.

use std::collections::HashMap;

use lapin::types::{AMQPValue, FieldTable, ShortString};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector},
    trace::TraceContextExt as _,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The attempt number a delivery is (1 for the first), persisted in the
/// message itself so the count survives consumer restarts. In a DLQ message
/// it is the number of attempts that were made.
pub const ATTEMPT: &str = "x-mercato-attempt";
/// The error of the most recent failed attempt.
pub const LAST_ERROR: &str = "x-mercato-last-error";
/// Why a message was dead-lettered (see `DeadLetterReason`).
pub const DEAD_LETTER_REASON: &str = "x-mercato-dead-letter-reason";
/// The consumer queue that gave up on the message.
pub const DEAD_LETTER_CONSUMER: &str = "x-mercato-dead-letter-consumer";
/// When the message was dead-lettered (AMQP timestamp, seconds since the epoch).
pub const DEAD_LETTERED_AT: &str = "x-mercato-dead-lettered-at";
/// The exchange the message was first published to.
pub const ORIGINAL_EXCHANGE: &str = "x-mercato-original-exchange";
/// The routing key the message was first published with.
pub const ORIGINAL_ROUTING_KEY: &str = "x-mercato-original-routing-key";
/// Set by quorum queues: how many times the broker has delivered this message before.
pub const DELIVERY_COUNT: &str = "x-delivery-count";
/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C trace-state header.
pub const TRACESTATE: &str = "tracestate";

/// Writes OpenTelemetry propagation fields into AMQP headers.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagators emit short lowercase keys; a key over 255 bytes cannot be
        // an AMQP field name, so it is skipped rather than panicking.
        if let Ok(key) = ShortString::try_new(key.to_ascii_lowercase()) {
            self.0.insert(key, AMQPValue::LongString(value.into()));
        }
    }
}

/// Reads OpenTelemetry propagation fields from AMQP headers.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a FieldTable);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.inner().get(key).and_then(value_as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(ShortString::as_str).collect()
    }
}

/// Injects `cx` into `headers` with the global propagator.
pub fn inject_context(cx: &Context, headers: &mut FieldTable) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut HeaderInjector(headers));
    });
}

/// Injects the context of the current tracing span into `headers`.
pub fn inject_current_span(headers: &mut FieldTable) {
    inject_context(&tracing::Span::current().context(), headers);
}

/// Extracts the remote context carried by `headers` with the global propagator.
pub fn extract_context(headers: &FieldTable) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Captures the current span's context as plain strings (stored with outbox rows).
pub fn capture_current_span() -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&tracing::Span::current().context(), &mut carrier);
    });
    carrier
}

/// The context captured by [`capture_current_span`] and stored (with an outbox row, a payment, a
/// shipment), read back with the global propagator; empty when nothing valid was stored.
pub fn extract_stored(stored: &HashMap<String, String>) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(stored))
}

/// Makes the stored context the parent of `span`, for work that continues a trace later (a
/// worker step of something a consumer recorded). Call before `span` is first entered; without a
/// stored context, or without an OpenTelemetry layer, `span` stays a root.
pub fn set_stored_parent(span: &tracing::Span, stored: &HashMap<String, String>) {
    let _ = span.set_parent(extract_stored(stored));
}

/// Links `span` to the stored context, for work that has a trace of its own but was caused by
/// the stored one (a provider's webhook about a payment created in a checkout's trace). Works on
/// a span already entered; nothing happens without a valid stored context.
pub fn add_stored_link(span: &tracing::Span, stored: &HashMap<String, String>) {
    let context = extract_stored(stored);
    let linked = context.span().span_context().clone();
    span.add_link(linked);
}

/// A string-valued header (long or short string, valid UTF-8).
pub fn get_str<'a>(headers: &'a FieldTable, key: &str) -> Option<&'a str> {
    headers.inner().get(key).and_then(value_as_str)
}

/// A non-negative integer header of any AMQP integer width (brokers and
/// clients disagree on widths, e.g. RabbitMQ writes `x-delivery-count` as a long).
pub fn get_u64(headers: &FieldTable, key: &str) -> Option<u64> {
    let value = headers.inner().get(key)?;
    let signed: i128 = match value {
        AMQPValue::ShortShortInt(v) => i128::from(*v),
        AMQPValue::ShortShortUInt(v) => i128::from(*v),
        AMQPValue::ShortInt(v) => i128::from(*v),
        AMQPValue::ShortUInt(v) => i128::from(*v),
        AMQPValue::LongInt(v) => i128::from(*v),
        AMQPValue::LongUInt(v) => i128::from(*v),
        AMQPValue::LongLongInt(v) => i128::from(*v),
        AMQPValue::Timestamp(v) => i128::from(*v),
        AMQPValue::Boolean(_)
        | AMQPValue::Float(_)
        | AMQPValue::Double(_)
        | AMQPValue::DecimalValue(_)
        | AMQPValue::ShortString(_)
        | AMQPValue::LongString(_)
        | AMQPValue::FieldArray(_)
        | AMQPValue::FieldTable(_)
        | AMQPValue::ByteArray(_)
        | AMQPValue::Void => return None,
    };
    u64::try_from(signed).ok()
}

/// Sets a string header (AMQP long string, so any length is accepted).
pub fn set_str(headers: &mut FieldTable, key: &'static str, value: &str) {
    headers.insert(key.into(), AMQPValue::LongString(value.into()));
}

/// Sets an integer header (AMQP signed 64-bit, what RabbitMQ itself uses).
pub fn set_u64(headers: &mut FieldTable, key: &'static str, value: u64) {
    headers.insert(
        key.into(),
        AMQPValue::LongLongInt(i64::try_from(value).unwrap_or(i64::MAX)),
    );
}

/// Copies string pairs (e.g. trace context stored with an outbox row) into headers.
pub fn extend_from_map(headers: &mut FieldTable, map: &HashMap<String, String>) {
    for (key, value) in map {
        HeaderInjector(headers).set(key, value.clone());
    }
}

fn value_as_str(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        AMQPValue::Boolean(_)
        | AMQPValue::ShortShortInt(_)
        | AMQPValue::ShortShortUInt(_)
        | AMQPValue::ShortInt(_)
        | AMQPValue::ShortUInt(_)
        | AMQPValue::LongInt(_)
        | AMQPValue::LongUInt(_)
        | AMQPValue::LongLongInt(_)
        | AMQPValue::Float(_)
        | AMQPValue::Double(_)
        | AMQPValue::DecimalValue(_)
        | AMQPValue::FieldArray(_)
        | AMQPValue::Timestamp(_)
        | AMQPValue::FieldTable(_)
        | AMQPValue::ByteArray(_)
        | AMQPValue::Void => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    fn remote_context() -> Context {
        let span_context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid trace id"),
            SpanId::from_hex("00f067aa0ba902b7").expect("valid span id"),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).expect("valid trace state"),
        );
        Context::new().with_remote_span_context(span_context)
    }

    #[test]
    fn trace_context_survives_a_round_trip_through_amqp_headers() {
        let propagator = TraceContextPropagator::new();
        let mut headers = FieldTable::default();
        propagator.inject_context(&remote_context(), &mut HeaderInjector(&mut headers));

        assert_eq!(
            get_str(&headers, TRACEPARENT),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(get_str(&headers, TRACESTATE), Some("vendor=value"));

        let extracted = propagator.extract(&HeaderExtractor(&headers));
        let span = extracted.span();
        let span_context = span.span_context();
        assert_eq!(
            span_context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid trace id")
        );
        assert!(span_context.is_remote());
        assert!(span_context.is_sampled());
    }

    #[test]
    fn the_extractor_reads_short_strings_and_skips_non_strings() {
        let mut headers = FieldTable::default();
        headers.insert("a".into(), AMQPValue::ShortString("short".into()));
        headers.insert("b".into(), AMQPValue::LongInt(7));
        headers.insert("c".into(), AMQPValue::LongString(vec![0xff, 0xfe].into()));
        let extractor = HeaderExtractor(&headers);
        assert_eq!(extractor.get("a"), Some("short"));
        assert_eq!(extractor.get("b"), None);
        assert_eq!(extractor.get("c"), None, "invalid utf-8 is not a string");
        assert_eq!(extractor.keys(), ["a", "b", "c"]);
    }

    #[test]
    fn integer_headers_of_every_width_are_read() {
        let mut headers = FieldTable::default();
        headers.insert("byte".into(), AMQPValue::ShortShortUInt(3));
        headers.insert("long".into(), AMQPValue::LongInt(4));
        headers.insert("longlong".into(), AMQPValue::LongLongInt(5));
        headers.insert("negative".into(), AMQPValue::LongInt(-1));
        headers.insert("text".into(), AMQPValue::LongString("6".into()));
        assert_eq!(get_u64(&headers, "byte"), Some(3));
        assert_eq!(get_u64(&headers, "long"), Some(4));
        assert_eq!(get_u64(&headers, "longlong"), Some(5));
        assert_eq!(get_u64(&headers, "negative"), None);
        assert_eq!(get_u64(&headers, "text"), None);
        assert_eq!(get_u64(&headers, "missing"), None);
    }

    #[test]
    fn written_headers_read_back() {
        let mut headers = FieldTable::default();
        set_u64(&mut headers, ATTEMPT, 3);
        set_str(&mut headers, LAST_ERROR, &"x".repeat(1_000));
        assert_eq!(get_u64(&headers, ATTEMPT), Some(3));
        assert_eq!(get_str(&headers, LAST_ERROR).map(str::len), Some(1_000));
    }

    #[test]
    fn a_stored_context_reads_back_and_an_empty_one_is_no_parent() {
        // What telemetry installs; harmless for the other tests of this binary.
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let stored = HashMap::from([(
            TRACEPARENT.to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        )]);
        let context = extract_stored(&stored);
        let span = context.span();
        assert_eq!(
            span.span_context().span_id(),
            SpanId::from_hex("00f067aa0ba902b7").expect("valid span id")
        );
        assert!(span.span_context().is_remote());
        let empty = extract_stored(&HashMap::new());
        assert!(!empty.span().span_context().is_valid());
    }

    #[test]
    fn stored_string_maps_are_copied_into_headers() {
        let map = HashMap::from([("traceparent".to_owned(), "00-abc".to_owned())]);
        let mut headers = FieldTable::default();
        extend_from_map(&mut headers, &map);
        assert_eq!(get_str(&headers, TRACEPARENT), Some("00-abc"));
    }
}
