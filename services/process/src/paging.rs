//! Cursor page tokens shared by the listings: the last item's `(create_time, id)` plus a hash of
//! the filters the token was issued for, so a token cannot be replayed against other filters.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::ProcessError;

/// `page_size`: 0 means 20, above 100 means 100, negative is refused.
pub fn page_limit(page_size: i32) -> Result<usize, ProcessError> {
    match page_size {
        n if n < 0 => Err(ProcessError::field("page_size", "must not be negative")),
        0 => Ok(20),
        n => Ok(usize::try_from(n.min(100)).unwrap_or(100)),
    }
}

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// `create_time` of the last item returned, in microseconds.
    pub create_micros: i64,
    /// Its id.
    pub id: Uuid,
    /// Hash of the filters the token was issued for.
    pub filter: String,
}

impl PageToken {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}.{}",
            self.create_micros,
            self.id.simple(),
            self.filter
        ))
    }

    /// Parses a token issued for `filter`.
    pub fn decode(raw: &str, filter: &str) -> Result<Self, ProcessError> {
        let text = URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(ProcessError::InvalidPageToken)?;
        let mut parts = text.splitn(3, '.');
        let (Some(micros), Some(id), Some(token_filter)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(ProcessError::InvalidPageToken);
        };
        if token_filter != filter {
            return Err(ProcessError::InvalidPageToken);
        }
        Ok(Self {
            create_micros: micros.parse().map_err(|_| ProcessError::InvalidPageToken)?,
            id: Uuid::parse_str(id).map_err(|_| ProcessError::InvalidPageToken)?,
            filter: token_filter.to_owned(),
        })
    }
}

/// Hash of listing filters, binding page tokens to them.
pub fn filter_hash(parts: &[String]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    URL_SAFE_NO_PAD.encode(&hasher.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_only_for_its_own_filters() {
        let token = PageToken {
            create_micros: 42,
            id: Uuid::now_v7(),
            filter: filter_hash(&["a".to_owned()]),
        };
        let text = token.encode();
        assert_eq!(
            PageToken::decode(&text, &token.filter).expect("valid"),
            token
        );
        let other = filter_hash(&["b".to_owned()]);
        assert!(PageToken::decode(&text, &other).is_err());
        assert!(PageToken::decode("not a token", &token.filter).is_err());
    }
}
