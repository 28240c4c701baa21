//! `/healthz` and `/readyz`: alive always, ready only while hard dependencies answer and the
//! service is not draining.

mod support;

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use mercato_platform::http::{Readiness, ReadinessCheck, router, serve};
use mercato_platform::{db, settings::DatabaseSettings};
use support::{database_url, within};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

async fn get(readiness: Readiness, path: &str) -> (StatusCode, serde_json::Value) {
    let response = router(readiness)
        .oneshot(
            Request::get(path)
                .body(Body::empty())
                .expect("valid request"),
        )
        .await
        .expect("router is infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body reads");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    (status, body)
}

/// A URL on a port nothing listens on: bound, then released.
async fn unreachable_database() -> DatabaseSettings {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let mut settings =
        DatabaseSettings::from_url(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    settings.acquire_timeout = Duration::from_millis(500);
    settings
}

#[tokio::test]
async fn readyz_is_ok_while_postgres_answers() {
    let pool = db::connect_lazy(&DatabaseSettings::from_url(database_url()), "platform-test")
        .expect("valid url");
    let readiness = Readiness::new(CancellationToken::new())
        .with_check(db::readiness_check(pool, Duration::from_secs(2)));
    let (status, body) = within("readyz", get(readiness, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["postgres"], "ok");
}

#[tokio::test]
async fn readyz_fails_when_postgres_is_unreachable_but_healthz_stays_ok() {
    let pool = db::connect_lazy(&unreachable_database().await, "platform-test").expect("valid url");
    let readiness = Readiness::new(CancellationToken::new())
        .with_check(db::readiness_check(pool, Duration::from_secs(2)));
    let (status, body) = within("readyz", get(readiness.clone(), "/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not ready");
    assert_ne!(body["checks"]["postgres"], "ok");
    let (status, _) = within("healthz", get(readiness, "/healthz")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "liveness does not depend on dependencies"
    );
}

#[tokio::test]
async fn readyz_fails_while_draining() {
    let draining = CancellationToken::new();
    let readiness = Readiness::new(draining.clone())
        .with_check(ReadinessCheck::new("always", || async { Ok(()) }));
    assert_eq!(get(readiness.clone(), "/readyz").await.0, StatusCode::OK);
    draining.cancel();
    let (status, body) = get(readiness, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "draining");
}

#[tokio::test]
async fn the_http_server_answers_on_its_listener_and_stops_on_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        router(Readiness::new(CancellationToken::new())),
        stop.clone().cancelled_owned(),
    ));

    let mut stream = within("connecting", TcpStream::connect(addr))
        .await
        .expect("connects");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("request written");
    let mut response = String::new();
    within("the response", stream.read_to_string(&mut response))
        .await
        .expect("response read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");

    stop.cancel();
    within("the server stopping", server)
        .await
        .expect("task not panicked")
        .expect("server stopped cleanly");
}
