//! The kit's guarantees on the real servers: isolation between tests, clean-up at drop, templates.

use std::borrow::Cow;

use lapin::{
    BasicProperties,
    options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
};
use mercato_testkit::{TestBroker, TestDatabase, TestRedis, database::template_name, env};
use redis::AsyncCommands as _;
use sqlx::{
    Connection as _, PgConnection, SqlSafeStr as _,
    migrate::{Migration, MigrationType, Migrator},
};

/// Writes `marker` into a database, a queue and Redis under the *same*
/// logical names every test uses, then checks it reads back only its own data.
/// Run by two tests that nextest starts as parallel processes.
async fn only_my_own_data_is_visible(marker: &str) {
    let db = TestDatabase::empty().await.expect("a fresh database");
    sqlx::query("CREATE TABLE items (marker TEXT NOT NULL)")
        .execute(db.pool())
        .await
        .expect("create table");
    for _ in 0..10 {
        sqlx::query("INSERT INTO items (marker) VALUES ($1)")
            .bind(marker)
            .execute(db.pool())
            .await
            .expect("insert");
    }
    let markers: Vec<String> = sqlx::query_scalar("SELECT DISTINCT marker FROM items")
        .fetch_all(db.pool())
        .await
        .expect("select");
    assert_eq!(markers, [marker], "another test's rows are visible");

    let broker = TestBroker::new();
    let queue = broker.name("inbox");
    broker.track_queue(queue.clone());
    let connection = broker.connect().await.expect("broker connection");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    for _ in 0..10 {
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                marker.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish");
    }
    let mut received = Vec::new();
    while received.len() < 10 {
        if let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .expect("get")
        {
            received.push(String::from_utf8(message.delivery.data.clone()).expect("utf-8"));
            message
                .delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
        }
    }
    assert!(
        received.iter().all(|m| m == marker),
        "another test's messages arrived: {received:?}"
    );
    let extra = channel
        .basic_get(queue.as_str().into(), BasicGetOptions::default())
        .await
        .expect("get");
    assert!(extra.is_none(), "nothing but our own messages");

    let redis = TestRedis::new().expect("redis prefix");
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = redis.key("counter");
    let () = conn.set(&key, marker).await.expect("set");
    let value: String = conn.get(&key).await.expect("get");
    assert_eq!(value, marker);
    let keys: Vec<String> = conn
        .keys(format!("{}*", redis.prefix()))
        .await
        .expect("keys");
    assert_eq!(keys, [key], "only our key lives under our prefix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_test_sees_only_its_own_rows_messages_and_keys() {
    only_my_own_data_is_visible("first").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_test_sees_only_its_own_rows_messages_and_keys() {
    only_my_own_data_is_visible("second").await;
}

async fn database_exists(name: &str) -> bool {
    let mut admin = PgConnection::connect(&env::database_url())
        .await
        .expect("admin connection");
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut admin)
        .await
        .expect("lookup");
    found.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guards_removes_the_database_the_queue_and_the_keys() {
    let db = TestDatabase::empty().await.expect("database");
    let name = db.name().to_owned();
    // An open pool must not prevent the drop.
    sqlx::query("SELECT 1")
        .execute(db.pool())
        .await
        .expect("use the pool");
    drop(db);
    assert!(
        !database_exists(&name).await,
        "database {name} survived its guard"
    );

    let broker = TestBroker::new();
    let queue = broker.name("doomed");
    broker.track_queue(queue.clone());
    let connection = broker.connect().await.expect("connection");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    drop(broker);
    let passive = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(passive.is_err(), "queue {queue} survived its guard");

    let redis = TestRedis::new().expect("redis");
    let client = redis.client().clone();
    let key = redis.key("doomed");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let () = conn.set(&key, "x").await.expect("set");
    drop(redis);
    let exists: bool = conn.exists(&key).await.expect("exists");
    assert!(!exists, "key {key} survived its guard");
}

fn migrator(sql: &'static str) -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("create widgets"),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_are_cloned_from_a_migrated_template() {
    let widgets = migrator("CREATE TABLE widgets (id BIGINT PRIMARY KEY)");
    let a = TestDatabase::new(&[&widgets])
        .await
        .expect("first database");
    let b = TestDatabase::new(&[&widgets])
        .await
        .expect("second database");
    assert_ne!(a.name(), b.name());
    assert!(
        database_exists(&template_name(&[&widgets])).await,
        "the template is kept for reuse"
    );
    for db in [&a, &b] {
        sqlx::query("INSERT INTO widgets (id) VALUES (1)")
            .execute(db.pool())
            .await
            .expect("the migrated table exists in every clone");
    }
    let gadgets = migrator("CREATE TABLE gadgets (id BIGINT PRIMARY KEY)");
    assert_ne!(
        template_name(&[&widgets]),
        template_name(&[&gadgets]),
        "different migrations never share a template"
    );
}
