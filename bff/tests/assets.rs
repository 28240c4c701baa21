//! The storefront's files on the BFF's port: pages and files load with `GET`, unknown paths fall
//! back to `index.html` (client-side routes), and gRPC on the same port is untouched.

mod support;

use std::path::PathBuf;

use support::{FakeUsers, JwksServer, RedisPrefix, TestBff, TestKey, settings};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

struct WebRoot(PathBuf);

impl WebRoot {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!("mercato-web-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("assets")).expect("web root");
        std::fs::write(
            root.join("index.html"),
            "<!doctype html><title>Mercato</title>",
        )
        .expect("index.html");
        std::fs::write(root.join("assets/app.js"), "console.log('storefront');").expect("app.js");
        Self(root)
    }
}

impl Drop for WebRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn the_spa_loads_from_the_grpc_port_and_grpc_still_answers() {
    let web = WebRoot::new();
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let prefix = RedisPrefix::new();
    let root = web.0.display().to_string();
    let bff = TestBff::start(settings(&jwks, &users_url, &prefix, &[("WEB_ROOT", &root)])).await;
    mercato_bff::app::install_crypto_provider();
    let http = reqwest::Client::new();

    for (path, expected_type, expected_body) in [
        ("/", "text/html", "<title>Mercato</title>"),
        ("/assets/app.js", "javascript", "storefront"),
        // A client-side route: the SPA's index, so a reload on it works.
        (
            "/products/0b9e2c1e-3f57-4b9e-8d8c-000000000001",
            "text/html",
            "<title>Mercato</title>",
        ),
    ] {
        let response = http
            .get(format!("{}{path}", bff.url()))
            .send()
            .await
            .expect("GET reaches the bff");
        assert_eq!(response.status(), 200, "GET {path}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.contains(expected_type),
            "GET {path}: {content_type}"
        );
        let body = response.text().await.expect("body");
        assert!(body.contains(expected_body), "GET {path}: {body}");
    }

    let mut health = HealthClient::new(bff.channel().await);
    let answer = health
        .check(HealthCheckRequest::default())
        .await
        .expect("gRPC on the same port still answers")
        .into_inner();
    assert_eq!(answer.status, 1, "SERVING");
    assert_eq!(users.call_count(), 0, "serving files calls no service");
}

#[tokio::test]
async fn without_a_web_root_a_get_is_not_served_as_a_page() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let prefix = RedisPrefix::new();
    let bff = TestBff::start(settings(&jwks, &users_url, &prefix, &[])).await;
    mercato_bff::app::install_crypto_provider();
    let response = reqwest::Client::new()
        .get(format!("{}/", bff.url()))
        .send()
        .await
        .expect("GET reaches the bff");
    let body = response.text().await.unwrap_or_default();
    assert!(
        !body.contains("<title>"),
        "no page without WEB_ROOT: {body}"
    );
}
