//! Redis against the real server: the connection manager and key prefixes that isolate tests.

mod support;

use std::time::Duration;

use mercato_platform::redis::{Keys, connect, readiness_check};
use mercato_platform::settings::RedisSettings;
use redis::AsyncCommands as _;
use secrecy::SecretString;
use support::{redis_url, within};

fn settings(prefix: &str) -> RedisSettings {
    RedisSettings {
        url: SecretString::from(redis_url()),
        key_prefix: prefix.to_owned(),
    }
}

/// Deletes every key under `keys`' prefix.
async fn clean_up(connection: &mut redis::aio::ConnectionManager, keys: &Keys) {
    let found: Vec<String> = {
        let mut iter = connection
            .scan_match::<_, String>(keys.pattern())
            .await
            .expect("scan");
        let mut found = Vec::new();
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            found.push(key.expect("scan item"));
        }
        found
    };
    if !found.is_empty() {
        let _: usize = connection.del(found).await.expect("delete test keys");
    }
}

#[tokio::test]
async fn prefixed_keys_keep_two_tenants_apart() {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let first = settings(&format!("test:{run}:a"));
    let second = settings(&format!("test:{run}:b"));
    let mut connection = within("connecting", connect(&first))
        .await
        .expect("redis connects");
    let (a, b) = (Keys::from_settings(&first), Keys::from_settings(&second));

    let _: () = connection
        .set_ex(a.key("cart", 7), "apples", 60)
        .await
        .expect("set a");
    let _: () = connection
        .set_ex(b.key("cart", 7), "pears", 60)
        .await
        .expect("set b");
    let seen_a: String = connection.get(a.key("cart", 7)).await.expect("get a");
    let seen_b: String = connection.get(b.key("cart", 7)).await.expect("get b");
    assert_eq!((seen_a.as_str(), seen_b.as_str()), ("apples", "pears"));

    clean_up(&mut connection, &a).await;
    let gone: Option<String> = connection.get(a.key("cart", 7)).await.expect("get a");
    let kept: Option<String> = connection.get(b.key("cart", 7)).await.expect("get b");
    assert_eq!(gone, None, "clean-up removed the first prefix");
    assert_eq!(kept.as_deref(), Some("pears"), "and only the first prefix");
    clean_up(&mut connection, &b).await;
}

#[tokio::test]
async fn the_readiness_check_pings_redis() {
    let mut connection = within("connecting", connect(&settings("test:ready")))
        .await
        .expect("redis connects");
    let check = readiness_check(connection.clone(), Duration::from_secs(2));
    assert_eq!(within("the ping", check.run()).await, Ok(()));
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .expect("ping");
    assert_eq!(pong, "PONG");
}
