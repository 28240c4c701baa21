//! Private signing keys encrypted at rest under `MERCATO_USER__KEY_ENCRYPTION_KEY`: the stored
//! column is AES-256-GCM ciphertext bound to its kid, a restart with the same KEK keeps signing
//! with the same key, a missing or wrong KEK stops start-up with a message naming the setting,
//! and plaintext keys are encrypted on the first start with a KEK.

mod common;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use mercato_user::keys::KeyMaterial;
use mercato_user::testing::{RunningUser, TestEnv};
use secrecy::SecretString;

const KEK: [u8; 32] = [7; 32];
const OTHER_KEK: [u8; 32] = [9; 32];

fn kek(bytes: [u8; 32]) -> Option<SecretString> {
    Some(SecretString::from(STANDARD.encode(bytes)))
}

async fn start_with(env: &TestEnv, key: Option<SecretString>) -> RunningUser {
    env.start(move |s| s.auth.key_encryption_key = key)
        .await
        .expect("service starts")
}

/// `(kid, stored private key)` of every stored key.
async fn stored_keys(env: &TestEnv) -> Vec<(String, String)> {
    sqlx::query_as("SELECT kid, private_key_pem FROM signing_keys ORDER BY created_at")
        .fetch_all(env.database().pool())
        .await
        .expect("read keys")
}

/// Decrypts a stored key here, independently of the service: `v1:` + base64(nonce ‖ ct), AAD =
/// kid.
fn decrypt(kek: [u8; 32], kid: &str, stored: &str) -> Option<String> {
    let raw = STANDARD.decode(stored.strip_prefix("v1:")?).ok()?;
    let (nonce, ciphertext) = raw.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let cipher = Aes256Gcm::new_from_slice(&kek).ok()?;
    let plaintext = cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: kid.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(plaintext).ok()
}

async fn token_kid(user: &RunningUser) -> String {
    let token = register(&user.grpc_uri(), &email())
        .await
        .tokens
        .expect("tokens")
        .access_token;
    jsonwebtoken::decode_header(&token)
        .expect("header")
        .kid
        .expect("kid")
}

/// The error and all its sources, as `main` prints them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn keys_are_stored_encrypted_and_survive_a_restart_with_the_same_kek() {
    let env = TestEnv::new().await.expect("test resources");
    let first = start_with(&env, kek(KEK)).await;
    let kid = token_kid(&first).await;
    first.stop().await.expect("clean stop");

    let stored = stored_keys(&env).await;
    assert_eq!(stored.len(), 1);
    let (stored_kid, column) = &stored[0];
    assert_eq!(stored_kid, &kid);
    assert!(
        column.starts_with("v1:"),
        "versioned ciphertext: {column:.12}"
    );
    assert!(!column.contains("PRIVATE KEY"), "the pem is not stored");
    let pem = decrypt(KEK, &kid, column).expect("the column decrypts with the kek");
    let material = KeyMaterial::from_pem(&pem).expect("a private key");
    assert_eq!(material.kid, kid, "it is the signing key");
    // Neither the PEM nor its DER (base64 body) appears in the column.
    let der_base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!column.contains(&der_base64[..32]));
    assert!(
        decrypt(KEK, "another-kid", column).is_none(),
        "bound to its kid"
    );

    let second = start_with(&env, kek(KEK)).await;
    assert_eq!(token_kid(&second).await, kid, "the same key signs");
    second.stop().await.expect("clean stop");
    assert_eq!(stored_keys(&env).await.len(), 1, "no key was generated");
}

#[tokio::test]
async fn a_missing_or_wrong_kek_stops_start_up_naming_the_setting() {
    let env = TestEnv::new().await.expect("test resources");
    let first = start_with(&env, kek(KEK)).await;
    let kid = token_kid(&first).await;
    first.stop().await.expect("clean stop");
    let before = stored_keys(&env).await;

    for (case, key) in [
        ("without a kek", None),
        ("with another kek", kek(OTHER_KEK)),
    ] {
        let error = env
            .start(move |s| s.auth.key_encryption_key = key)
            .await
            .expect_err(case);
        let message = chain(&error);
        assert!(
            message.contains("MERCATO_USER__KEY_ENCRYPTION_KEY"),
            "{case}: {message}"
        );
        assert!(message.contains(&kid), "{case}: names the key: {message}");
        assert_eq!(
            stored_keys(&env).await,
            before,
            "{case}: no key was generated or changed"
        );
    }
}

#[tokio::test]
async fn plaintext_keys_are_encrypted_on_the_first_start_with_a_kek() {
    let env = TestEnv::new().await.expect("test resources");
    let plain = start_with(&env, None).await;
    let kid = token_kid(&plain).await;
    plain.stop().await.expect("clean stop");
    let stored = stored_keys(&env).await;
    assert!(
        stored[0].1.starts_with("-----BEGIN PRIVATE KEY-----"),
        "without a kek the key is stored as before"
    );
    let plaintext_pem = stored[0].1.clone();

    let encrypted = start_with(&env, kek(KEK)).await;
    let stored = stored_keys(&env).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].1.starts_with("v1:"), "encrypted at start-up");
    assert_eq!(
        decrypt(KEK, &kid, &stored[0].1).as_deref(),
        Some(plaintext_pem.as_str())
    );
    assert_eq!(token_kid(&encrypted).await, kid, "the same key signs");
    encrypted.stop().await.expect("clean stop");
}
