//! Helpers shared by the platform's integration tests: server URLs from the environment and a
//! throw-away PostgreSQL database that is dropped even when a test fails.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub(crate) mod gate;

use std::future::Future;
use std::time::Duration;

use mercato_platform::settings::DatabaseSettings;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

/// Upper bound for anything a test waits for; reaching it means a hang, not slowness.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// Awaits `future` or fails the test naming `what`.
pub(crate) async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

/// The maintenance database URL of the test PostgreSQL server.
pub(crate) fn database_url() -> String {
    std::env::var("MERCATO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The test Redis server.
pub(crate) fn redis_url() -> String {
    std::env::var("MERCATO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `base` with its database name replaced by `name` (query string kept).
pub(crate) fn url_with_database(base: &str, name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (base, None),
    };
    let (scheme, rest) = without_query
        .split_once("://")
        .expect("database url has a scheme");
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    let mut url = format!("{scheme}://{authority}/{name}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A uniquely named database name; the database itself is created by the code under test.
/// Dropping the guard drops the database (with `FORCE`, so leftover connections do not block it).
pub(crate) struct ScratchDatabase {
    pub(crate) name: String,
    pub(crate) settings: DatabaseSettings,
}

impl ScratchDatabase {
    pub(crate) fn new() -> Self {
        let name = format!("mercato_platform_{}", uuid::Uuid::new_v4().simple());
        let settings = DatabaseSettings::from_url(url_with_database(&database_url(), &name));
        Self { name, settings }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, where blocking on async work is not allowed, so
        // the clean-up gets a thread and a small runtime of its own.
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("clean-up runtime");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&database_url())
                    .await
                    .expect("connect for clean-up");
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .expect("drop the scratch database");
            });
        });
        if cleanup.join().is_err() && !std::thread::panicking() {
            panic!("failed to drop scratch database {}", self.name);
        }
    }
}
