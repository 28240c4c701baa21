//! A fresh PostgreSQL database per test, cloned from a migrated template and dropped afterwards.
//!
//! Migrating from scratch in every test is slow; `CREATE DATABASE .. TEMPLATE`
//! is a file copy. The template for a set of migrators is named after a hash
//! of their migrations (versions and checksums), so a changed migration gets
//! a new template instead of a stale one. It is built at most once per server
//! state: nextest runs every test in its own process, so the build happens
//! under a PostgreSQL advisory lock, and under a temporary name that is only
//! renamed once fully migrated (a build killed half-way leaves no template
//! that looks complete).

use std::{
    str::FromStr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sqlx::{
    AssertSqlSafe, Connection, Executor, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{Error, cleanup::run_blocking, env};

/// Databases created by the kit start with this prefix, then the creation
/// time in seconds, then a random suffix.
pub const TEST_DATABASE_PREFIX: &str = "mercato_test_";
/// Template databases start with this prefix, then the migration hash.
pub const TEMPLATE_PREFIX: &str = "mercato_tpl_";
/// Test databases older than this are dropped by the leftover sweep (a test
/// killed before its guard ran leaves its database behind).
pub const LEFTOVER_AGE: Duration = Duration::from_secs(6 * 3600);
/// Templates not rebuilt for this long are dropped by the sweep.
pub const TEMPLATE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Serialises template builds and sweeps across processes ("mercato" in ASCII).
const ADVISORY_LOCK_KEY: i64 = 0x006d_6572_6361_746f;

static SWEPT: AtomicBool = AtomicBool::new(false);

/// A database that exists for one test; dropped (with its connections) when this guard drops.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    pool: PgPool,
}

impl TestDatabase {
    /// A fresh database with every migrator in `migrators` applied (in
    /// order), cloned from a cached template.
    pub async fn new(migrators: &[&Migrator]) -> Result<Self, Error> {
        let admin_url = env::database_url();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .map_err(Error::db("connect to the admin database"))?;
        sweep_leftovers_once(&mut admin).await;
        let template = ensure_template(&mut admin, &admin_url, migrators).await?;
        Self::create(admin, admin_url, Some(&template)).await
    }

    /// A fresh empty database (no migrations).
    pub async fn empty() -> Result<Self, Error> {
        let admin_url = env::database_url();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .map_err(Error::db("connect to the admin database"))?;
        sweep_leftovers_once(&mut admin).await;
        Self::create(admin, admin_url, None).await
    }

    async fn create(
        mut admin: PgConnection,
        admin_url: String,
        template: Option<&str>,
    ) -> Result<Self, Error> {
        let name = new_database_name();
        let statement = match template {
            Some(template) => format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote(&name),
                quote(template)
            ),
            None => format!("CREATE DATABASE {}", quote(&name)),
        };
        admin
            .execute(AssertSqlSafe(statement))
            .await
            .map_err(Error::db("create the test database"))?;
        let _ = admin.close().await;
        let url = env::with_database(&admin_url, &name).ok_or_else(|| Error::InvalidUrl {
            url: admin_url.clone(),
            reason: "expected postgres://user@host:port/database",
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await
            .map_err(Error::db("connect to the test database"))?;
        Ok(Self {
            name,
            url,
            admin_url,
            pool,
        })
    }

    /// A pool on this database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name of this database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for this database (for pools with other settings).
    pub fn connect_options(&self) -> Result<PgConnectOptions, Error> {
        PgConnectOptions::from_str(&self.url).map_err(Error::db("parse the test database url"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin_url = self.admin_url.clone();
        // The pool's connections belong to the test's runtime, which cannot run
        // while we block here; WITH (FORCE) terminates them server-side instead.
        run_blocking("database", async move {
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .map_err(|e| format!("connect to drop {name}: {e}"))?;
            admin
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote(&name)
                )))
                .await
                .map_err(|e| format!("drop {name}: {e}"))?;
            let _ = admin.close().await;
            Ok(())
        });
    }
}

fn new_database_name() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{TEST_DATABASE_PREFIX}{}_{}", unix_now(), &random[..12])
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A double-quoted SQL identifier (our names never contain quotes, but the
/// template name derives from input, so escape anyway).
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The template name for `migrators`: a stable FNV-1a hash (std's hasher may
/// change between Rust releases, which would orphan templates) of each
/// migrator's table name and each migration's version and checksum.
pub fn template_name(migrators: &[&Migrator]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for migrator in migrators {
        feed(migrator.table_name.as_bytes());
        feed(&[0]);
        for migration in migrator.iter() {
            feed(&migration.version.to_le_bytes());
            feed(migration.migration_type.label().as_bytes());
            feed(&migration.checksum);
        }
        feed(&[0xff]);
    }
    format!("{TEMPLATE_PREFIX}{hash:016x}")
}

async fn ensure_template(
    admin: &mut PgConnection,
    admin_url: &str,
    migrators: &[&Migrator],
) -> Result<String, Error> {
    let template = template_name(migrators);
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(ADVISORY_LOCK_KEY)
        .execute(&mut *admin)
        .await
        .map_err(Error::db("take the template lock"))?;
    let built = build_template_if_missing(admin, admin_url, &template, migrators).await;
    // Released explicitly so the admin connection can be reused; a process
    // that dies here releases it with its session anyway.
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(ADVISORY_LOCK_KEY)
        .execute(&mut *admin)
        .await
        .map_err(Error::db("release the template lock"));
    built?;
    unlocked?;
    Ok(template)
}

async fn build_template_if_missing(
    admin: &mut PgConnection,
    admin_url: &str,
    template: &str,
    migrators: &[&Migrator],
) -> Result<(), Error> {
    if database_exists(admin, template).await? {
        return Ok(());
    }
    let building = format!("{template}_building");
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(&building)
        )))
        .await
        .map_err(Error::db("drop a half-built template"))?;
    admin
        .execute(AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            quote(&building)
        )))
        .await
        .map_err(Error::db("create the template database"))?;
    let url = env::with_database(admin_url, &building).ok_or_else(|| Error::InvalidUrl {
        url: admin_url.to_owned(),
        reason: "expected postgres://user@host:port/database",
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .map_err(Error::db("connect to the template database"))?;
    for migrator in migrators {
        migrator.run(&pool).await?;
    }
    // Cloning requires that nobody is connected to the template.
    pool.close().await;
    admin
        .execute(AssertSqlSafe(format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote(&building),
            quote(template)
        )))
        .await
        .map_err(Error::db("publish the template database"))?;
    admin
        .execute(AssertSqlSafe(format!(
            "COMMENT ON DATABASE {} IS 'mercato testkit template created {}'",
            quote(template),
            unix_now()
        )))
        .await
        .map_err(Error::db("label the template database"))?;
    Ok(())
}

async fn database_exists(admin: &mut PgConnection, name: &str) -> Result<bool, Error> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *admin)
        .await
        .map_err(Error::db("look up a database"))?;
    Ok(found.is_some())
}

/// Once per process: drops test databases older than [`LEFTOVER_AGE`] and
/// templates older than [`TEMPLATE_AGE`]. Failures only warn: a sweep must
/// never fail the test that happens to run it.
async fn sweep_leftovers_once(admin: &mut PgConnection) {
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    if let Err(error) = sweep_leftovers(admin).await {
        eprintln!("testkit: leftover sweep failed: {error}");
    }
}

/// Drops leftovers now; returns the names dropped.
pub async fn sweep_leftovers(admin: &mut PgConnection) -> Result<Vec<String>, Error> {
    let now = unix_now();
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database \
         WHERE datname LIKE 'mercato\\_test\\_%' OR datname LIKE 'mercato\\_tpl\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .map_err(Error::db("list leftover databases"))?;
    let mut dropped = Vec::new();
    for (name, comment) in rows {
        let stale = if let Some(rest) = name.strip_prefix(TEST_DATABASE_PREFIX) {
            created_at(rest.split('_').next())
                .is_some_and(|created| now.saturating_sub(created) > LEFTOVER_AGE.as_secs())
        } else {
            // Templates: the age is in the comment; a template without one
            // (or a `_building` leftover) is only dropped under the lock below.
            created_at(comment.as_deref().and_then(|c| c.rsplit(' ').next()))
                .is_some_and(|created| now.saturating_sub(created) > TEMPLATE_AGE.as_secs())
        };
        if !stale {
            continue;
        }
        let is_template = name.starts_with(TEMPLATE_PREFIX);
        if is_template {
            // Never drop a template while another process clones or builds it.
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(ADVISORY_LOCK_KEY)
                .execute(&mut *admin)
                .await
                .map_err(Error::db("take the template lock"))?;
        }
        let result = admin
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote(&name)
            )))
            .await
            .map_err(Error::db("drop a leftover database"));
        if is_template {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(ADVISORY_LOCK_KEY)
                .execute(&mut *admin)
                .await
                .map_err(Error::db("release the template lock"))?;
        }
        result?;
        dropped.push(name);
    }
    Ok(dropped)
}

fn created_at(text: Option<&str>) -> Option<u64> {
    text?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_carry_their_creation_time() {
        let name = new_database_name();
        let rest = name.strip_prefix(TEST_DATABASE_PREFIX).expect("prefixed");
        let created = created_at(rest.split('_').next()).expect("a timestamp");
        assert!(unix_now() - created < 60);
        assert!(
            name.len() < 63,
            "postgres truncates identifiers at 63 bytes"
        );
    }

    #[test]
    fn template_names_depend_on_the_migrations() {
        let empty = Migrator::DEFAULT;
        let mut renamed = Migrator::DEFAULT;
        renamed.dangerous_set_table_name("_other_migrations");
        assert_ne!(template_name(&[&empty]), template_name(&[&renamed]));
        assert_eq!(
            template_name(&[&empty]),
            template_name(&[&Migrator::DEFAULT])
        );
        assert!(template_name(&[&empty]).len() < 63);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
