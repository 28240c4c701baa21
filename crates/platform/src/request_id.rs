//! The request id (`x-request-id`) that follows one browser request through every service.
//!
//! The BFF's edge assigns it (the client's own when well-formed, a fresh UUID otherwise); the
//! server stack of every service reads it from the incoming metadata, records it as the
//! `request_id` field of the `grpc.server` span (so every log line of the call carries it) and
//! scopes it as the task's current request id; the client channel copies the current id into
//! the metadata of every outgoing call. It is a correlation handle for logs and support tickets,
//! never an authority: nothing is decided by it.

use std::future::Future;

use http::{HeaderMap, HeaderValue};
use uuid::Uuid;

/// Metadata key (HTTP header) of the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest request id accepted from a caller.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A well-formed request id: 1-128 ASCII letters, digits, `-`, `_` or `.`, so it is safe in a
/// header, a log line and a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// `raw` when it is well-formed.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::from_value(&HeaderValue::from_str(raw).ok()?)
    }

    /// A fresh random id (a UUID).
    pub fn generate() -> Self {
        let id = Uuid::new_v4().hyphenated().to_string();
        // A hyphenated UUID is always a valid header value; the fallback is never used.
        Self(HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown")))
    }

    /// The id carried by `headers`, when present and well-formed.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers.get(REQUEST_ID_HEADER).and_then(Self::from_value)
    }

    fn from_value(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let well_formed = !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        well_formed.then(|| Self(value.clone()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever accepted, so this cannot fail.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }

    /// Writes the id into `headers` (replacing any other).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(REQUEST_ID_HEADER, self.0.clone());
    }

    /// Records the id as the `request_id` field of the current span (the `grpc.server` span
    /// declares it), so every log line inside the span carries it.
    pub fn record_on_current_span(&self) {
        tracing::Span::current().record("request_id", self.as_str());
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    static CURRENT: Option<RequestId>;
}

/// Runs `future` with `request_id` as the task's current request id (what client channels
/// forward). The server stack does this for every call; the BFF's edge after assigning one.
pub async fn scope<F: Future>(request_id: Option<RequestId>, future: F) -> F::Output {
    CURRENT.scope(request_id, future).await
}

/// The current request id set by [`scope`], if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_ids_are_accepted() {
        assert_eq!(
            RequestId::parse("abc-123_x.y").map(|id| id.to_string()),
            Some("abc-123_x.y".to_owned())
        );
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("has space").is_none());
        assert!(RequestId::parse("new\nline").is_none());
        assert!(RequestId::parse(&"a".repeat(MAX_REQUEST_ID_LEN)).is_some());
        assert!(RequestId::parse(&"a".repeat(MAX_REQUEST_ID_LEN + 1)).is_none());
    }

    #[test]
    fn generated_ids_are_well_formed_and_unique() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()), Some(a));
    }

    #[tokio::test]
    async fn the_current_id_is_scoped_to_the_future() {
        assert_eq!(current(), None);
        let id = RequestId::parse("req-1");
        let seen = scope(id.clone(), async { current() }).await;
        assert_eq!(seen, id);
        assert_eq!(current(), None);
    }
}
