//! Use cases of the user service: each validates nothing protobuf-specific (that happened in
//! `grpc.rs`), opens the transaction, calls the store, writes events to the outbox and commits.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Argon2, Params};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use mercato_platform::principal::Role;
use mercato_platform::redis::Keys;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Email, Password, PostalAddress, Violation};
use crate::error::UserError;
use crate::events;
use crate::keys::{self, AccessClaims, KeyMaterial, KeyState, KeyView};
use crate::settings::{AuthSettings, PasswordHashing};
use crate::store::{self, NewUser, UserRow};

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
    /// Verified for unknown e-mail addresses so a failed login costs the same either way.
    dummy_hash: String,
}

impl std::fmt::Debug for UserApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserApp")
            .field("issuer", &self.inner.auth.issuer)
            .finish_non_exhaustive()
    }
}

/// Unwraps a validation result into the value, collecting the violation.
fn collect<T: Default>(
    violations: &mut Vec<Violation>,
    field: &str,
    result: Result<T, String>,
) -> T {
    result.unwrap_or_else(|description| {
        violations.push(Violation::new(field, description));
        T::default()
    })
}

impl UserApp {
    /// Builds the use cases; computes the dummy hash once.
    pub async fn new(
        pool: PgPool,
        redis: ConnectionManager,
        keys: Keys,
        auth: AuthSettings,
    ) -> Result<Self, UserError> {
        let random: [u8; 16] = rand::random();
        let dummy_hash =
            hash_password(auth.password_hashing, URL_SAFE_NO_PAD.encode(random)).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                redis,
                keys,
                auth,
                dummy_hash,
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

    // ----- sign-in

    /// Creates a local account and signs it in.
    pub async fn register(
        &self,
        email: &str,
        password: String,
        display_name: &str,
    ) -> Result<(UserRow, TokenPair), UserError> {
        self.require_local()?;
        let mut violations = Vec::new();
        let email = collect(&mut violations, "email", Email::parse(email).map(Some));
        let password = collect(
            &mut violations,
            "password",
            Password::new_password(password).map(Some),
        );
        let display_name = match &email {
            Some(email) => crate::domain::registration_display_name(display_name, email),
            None if display_name.trim().is_empty() => Ok(String::new()),
            None => crate::domain::profile_display_name(display_name),
        };
        let display_name = collect(&mut violations, "display_name", display_name);
        let (Some(email), Some(password), true) = (email, password, violations.is_empty()) else {
            return Err(UserError::Validation(violations));
        };
        let hash = hash_password(
            self.inner.auth.password_hashing,
            password.expose().to_owned(),
        )
        .await?;
        let mut tx = self.inner.pool.begin().await?;
        let new = NewUser {
            email: email.as_str(),
            email_verified: false,
            password_hash: Some(&hash),
            display_name: &display_name,
            issuer: &self.inner.auth.issuer,
            subject: None,
        };
        let user = match store::insert_user(&mut tx, &new).await {
            Ok(user) => user,
            Err(err) if mercato_platform::db::is_unique_violation(&err, store::EMAIL_KEY) => {
                return Err(UserError::EmailTaken);
            }
            Err(err) => return Err(err.into()),
        };
        events::user_registered(&mut tx, &user, false).await?;
        let tokens = self.issue_tokens(&mut tx, &user, None).await?;
        tx.commit().await?;
        tracing::info!(user.id = %user.user_id, "account registered");
        Ok((user, tokens))
    }

    /// Checks e-mail and password, with per-address throttling, and starts a token family.
    pub async fn login(
        &self,
        email: &str,
        password: String,
    ) -> Result<(UserRow, TokenPair), UserError> {
        self.require_local()?;
        let mut violations = Vec::new();
        if email.trim().is_empty() {
            violations.push(Violation::new("email", "is required"));
        }
        let password = collect(
            &mut violations,
            "password",
            Password::presented(password).map(Some),
        );
        let Some(password) = password else {
            return Err(UserError::Validation(violations));
        };
        if !violations.is_empty() {
            return Err(UserError::Validation(violations));
        }
        // A malformed address cannot have an account: it fails like an unknown one, after the
        // same work, rather than revealing which addresses are well-formed accounts.
        let normalised = email.trim().to_lowercase();
        let throttle_key = self.inner.keys.key(
            "login-failures",
            hex(&Sha256::digest(normalised.as_bytes())),
        );
        self.check_throttle(&throttle_key).await?;

        let user = match Email::parse(&normalised) {
            Ok(email) => {
                let mut conn = self.inner.pool.acquire().await?;
                store::find_live_user_by_email(&mut conn, email.as_str()).await?
            }
            Err(_) => None,
        };
        let stored_hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.inner.dummy_hash.clone());
        let verified = verify_password(stored_hash, password.expose().to_owned()).await?;
        let user = match user {
            Some(user) if verified && user.password_hash.is_some() => user,
            Some(_) | None => {
                self.record_failure(&throttle_key).await?;
                return Err(UserError::InvalidCredentials);
            }
        };
        let mut redis = self.inner.redis.clone();
        redis::cmd("DEL")
            .arg(&throttle_key)
            .query_async::<()>(&mut redis)
            .await?;
        let mut tx = self.inner.pool.begin().await?;
        store::touch_last_login(&mut tx, user.user_id).await?;
        let tokens = self.issue_tokens(&mut tx, &user, None).await?;
        tx.commit().await?;
        Ok((user, tokens))
    }

    /// Refuses the attempt while the address is over its failure budget.
    async fn check_throttle(&self, key: &str) -> Result<(), UserError> {
        let mut redis = self.inner.redis.clone();
        let (failures, ttl_ms): (Option<u32>, i64) = redis::pipe()
            .cmd("GET")
            .arg(key)
            .cmd("PTTL")
            .arg(key)
            .query_async(&mut redis)
            .await?;
        if failures.unwrap_or(0) >= self.inner.auth.login_max_failures {
            let retry_after = u64::try_from(ttl_ms)
                .map(Duration::from_millis)
                .unwrap_or(self.inner.auth.login_failure_window);
            return Err(UserError::LoginThrottled { retry_after });
        }
        Ok(())
    }

    /// Counts a failure; the window starts at the first failure.
    async fn record_failure(&self, key: &str) -> Result<(), UserError> {
        let script = redis::Script::new(
            "local n = redis.call('INCR', KEYS[1]) \
             if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
             return n",
        );
        let window_ms =
            u64::try_from(self.inner.auth.login_failure_window.as_millis()).unwrap_or(u64::MAX);
        let mut redis = self.inner.redis.clone();
        let _: i64 = script
            .key(key)
            .arg(window_ms)
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Rotates a refresh token; a reused one revokes its family.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, UserError> {
        self.require_local()?;
        if refresh_token.is_empty() {
            return Err(UserError::field("refresh_token", "is required"));
        }
        let hash = Sha256::digest(refresh_token.as_bytes());
        let mut tx = self.inner.pool.begin().await?;
        let Some(token) = store::lock_token(&mut tx, &hash).await? else {
            return Err(UserError::RefreshTokenInvalid);
        };
        if token.revoked_at.is_some() || token.expires_at <= Utc::now() {
            return Err(UserError::RefreshTokenInvalid);
        }
        if token.used_at.is_some() {
            // Reuse: someone replayed a rotated token. End the session for both holders, and
            // commit that before answering.
            store::revoke_family(&mut tx, token.family_id).await?;
            tx.commit().await?;
            tracing::warn!(user.id = %token.user_id, "refresh token reused, family revoked");
            return Err(UserError::RefreshTokenReused);
        }
        let Some(user) = store::find_user(&mut tx, token.user_id, false).await? else {
            return Err(UserError::RefreshTokenInvalid);
        };
        store::mark_used(&mut tx, &hash).await?;
        store::touch_last_login(&mut tx, user.user_id).await?;
        let tokens = self
            .issue_tokens(&mut tx, &user, Some((token.family_id, token.expires_at)))
            .await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Revokes the token's family, or every family of its account.
    pub async fn logout(&self, refresh_token: &str, all_sessions: bool) -> Result<i32, UserError> {
        self.require_local()?;
        if refresh_token.is_empty() {
            return Err(UserError::field("refresh_token", "is required"));
        }
        let hash = Sha256::digest(refresh_token.as_bytes());
        let mut tx = self.inner.pool.begin().await?;
        let Some(token) = store::lock_token(&mut tx, &hash).await? else {
            return Err(UserError::RefreshTokenInvalid);
        };
        if token.expires_at <= Utc::now() {
            return Err(UserError::RefreshTokenInvalid);
        }
        let revoked = if all_sessions {
            store::revoke_user_families(&mut tx, token.user_id).await?
        } else {
            store::revoke_family(&mut tx, token.family_id).await?
        };
        tx.commit().await?;
        Ok(i32::try_from(revoked).unwrap_or(i32::MAX))
    }

    /// Issues an access token and a refresh token, starting a family unless `family` is given.
    async fn issue_tokens(
        &self,
        conn: &mut PgConnection,
        user: &UserRow,
        family: Option<(Uuid, DateTime<Utc>)>,
    ) -> Result<TokenPair, UserError> {
        let auth = &self.inner.auth;
        // PostgreSQL keeps microseconds; truncating here makes the times in this response equal
        // to the ones a later rotation reads back.
        let now = Utc::now();
        let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let (family_id, family_expires) = match family {
            Some(family) => family,
            None => {
                let family_id = Uuid::now_v7();
                let expires = now + chrono_duration(auth.refresh_token_ttl);
                store::insert_family(conn, family_id, user.user_id, expires).await?;
                (family_id, expires)
            }
        };
        let secret: [u8; 32] = rand::random();
        let refresh_token = URL_SAFE_NO_PAD.encode(secret);
        store::insert_token(conn, &Sha256::digest(refresh_token.as_bytes()), family_id).await?;

        let views = keys::evaluate(store::signing_keys(conn).await?, now, auth.access_token_ttl);
        let Some(active) = views.iter().find(|v| v.state == KeyState::Active) else {
            return Err(UserError::SigningKeyNotReady("no active signing key"));
        };
        let expires = now + chrono_duration(auth.access_token_ttl);
        let claims = AccessClaims {
            iss: auth.issuer.clone(),
            aud: auth.audience.clone(),
            sub: user.user_id.to_string(),
            exp: expires.timestamp(),
            nbf: now.timestamp(),
            iat: now.timestamp(),
            jti: Uuid::now_v7().to_string(),
            roles: user.roles.clone(),
            email: user.email.clone(),
        };
        let access_token = keys::sign(&active.key, &claims)?;
        Ok(TokenPair {
            access_token,
            access_token_expire_time: DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires),
            refresh_token,
            refresh_token_expire_time: family_expires,
        })
    }

    // ----- own profile

    /// The caller's live account.
    pub async fn current_user(&self, user_id: Uuid) -> Result<UserRow, UserError> {
        let mut conn = self.inner.pool.acquire().await?;
        store::find_user(&mut conn, user_id, false)
            .await?
            .ok_or_else(|| user_not_found(user_id))
    }

    /// Updates display name and/or description.
    pub async fn update_current_user(
        &self,
        user_id: Uuid,
        display_name: Option<String>,
        description: Option<String>,
    ) -> Result<UserRow, UserError> {
        let mut tx = self.inner.pool.begin().await?;
        if !store::update_profile(
            &mut tx,
            user_id,
            display_name.as_deref(),
            description.as_deref(),
        )
        .await?
        {
            return Err(user_not_found(user_id));
        }
        let user = store::find_user(&mut tx, user_id, false)
            .await?
            .ok_or_else(|| user_not_found(user_id))?;
        tx.commit().await?;
        Ok(user)
    }

    /// Soft-deletes the caller's account, revokes its sessions and publishes `user.deleted`.
    pub async fn delete_current_user(&self, user_id: Uuid) -> Result<DateTime<Utc>, UserError> {
        let mut tx = self.inner.pool.begin().await?;
        let Some(deleted_at) = store::soft_delete(&mut tx, user_id).await? else {
            return Err(user_not_found(user_id));
        };
        store::revoke_user_families(&mut tx, user_id).await?;
        events::user_deleted(&mut tx, user_id, deleted_at).await?;
        tx.commit().await?;
        tracing::info!(user.id = %user_id, "account deleted");
        Ok(deleted_at)
    }

    /// The caller's saved address.
    pub async fn shipping_address(
        &self,
        user_id: Uuid,
    ) -> Result<(PostalAddress, DateTime<Utc>), UserError> {
        let mut conn = self.inner.pool.acquire().await?;
        if store::find_user(&mut conn, user_id, false).await?.is_none() {
            return Err(user_not_found(user_id));
        }
        store::find_address(&mut conn, user_id)
            .await?
            .ok_or_else(|| UserError::NotFound {
                resource_type: "shipping_address",
                resource_id: user_id.to_string(),
            })
    }

    /// Saves the caller's address: `fields` names what to take from `input` (`None` = all); a
    /// first save always takes the whole address.
    pub async fn update_shipping_address(
        &self,
        user_id: Uuid,
        input: PostalAddress,
        fields: Option<Vec<String>>,
    ) -> Result<(PostalAddress, DateTime<Utc>), UserError> {
        let mut tx = self.inner.pool.begin().await?;
        if store::find_user(&mut tx, user_id, false).await?.is_none() {
            return Err(user_not_found(user_id));
        }
        let merged = match (store::find_address(&mut tx, user_id).await?, fields) {
            (Some((mut saved, _)), Some(fields)) => {
                for field in fields {
                    let target = match field.as_str() {
                        "recipient_name" => &mut saved.recipient_name,
                        "recipient_name_kana" => &mut saved.recipient_name_kana,
                        "country_code" => &mut saved.country_code,
                        "postal_code" => &mut saved.postal_code,
                        "region" => &mut saved.region,
                        "locality" => &mut saved.locality,
                        "address_line1" => &mut saved.address_line1,
                        "address_line2" => &mut saved.address_line2,
                        "phone_number" => &mut saved.phone_number,
                        other => {
                            return Err(UserError::field(
                                "update_mask",
                                format!("unknown field {other}"),
                            ));
                        }
                    };
                    let value = address_field(&input, &field);
                    *target = value;
                }
                saved
            }
            (Some(_) | None, _) => input,
        };
        let address = crate::domain::parse_address(&merged, "shipping_address")
            .map_err(UserError::Validation)?;
        let updated_at = store::upsert_address(&mut tx, user_id, &address).await?;
        tx.commit().await?;
        Ok((address, updated_at))
    }

    // ----- external identity providers

    /// Returns (creating on first use) the account of an external subject; `true` when created.
    pub async fn provision_external_user(
        &self,
        issuer: &str,
        subject: &str,
        email: &str,
        email_verified: bool,
        display_name: &str,
    ) -> Result<(UserRow, bool), UserError> {
        let mut violations = Vec::new();
        if !self.inner.auth.external_issuers.iter().any(|i| i == issuer) {
            violations.push(Violation::new(
                "issuer",
                "is not a configured external issuer",
            ));
        }
        let subject_chars = subject.chars().count();
        if subject_chars == 0 || subject_chars > crate::domain::MAX_SUBJECT_CHARS {
            violations.push(Violation::new("subject", "must be 1-255 characters"));
        }
        if !violations.is_empty() {
            return Err(UserError::Validation(violations));
        }
        if !email_verified || email.trim().is_empty() {
            return Err(UserError::EmailNotVerified);
        }
        let email = Email::parse(email).map_err(|d| UserError::field("email", d))?;
        let mut conn = self.inner.pool.acquire().await?;
        if let Some(user) = store::find_live_user_by_identity(&mut conn, issuer, subject).await? {
            return Ok((user, false));
        }
        drop(conn);
        let name = match crate::domain::truncate(
            display_name.trim(),
            crate::domain::MAX_DISPLAY_NAME_CHARS,
        ) {
            name if name.is_empty() => email.local_part().to_owned(),
            name => name,
        };
        let mut tx = self.inner.pool.begin().await?;
        let new = NewUser {
            email: email.as_str(),
            email_verified: true,
            password_hash: None,
            display_name: &name,
            issuer,
            subject: Some(subject),
        };
        match store::insert_user(&mut tx, &new).await {
            Ok(user) => {
                events::user_registered(&mut tx, &user, true).await?;
                tx.commit().await?;
                tracing::info!(user.id = %user.user_id, "external account provisioned");
                Ok((user, true))
            }
            Err(err)
                if mercato_platform::db::is_unique_violation(&err, store::IDENTITY_KEY)
                    || mercato_platform::db::is_unique_violation(&err, store::EMAIL_KEY) =>
            {
                // A concurrent call created the account first (its identity row, or its e-mail
                // row if PostgreSQL checked that index first): the account is theirs to return.
                drop(tx);
                let mut conn = self.inner.pool.acquire().await?;
                match store::find_live_user_by_identity(&mut conn, issuer, subject).await? {
                    Some(user) => Ok((user, false)),
                    None => Err(UserError::EmailTaken),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    // ----- admin

    /// Any account by id.
    pub async fn user(&self, user_id: Uuid, show_deleted: bool) -> Result<UserRow, UserError> {
        let mut conn = self.inner.pool.acquire().await?;
        store::find_user(&mut conn, user_id, show_deleted)
            .await?
            .ok_or_else(|| user_not_found(user_id))
    }

    /// A page of accounts matching `filter`.
    pub async fn list_users(
        &self,
        filter: &UserFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<UserPage, UserError> {
        let fingerprint = hex(&Sha256::digest(
            format!(
                "{:?}|{:?}|{}",
                filter.query, filter.role, filter.show_deleted
            )
            .as_bytes(),
        ))[..16]
            .to_owned();
        let after = decode_cursor(page_token, &fingerprint)?;
        let mut conn = self.inner.pool.acquire().await?;
        let limit = i64::try_from(page_size).unwrap_or(100) + 1;
        let mut users = store::list_users(
            &mut conn,
            filter.query.as_deref(),
            filter.role.map(Role::as_str),
            filter.show_deleted,
            after,
            limit,
        )
        .await?;
        let next_page_token = if users.len() > page_size {
            users.truncate(page_size);
            users
                .last()
                .map(|last| encode_cursor(last.created_at, last.user_id, &fingerprint))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(UserPage {
            users,
            next_page_token,
        })
    }

    /// Adds `role` to `user_id`.
    pub async fn grant_role(&self, user_id: Uuid, role: Role) -> Result<UserRow, UserError> {
        let mut tx = self.inner.pool.begin().await?;
        if !store::add_role(&mut tx, user_id, role.as_str()).await? {
            return Err(user_not_found(user_id));
        }
        let user = store::find_user(&mut tx, user_id, false)
            .await?
            .ok_or_else(|| user_not_found(user_id))?;
        tx.commit().await?;
        Ok(user)
    }

    /// Removes `role` from `user_id`; `actor` is the admin doing it.
    pub async fn revoke_role(
        &self,
        actor: Uuid,
        user_id: Uuid,
        role: Role,
    ) -> Result<UserRow, UserError> {
        match role {
            Role::Buyer => {
                return Err(UserError::field("role", "the buyer role cannot be revoked"));
            }
            Role::Admin if actor == user_id => {
                return Err(UserError::field(
                    "role",
                    "an admin cannot revoke their own admin role",
                ));
            }
            Role::Admin | Role::Seller => {}
        }
        let mut tx = self.inner.pool.begin().await?;
        if !store::remove_role(&mut tx, user_id, role.as_str()).await? {
            return Err(user_not_found(user_id));
        }
        let user = store::find_user(&mut tx, user_id, false)
            .await?
            .ok_or_else(|| user_not_found(user_id))?;
        tx.commit().await?;
        Ok(user)
    }

    // ----- signing keys

    /// Makes sure a key signs: imports the configured PEM, or generates a key when none is
    /// active. Runs under an advisory lock, so replicas starting together create one key.
    pub async fn ensure_signing_key(&self) -> Result<(), UserError> {
        if self.inner.auth.external_mode() {
            return Ok(());
        }
        let now = Utc::now();
        let mut tx = self.inner.pool.begin().await?;
        store::lock_signing_keys(&mut tx).await?;
        let views = keys::evaluate(
            store::signing_keys(&mut tx).await?,
            now,
            self.inner.auth.access_token_ttl,
        );
        if let Some(pem) = &self.inner.auth.signing_key_pem {
            let material = KeyMaterial::from_pem(pem.expose_secret())?;
            match views.iter().find(|v| v.key.kid == material.kid) {
                None => {
                    store::insert_signing_key(&mut tx, &material, now, None).await?;
                    tracing::info!(kid = %material.kid, "configured signing key imported");
                }
                Some(view) if view.state == KeyState::Revoked => {
                    tracing::warn!(kid = %material.kid, "the configured signing key was revoked");
                }
                Some(_) => {}
            }
        } else if !views.iter().any(|v| v.state == KeyState::Active) {
            let material = KeyMaterial::generate();
            store::insert_signing_key(&mut tx, &material, now, None).await?;
            tracing::info!(kid = %material.kid, "signing key generated");
        }
        tx.commit().await?;
        Ok(())
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

    /// Publishes a new key that signs after `delay`; replays return the same key.
    pub async fn rotate_signing_key(
        &self,
        actor: Uuid,
        idempotency_key: &str,
        delay: Option<Duration>,
    ) -> Result<KeyView, UserError> {
        self.require_local()?;
        let delay = delay.unwrap_or(self.inner.auth.key_activation_delay);
        let scoped_key = format!("{actor}:{idempotency_key}");
        let request_hash = format!("{}:{}", keys::ALGORITHM, delay.as_millis());
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
        let material = KeyMaterial::generate();
        store::insert_signing_key(
            &mut tx,
            &material,
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
        tracing::info!(kid = %material.kid, delay_s = delay.as_secs(), "signing key rotated");
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

fn find_view(views: Vec<KeyView>, kid: &str) -> Result<KeyView, UserError> {
    views
        .into_iter()
        .find(|v| v.key.kid == kid)
        .ok_or_else(|| UserError::NotFound {
            resource_type: "signing_key",
            resource_id: kid.to_owned(),
        })
}

fn address_field(address: &PostalAddress, field: &str) -> String {
    match field {
        "recipient_name" => address.recipient_name.clone(),
        "recipient_name_kana" => address.recipient_name_kana.clone(),
        "country_code" => address.country_code.clone(),
        "postal_code" => address.postal_code.clone(),
        "region" => address.region.clone(),
        "locality" => address.locality.clone(),
        "address_line1" => address.address_line1.clone(),
        "address_line2" => address.address_line2.clone(),
        "phone_number" => address.phone_number.clone(),
        _ => String::new(),
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

fn encode_cursor(created_at: DateTime<Utc>, user_id: Uuid, fingerprint: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}|{fingerprint}",
        created_at.timestamp_micros(),
        user_id
    ))
}

fn decode_cursor(
    token: &str,
    fingerprint: &str,
) -> Result<Option<(DateTime<Utc>, Uuid)>, UserError> {
    if token.is_empty() {
        return Ok(None);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(UserError::InvalidPageToken)?;
    let mut parts = raw.split('|');
    let (Some(micros), Some(id), Some(bound), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(UserError::InvalidPageToken);
    };
    if bound != fingerprint {
        return Err(UserError::InvalidPageToken);
    }
    let created_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or(UserError::InvalidPageToken)?;
    let user_id = Uuid::parse_str(id).map_err(|_| UserError::InvalidPageToken)?;
    Ok(Some((created_at, user_id)))
}

/// argon2id with the configured cost, off the async workers (it takes tens of milliseconds).
async fn hash_password(cost: PasswordHashing, password: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| UserError::Hashing(e.to_string()))?;
        let hasher = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Hashing(e.to_string()))?;
        hasher
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| UserError::Hashing(e.to_string()))
    })
    .await
    .map_err(|e| UserError::Hashing(e.to_string()))?
}

/// Verifies with the parameters stored in the hash itself, so raising the cost later keeps old
/// hashes valid.
async fn verify_password(hash: String, password: String) -> Result<bool, UserError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| UserError::Hashing(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| UserError::Hashing(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_filters() {
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("time");
        let id = Uuid::now_v7();
        let token = encode_cursor(now, id, "abc");
        assert_eq!(
            decode_cursor(&token, "abc").expect("valid"),
            Some((now, id))
        );
        assert!(matches!(
            decode_cursor(&token, "other"),
            Err(UserError::InvalidPageToken)
        ));
        assert!(matches!(
            decode_cursor("%%%", "abc"),
            Err(UserError::InvalidPageToken)
        ));
    }
}
