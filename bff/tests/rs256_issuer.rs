//! The BFF in front of a real user service that signs RS256: a token issued with an RSA key
//! verifies at the BFF through the user service's JWKS, whose entry carries the RFC 7638
//! thumbprint as `kid`.

mod support;

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use mercato_bff::BffSettings;
use mercato_platform::settings::EnvSource;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_user::testing::TestEnv;
use support::{RedisPrefix, TestBff, redis_url, with_token};

/// The user service's test-only RSA key (PKCS#8), configured as its `SIGNING_KEY_PEM`.
const RSA_PEM: &str = include_str!("fixtures/rsa_test_key.pem");

/// The published JWKS of the user service, fetched over plain HTTP.
async fn fetch_jwks(addr: std::net::SocketAddr) -> serde_json::Value {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("jwks listener accepts");
    let request =
        format!("GET /.well-known/jwks.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .await
        .expect("response read");
    let (_, body) = raw.split_once("\r\n\r\n").expect("http head and body");
    serde_json::from_str(body).expect("jwks is json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rs256_token_from_the_user_service_verifies_at_the_bff() {
    let env = TestEnv::new().await.expect("user service resources");
    let user = env
        .start(|s| s.auth.signing_key_pem = Some(RSA_PEM.into()))
        .await
        .expect("user service starts with an rsa key");
    let prefix = RedisPrefix::new();
    let settings = BffSettings::from_source(&EnvSource::from_pairs([
        ("MERCATO_BFF__REDIS_URL".to_owned(), redis_url()),
        ("MERCATO_BFF__REDIS_KEY_PREFIX".to_owned(), prefix.0.clone()),
        ("MERCATO_BFF__USER_SERVICE_URL".to_owned(), user.grpc_uri()),
        (
            "MERCATO_BFF__ISSUER".to_owned(),
            format!("http://{}", user.http_addr),
        ),
    ]))
    .expect("bff settings");
    let bff = TestBff::start(settings).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut accounts = bff::account_service_client::AccountServiceClient::new(channel);

    let registered = auth
        .register(bff::RegisterRequest {
            email: format!("rsa-{}@example.com", uuid::Uuid::new_v4().simple()),
            password: "correct horse battery".into(),
            display_name: "Rsa".into(),
        })
        .await
        .expect("register through the bff")
        .into_inner();
    let tokens = registered.tokens.expect("tokens");
    let header = jsonwebtoken::decode_header(&tokens.access_token).expect("token header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let kid = header.kid.expect("kid");

    let me = accounts
        .get_account(with_token(bff::GetAccountRequest {}, &tokens.access_token))
        .await
        .expect("the rs256 token verifies at the bff")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(me.user_id, registered.account.expect("account").user_id);

    let jwks = fetch_jwks(user.http_addr).await;
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the token's key is published");
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    // RFC 7638 thumbprint, computed by jsonwebtoken rather than by the user service.
    let parsed: Jwk = serde_json::from_value(jwk.clone()).expect("a valid jwk");
    assert_eq!(
        kid,
        parsed
            .thumbprint(ThumbprintHash::SHA256)
            .expect("rsa thumbprint"),
        "kid is the RFC 7638 thumbprint"
    );

    // A tampered RS256 token is refused: the BFF really checks the RSA signature.
    // A character in the middle of the signature carries six signature bits.
    let at = tokens.access_token.len() - 20;
    let original = &tokens.access_token[at..=at];
    let replacement = if original == "A" { "B" } else { "A" };
    let mut forged = tokens.access_token.clone();
    forged.replace_range(at..=at, replacement);
    let refused = accounts
        .get_account(with_token(bff::GetAccountRequest {}, &forged))
        .await
        .expect_err("a bad signature is refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    user.stop().await.expect("clean stop");
}
