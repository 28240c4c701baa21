//! Sign-in and the token issuer over a real gRPC channel: registration, login failures and
//! throttling, JWTs verified against the served JWKS, refresh rotation and reuse detection,
//! logout, and signing keys across restarts and rotations.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mercato_platform::principal::Role;
use mercato_proto::mercato::user::v1::{
    ListSigningKeysRequest, LogoutRequest, RefreshTokenRequest, RotateSigningKeyRequest,
    SigningKeyState,
};
use mercato_user::keys::AccessClaims;
use mercato_user::testing::TestEnv;
use tonic::Code;
use tonic_types::StatusExt as _;

async fn env() -> TestEnv {
    TestEnv::new().await.expect("test resources")
}

async fn jwks(addr: std::net::SocketAddr) -> JwkSet {
    let (status, headers, body) = http_get(addr, "/.well-known/jwks.json").await;
    assert_eq!(status, 200, "jwks is served: {body}");
    let cache = header(&headers, "cache-control").expect("jwks is cacheable");
    assert!(cache.contains("max-age="), "cache-control {cache:?}");
    serde_json::from_str(&body).expect("jwks parses")
}

fn verify(token: &str, set: &JwkSet, issuer: &str) -> AccessClaims {
    let header = jsonwebtoken::decode_header(token).expect("token header decodes");
    assert_eq!(header.alg, Algorithm::EdDSA);
    let kid = header.kid.expect("the header names its key");
    let jwk = set.find(&kid).expect("the kid is published in the jwks");
    let key = DecodingKey::from_jwk(jwk).expect("jwk is a usable key");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["mercato"]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .expect("token verifies against the jwks")
        .claims
}

#[tokio::test]
async fn registered_users_can_log_in_and_their_tokens_verify_against_the_jwks() {
    let env = env().await;
    let user = env.start(|_| {}).await.expect("service starts");
    let uri = user.grpc_uri();
    let email = email();

    let registered = register(&uri, &format!("  {}  ", email.to_uppercase())).await;
    let account = registered.user.clone().expect("a user");
    assert_eq!(account.email, email, "the address is normalised");
    assert_eq!(
        account.display_name,
        email.split('@').next().expect("local part")
    );
    assert_eq!(
        account.roles,
        vec![mercato_proto::mercato::common::v1::Role::Buyer as i32]
    );

    let logged_in = auth_client(&uri)
        .login(login_request(&email, PASSWORD))
        .await
        .expect("login succeeds")
        .into_inner();
    assert_eq!(logged_in.user.expect("a user").user_id, account.user_id);
    let tokens = logged_in.tokens.expect("tokens");
    assert_eq!(tokens.token_type, "Bearer");

    let issuer = format!("http://{}", user.http_addr);
    let claims = verify(&tokens.access_token, &jwks(user.http_addr).await, &issuer);
    assert_eq!(claims.sub, account.user_id);
    assert_eq!(claims.iss, issuer);
    assert_eq!(claims.aud, "mercato");
    assert_eq!(claims.roles, ["buyer"]);
    assert_eq!(claims.email, email);
    assert!(claims.exp > claims.iat && claims.nbf <= claims.iat);
    assert_eq!(
        claims.exp - claims.iat,
        900,
        "default lifetime is 15 minutes"
    );
    assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());

    let (status, _, body) = http_get(user.http_addr, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    let discovery: serde_json::Value = serde_json::from_str(&body).expect("discovery parses");
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json").as_str()
    );
    let set = jwks(user.http_addr).await;
    let key = serde_json::to_value(&set.keys[0]).expect("jwk serialises");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    user.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_taken_email_is_already_registered() {
    let env = env().await;
    let user = env.start(|_| {}).await.expect("service starts");
    let email = email();
    register(&user.grpc_uri(), &email).await;
    let status = auth_client(&user.grpc_uri())
        .register(register_request(&email.to_uppercase()))
        .await
        .expect_err("a second registration fails");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "EMAIL_ALREADY_REGISTERED");
}

#[tokio::test]
async fn bad_registrations_name_the_field_and_write_nothing() {
    let env = env().await;
    let user = env.start(|_| {}).await.expect("service starts");
    let long_local = format!("{}@example.com", "a".repeat(250));
    let cases: Vec<(String, String, String, Vec<&str>)> = vec![
        (
            "no-at-sign".into(),
            PASSWORD.into(),
            String::new(),
            vec!["email"],
        ),
        (
            "@example.com".into(),
            PASSWORD.into(),
            String::new(),
            vec!["email"],
        ),
        (
            "bob@localhost".into(),
            PASSWORD.into(),
            String::new(),
            vec!["email"],
        ),
        (
            "a@@example.com".into(),
            PASSWORD.into(),
            String::new(),
            vec!["email"],
        ),
        (long_local, PASSWORD.into(), String::new(), vec!["email"]),
        ("".into(), PASSWORD.into(), String::new(), vec!["email"]),
        (email(), "short".into(), String::new(), vec!["password"]),
        (email(), "p".repeat(129), String::new(), vec!["password"]),
        (
            email(),
            PASSWORD.into(),
            "n".repeat(101),
            vec!["display_name"],
        ),
        (
            "bad".into(),
            "short".into(),
            "n".repeat(101),
            vec!["email", "password", "display_name"],
        ),
    ];
    for (email, password, display_name, fields) in cases {
        let status = auth_client(&user.grpc_uri())
            .register(mercato_proto::mercato::user::v1::RegisterRequest {
                email: email.clone(),
                password,
                display_name,
            })
            .await
            .expect_err("invalid registration fails");
        assert_eq!(status.code(), Code::InvalidArgument, "{email}");
        assert_eq!(reason(&status), "VALIDATION_FAILED");
        assert_eq!(violated_fields(&status), fields, "{email}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(env.database().pool())
        .await
        .expect("count users");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(env.database().pool())
        .await
        .expect("count events");
    assert_eq!((users, events), (0, 0), "nothing was written");
}

#[tokio::test]
async fn unknown_emails_and_wrong_passwords_fail_the_same_way() {
    let env = env().await;
    let user = env.start(|_| {}).await.expect("service starts");
    let email = email();
    register(&user.grpc_uri(), &email).await;
    let mut client = auth_client(&user.grpc_uri());
    let wrong = client
        .login(login_request(&email, "wrong password"))
        .await
        .expect_err("wrong password fails");
    let unknown = client
        .login(login_request(&common::email(), PASSWORD))
        .await
        .expect_err("unknown e-mail fails");
    for status in [&wrong, &unknown] {
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(reason(status), "INVALID_CREDENTIALS");
    }
    assert_eq!(wrong.message(), unknown.message());
}

#[tokio::test]
async fn five_failures_throttle_the_address_until_the_window_passes() {
    let env = env().await;
    let user = env.start(|_| {}).await.expect("service starts");
    let email = email();
    register(&user.grpc_uri(), &email).await;
    let mut client = auth_client(&user.grpc_uri());

    // Four failures, then a success resets the count ...
    for _ in 0..4 {
        let status = client
            .login(login_request(&email, "wrong password"))
            .await
            .expect_err("wrong password fails");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    client
        .login(login_request(&email, PASSWORD))
        .await
        .expect("success below the limit");
    // ... so five more failures are needed before the address locks.
    for attempt in 0..5 {
        let status = client
            .login(login_request(&email, "wrong password"))
            .await
            .expect_err("wrong password fails");
        assert_eq!(status.code(), Code::Unauthenticated, "attempt {attempt}");
    }
    let status = client
        .login(login_request(&email.to_uppercase(), PASSWORD))
        .await
        .expect_err("the right password is refused while throttled");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "LOGIN_THROTTLED");
    let retry = status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay)
        .expect("retry info");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(900));

    // The window passing is the key expiring; drop it to stand in for 15 minutes.
    let mut redis = env
        .redis()
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", env.redis().prefix()))
        .query_async(&mut redis)
        .await
        .expect("keys listed");
    assert_eq!(keys.len(), 1, "one counter for the address: {keys:?}");
    assert!(!keys[0].contains(&email), "the address is stored hashed");
    redis::cmd("DEL")
        .arg(&keys)
        .query_async::<()>(&mut redis)
        .await
        .expect("counter deleted");
    client
        .login(login_request(&email, PASSWORD))
        .await
        .expect("login works again after the window");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let env = env().await;
    let user = env.start(|_| {}).await.expect("service starts");
    let email = email();
    let first = register(&user.grpc_uri(), &email)
        .await
        .tokens
        .expect("tokens");
    let mut client = auth_client(&user.grpc_uri());

    let second = client
        .refresh_token(RefreshTokenRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .expect("refresh succeeds")
        .into_inner()
        .tokens
        .expect("tokens");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        second.refresh_token_expire_time, first.refresh_token_expire_time,
        "rotation does not extend the family"
    );
    let third = client
        .refresh_token(RefreshTokenRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .expect("the rotated token refreshes")
        .into_inner()
        .tokens
        .expect("tokens");

    // The first token was rotated: presenting it again is reuse.
    let reused = client
        .refresh_token(RefreshTokenRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .expect_err("reuse is refused");
    assert_eq!(reused.code(), Code::Unauthenticated);
    assert_eq!(reason(&reused), "REFRESH_TOKEN_REUSED");
    // ... and the newest token of the family is dead too.
    let revoked = client
        .refresh_token(RefreshTokenRequest {
            refresh_token: third.refresh_token,
        })
        .await
        .expect_err("the family is revoked");
    assert_eq!(reason(&revoked), "REFRESH_TOKEN_INVALID");

    let unknown = client
        .refresh_token(RefreshTokenRequest {
            refresh_token: "not-a-token".to_owned(),
        })
        .await
        .expect_err("unknown token");
    assert_eq!(reason(&unknown), "REFRESH_TOKEN_INVALID");

    // Tokens are stored hashed only.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE token_hash = convert_to($1, 'UTF8')",
    )
    .bind(&first.refresh_token)
    .fetch_one(env.database().pool())
    .await
    .expect("query tokens");
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn logout_ends_one_session_or_all_of_them() {
    let env = env().await;
    let user = env.start(|_| {}).await.expect("service starts");
    let email = email();
    let uri = user.grpc_uri();
    let session_a = register(&uri, &email).await.tokens.expect("tokens");
    let mut client = auth_client(&uri);
    let login =
        |client: &mut mercato_proto::mercato::user::v1::auth_service_client::AuthServiceClient<
            _,
        >| {
            let request = login_request(&email, PASSWORD);
            let mut client = client.clone();
            async move {
                client
                    .login(request)
                    .await
                    .expect("login")
                    .into_inner()
                    .tokens
                    .expect("tokens")
            }
        };
    let session_b = login(&mut client).await;
    let session_c = login(&mut client).await;

    let logout = client
        .logout(LogoutRequest {
            refresh_token: session_a.refresh_token.clone(),
            all_sessions: false,
        })
        .await
        .expect("logout")
        .into_inner();
    assert_eq!(logout.revoked_sessions, 1);
    let again = client
        .logout(LogoutRequest {
            refresh_token: session_a.refresh_token.clone(),
            all_sessions: false,
        })
        .await
        .expect("logout is idempotent")
        .into_inner();
    assert_eq!(again.revoked_sessions, 0);
    let dead = client
        .refresh_token(RefreshTokenRequest {
            refresh_token: session_a.refresh_token,
        })
        .await
        .expect_err("a logged-out session cannot refresh");
    assert_eq!(reason(&dead), "REFRESH_TOKEN_INVALID");
    client
        .refresh_token(RefreshTokenRequest {
            refresh_token: session_b.refresh_token.clone(),
        })
        .await
        .expect("other sessions live on");

    let everywhere = client
        .logout(LogoutRequest {
            refresh_token: session_c.refresh_token.clone(),
            all_sessions: true,
        })
        .await
        .expect("logout everywhere")
        .into_inner();
    assert_eq!(everywhere.revoked_sessions, 2);
    let dead = client
        .refresh_token(RefreshTokenRequest {
            refresh_token: session_c.refresh_token,
        })
        .await
        .expect_err("revoked");
    assert_eq!(reason(&dead), "REFRESH_TOKEN_INVALID");
}

#[tokio::test]
async fn signing_keys_survive_a_restart() {
    let env = env().await;
    let first = env.start(|_| {}).await.expect("service starts");
    let before = jwks(first.http_addr).await;
    let token = register(&first.grpc_uri(), &email())
        .await
        .tokens
        .expect("tokens");
    let issuer = format!("http://{}", first.http_addr);
    first.stop().await.expect("clean stop");

    let second = env.start(|_| {}).await.expect("service restarts");
    let after = jwks(second.http_addr).await;
    let kids = |set: &JwkSet| -> Vec<String> {
        set.keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect()
    };
    assert_eq!(
        kids(&before),
        kids(&after),
        "the same key is served after a restart"
    );
    assert_eq!(kids(&after).len(), 1);
    verify(&token.access_token, &after, &issuer);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys")
        .fetch_one(env.database().pool())
        .await
        .expect("count keys");
    assert_eq!(stored, 1, "no key was generated on restart");
}

#[tokio::test]
async fn rotation_publishes_the_next_key_before_it_signs() {
    let env = env().await;
    let user = env.start(|_| {}).await.expect("service starts");
    let uri = user.grpc_uri();
    let issuer = format!("http://{}", user.http_addr);
    let admin = uuid::Uuid::now_v7();
    let mut keys = key_client(&uri);

    let buyer = keys
        .rotate_signing_key(as_user(
            RotateSigningKeyRequest {
                idempotency_key: "k1".to_owned(),
                ..Default::default()
            },
            admin,
            &[Role::Buyer],
        ))
        .await
        .expect_err("buyers cannot rotate");
    assert_eq!(buyer.code(), Code::PermissionDenied);
    assert_eq!(reason(&buyer), "ROLE_REQUIRED");

    let rotate = |key: &str, delay: i64| {
        as_user(
            RotateSigningKeyRequest {
                idempotency_key: key.to_owned(),
                algorithm: String::new(),
                activation_delay: Some(prost_types::Duration {
                    seconds: delay,
                    nanos: 0,
                }),
            },
            admin,
            &[Role::Buyer, Role::Admin],
        )
    };
    let next = keys
        .rotate_signing_key(rotate("rotation-1", 3600))
        .await
        .expect("rotation succeeds")
        .into_inner()
        .signing_key
        .expect("a key");
    assert_eq!(next.state, SigningKeyState::Next as i32);
    let replay = keys
        .rotate_signing_key(rotate("rotation-1", 3600))
        .await
        .expect("a replay succeeds")
        .into_inner()
        .signing_key
        .expect("a key");
    assert_eq!(replay.kid, next.kid, "a replay returns the same key");
    let conflict = keys
        .rotate_signing_key(rotate("rotation-1", 60))
        .await
        .expect_err("same key, different request");
    assert_eq!(reason(&conflict), "IDEMPOTENCY_KEY_REUSED");
    let waiting = keys
        .rotate_signing_key(rotate("rotation-2", 60))
        .await
        .expect_err("one next key at a time");
    assert_eq!(reason(&waiting), "SIGNING_KEY_NOT_READY");

    // Published, but tokens are still signed by the old key.
    let set = jwks(user.http_addr).await;
    assert!(set.find(&next.kid).is_some(), "the next key is published");
    assert_eq!(set.keys.len(), 2);
    let token = register(&uri, &email()).await.tokens.expect("tokens");
    let header = jsonwebtoken::decode_header(&token.access_token).expect("header");
    assert_ne!(header.kid.as_deref(), Some(next.kid.as_str()));
    let old_kid = header.kid.expect("kid");

    // Activation time comes: the new key signs, the old one stays published (retired).
    sqlx::query("UPDATE signing_keys SET activate_at = now() WHERE kid = $1")
        .bind(&next.kid)
        .execute(env.database().pool())
        .await
        .expect("activation moved");
    let token = register(&uri, &email()).await.tokens.expect("tokens");
    let set = jwks(user.http_addr).await;
    let claims_kid = jsonwebtoken::decode_header(&token.access_token)
        .expect("header")
        .kid;
    assert_eq!(claims_kid.as_deref(), Some(next.kid.as_str()));
    verify(&token.access_token, &set, &issuer);
    assert!(
        set.find(&old_kid).is_some(),
        "the retired key is still published"
    );

    let listed = keys
        .list_signing_keys(as_user(
            ListSigningKeysRequest::default(),
            admin,
            &[Role::Admin],
        ))
        .await
        .expect("list")
        .into_inner()
        .signing_keys;
    let states: HashSet<(String, i32)> = listed.into_iter().map(|k| (k.kid, k.state)).collect();
    assert!(states.contains(&(next.kid.clone(), SigningKeyState::Active as i32)));
    assert!(states.contains(&(old_kid.clone(), SigningKeyState::Retired as i32)));

    // Revoking the retired key withdraws it at once.
    keys.revoke_signing_key(as_user(
        mercato_proto::mercato::user::v1::RevokeSigningKeyRequest {
            kid: old_kid.clone(),
        },
        admin,
        &[Role::Admin],
    ))
    .await
    .expect("revoke");
    assert!(jwks(user.http_addr).await.find(&old_kid).is_none());
    let active = keys
        .revoke_signing_key(as_user(
            mercato_proto::mercato::user::v1::RevokeSigningKeyRequest { kid: next.kid },
            admin,
            &[Role::Admin],
        ))
        .await
        .expect_err("the active key needs a successor");
    assert_eq!(reason(&active), "SIGNING_KEY_NOT_READY");
}

#[tokio::test]
async fn external_mode_disables_local_sign_in() {
    let env = env().await;
    let user = env
        .start(|s| s.auth.external_issuers = vec!["https://idp.example.com".to_owned()])
        .await
        .expect("service starts");
    let status = auth_client(&user.grpc_uri())
        .register(register_request(&email()))
        .await
        .expect_err("registration is off");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "LOCAL_AUTH_DISABLED");
    let status = auth_client(&user.grpc_uri())
        .login(login_request(&email(), PASSWORD))
        .await
        .expect_err("login is off");
    assert_eq!(reason(&status), "LOCAL_AUTH_DISABLED");
}

#[tokio::test]
async fn replicas_starting_together_generate_one_key() {
    let env = env().await;
    let (a, b) = tokio::join!(env.start(|_| {}), env.start(|_| {}));
    let (a, b) = (a.expect("first replica"), b.expect("second replica"));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys")
        .fetch_one(env.database().pool())
        .await
        .expect("count keys");
    assert_eq!(stored, 1, "the advisory lock lets one replica generate");
    let kids = |set: JwkSet| -> Vec<Option<String>> {
        set.keys.into_iter().map(|k| k.common.key_id).collect()
    };
    assert_eq!(kids(jwks(a.http_addr).await), kids(jwks(b.http_addr).await));
}

#[tokio::test]
async fn a_configured_pem_signs_instead_of_a_generated_key() {
    let env = env().await;
    let material = mercato_user::keys::KeyMaterial::generate().expect("ed25519 key");
    let pem = material.private_key_pem.clone();
    let user = env
        .start(|s| s.auth.signing_key_pem = Some(secrecy::SecretString::from(pem)))
        .await
        .expect("service starts");
    let token = register(&user.grpc_uri(), &email())
        .await
        .tokens
        .expect("tokens");
    let header = jsonwebtoken::decode_header(&token.access_token).expect("header");
    assert_eq!(header.kid.as_deref(), Some(material.kid.as_str()));
    let issuer = format!("http://{}", user.http_addr);
    verify(&token.access_token, &jwks(user.http_addr).await, &issuer);
}
