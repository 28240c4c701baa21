//! Webhook signatures in Stripe's scheme: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=…]`,
//! where each `v1` is HMAC-SHA256 over `"<t>.<raw body>"` with one signing secret.
//!
//! Verification runs on the raw bytes as received (never a re-serialised body), compares in
//! constant time (`Mac::verify_slice`), refuses a timestamp further than the tolerance from now
//! (replays), and accepts the request when any `v1` matches any configured secret, so a secret
//! can be rotated while the provider still signs with the old one.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("missing signature header")]
    Missing,
    /// The header has no timestamp or no parseable `v1`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// No `v1` matches any secret.
    #[error("no signature matches")]
    Mismatch,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The hex `v1` signature of `body` at `timestamp` with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex(&mac(secret, timestamp, body).finalize().into_bytes())
}

/// A complete `Stripe-Signature` header value with one `v1` per secret.
pub fn header(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&sign(secret, timestamp, body));
    }
    value
}

/// Verifies `header` for `body` against `secrets` at unix time `now`; returns the signed
/// timestamp.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    now: i64,
    tolerance_secs: u64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = value.parse::<i64>().ok(),
            // Unparseable v1 values are skipped: another one may still match.
            "v1" => signatures.extend(unhex(value)),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    if now.saturating_sub(timestamp).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    let matched = secrets.iter().any(|secret| {
        let mac = mac(secret.expose_secret(), timestamp, body);
        signatures
            .iter()
            .any(|signature| mac.clone().verify_slice(signature).is_ok())
    });
    if matched {
        Ok(timestamp)
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn secrets(values: &[&str]) -> Vec<SecretString> {
        values.iter().map(|s| SecretString::from(*s)).collect()
    }

    #[test]
    fn matches_stripes_published_construction() {
        // HMAC-SHA256("whsec_test", "1700000000.{}") computed independently.
        let body = br#"{}"#;
        let expected = {
            let mut mac = HmacSha256::new_from_slice(b"whsec_test").expect("key");
            mac.update(b"1700000000.{}");
            hex(&mac.finalize().into_bytes())
        };
        assert_eq!(sign("whsec_test", NOW, body), expected);
        assert_eq!(expected.len(), 64);
    }

    #[test]
    fn a_valid_signature_within_the_tolerance_is_accepted() {
        let body = br#"{"id":"evt_1"}"#;
        let value = header(&["whsec_a"], NOW - 300, body);
        assert_eq!(
            verify(Some(&value), body, &secrets(&["whsec_a"]), NOW, 300),
            Ok(NOW - 300)
        );
    }

    #[test]
    fn a_signature_301_seconds_old_is_stale() {
        let body = br#"{"id":"evt_1"}"#;
        let value = header(&["whsec_a"], NOW - 301, body);
        assert_eq!(
            verify(Some(&value), body, &secrets(&["whsec_a"]), NOW, 300),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn a_changed_body_or_another_secret_does_not_match() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let value = header(&["whsec_a"], NOW, body);
        let reserialized = br#"{"id": "evt_1", "type": "payment_intent.succeeded"}"#;
        assert_eq!(
            verify(Some(&value), reserialized, &secrets(&["whsec_a"]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&value), body, &secrets(&["whsec_b"]), NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_v1_matching_any_secret_is_accepted_for_rotation() {
        let body = br#"{"id":"evt_2"}"#;
        let value = header(&["whsec_unknown", "whsec_old"], NOW, body);
        assert!(
            verify(
                Some(&value),
                body,
                &secrets(&["whsec_new", "whsec_old"]),
                NOW,
                300
            )
            .is_ok()
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_refused() {
        let body = b"{}";
        let all = secrets(&["whsec_a"]);
        assert_eq!(
            verify(None, body, &all, NOW, 300),
            Err(SignatureError::Missing)
        );
        for bad in [
            "",
            "t=abc,v1=00",
            "v1=00",
            "t=1700000000",
            "t=1700000000,v1=zz",
        ] {
            assert_eq!(
                verify(Some(bad), body, &all, NOW, 300),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }
}
