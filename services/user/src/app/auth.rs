//! Sign-in use cases: registration, password login with per-address throttling, refresh-token
//! rotation with reuse detection, logout, and the password hashing they share.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Runs password work off the async workers on `concurrency` threads of its own, each with its
/// own argon2id memory, reused by every run on that thread. An argon2id run holds its memory
/// cost (19 MiB by default) and a core for tens of milliseconds. Unbounded, a burst of sign-ups
/// took the service past 3 GiB of resident memory; bounded but on tokio's blocking pool, it
/// still kept 700 MiB afterwards; on a fixed set of threads but allocating per run, 444 MiB
/// (`make bench SCENARIOS=flash-sale`): glibc serves a block that large by mmap only until one
/// is freed, then raises its mmap threshold and serves the next ones from the threads' arenas,
/// which keep what is freed. With the memory allocated once per thread and never freed, the
/// service holds `concurrency` × the cost once busy, no more, and no run page-faults 19 MiB
/// afresh. A burst waits its turn on the semaphore (cheaply, and a caller that gives up leaves
/// the queue).
#[derive(Debug, Clone)]
pub(super) struct PasswordWork {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

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
                    // This thread's argon2id memory, grown to the largest cost it has run.
                    let mut memory = Vec::new();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => break,
                        };
                        let Ok(job) = job else { break };
                        // A panic fails that one call (its answer is dropped), not the worker.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            job(&mut memory);
                        }));
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

    /// `work` on a worker thread once one is free, with that thread's argon2id memory.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, UserError> + Send + 'static,
    ) -> Result<T, UserError> {
        let stopped = || UserError::Hashing("the password workers stopped".to_owned());
        let _permit = self.permits.acquire().await.map_err(|_| stopped())?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |memory: &mut Vec<Block>| {
                let _ = answer.send(work(memory));
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
    work.run(move |memory| {
        let params = cost_params(cost)?;
        let salt: [u8; 16] = rand::random();
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = argon2id(
            memory,
            Algorithm::Argon2id,
            Version::V0x13,
            &params,
            password.as_bytes(),
            &salt,
            output_len,
        )?;
        phc_string(&params, &salt, output)
    })
    .await
}

/// A stored-hash stand-in for accounts that do not exist: the configured cost, a random salt
/// and a random output, which no password reproduces (one chance in 2²⁵⁶). Verifying against
/// it costs what verifying a real hash costs, so an unknown email answers as slowly as a wrong
/// password; building it costs nothing, so start-up fills no argon2 memory.
pub(super) fn unmatchable_hash(cost: PasswordHashing) -> Result<String, UserError> {
    let params = cost_params(cost)?;
    let salt: [u8; 16] = rand::random();
    let random: [u8; Params::DEFAULT_OUTPUT_LEN] = rand::random();
    let output = Output::new(&random).map_err(hashing)?;
    phc_string(&params, &salt, output)
}

fn cost_params(cost: PasswordHashing) -> Result<Params, UserError> {
    Params::new(cost.memory_kib, cost.iterations, 1, None).map_err(hashing)
}

/// The argon2 crate's PHC string for an argon2id v19 output.
fn phc_string(params: &Params, salt: &[u8], output: Output) -> Result<String, UserError> {
    let encoded_salt = SaltString::encode_b64(salt).map_err(hashing)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(hashing)?,
        salt: Some(encoded_salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// One argon2id (or argon2i/d, for a stored hash that says so) run in `memory`, grown to the
/// cost if it is smaller: the output of `output_len` bytes.
fn argon2id(
    memory: &mut Vec<Block>,
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    output_len: usize,
) -> Result<Output, UserError> {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let hasher = Argon2::new(algorithm, version, params.clone());
    Output::init_with(output_len, |out| {
        hasher
            .hash_password_into_with_memory(
                password,
                salt,
                out,
                &mut memory[..params.block_count()],
            )
            .map_err(Into::into)
    })
    .map_err(hashing)
}

fn hashing(error: impl std::fmt::Display) -> UserError {
    UserError::Hashing(error.to_string())
}

/// Verifies with the parameters stored in the hash itself, so raising the cost later keeps old
/// hashes valid.
async fn verify_password(
    work: &PasswordWork,
    hash: String,
    password: String,
) -> Result<bool, UserError> {
    work.run(move |memory| {
        let parsed = PasswordHash::new(&hash).map_err(hashing)?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(hashing)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(hashing)?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(hashing)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(hashing("the stored hash has no salt or no output"));
        };
        let mut salt_bytes = [0_u8; Salt::MAX_LENGTH];
        let salt = salt.decode_b64(&mut salt_bytes).map_err(hashing)?;
        let computed = argon2id(
            memory,
            algorithm,
            version,
            &params,
            password.as_bytes(),
            salt,
            expected.len(),
        )?;
        // `Output` compares in constant time.
        Ok(computed == expected)
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
                    work.run(move |_| {
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
                    work.run(move |_| {
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
        let failed = work.run::<()>(|_| panic!("boom")).await;
        assert!(matches!(failed, Err(UserError::Hashing(_))), "{failed:?}");
        assert_eq!(work.run(|_| Ok(7)).await.expect("the worker is alive"), 7);
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

    /// The stand-in for unknown accounts is a well-formed hash with the configured cost (so
    /// verifying against it runs the full argon2id), a fresh salt each time, and matches no
    /// password.
    #[tokio::test]
    async fn the_unknown_account_hash_carries_the_cost_and_matches_nothing() {
        let work = PasswordWork::new(1);
        let cost = PasswordHashing {
            memory_kib: 256,
            iterations: 2,
            concurrency: 1,
        };
        let first = unmatchable_hash(cost).expect("built");
        let second = unmatchable_hash(cost).expect("built");
        assert_ne!(first, second, "a fresh salt and output each time");
        let parsed = PasswordHash::new(&first).expect("a PHC string");
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        let params = Params::try_from(&parsed).expect("argon2 parameters");
        assert_eq!((params.m_cost(), params.t_cost()), (256, 2));
        for password in ["", "correct horse", "password"] {
            assert!(
                !verify_password(&work, first.clone(), password.to_owned())
                    .await
                    .expect("verified"),
                "{password:?} matched the unknown-account hash"
            );
        }
    }

    /// The hashes are the argon2 crate's PHC strings: what it writes verifies here (accounts
    /// made before the memory was reused keep signing in), and what is written here verifies
    /// with it, with a different cost on each side.
    #[tokio::test]
    async fn hashes_stay_interchangeable_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

        let work = PasswordWork::new(1);
        let params = Params::new(256, 2, 1, None).expect("valid params");
        let standard = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(
                b"correct horse",
                &SaltString::encode_b64(b"sixteen byte slt").expect("salt"),
            )
            .expect("hashed")
            .to_string();
        assert!(
            verify_password(&work, standard.clone(), "correct horse".to_owned())
                .await
                .expect("verified")
        );
        assert!(
            !verify_password(&work, standard, "wrong horse".to_owned())
                .await
                .expect("verified")
        );

        let cost = PasswordHashing {
            memory_kib: 128,
            iterations: 1,
            concurrency: 1,
        };
        let ours = hash_password(&work, cost, "correct horse".to_owned())
            .await
            .expect("hashed");
        assert!(ours.starts_with("$argon2id$v=19$m=128,t=1,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong horse", &parsed)
                .is_err()
        );
    }
}
