//! gRPC-Web from a plain HTTP/1.1 client, as a browser sends it: CORS preflight allowed or
//! refused by origin, binary and text modes, error statuses visible to the page, ids on
//! every response.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mercato_proto::mercato::bff::v1 as bff;
use prost::Message as _;
use support::{FakeUsers, JwksServer, RedisPrefix, TestBff, TestKey, settings};

const ORIGIN: &str = "https://shop.example";

async fn bff() -> (TestBff, RedisPrefix, JwksServer) {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let prefix = RedisPrefix::new();
    let bff = TestBff::start(settings(&jwks, &users_url, &prefix, &[])).await;
    (bff, prefix, jwks)
}

fn http1() -> reqwest::Client {
    mercato_bff::app::install_crypto_provider();
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("http client")
}

/// One gRPC-Web data frame around `message`.
fn frame(message: &impl prost::Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&payload);
    framed
}

/// Splits a gRPC-Web response body into (data messages, trailer block text).
fn unframe(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let mut messages = Vec::new();
    let mut trailers = String::new();
    while body.len() >= 5 {
        let flag = body[0];
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = &body[5..5 + length];
        if flag & 0x80 == 0 {
            messages.push(payload.to_vec());
        } else {
            trailers.push_str(&String::from_utf8_lossy(payload));
        }
        body = &body[5 + length..];
    }
    (messages, trailers)
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_allowed_and_others_are_not() {
    let (bff, _prefix, _jwks) = bff().await;
    let url = format!("{}/mercato.bff.v1.AccountService/GetAccount", bff.url());
    let preflight = |origin: &'static str| {
        http1()
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization",
            )
            .send()
    };

    let allowed = preflight(ORIGIN).await.expect("preflight answered");
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(ORIGIN)
    );
    let allowed_headers = allowed
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed_headers.contains("authorization"));
    assert!(allowed_headers.contains("x-grpc-web"));

    let refused = preflight("https://evil.example")
        .await
        .expect("preflight answered");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "a foreign origin gets no CORS grant"
    );
}

#[tokio::test]
async fn binary_grpc_web_calls_work_over_http1_with_exposed_headers() {
    let (bff, _prefix, _jwks) = bff().await;
    let response = http1()
        .post(format!(
            "{}/mercato.bff.v1.AuthService/GetAuthConfig",
            bff.url()
        ))
        .header("origin", ORIGIN)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame(&bff::GetAuthConfigRequest {}))
        .send()
        .await
        .expect("grpc-web call");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert!(response.status().is_success());
    let headers = response.headers().clone();
    assert!(headers.get("x-request-id").is_some());
    assert!(headers.get("x-trace-id").is_some());
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(ORIGIN)
    );
    let exposed = headers
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "x-request-id",
        "x-trace-id",
    ] {
        assert!(exposed.contains(name), "{name} is exposed: {exposed}");
    }

    let body = response.bytes().await.expect("body");
    let (messages, trailers) = unframe(&body);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");
    let config =
        bff::GetAuthConfigResponse::decode(messages[0].as_slice()).expect("response decodes");
    assert_eq!(config.mode, i32::from(bff::AuthMode::BuiltIn));
    assert_eq!(config.audience, "mercato");
}

#[tokio::test]
async fn text_grpc_web_calls_work_over_http1() {
    let (bff, _prefix, _jwks) = bff().await;
    let response = http1()
        .post(format!(
            "{}/mercato.bff.v1.AuthService/GetAuthConfig",
            bff.url()
        ))
        .header("origin", ORIGIN)
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("x-grpc-web", "1")
        .body(STANDARD.encode(frame(&bff::GetAuthConfigRequest {})))
        .send()
        .await
        .expect("grpc-web-text call");
    assert!(response.status().is_success());
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc-web-text"))
    );
    let text = response.text().await.expect("body");
    // Each chunk is base64 on its own (the trailer frame is encoded separately).
    let mut decoded = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let end = rest.find('=').map_or(rest.len(), |i| {
            let padding = rest[i..].chars().take_while(|c| *c == '=').count();
            i + padding
        });
        decoded.extend(STANDARD.decode(&rest[..end]).expect("base64 chunk"));
        rest = &rest[end..];
    }
    let (messages, trailers) = unframe(&decoded);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");
    let config =
        bff::GetAuthConfigResponse::decode(messages[0].as_slice()).expect("response decodes");
    assert_eq!(config.mode, i32::from(bff::AuthMode::BuiltIn));
}

#[tokio::test]
async fn an_error_status_is_visible_to_the_page() {
    let (bff, _prefix, _jwks) = bff().await;
    let response = http1()
        .post(format!(
            "{}/mercato.bff.v1.AccountService/GetAccount",
            bff.url()
        ))
        .header("origin", ORIGIN)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        // A forged principal must not turn into an identity.
        .header("x-mercato-user-id", uuid::Uuid::new_v4().to_string())
        .body(frame(&bff::GetAccountRequest {}))
        .send()
        .await
        .expect("grpc-web call");
    assert!(
        response.status().is_success(),
        "gRPC errors ride on HTTP 200"
    );
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    let (_, trailers) = unframe(&body);
    let status_in_headers = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let visible = status_in_headers.as_deref() == Some("16") || trailers.contains("grpc-status:16");
    assert!(
        visible,
        "UNAUTHENTICATED visible in headers or trailers: {headers:?} {trailers:?}"
    );
    assert!(
        headers.get("grpc-status-details-bin").is_some()
            || trailers.contains("grpc-status-details-bin")
    );
    assert!(headers.get("x-request-id").is_some());
}
