//! A unique Redis key prefix per test; every key under it is deleted at drop.

use crate::{Error, cleanup::run_blocking, env};

/// A per-test key prefix on the Redis server from `MERCATO_TEST_REDIS_URL`.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    client: ::redis::Client,
    prefix: String,
}

impl TestRedis {
    /// A new prefix (`mercato:test:<random>:`); nothing is written yet.
    pub fn new() -> Result<Self, Error> {
        let url = env::redis_url();
        let client = ::redis::Client::open(url.as_str())?;
        let random = uuid::Uuid::new_v4().simple().to_string();
        Ok(Self {
            url,
            client,
            prefix: format!("mercato:test:{}:", &random[..16]),
        })
    }

    /// The prefix every key of this test must start with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `suffix` under this test's prefix.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// A client for the server.
    pub fn client(&self) -> &::redis::Client {
        &self.client
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let client = self.client.clone();
        // The prefix is letters, digits and colons: no glob characters to escape.
        let pattern = format!("{}*", self.prefix);
        run_blocking("redis", async move {
            let mut connection = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("connect to delete test keys: {e}"))?;
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1_000)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| format!("scan test keys: {e}"))?;
                if !keys.is_empty() {
                    ::redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<()>(&mut connection)
                        .await
                        .map_err(|e| format!("delete test keys: {e}"))?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        });
    }
}
