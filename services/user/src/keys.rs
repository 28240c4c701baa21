//! Token-signing keys: Ed25519 and RSA key material, its JWK and `kid` (the RFC 7638
//! thumbprint), the rotation state derived from a key's times, and access-token signing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use aes_gcm::aead::OsRng;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Size of generated RSA keys: the RS256 minimum every verifier accepts, and quick enough to
/// generate at start-up.
pub const RSA_BITS: usize = 2048;

/// The JOSE algorithm a key signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SigningAlgorithm {
    /// Ed25519 (`EdDSA`), the default: small keys, fast to generate and sign.
    #[default]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit RSA key, for verifiers without EdDSA.
    Rs256,
}

impl SigningAlgorithm {
    /// The JOSE name (`EdDSA`, `RS256`), as in the JWT header, the JWK and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "EdDSA" => Ok(Self::EdDsa),
            "RS256" => Ok(Self::Rs256),
            other => Err(format!(
                "unknown signing algorithm {other:?}, expected EdDSA or RS256"
            )),
        }
    }
}

/// Errors handling key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM is neither a PKCS#8 Ed25519 nor a PKCS#8 RSA private key.
    #[error("signing key is not a pkcs8 ed25519 or rsa private key")]
    InvalidPem,
    /// Generating an RSA key failed.
    #[error("rsa key generation failed")]
    Generate(#[source] rsa::Error),
    /// Encoding a key as PKCS#8 failed.
    #[error("private key encoding failed")]
    Encode,
    /// A stored key names an algorithm this issuer does not know.
    #[error("stored signing key {kid} has unknown algorithm {algorithm:?}")]
    UnknownAlgorithm {
        /// The key.
        kid: String,
        /// Its stored algorithm.
        algorithm: String,
    },
    /// Signing failed (a broken key).
    #[error("signing failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// A private signing key with its public JWK.
#[derive(Clone)]
pub struct KeyMaterial {
    /// RFC 7638 thumbprint of the public key, base64url.
    pub kid: String,
    /// What the key signs with.
    pub algorithm: SigningAlgorithm,
    /// PKCS#8 PEM of the private key.
    pub private_key_pem: String,
    /// The public key as published in the JWKS.
    pub public_jwk: serde_json::Value,
}

impl fmt::Debug for KeyMaterial {
    // The private key never appears in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// A fresh random Ed25519 key.
    pub fn generate() -> Result<Self, KeyError> {
        let seed: [u8; 32] = rand::random();
        Self::from_ed25519(&SigningKey::from_bytes(&seed))
    }

    /// A fresh random key for `algorithm`. RSA generation takes a noticeable time (seconds in a
    /// debug build): call it from `spawn_blocking`.
    pub fn generate_for(algorithm: SigningAlgorithm) -> Result<Self, KeyError> {
        match algorithm {
            SigningAlgorithm::EdDsa => Self::generate(),
            SigningAlgorithm::Rs256 => {
                let key = RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(KeyError::Generate)?;
                Self::from_rsa(&key)
            }
        }
    }

    /// The key in a PKCS#8 PEM (the configured `SIGNING_KEY_PEM`): Ed25519 or RSA, detected
    /// from the key itself.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if let Ok(key) = SigningKey::from_pkcs8_pem(pem) {
            return Self::from_ed25519(&key);
        }
        let key = <RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
            .map_err(|_| KeyError::InvalidPem)?;
        Self::from_rsa(&key)
    }

    fn from_ed25519(key: &SigningKey) -> Result<Self, KeyError> {
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        // RFC 7638: the required members in lexicographic order, no white space.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = thumbprint(&canonical);
        let private_key_pem = key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|_| KeyError::Encode)?
            .to_string();
        let public_jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": kid,
            "alg": SigningAlgorithm::EdDsa.as_str(),
            "use": "sig",
        });
        Ok(Self {
            kid,
            algorithm: SigningAlgorithm::EdDsa,
            private_key_pem,
            public_jwk,
        })
    }

    fn from_rsa(key: &RsaPrivateKey) -> Result<Self, KeyError> {
        let public = RsaPublicKey::from(key);
        // Unsigned big-endian integers without leading zeros (RFC 7518 section 6.3.1).
        let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = thumbprint(&canonical);
        let private_key_pem =
            rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(key, rsa::pkcs8::LineEnding::LF)
                .map_err(|_| KeyError::Encode)?
                .to_string();
        let public_jwk = serde_json::json!({
            "kty": "RSA",
            "n": n,
            "e": e,
            "kid": kid,
            "alg": SigningAlgorithm::Rs256.as_str(),
            "use": "sig",
        });
        Ok(Self {
            kid,
            algorithm: SigningAlgorithm::Rs256,
            private_key_pem,
            public_jwk,
        })
    }
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a canonical JWK.
fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
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
    /// PKCS#8 PEM, or its `v1:` ciphertext when a key-encryption key is configured (see
    /// `key_encryption`).
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

/// Signs `claims` with the key whose PKCS#8 PEM is `private_key_pem` (already decrypted),
/// naming `key` in the header's `kid`.
pub fn sign(
    key: &StoredKey,
    private_key_pem: &str,
    claims: &AccessClaims,
) -> Result<String, KeyError> {
    let unknown = || KeyError::UnknownAlgorithm {
        kid: key.kid.clone(),
        algorithm: key.algorithm.clone(),
    };
    let algorithm: SigningAlgorithm = key.algorithm.parse().map_err(|_| unknown())?;
    let encoding = match algorithm {
        SigningAlgorithm::EdDsa => EncodingKey::from_ed_pem(private_key_pem.as_bytes()),
        SigningAlgorithm::Rs256 => EncodingKey::from_rsa_pem(private_key_pem.as_bytes()),
    }
    .map_err(KeyError::Sign)?;
    let mut header = Header::new(algorithm.jwt());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &encoding).map_err(KeyError::Sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kid: &str, activate_at: DateTime<Utc>) -> StoredKey {
        StoredKey {
            kid: kid.to_owned(),
            algorithm: SigningAlgorithm::EdDsa.as_str().to_owned(),
            private_key_pem: String::new(),
            public_jwk: serde_json::Value::Null,
            created_at: activate_at,
            activate_at,
            revoked_at: None,
        }
    }

    #[test]
    fn a_pem_round_trip_keeps_the_kid() {
        let key = KeyMaterial::generate().expect("ed25519 key");
        let again = KeyMaterial::from_pem(&key.private_key_pem).expect("pem parses");
        assert_eq!(key.kid, again.kid);
        assert_eq!(key.public_jwk, again.public_jwk);
        assert_eq!(again.algorithm, SigningAlgorithm::EdDsa);
    }

    #[test]
    fn an_rsa_pem_is_detected_and_signs_rs256() {
        let pem = include_str!("../tests/fixtures/rsa_2048.pem");
        let key = KeyMaterial::from_pem(pem).expect("rsa pem parses");
        assert_eq!(key.algorithm, SigningAlgorithm::Rs256);
        assert_eq!(key.public_jwk["kty"], "RSA");
        assert_eq!(key.public_jwk["e"], "AQAB");
        assert_eq!(
            KeyMaterial::from_pem(&key.private_key_pem)
                .expect("again")
                .kid,
            key.kid
        );

        let stored = StoredKey {
            algorithm: "RS256".to_owned(),
            ..stored(&key.kid, Utc::now())
        };
        let claims = AccessClaims {
            iss: "i".to_owned(),
            aud: "a".to_owned(),
            sub: "s".to_owned(),
            exp: Utc::now().timestamp() + 60,
            nbf: 0,
            iat: 0,
            jti: "j".to_owned(),
            roles: vec![],
            email: "e".to_owned(),
        };
        let token = sign(&stored, &key.private_key_pem, &claims).expect("signs");
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(key.public_jwk.clone()).expect("jwk");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&["a"]);
        let decoded = jsonwebtoken::decode::<AccessClaims>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key"),
            &validation,
        )
        .expect("verifies with the published jwk");
        assert_eq!(decoded.claims, claims);
        // A key stored under another algorithm name is refused rather than guessed.
        let odd = StoredKey {
            algorithm: "HS256".to_owned(),
            ..stored
        };
        assert!(matches!(
            sign(&odd, &key.private_key_pem, &claims),
            Err(KeyError::UnknownAlgorithm { .. })
        ));
    }

    #[test]
    fn algorithms_parse_by_their_jose_names() {
        assert_eq!("EdDSA".parse(), Ok(SigningAlgorithm::EdDsa));
        assert_eq!("RS256".parse(), Ok(SigningAlgorithm::Rs256));
        assert!("rs256".parse::<SigningAlgorithm>().is_err());
        assert!("HS256".parse::<SigningAlgorithm>().is_err());
    }

    #[test]
    fn a_pem_that_is_no_private_key_is_refused() {
        assert!(matches!(
            KeyMaterial::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(KeyError::InvalidPem)
        ));
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
