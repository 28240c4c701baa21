//! Use cases of the user service: each validates nothing protobuf-specific (that happened in
//! `grpc.rs`), opens the transaction, calls the store, writes events to the outbox and commits.
//!
//! This module holds the shared [`UserApp`] context and the types its use cases return; the use
//! cases themselves live in `auth` (sign-in and the token family), `accounts` (profiles,
//! addresses, provisioning and administration) and `signing_keys` (the issuer's key lifecycle).

mod accounts;
mod auth;
mod signing_keys;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato_platform::principal::Role;
use mercato_platform::redis::Keys;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::UserError;
use crate::key_encryption::KeyEncryptionKey;
use crate::settings::AuthSettings;
use crate::store::UserRow;

/// Tokens handed to a client after register, login or refresh.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// Signed JWT.
    pub access_token: String,
    /// Its `exp`.
    pub access_token_expire_time: DateTime<Utc>,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// End of the token family.
    pub refresh_token_expire_time: DateTime<Utc>,
}

/// A page of accounts.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// Accounts, newest first.
    pub users: Vec<UserRow>,
    /// Cursor of the next page, empty on the last.
    pub next_page_token: String,
}

/// Filters of `ListUsers`.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Substring of e-mail or display name.
    pub query: Option<String>,
    /// Only holders of this role.
    pub role: Option<Role>,
    /// Include deleted accounts.
    pub show_deleted: bool,
}

/// The user service's use cases; cheap to clone.
#[derive(Clone)]
pub struct UserApp {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    redis: ConnectionManager,
    keys: Keys,
    auth: AuthSettings,
    /// Encrypts private signing keys at rest (`KEY_ENCRYPTION_KEY`), when configured.
    kek: Option<KeyEncryptionKey>,
    /// Verified for unknown e-mail addresses so a failed login costs the same either way.
    dummy_hash: String,
    /// Where every hash and verification runs, `PASSWORD_HASH_CONCURRENCY` at a time.
    password_work: auth::PasswordWork,
}

impl std::fmt::Debug for UserApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserApp")
            .field("issuer", &self.inner.auth.issuer)
            .finish_non_exhaustive()
    }
}

impl UserApp {
    /// Builds the use cases.
    pub async fn new(
        pool: PgPool,
        redis: ConnectionManager,
        keys: Keys,
        auth: AuthSettings,
    ) -> Result<Self, UserError> {
        let kek = auth
            .key_encryption_key
            .as_ref()
            .map(|raw| KeyEncryptionKey::from_base64(raw.expose_secret()))
            .transpose()?;
        let password_work = auth::PasswordWork::new(auth.password_hashing.concurrency);
        let dummy_hash = auth::unmatchable_hash(auth.password_hashing)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                redis,
                keys,
                auth,
                kek,
                dummy_hash,
                password_work,
            }),
        })
    }

    /// The issuer settings.
    pub fn auth(&self) -> &AuthSettings {
        &self.inner.auth
    }

    fn require_local(&self) -> Result<(), UserError> {
        if self.inner.auth.external_mode() {
            Err(UserError::LocalAuthDisabled)
        } else {
            Ok(())
        }
    }
}

fn user_not_found(user_id: Uuid) -> UserError {
    UserError::NotFound {
        resource_type: "user",
        resource_id: user_id.to_string(),
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
