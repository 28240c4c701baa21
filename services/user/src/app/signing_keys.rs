//! Signing-key use cases: making sure a key signs at start-up (encrypting stored keys under
//! the key-encryption key on the way), listing keys and the published JWKS, rotation with
//! idempotency, and revocation.

use std::time::Duration;

use chrono::Utc;
use secrecy::ExposeSecret as _;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{UserApp, chrono_duration};
use crate::error::UserError;
use crate::key_encryption;
use crate::keys::{self, KeyMaterial, KeyState, KeyView, SigningAlgorithm, StoredKey};
use crate::store;

impl UserApp {
    /// Makes sure a key signs: imports the configured PEM, or generates a key of the configured
    /// algorithm when none is active. Runs under an advisory lock, so replicas starting together
    /// create one key.
    ///
    /// Before that, every stored private key is checked against the key-encryption key: a
    /// plaintext key is encrypted when a KEK is configured (in this same transaction), and an
    /// encrypted key that does not open fails start-up rather than letting the service silently
    /// sign with a new key.
    pub async fn ensure_signing_key(&self) -> Result<(), UserError> {
        if self.inner.auth.external_mode() {
            return Ok(());
        }
        let mut tx = self.inner.pool.begin().await?;
        store::lock_signing_keys(&mut tx).await?;
        // "Now" is read under the lock: a replica that waited here must see the key another one
        // just created as active, and that key was stamped with a time later than this one's
        // start.
        let now = Utc::now();
        let stored = store::signing_keys(&mut tx).await?;
        self.secure_stored_keys(&mut tx, &stored).await?;
        let views = keys::evaluate(stored, now, self.inner.auth.access_token_ttl);
        if let Some(pem) = &self.inner.auth.signing_key_pem {
            let material = KeyMaterial::from_pem(pem.expose_secret())?;
            match views.iter().find(|v| v.key.kid == material.kid) {
                None => {
                    let private_key = self.stored_form(&material)?;
                    store::insert_signing_key(&mut tx, &material, &private_key, now, None).await?;
                    tracing::info!(
                        kid = %material.kid,
                        algorithm = %material.algorithm,
                        "configured signing key imported"
                    );
                }
                Some(view) if view.state == KeyState::Revoked => {
                    tracing::warn!(kid = %material.kid, "the configured signing key was revoked");
                }
                Some(_) => {}
            }
        } else if !views.iter().any(|v| v.state == KeyState::Active) {
            // Generating an RSA key takes a while; replicas starting now wait on the lock and
            // then find this key instead of generating their own.
            let material = generate(self.inner.auth.signing_algorithm).await?;
            let private_key = self.stored_form(&material)?;
            store::insert_signing_key(&mut tx, &material, &private_key, now, None).await?;
            tracing::info!(
                kid = %material.kid,
                algorithm = %material.algorithm,
                "signing key generated"
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks that every stored private key opens with the configured KEK and encrypts the
    /// plaintext ones when a KEK is configured.
    async fn secure_stored_keys(
        &self,
        conn: &mut PgConnection,
        stored: &[StoredKey],
    ) -> Result<(), UserError> {
        let Some(kek) = &self.inner.kek else {
            tracing::warn!(
                variable = key_encryption::KEK_VARIABLE,
                "private signing keys are stored unencrypted, set the key-encryption key"
            );
            // An encrypted key cannot be used without the KEK: fail now, not at the first login.
            for key in stored {
                key_encryption::open_stored(None, &key.kid, &key.private_key_pem)?;
            }
            return Ok(());
        };
        let mut encrypted = 0_usize;
        for key in stored {
            if key_encryption::is_sealed(&key.private_key_pem) {
                kek.open(&key.kid, &key.private_key_pem)?;
            } else {
                let sealed = kek.seal(&key.kid, &key.private_key_pem)?;
                store::set_private_key(conn, &key.kid, &sealed).await?;
                encrypted += 1;
            }
        }
        if encrypted > 0 {
            tracing::info!(encrypted, "plaintext signing keys encrypted at rest");
        }
        Ok(())
    }

    /// The private key of `material` as stored: sealed under the KEK when one is configured.
    fn stored_form(&self, material: &KeyMaterial) -> Result<String, UserError> {
        match &self.inner.kek {
            Some(kek) => Ok(kek.seal(&material.kid, &material.private_key_pem)?),
            None => Ok(material.private_key_pem.clone()),
        }
    }

    /// Every key with its state, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<KeyView>, UserError> {
        let mut conn = self.inner.pool.acquire().await?;
        Ok(keys::evaluate(
            store::signing_keys(&mut conn).await?,
            Utc::now(),
            self.inner.auth.access_token_ttl,
        ))
    }

    /// The published public keys (the JWKS `keys` array).
    pub async fn published_jwks(&self) -> Result<Vec<serde_json::Value>, UserError> {
        let now = Utc::now();
        Ok(self
            .signing_keys()
            .await?
            .into_iter()
            .filter(|view| view.is_published(now))
            .map(|view| view.key.public_jwk)
            .collect())
    }

    /// Publishes a new key of `algorithm` (default: the configured one) that signs after
    /// `delay`; replays return the same key.
    pub async fn rotate_signing_key(
        &self,
        actor: Uuid,
        idempotency_key: &str,
        algorithm: Option<SigningAlgorithm>,
        delay: Option<Duration>,
    ) -> Result<KeyView, UserError> {
        self.require_local()?;
        let delay = delay.unwrap_or(self.inner.auth.key_activation_delay);
        let algorithm = algorithm.unwrap_or(self.inner.auth.signing_algorithm);
        let scoped_key = format!("{actor}:{idempotency_key}");
        let request_hash = format!("{algorithm}:{}", delay.as_millis());
        let now = Utc::now();
        let mut tx = self.inner.pool.begin().await?;
        store::lock_signing_keys(&mut tx).await?;
        if let Some((kid, hash)) = store::find_key_by_idempotency(&mut tx, &scoped_key).await? {
            if hash.as_deref() != Some(request_hash.as_str()) {
                return Err(UserError::IdempotencyKeyReused);
            }
            let views = keys::evaluate(
                store::signing_keys(&mut tx).await?,
                now,
                self.inner.auth.access_token_ttl,
            );
            return find_view(views, &kid);
        }
        let views = keys::evaluate(
            store::signing_keys(&mut tx).await?,
            now,
            self.inner.auth.access_token_ttl,
        );
        if views.iter().any(|v| v.state == KeyState::Next) {
            return Err(UserError::SigningKeyNotReady(
                "a next signing key is already waiting for activation",
            ));
        }
        let material = generate(algorithm).await?;
        let private_key = self.stored_form(&material)?;
        store::insert_signing_key(
            &mut tx,
            &material,
            &private_key,
            now + chrono_duration(delay),
            Some((&scoped_key, &request_hash)),
        )
        .await?;
        let views = keys::evaluate(
            store::signing_keys(&mut tx).await?,
            now,
            self.inner.auth.access_token_ttl,
        );
        tx.commit().await?;
        tracing::info!(
            kid = %material.kid,
            %algorithm,
            delay_s = delay.as_secs(),
            "signing key rotated"
        );
        find_view(views, &material.kid)
    }

    /// Withdraws a key at once; revoking the active key promotes the next one.
    pub async fn revoke_signing_key(&self, kid: &str) -> Result<KeyView, UserError> {
        self.require_local()?;
        let now = Utc::now();
        let ttl = self.inner.auth.access_token_ttl;
        let mut tx = self.inner.pool.begin().await?;
        store::lock_signing_keys(&mut tx).await?;
        let views = keys::evaluate(store::signing_keys(&mut tx).await?, now, ttl);
        let Some(view) = views.iter().find(|v| v.key.kid == kid) else {
            return Err(UserError::NotFound {
                resource_type: "signing_key",
                resource_id: kid.to_owned(),
            });
        };
        match view.state {
            KeyState::Revoked => return Ok(view.clone()),
            KeyState::Active => {
                let Some(next) = views.iter().find(|v| v.state == KeyState::Next) else {
                    return Err(UserError::SigningKeyNotReady(
                        "the active key cannot be revoked before a next key exists, rotate first",
                    ));
                };
                store::activate_at(&mut tx, &next.key.kid, now).await?;
            }
            KeyState::Next | KeyState::Retired => {}
        }
        store::revoke_signing_key(&mut tx, kid).await?;
        let views = keys::evaluate(store::signing_keys(&mut tx).await?, now, ttl);
        tx.commit().await?;
        tracing::warn!(kid, "signing key revoked");
        find_view(views, kid)
    }
}

/// A fresh key of `algorithm`, generated off the async workers (RSA takes a while).
async fn generate(algorithm: SigningAlgorithm) -> Result<KeyMaterial, UserError> {
    tokio::task::spawn_blocking(move || KeyMaterial::generate_for(algorithm))
        .await
        .map_err(|join| UserError::Task(join.to_string()))?
        .map_err(UserError::from)
}

fn find_view(views: Vec<KeyView>, kid: &str) -> Result<KeyView, UserError> {
    views
        .into_iter()
        .find(|v| v.key.kid == kid)
        .ok_or_else(|| UserError::NotFound {
            resource_type: "signing_key",
            resource_id: kid.to_owned(),
        })
}
