//! The JWKS cache under load, at the verifier: an unknown-`kid` storm causes at most one fetch
//! per cooldown (single-flight), and a known key never waits for the issuer.

mod support;

use std::time::Duration;

use mercato_bff::jwt::{IssuerConfig, IssuerKind, JwksPolicy, TokenError, Verifier};
use support::{AUDIENCE, JwksServer, TestKey, claims};

fn verifier(jwks: &JwksServer, cooldown: Duration) -> Verifier {
    mercato_bff::app::install_crypto_provider();
    Verifier::new(
        vec![IssuerConfig {
            issuer: jwks.issuer(),
            jwks_url: jwks.jwks_url(),
            audience: AUDIENCE.to_owned(),
            kind: IssuerKind::BuiltIn,
        }],
        JwksPolicy {
            refresh_cooldown: cooldown,
            ..JwksPolicy::default()
        },
        reqwest::Client::new(),
    )
}

#[tokio::test]
async fn a_storm_of_unknown_kids_causes_at_most_one_fetch_per_cooldown() {
    let key = TestKey::ed25519("known");
    let jwks = JwksServer::start(&[&key]).await;
    let verifier = verifier(&jwks, Duration::from_secs(3600));
    let issuer = jwks.issuer();

    let mut tasks = Vec::new();
    for i in 0..1000 {
        let verifier = verifier.clone();
        let stranger = TestKey::ed25519(&format!("unknown-{i}"));
        let token = stranger.sign(&claims(&issuer, "u", &["buyer"]));
        tasks.push(tokio::spawn(async move { verifier.verify(&token).await }));
    }
    for task in tasks {
        let result = task.await.expect("verify task");
        assert!(matches!(result, Err(TokenError::UnknownKid)), "{result:?}");
    }
    assert_eq!(jwks.fetches(), 1, "one fetch served the whole storm");

    // The known key verifies from the cache without another fetch.
    let token = key.sign(&claims(&issuer, "u", &["buyer"]));
    let verified = verifier.verify(&token).await.expect("known key verifies");
    assert_eq!(verified.subject, "u");
    assert_eq!(verified.roles, vec!["buyer".to_owned()]);
    assert_eq!(jwks.fetches(), 1);
}

#[tokio::test]
async fn after_the_cooldown_an_unknown_kid_may_fetch_again() {
    let key = TestKey::ed25519("known");
    let jwks = JwksServer::start(&[&key]).await;
    let verifier = verifier(&jwks, Duration::ZERO);
    let issuer = jwks.issuer();
    let late = TestKey::ed25519("late");

    let token = late.sign(&claims(&issuer, "u", &[]));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(TokenError::UnknownKid)
    ));
    jwks.publish(&[&key, &late]);
    verifier
        .verify(&token)
        .await
        .expect("the key published after the first miss verifies");
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn symmetric_and_foreign_keys_in_a_jwks_are_never_used() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[]).await;
    jwks.publish_raw(vec![
        serde_json::json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256" }),
        key.jwk.clone(),
    ]);
    let verifier = verifier(&jwks, Duration::from_secs(3600));
    let issuer = jwks.issuer();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hmac".to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims(&issuer, "u", &["admin"]),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .expect("hs256 token");
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(TokenError::AlgorithmNotAllowed)
    ));
    verifier
        .verify(&key.sign(&claims(&issuer, "u", &[])))
        .await
        .expect("the signing key next to it still works");
}
