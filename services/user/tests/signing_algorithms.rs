//! RS256 next to EdDSA: a configured RSA key signs RS256 tokens and is published with its
//! RFC 7638 thumbprint as `kid`; a rotation from EdDSA to RS256 keeps the older tokens valid
//! until their key retires; discovery lists the published algorithms.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mercato_platform::principal::Role;
use mercato_proto::mercato::user::v1::{RotateSigningKeyRequest, SigningKeyState};
use mercato_user::keys::{AccessClaims, SigningAlgorithm};
use mercato_user::testing::TestEnv;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};

/// A test-only RSA 2048 key (`openssl genpkey -algorithm RSA`), so only one test pays for
/// generating a key.
const RSA_PEM: &str = include_str!("fixtures/rsa_2048.pem");

async fn jwks(addr: std::net::SocketAddr) -> (JwkSet, serde_json::Value) {
    let (status, _, body) = http_get(addr, "/.well-known/jwks.json").await;
    assert_eq!(status, 200, "jwks is served: {body}");
    (
        serde_json::from_str(&body).expect("jwks parses"),
        serde_json::from_str(&body).expect("jwks is json"),
    )
}

async fn discovered_algorithms(addr: std::net::SocketAddr) -> serde_json::Value {
    let (status, _, body) = http_get(addr, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200, "discovery is served: {body}");
    let discovery: serde_json::Value = serde_json::from_str(&body).expect("discovery parses");
    discovery["id_token_signing_alg_values_supported"].clone()
}

/// Verifies `token` against `set` with the algorithm its header names (and checks it is `alg`).
fn verify(token: &str, set: &JwkSet, issuer: &str, alg: Algorithm) -> AccessClaims {
    let header = jsonwebtoken::decode_header(token).expect("token header decodes");
    assert_eq!(header.alg, alg);
    let kid = header.kid.expect("the header names its key");
    let jwk = set.find(&kid).expect("the kid is published in the jwks");
    let key = DecodingKey::from_jwk(jwk).expect("jwk is a usable key");
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["mercato"]);
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .expect("token verifies against the jwks")
        .claims
}

/// RFC 7638 thumbprint computed here from the published members: the required members of an
/// RSA key (`e`, `kty`, `n`) in lexicographic order, serialised without white space.
fn rsa_thumbprint(jwk: &serde_json::Value) -> String {
    let required: BTreeMap<&str, &serde_json::Value> = ["e", "kty", "n"]
        .into_iter()
        .map(|member| (member, &jwk[member]))
        .collect();
    let canonical = serde_json::to_string(&required).expect("canonical json");
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn published<'a>(raw: &'a serde_json::Value, kid: &str) -> &'a serde_json::Value {
    raw["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the key is published")
}

#[tokio::test]
async fn a_configured_rsa_key_signs_rs256_and_is_published_with_its_thumbprint() {
    let env = TestEnv::new().await.expect("test resources");
    let user = env
        .start(|s| s.auth.signing_key_pem = Some(secrecy::SecretString::from(RSA_PEM)))
        .await
        .expect("service starts with an rsa pem");
    let issuer = format!("http://{}", user.http_addr);
    let registered = register(&user.grpc_uri(), &email()).await;
    let token = registered.tokens.clone().expect("tokens").access_token;

    let (set, raw) = jwks(user.http_addr).await;
    let claims = verify(&token, &set, &issuer, Algorithm::RS256);
    assert_eq!(claims.sub, user_id(&registered).to_string());

    let kid = jsonwebtoken::decode_header(&token)
        .expect("header")
        .kid
        .expect("kid");
    let jwk = published(&raw, &kid);
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none(), "no private member is published");
    assert_eq!(kid, rsa_thumbprint(jwk), "kid is the RFC 7638 thumbprint");
    // The published modulus and exponent are the configured key's.
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM).expect("fixture parses");
    assert_eq!(jwk["n"], URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()));
    assert_eq!(jwk["e"], URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()));
    assert_eq!(jwk["e"], "AQAB");

    let stored: String = sqlx::query_scalar("SELECT algorithm FROM signing_keys WHERE kid = $1")
        .bind(&kid)
        .fetch_one(env.database().pool())
        .await
        .expect("stored key");
    assert_eq!(stored, "RS256");
    assert_eq!(
        discovered_algorithms(user.http_addr).await,
        serde_json::json!(["RS256"])
    );
    user.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_rotation_from_eddsa_to_rs256_keeps_old_tokens_valid() {
    let env = TestEnv::new().await.expect("test resources");
    let first = env.start(|_| {}).await.expect("service starts");
    let issuer = format!("http://{}", first.http_addr);
    let old_token = register(&first.grpc_uri(), &email())
        .await
        .tokens
        .expect("tokens")
        .access_token;
    let (set, _) = jwks(first.http_addr).await;
    verify(&old_token, &set, &issuer, Algorithm::EdDSA);
    first.stop().await.expect("clean stop");

    // The operator switches the algorithm: the active EdDSA key keeps signing until a rotation.
    let user = env
        .start(|s| {
            s.auth.signing_algorithm = SigningAlgorithm::Rs256;
            s.auth.issuer.clone_from(&issuer);
        })
        .await
        .expect("service restarts with RS256 configured");
    let uri = user.grpc_uri();
    let still_eddsa = register(&uri, &email())
        .await
        .tokens
        .expect("tokens")
        .access_token;
    assert_eq!(
        jsonwebtoken::decode_header(&still_eddsa)
            .expect("header")
            .alg,
        Algorithm::EdDSA,
        "changing the setting alone does not replace the active key"
    );

    let next = key_client(&uri)
        .rotate_signing_key(as_user(
            RotateSigningKeyRequest {
                idempotency_key: "to-rs256".to_owned(),
                algorithm: String::new(),
                activation_delay: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
            },
            uuid::Uuid::now_v7(),
            &[Role::Admin],
        ))
        .await
        .expect("rotation succeeds")
        .into_inner()
        .signing_key
        .expect("a key");
    assert_eq!(
        next.algorithm, "RS256",
        "the configured algorithm is generated"
    );
    assert_eq!(next.state, SigningKeyState::Active as i32);

    let new_token = register(&uri, &email())
        .await
        .tokens
        .expect("tokens")
        .access_token;
    let (set, raw) = jwks(user.http_addr).await;
    let header = jsonwebtoken::decode_header(&new_token).expect("header");
    assert_eq!(header.kid.as_deref(), Some(next.kid.as_str()));
    verify(&new_token, &set, &issuer, Algorithm::RS256);
    assert_eq!(next.kid, rsa_thumbprint(published(&raw, &next.kid)));
    // Tokens of the retired EdDSA key keep verifying while it is published.
    verify(&old_token, &set, &issuer, Algorithm::EdDSA);
    verify(&still_eddsa, &set, &issuer, Algorithm::EdDSA);
    assert_eq!(set.keys.len(), 2);
    assert_eq!(
        discovered_algorithms(user.http_addr).await,
        serde_json::json!(["EdDSA", "RS256"])
    );

    let unknown = key_client(&uri)
        .rotate_signing_key(as_user(
            RotateSigningKeyRequest {
                idempotency_key: "to-hs256".to_owned(),
                algorithm: "HS256".to_owned(),
                activation_delay: None,
            },
            uuid::Uuid::now_v7(),
            &[Role::Admin],
        ))
        .await
        .expect_err("only asymmetric algorithms");
    assert_eq!(violated_fields(&unknown), ["algorithm"]);
    user.stop().await.expect("clean stop");
}
