//! PostgreSQL plumbing: the pool built from [`DatabaseSettings`], migrations, a dev-time
//! "create the database if missing", and mapping unique violations to domain conflicts by
//! constraint name.
//!
//! Each service owns one database and runs its own `sqlx` migrations at start-up
//! (`sqlx::migrate!()` embeds them in the binary).

use std::str::FromStr as _;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use crate::http::ReadinessCheck;
use crate::settings::DatabaseSettings;

/// SQLSTATE `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE `duplicate_database`.
const DUPLICATE_DATABASE: &str = "42P04";

/// Errors from database set-up.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` does not parse as PostgreSQL connection options.
    #[error("invalid database url")]
    InvalidUrl(#[source] sqlx::Error),
    /// The URL names no database.
    #[error("the database url names no database")]
    NoDatabaseName,
    /// Connecting or querying failed.
    #[error("database connection failed")]
    Connect(#[source] sqlx::Error),
    /// Creating the database failed.
    #[error("failed to create database {name:?}")]
    Create {
        /// The database that could not be created.
        name: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed")]
    Migrate(#[from] MigrateError),
}

/// Connection options from the settings: the URL, the `application_name` shown in
/// `pg_stat_activity`, and the server-side statement timeout.
pub fn connect_options(
    settings: &DatabaseSettings,
    application_name: &str,
) -> Result<PgConnectOptions, DbError> {
    let mut options = PgConnectOptions::from_str(settings.url.expose_secret())
        .map_err(DbError::InvalidUrl)?
        .application_name(application_name);
    if !settings.statement_timeout.is_zero() {
        // Set as a startup parameter, so it holds on every pooled connection without an extra
        // round trip per connect; a runaway query is cancelled by the server itself.
        options = options.options([(
            "statement_timeout",
            format!("{}ms", settings.statement_timeout.as_millis()),
        )]);
    }
    Ok(options)
}

/// Pool options from the settings.
pub fn pool_options(settings: &DatabaseSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections.get())
        .acquire_timeout(settings.acquire_timeout)
}

/// Connects a pool and checks one connection, so a wrong URL or password fails start-up.
pub async fn connect(
    settings: &DatabaseSettings,
    application_name: &str,
) -> Result<PgPool, DbError> {
    pool_options(settings)
        .connect_with(connect_options(settings, application_name)?)
        .await
        .map_err(DbError::Connect)
}

/// A pool that connects on first use (for tools and tests that may never query).
pub fn connect_lazy(
    settings: &DatabaseSettings,
    application_name: &str,
) -> Result<PgPool, DbError> {
    Ok(pool_options(settings).connect_lazy_with(connect_options(settings, application_name)?))
}

/// Runs `migrator` against `pool`. Safe to call from several replicas at once: sqlx takes an
/// advisory lock, so one applies the migrations and the others wait and find them applied.
pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> Result<(), DbError> {
    migrator.run(pool).await?;
    Ok(())
}

/// Creates the database named in `settings.url` if it does not exist (a development
/// convenience: production databases are provisioned, not created by services). Returns whether
/// it was created. Connects to the `postgres` maintenance database with the same credentials.
pub async fn create_database_if_missing(settings: &DatabaseSettings) -> Result<bool, DbError> {
    let options =
        PgConnectOptions::from_str(settings.url.expose_secret()).map_err(DbError::InvalidUrl)?;
    let name = options
        .get_database()
        .ok_or(DbError::NoDatabaseName)?
        .to_owned();
    let mut conn = PgConnection::connect_with(&options.database("postgres"))
        .await
        .map_err(DbError::Connect)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(DbError::Connect)?;
    if exists {
        return Ok(false);
    }
    let created = sqlx::query(AssertSqlSafe(format!(
        "CREATE DATABASE {}",
        quote_identifier(&name)
    )))
    .execute(&mut conn)
    .await;
    let _ = conn.close().await;
    match created {
        Ok(_) => Ok(true),
        // Two replicas (or two tests) raced to create it; the other won, which is fine.
        Err(err)
            if has_sqlstate(&err, DUPLICATE_DATABASE) || has_sqlstate(&err, UNIQUE_VIOLATION) =>
        {
            Ok(false)
        }
        Err(source) => Err(DbError::Create { name, source }),
    }
}

/// `"name"` with embedded quotes doubled: safe to splice into DDL, which takes no parameters.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether `err` is a unique violation of the constraint (or unique index) named `constraint`.
///
/// Use cases map it to their domain conflict: `orders_user_idempotency_key` → "this idempotency
/// key was already used", without a racy existence check before the insert.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error().is_some_and(|db| {
        db.code().as_deref() == Some(UNIQUE_VIOLATION) && db.constraint() == Some(constraint)
    })
}

fn has_sqlstate(err: &sqlx::Error, code: &str) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.code().as_deref() == Some(code))
}

/// A readiness check that pings the pool (`SELECT 1`) within `timeout`.
pub fn readiness_check(pool: PgPool, timeout: Duration) -> ReadinessCheck {
    ReadinessCheck::new("postgres", move || {
        let pool = pool.clone();
        async move {
            let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool);
            match tokio::time::timeout(timeout, ping).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_embedded_quotes_doubled() {
        assert_eq!(quote_identifier("order"), "\"order\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn the_statement_timeout_becomes_a_startup_option() {
        let settings = DatabaseSettings::from_url("postgres://postgres@127.0.0.1:5432/order");
        let options = connect_options(&settings, "order").expect("valid url");
        assert_eq!(options.get_database(), Some("order"));
        assert_eq!(options.get_application_name(), Some("order"));
        assert_eq!(options.get_options(), Some("-c statement_timeout=30000ms"));
    }
}
