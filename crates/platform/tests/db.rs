//! PostgreSQL set-up against the real server: database creation, pool options, migrations and
//! unique-violation mapping, each in a fresh database dropped afterwards.

mod support;

use mercato_platform::db;
use sqlx::migrate::Migrator;
use support::{ScratchDatabase, within};

static MIGRATOR: Migrator = sqlx::migrate!("tests/migrations");

#[tokio::test]
async fn a_missing_database_is_created_once() {
    let scratch = ScratchDatabase::new();
    let created = within(
        "creating the database",
        db::create_database_if_missing(&scratch.settings),
    )
    .await
    .expect("database created");
    assert!(created);
    let again = within(
        "creating it again",
        db::create_database_if_missing(&scratch.settings),
    )
    .await
    .expect("second call succeeds");
    assert!(!again, "an existing database is left alone");
}

#[tokio::test]
async fn the_pool_applies_migrations_and_session_settings() {
    let scratch = ScratchDatabase::new();
    db::create_database_if_missing(&scratch.settings)
        .await
        .expect("database created");
    let pool = within(
        "connecting",
        db::connect(&scratch.settings, "platform-test"),
    )
    .await
    .expect("pool connects");
    within("migrating", db::migrate(&pool, &MIGRATOR))
        .await
        .expect("migrations apply");
    within("migrating again", db::migrate(&pool, &MIGRATOR))
        .await
        .expect("migrations are idempotent");

    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'widgets'",
    )
    .fetch_one(&pool)
    .await
    .expect("query the catalog");
    assert_eq!(tables, 1);
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&pool)
        .await
        .expect("show statement_timeout");
    assert_eq!(timeout, "30s");
    let application: String = sqlx::query_scalar("SELECT current_setting('application_name')")
        .fetch_one(&pool)
        .await
        .expect("show application_name");
    assert_eq!(application, "platform-test");
    pool.close().await;
}

#[tokio::test]
async fn unique_violations_are_recognised_by_constraint_name() {
    let scratch = ScratchDatabase::new();
    db::create_database_if_missing(&scratch.settings)
        .await
        .expect("database created");
    let pool = db::connect(&scratch.settings, "platform-test")
        .await
        .expect("pool connects");
    db::migrate(&pool, &MIGRATOR)
        .await
        .expect("migrations apply");

    let insert = |name: &'static str, sku: &'static str| {
        sqlx::query("INSERT INTO widgets (name, sku) VALUES ($1, $2)")
            .bind(name)
            .bind(sku)
            .execute(&pool)
    };
    insert("bolt", "B-1").await.expect("first insert");

    let same_name = insert("bolt", "B-2").await.expect_err("duplicate name");
    assert!(db::is_unique_violation(&same_name, "widgets_name_key"));
    assert!(!db::is_unique_violation(&same_name, "widgets_sku_idx"));

    let same_sku = insert("nut", "B-1").await.expect_err("duplicate sku");
    assert!(
        db::is_unique_violation(&same_sku, "widgets_sku_idx"),
        "unique indexes count too"
    );

    let not_null = sqlx::query("INSERT INTO widgets (name, sku) VALUES (NULL, 'X')")
        .execute(&pool)
        .await
        .expect_err("null name");
    assert!(!db::is_unique_violation(&not_null, "widgets_name_key"));
    assert!(!db::is_unique_violation(
        &sqlx::Error::RowNotFound,
        "widgets_name_key"
    ));
    pool.close().await;
}
