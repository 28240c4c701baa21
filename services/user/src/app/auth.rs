//! Sign-in use cases: registration, password login with per-address throttling, refresh-token
//! rotation with reuse detection, logout, and the password hashing they share.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Argon2, Params};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::{TokenPair, UserApp, chrono_duration, hex};
use crate::domain::{Email, Password, Violation};
use crate::error::UserError;
use crate::events;
use crate::keys::{self, AccessClaims, KeyState};
use crate::settings::PasswordHashing;
use crate::store::{self, NewUser, UserRow};

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
            &self.inner.password_work,
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
        let verified = verify_password(
            &self.inner.password_work,
            stored_hash,
            password.expose().to_owned(),
        )
        .await?;
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
        let private_key_pem = crate::key_encryption::open_stored(
            self.inner.kek.as_ref(),
            &active.key.kid,
            &active.key.private_key_pem,
        )?;
        let access_token = keys::sign(&active.key, &private_key_pem, &claims)?;
        Ok(TokenPair {
            access_token,
            access_token_expire_time: DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires),
            refresh_token,
            refresh_token_expire_time: family_expires,
        })
    }
}

/// Runs password work off the async workers on `concurrency` threads of its own. An argon2id run
/// holds its memory cost (19 MiB by default) and a core for tens of milliseconds. Unbounded, a
/// burst of sign-ups took the service past 3 GiB of resident memory; bounded but on tokio's
/// blocking pool, it still kept 700 MiB afterwards, because every pool thread that ever hashed
/// left the freed 19 MiB in its own allocator arena. On a fixed set of threads the same few
/// buffers are reused: the process stays near `concurrency` × the cost, and a burst waits its
/// turn on the semaphore (cheaply, and a caller that gives up leaves the queue).
#[derive(Debug, Clone)]
pub(super) struct PasswordWork {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl PasswordWork {
    /// Starts `concurrency` worker threads; they end when the last clone is dropped.
    pub(super) fn new(concurrency: u32) -> Self {
        let workers = usize::try_from(concurrency.max(1)).unwrap_or(1);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for index in 0..workers {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("password-{index}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => break,
                        };
                        let Ok(job) = job else { break };
                        // A panic fails that one call (its answer is dropped), not the worker.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password worker thread");
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            jobs,
        }
    }

    /// `work` on a worker thread once one is free.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, UserError> + Send + 'static,
    ) -> Result<T, UserError> {
        let stopped = || UserError::Hashing("the password workers stopped".to_owned());
        let _permit = self.permits.acquire().await.map_err(|_| stopped())?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = answer.send(work());
            }))
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// argon2id with the configured cost, off the async workers (it takes tens of milliseconds).
pub(super) async fn hash_password(
    work: &PasswordWork,
    cost: PasswordHashing,
    password: String,
) -> Result<String, UserError> {
    work.run(move || {
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
}

/// Verifies with the parameters stored in the hash itself, so raising the cost later keeps old
/// hashes valid.
async fn verify_password(
    work: &PasswordWork,
    hash: String,
    password: String,
) -> Result<bool, UserError> {
    work.run(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| UserError::Hashing(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_work_runs_at_most_its_concurrency_at_once() {
        let work = PasswordWork::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (work, running, most) = (work.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    work.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("joined").expect("ran");
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at once, never more");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_work_always_runs_on_the_same_few_threads() {
        let work = PasswordWork::new(2);
        let threads = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (work, threads) = (work.clone(), threads.clone());
                tokio::spawn(async move {
                    work.run(move || {
                        let name = std::thread::current().name().map(str::to_owned);
                        threads.lock().expect("lock").insert(name);
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("joined").expect("ran");
        }
        let threads = threads.lock().expect("lock").clone();
        assert!(
            !threads.is_empty() && threads.len() <= 2,
            "two workers at most: {threads:?}"
        );
        assert!(
            threads
                .iter()
                .all(|name| name.as_deref().is_some_and(|n| n.starts_with("password-"))),
            "{threads:?}"
        );
    }

    #[tokio::test]
    async fn a_panic_fails_one_call_and_the_worker_carries_on() {
        let work = PasswordWork::new(1);
        let failed = work.run::<()>(|| panic!("boom")).await;
        assert!(matches!(failed, Err(UserError::Hashing(_))), "{failed:?}");
        assert_eq!(work.run(|| Ok(7)).await.expect("the worker is alive"), 7);
    }

    #[tokio::test]
    async fn a_hash_verifies_through_the_bounded_pool() {
        let work = PasswordWork::new(1);
        let cost = PasswordHashing {
            memory_kib: 64,
            iterations: 1,
            concurrency: 1,
        };
        let hash = hash_password(&work, cost, "correct horse".to_owned())
            .await
            .expect("hashed");
        assert!(
            verify_password(&work, hash.clone(), "correct horse".to_owned())
                .await
                .expect("verified")
        );
        assert!(
            !verify_password(&work, hash, "wrong horse".to_owned())
                .await
                .expect("verified")
        );
    }
}
