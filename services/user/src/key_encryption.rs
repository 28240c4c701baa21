//! Private signing keys at rest: AES-256-GCM under the configured key-encryption key (KEK).
//!
//! A sealed key is stored as `v1:` followed by base64(nonce ‖ ciphertext ‖ tag), with a fresh
//! random 96-bit nonce per seal. The key id is the additional authenticated data, so a
//! ciphertext copied onto another key's row does not decrypt. The version prefix leaves room for
//! a new format (another cipher, a KEK id for KEK rotation) without guessing.

use aes_gcm::aead::{Aead as _, AeadCore as _, KeyInit as _, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The settings variable holding the KEK, named in every error about it.
pub const KEK_VARIABLE: &str = "MERCATO_USER__KEY_ENCRYPTION_KEY";

/// Prefix of the current sealed format.
const V1: &str = "v1:";
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;

/// Why a stored key could not be opened or a KEK not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyEncryptionError {
    /// The configured KEK is not 32 bytes of base64.
    #[error("{KEK_VARIABLE} must be 32 bytes encoded in base64")]
    InvalidKek,
    /// A stored key is encrypted but no KEK is configured.
    #[error("signing key {kid} is encrypted at rest but {KEK_VARIABLE} is not set")]
    KekMissing {
        /// The key.
        kid: String,
    },
    /// A stored key does not decrypt under the configured KEK (a different KEK, or a damaged or
    /// moved row).
    #[error("signing key {kid} does not decrypt with the configured {KEK_VARIABLE}")]
    WrongKek {
        /// The key.
        kid: String,
    },
    /// Encryption failed (never expected with a valid key).
    #[error("encrypting signing key {kid} failed")]
    Seal {
        /// The key.
        kid: String,
    },
}

/// The key-encryption key.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for KeyEncryptionKey {
    // Key material never appears in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

impl KeyEncryptionKey {
    /// The KEK from its configured form: 32 bytes, standard base64 (padding optional).
    pub fn from_base64(raw: &str) -> Result<Self, KeyEncryptionError> {
        let raw = raw.trim();
        let bytes = STANDARD
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
            .map_err(|_| KeyEncryptionError::InvalidKek)?;
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyEncryptionError::InvalidKek)?;
        Ok(Self { cipher })
    }

    /// Encrypts `private_key_pem` of key `kid` into the stored form.
    pub fn seal(&self, kid: &str, private_key_pem: &str) -> Result<String, KeyEncryptionError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: private_key_pem.as_bytes(),
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| KeyEncryptionError::Seal {
                kid: kid.to_owned(),
            })?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{V1}{}", STANDARD.encode(sealed)))
    }

    /// Decrypts the stored form of key `kid`.
    pub fn open(&self, kid: &str, stored: &str) -> Result<String, KeyEncryptionError> {
        let wrong = || KeyEncryptionError::WrongKek {
            kid: kid.to_owned(),
        };
        let encoded = stored.strip_prefix(V1).ok_or_else(wrong)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| wrong())?;
        let plaintext = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plaintext).map_err(|_| wrong())
    }
}

/// Whether a stored private key is sealed (rather than a plaintext PEM).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(V1)
}

/// The plaintext PEM of a stored key: opened with `kek` when sealed; a plaintext PEM is returned
/// as it is (it is encrypted on the next start-up with a KEK).
pub fn open_stored(
    kek: Option<&KeyEncryptionKey>,
    kid: &str,
    stored: &str,
) -> Result<String, KeyEncryptionError> {
    if !is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    match kek {
        Some(kek) => kek.open(kid, stored),
        None => Err(KeyEncryptionError::KekMissing {
            kid: kid.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> KeyEncryptionKey {
        KeyEncryptionKey::from_base64(&STANDARD.encode([byte; 32])).expect("32 bytes")
    }

    #[test]
    fn a_sealed_key_opens_with_the_same_kek_and_kid_only() {
        let sealed = kek(1).seal("kid-a", "secret pem").expect("seal");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("secret pem"));
        assert_eq!(kek(1).open("kid-a", &sealed).as_deref(), Ok("secret pem"));
        assert!(matches!(
            kek(2).open("kid-a", &sealed),
            Err(KeyEncryptionError::WrongKek { .. })
        ));
        // The kid is authenticated: the row cannot be moved to another key.
        assert!(kek(1).open("kid-b", &sealed).is_err());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let key = kek(3);
        assert_ne!(
            key.seal("k", "pem").expect("seal"),
            key.seal("k", "pem").expect("seal")
        );
    }

    #[test]
    fn a_kek_must_be_32_bytes_of_base64() {
        assert!(KeyEncryptionKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(KeyEncryptionKey::from_base64("not base64!").is_err());
        let error = KeyEncryptionKey::from_base64("").expect_err("empty");
        assert!(error.to_string().contains(KEK_VARIABLE));
    }

    #[test]
    fn plaintext_passes_and_sealed_needs_a_kek() {
        assert_eq!(open_stored(None, "k", "pem").as_deref(), Ok("pem"));
        let sealed = kek(4).seal("k", "pem").expect("seal");
        let error = open_stored(None, "k", &sealed).expect_err("no kek");
        assert!(error.to_string().contains(KEK_VARIABLE));
    }
}
