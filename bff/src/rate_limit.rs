//! Rate limiting shared by every BFF replica: GCRA (the "virtual scheduling" form of a token
//! bucket) evaluated by one Lua script in Redis, per client IP and per user, with a budget per
//! route class.
//!
//! **Redis-down policy.** When Redis cannot be reached, the auth class fails closed (sign-in
//! traffic is what attackers hammer, so without a limiter it is refused with `UNAVAILABLE`) and
//! the read and write classes fail open (shoppers keep shopping; the per-server concurrency limit
//! still bounds load). [`Decision::Unavailable`] carries that choice to the caller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mercato_platform::redis::Keys;
use mercato_platform::settings::RedisSettings;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

use crate::routes::RouteClass;

/// GCRA over up to two keys (IP, user), atomically: the request is admitted only when every key
/// admits it, and only then are the keys' theoretical arrival times (TAT) advanced.
///
/// ARGV[1] is the emission interval and ARGV[2] the burst tolerance (interval × burst), both in
/// microseconds. Redis's own clock is used so that replicas with skewed clocks share one budget.
/// Returns `{admitted, retry_after_us, index_of_the_refusing_key}`.
pub const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tats = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if not tat or tat < now then tat = now end
  local new_tat = tat + interval
  local wait = new_tat - tolerance - now
  if wait > 0 then
    return {0, wait, i}
  end
  tats[i] = new_tat
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%d', tats[i]), 'PX', math.max(1, math.ceil((tats[i] - now) / 1000)))
end
return {1, 0, 0}
";

/// A budget: `requests` per `period` on average, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Sustained requests per period.
    pub requests: u32,
    /// The period.
    pub period: Duration,
    /// Requests allowed back to back from an idle state.
    pub burst: u32,
}

impl Limit {
    fn interval_us(self) -> u64 {
        let micros = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        (micros / u64::from(self.requests.max(1))).max(1)
    }
}

/// Budgets per route class (each applies separately to the client IP and to the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `auth` class (sign-in).
    pub auth: Limit,
    /// `read` class.
    pub read: Limit,
    /// `write` class.
    pub write: Limit,
}

impl Default for Limits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            auth: Limit {
                requests: 20,
                period: minute,
                burst: 10,
            },
            read: Limit {
                requests: 600,
                period: minute,
                burst: 100,
            },
            write: Limit {
                requests: 120,
                period: minute,
                burst: 30,
            },
        }
    }
}

/// Who a budget belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A client IP.
    Ip(String),
    /// A user id.
    User(String),
}

impl Subject {
    /// `ip:…` / `user:…`, as used in keys and in `QuotaFailure`.
    pub fn describe(&self) -> String {
        match self {
            Self::Ip(ip) => format!("ip:{ip}"),
            Self::User(user) => format!("user:{user}"),
        }
    }

    /// `ip` or `user`: whose budget, without saying whose (a metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ip(_) => "ip",
            Self::User(_) => "user",
        }
    }
}

/// The limiter's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Over budget: come back after `retry_after`.
    Limited {
        /// The subject whose budget ran out.
        subject: Subject,
        /// When a retry will be admitted.
        retry_after: Duration,
    },
    /// Redis could not be asked; the caller applies the Redis-down policy.
    Unavailable,
}

/// The shared rate limiter. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    limits: Limits,
    keys: Keys,
    script: Arc<Script>,
    connection: Arc<LazyConnection>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limits", &self.limits)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter storing its state under the settings' key prefix. Connects on first use, so the
    /// BFF starts (and serves fail-open classes) while Redis is down.
    pub fn new(redis: RedisSettings, limits: Limits) -> Self {
        Self {
            limits,
            keys: Keys::from_settings(&redis),
            script: Arc::new(Script::new(GCRA)),
            connection: Arc::new(LazyConnection::new(redis)),
        }
    }

    /// The configured budgets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Charges one request of `class` to every subject.
    pub async fn check(&self, class: RouteClass, subjects: &[Subject]) -> Decision {
        let limit = match class {
            RouteClass::Auth => self.limits.auth,
            RouteClass::Read => self.limits.read,
            RouteClass::Write => self.limits.write,
            RouteClass::Health => return Decision::Allowed,
        };
        if subjects.is_empty() {
            return Decision::Allowed;
        }
        let Some(mut connection) = self.connection.get().await else {
            crate::metrics::limiter_unavailable(class.as_str());
            return Decision::Unavailable;
        };
        let interval = limit.interval_us();
        let tolerance = interval.saturating_mul(u64::from(limit.burst.max(1)));
        let mut invocation = self.script.prepare_invoke();
        for subject in subjects {
            invocation.key(
                self.keys
                    .key(&format!("rl:{}", class.as_str()), subject.describe()),
            );
        }
        invocation.arg(interval).arg(tolerance);
        let result: Result<(i64, i64, i64), _> = invocation.invoke_async(&mut connection).await;
        match result {
            Ok((1, _, _)) => Decision::Allowed,
            Ok((_, wait_us, index)) => {
                let subject = usize::try_from(index - 1)
                    .ok()
                    .and_then(|index| subjects.get(index))
                    .cloned()
                    .unwrap_or_else(|| subjects[0].clone());
                crate::metrics::rate_limited(class.as_str(), subject.kind());
                Decision::Limited {
                    subject,
                    retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "rate limiter redis call failed");
                crate::metrics::limiter_unavailable(class.as_str());
                Decision::Unavailable
            }
        }
    }
}

/// How long after a failed connect attempt the limiter answers `Unavailable` at once instead of
/// trying again, so a Redis outage does not add a connect timeout to every request.
const RECONNECT_COOLDOWN: Duration = Duration::from_secs(1);

/// A Redis connection made on first use. Once made, the `ConnectionManager` reconnects by
/// itself after Redis restarts.
struct LazyConnection {
    settings: RedisSettings,
    state: Mutex<ConnectionState>,
}

enum ConnectionState {
    Idle,
    Connected(ConnectionManager),
    Failed(Instant),
}

impl LazyConnection {
    fn new(settings: RedisSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(ConnectionState::Idle),
        }
    }

    async fn get(&self) -> Option<ConnectionManager> {
        let mut state = self.state.lock().await;
        match &*state {
            ConnectionState::Connected(connection) => return Some(connection.clone()),
            ConnectionState::Failed(at) if at.elapsed() < RECONNECT_COOLDOWN => return None,
            ConnectionState::Failed(_) | ConnectionState::Idle => {}
        }
        let attempt = tokio::time::timeout(
            Duration::from_secs(3),
            mercato_platform::redis::connect(&self.settings),
        )
        .await;
        match attempt {
            Ok(Ok(connection)) => {
                *state = ConnectionState::Connected(connection.clone());
                Some(connection)
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "rate limiter cannot connect to redis");
                *state = ConnectionState::Failed(Instant::now());
                None
            }
            Err(_) => {
                tracing::warn!("rate limiter redis connect timed out");
                *state = ConnectionState::Failed(Instant::now());
                None
            }
        }
    }
}
