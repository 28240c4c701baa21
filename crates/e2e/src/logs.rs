//! A log writer that keeps everything written to it, for tests that read the JSON log lines a
//! run produced, and scanners for credentials that must never appear in a log line: a bearer
//! credential, a JWT, a payment card number.

use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

/// The captured output; clones share one buffer.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer lock")).into_owned()
    }

    /// Every line that parses as a JSON object.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("log buffer lock")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The first `Bearer <credential>` in `line` (any case, as an `authorization` value would be
/// written), e.g. `Bearer eyJ…` or `bearer sk_test_…`: a credential is at least 8 `b64token`
/// characters with a digit or punctuation in it, so prose ("a bearer token is required") is not
/// one.
pub fn bearer_credential(line: &str) -> Option<&str> {
    let lower = line.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("bearer") {
        let start = from + found;
        let rest = &line[start + "bearer".len()..];
        let credential = rest.trim_start_matches([' ', '\t']);
        let separated = credential.len() < rest.len();
        let length = credential
            .find(|c: char| !is_credential_char(c))
            .unwrap_or(credential.len());
        let candidate = &credential[..length];
        let looks_issued = candidate.len() >= 8
            && candidate
                .chars()
                .any(|c| c.is_ascii_digit() || !c.is_ascii_alphanumeric());
        if separated && looks_issued {
            let end = start + "bearer".len() + (rest.len() - credential.len()) + length;
            return Some(&line[start..end]);
        }
        from = start + "bearer".len();
    }
    None
}

/// RFC 6750's `b64token` characters.
fn is_credential_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=')
}

/// The first compact JWT in `line`: a base64url JSON header (`eyJ…`), a dot, a base64url JSON
/// payload (`eyJ…`), a dot.
pub fn jwt(line: &str) -> Option<&str> {
    let is_segment = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut from = 0;
    while let Some(found) = line[from..].find("eyJ") {
        let start = from + found;
        let header_len = line[start..]
            .find(|c| !is_segment(c))
            .unwrap_or(line.len() - start);
        let after_header = &line[start + header_len..];
        if let Some(payload) = after_header.strip_prefix('.')
            && payload.starts_with("eyJ")
        {
            let payload_len = payload.find(|c| !is_segment(c)).unwrap_or(payload.len());
            if payload[payload_len..].starts_with('.') {
                return Some(&line[start..start + header_len + 1 + payload_len + 1]);
            }
        }
        from = start + 3;
    }
    None
}

/// The first payment card number in `line`: 13 to 19 digits (in groups separated by single
/// spaces or dashes, or not), not part of a longer word, starting with 3, 4, 5 or 6 (the major
/// networks) and passing the Luhn check. Digits inside hexadecimal ids or other words are not
/// numbers, so trace ids and UUIDs do not count.
pub fn card_number(line: &str) -> Option<String> {
    let bytes = line.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if !bytes[index].is_ascii_digit() || (index > 0 && bytes[index - 1].is_ascii_alphanumeric())
        {
            index += 1;
            continue;
        }
        let start = index;
        let mut digits = String::new();
        let mut end = index;
        while end < bytes.len() {
            let byte = bytes[end];
            if byte.is_ascii_digit() {
                digits.push(char::from(byte));
                end += 1;
            } else if matches!(byte, b' ' | b'-')
                && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
                && end > start
                && bytes[end - 1].is_ascii_digit()
            {
                end += 1;
            } else {
                break;
            }
        }
        let bounded = bytes
            .get(end)
            .is_none_or(|byte| !byte.is_ascii_alphanumeric());
        if bounded
            && (13..=19).contains(&digits.len())
            && digits.starts_with(['3', '4', '5', '6'])
            && luhn(&digits)
        {
            return Some(digits);
        }
        index = end.max(index + 1);
    }
    None
}

/// The Luhn checksum of a string of ASCII digits.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, byte)| {
            let digit = u32::from(byte - b'0');
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_are_found_in_any_case_and_bare_mentions_are_not() {
        assert_eq!(
            bearer_credential(r#"{"authorization":"Bearer eyJhbGci.x.y"}"#),
            Some("Bearer eyJhbGci.x.y")
        );
        assert_eq!(
            bearer_credential("header bearer  sk_test_mercato, next"),
            Some("bearer  sk_test_mercato")
        );
        assert_eq!(
            bearer_credential("Bearer abcdefgh1"),
            Some("Bearer abcdefgh1")
        );
        assert_eq!(bearer_credential("expected a bearer token"), None);
        assert_eq!(bearer_credential("Bearer malformedness"), None);
        assert_eq!(bearer_credential(r#"{"message":"no Bearer"}"#), None);
        assert_eq!(bearer_credential("scheme=bearer; missing"), None);
    }

    #[test]
    fn jwts_are_found_and_lone_base64_is_not() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(
            jwt(&format!(r#"{{"token":"{token}"}}"#)),
            Some("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.")
        );
        assert_eq!(jwt("eyJhbGciOiJFZERTQSJ9 alone"), None);
        assert_eq!(
            jwt("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0 no second dot"),
            None
        );
    }

    #[test]
    fn card_numbers_are_found_plain_or_grouped_and_ids_are_not() {
        assert_eq!(
            card_number(r#"{"card":"4242424242424242"}"#).as_deref(),
            Some("4242424242424242")
        );
        assert_eq!(
            card_number("pan 4000 0000 0000 0002 declined").as_deref(),
            Some("4000000000000002")
        );
        assert_eq!(
            card_number("amex 3782-822463-10005.").as_deref(),
            Some("378282246310005")
        );
        // Not Luhn-valid, inside a hex id, too short, or an epoch in milliseconds.
        assert_eq!(card_number("4242424242424241"), None);
        assert_eq!(card_number("trace_id 4242424242424242abcdef01"), None);
        assert_eq!(card_number("id a4242424242424242"), None);
        assert_eq!(card_number("amount 1200 JPY"), None);
        assert_eq!(card_number("created 1764000000000"), None);
    }
}
