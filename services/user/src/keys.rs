//! Token-signing keys: Ed25519 key material, its JWK and `kid` (the RFC 7638 thumbprint), the
//! rotation state derived from a key's times, and access-token signing.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The only algorithm the built-in issuer signs with.
pub const ALGORITHM: &str = "EdDSA";

/// Errors handling key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM is not a PKCS#8 Ed25519 private key.
    #[error("signing key is not a pkcs8 ed25519 private key")]
    InvalidPem,
    /// Signing failed (a broken key).
    #[error("signing failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// A private signing key with its public JWK.
#[derive(Clone)]
pub struct KeyMaterial {
    /// RFC 7638 thumbprint of the public key, base64url.
    pub kid: String,
    /// PKCS#8 PEM of the private key.
    pub private_key_pem: String,
    /// The public key as published in the JWKS.
    pub public_jwk: serde_json::Value,
}

impl std::fmt::Debug for KeyMaterial {
    // The private key never appears in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// A fresh random Ed25519 key.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self::from_signing_key(&SigningKey::from_bytes(&seed))
    }

    /// The key in a PKCS#8 PEM (the configured `SIGNING_KEY_PEM`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::InvalidPem)?;
        Ok(Self::from_signing_key(&key))
    }

    fn from_signing_key(key: &SigningKey) -> Self {
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        // RFC 7638: the required members in lexicographic order, no white space.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let private_key_pem = key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map(|pem| pem.to_string())
            .unwrap_or_default();
        let public_jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": kid,
            "alg": ALGORITHM,
            "use": "sig",
        });
        Self {
            kid,
            private_key_pem,
            public_jwk,
        }
    }
}

/// Where a key is in its rotation (mirrors `SigningKeyState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing new tokens.
    Active,
    /// No longer signing; published until its tokens expired.
    Retired,
    /// Withdrawn at once.
    Revoked,
}

/// A stored key as the store reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// JOSE algorithm.
    pub algorithm: String,
    /// PKCS#8 PEM.
    pub private_key_pem: String,
    /// Public JWK.
    pub public_jwk: serde_json::Value,
    /// Creation (publication) time.
    pub created_at: DateTime<Utc>,
    /// When it starts (started) signing.
    pub activate_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key with its derived state and times.
#[derive(Debug, Clone)]
pub struct KeyView {
    /// The stored key.
    pub key: StoredKey,
    /// Its state at the evaluation time.
    pub state: KeyState,
    /// When it stopped signing (its successor's activation).
    pub retire_time: Option<DateTime<Utc>>,
    /// When it leaves the JWKS.
    pub unpublish_time: Option<DateTime<Utc>>,
}

impl KeyView {
    /// Whether the key belongs in the JWKS at `now`.
    pub fn is_published(&self, now: DateTime<Utc>) -> bool {
        match self.state {
            KeyState::Next | KeyState::Active => true,
            KeyState::Retired => self.unpublish_time.is_none_or(|until| now < until),
            KeyState::Revoked => false,
        }
    }
}

/// Derives every key's state at `now`.
///
/// The state is a function of the times rather than a stored column, so a key scheduled for
/// activation becomes ACTIVE (and its predecessor RETIRED) exactly at `activate_at` on every
/// replica, without a background job or a write racing between replicas.
pub fn evaluate(keys: Vec<StoredKey>, now: DateTime<Utc>, token_ttl: Duration) -> Vec<KeyView> {
    let mut live: Vec<&StoredKey> = keys
        .iter()
        .filter(|k| k.revoked_at.is_none() && k.activate_at <= now)
        .collect();
    live.sort_by(|a, b| {
        b.activate_at
            .cmp(&a.activate_at)
            .then(b.created_at.cmp(&a.created_at))
    });
    let active = live.first().map(|k| k.kid.clone());
    let ttl = chrono::Duration::from_std(token_ttl).unwrap_or(chrono::Duration::MAX);
    let mut views: Vec<KeyView> = keys
        .iter()
        .map(|key| {
            if let Some(revoked) = key.revoked_at {
                return KeyView {
                    key: key.clone(),
                    state: KeyState::Revoked,
                    retire_time: Some(revoked),
                    unpublish_time: Some(revoked),
                };
            }
            if key.activate_at > now {
                return KeyView {
                    key: key.clone(),
                    state: KeyState::Next,
                    retire_time: None,
                    unpublish_time: None,
                };
            }
            if active.as_deref() == Some(key.kid.as_str()) {
                return KeyView {
                    key: key.clone(),
                    state: KeyState::Active,
                    retire_time: None,
                    unpublish_time: None,
                };
            }
            // Retired by the earliest live key activated after it.
            let retire_time = live
                .iter()
                .filter(|other| other.activate_at > key.activate_at)
                .map(|other| other.activate_at)
                .min()
                .unwrap_or(key.activate_at);
            KeyView {
                key: key.clone(),
                state: KeyState::Retired,
                retire_time: Some(retire_time),
                unpublish_time: retire_time.checked_add_signed(ttl),
            }
        })
        .collect();
    views.sort_by_key(|view| std::cmp::Reverse(view.key.created_at));
    views
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer URL.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// Unique token id (UUID v7).
    pub jti: String,
    /// Role names: `buyer`, `seller`, `admin`.
    pub roles: Vec<String>,
    /// The account's e-mail address.
    pub email: String,
}

/// Signs `claims` with `key`, naming it in the header's `kid`.
pub fn sign(key: &StoredKey, claims: &AccessClaims) -> Result<String, KeyError> {
    let encoding =
        EncodingKey::from_ed_pem(key.private_key_pem.as_bytes()).map_err(KeyError::Sign)?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &encoding).map_err(KeyError::Sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kid: &str, activate_at: DateTime<Utc>) -> StoredKey {
        StoredKey {
            kid: kid.to_owned(),
            algorithm: ALGORITHM.to_owned(),
            private_key_pem: String::new(),
            public_jwk: serde_json::Value::Null,
            created_at: activate_at,
            activate_at,
            revoked_at: None,
        }
    }

    #[test]
    fn a_pem_round_trip_keeps_the_kid() {
        let key = KeyMaterial::generate();
        let again = KeyMaterial::from_pem(&key.private_key_pem).expect("pem parses");
        assert_eq!(key.kid, again.kid);
        assert_eq!(key.public_jwk, again.public_jwk);
    }

    #[test]
    fn the_latest_activated_key_is_active_and_its_predecessor_retired() {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let keys = vec![
            stored("old", now - hour * 3),
            stored("current", now - hour),
            stored("next", now + hour),
        ];
        let views = evaluate(keys, now, Duration::from_secs(900));
        let state = |kid: &str| {
            views
                .iter()
                .find(|v| v.key.kid == kid)
                .map(|v| (v.state, v.is_published(now)))
        };
        assert_eq!(state("next"), Some((KeyState::Next, true)));
        assert_eq!(state("current"), Some((KeyState::Active, true)));
        // Retired an hour ago with 15-minute tokens: no longer published.
        assert_eq!(state("old"), Some((KeyState::Retired, false)));
    }
}
