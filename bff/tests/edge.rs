//! Edge behaviour through a running BFF: the JWT attack matrix (each refused with
//! UNAUTHENTICATED before any downstream call), key rotation without restart, stale keys while
//! the issuer is down, revoked keys, internal-header stripping, external-issuer provisioning,
//! and internal-error masking.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercato_proto::mercato::bff::v1 as bff;
use serde_json::Value;
use support::{
    FakeUsers, JwksServer, RedisPrefix, TestBff, TestKey, claims, now, reason, settings, tampered,
    unsigned_token, with_token,
};
use tonic::Code;
use tonic_types::StatusExt as _;

type AccountClient = bff::account_service_client::AccountServiceClient<tonic::transport::Channel>;

struct World {
    jwks: JwksServer,
    users: FakeUsers,
    bff: TestBff,
    _prefix: RedisPrefix,
}

async fn world(keys: &[&TestKey], extra: &[(&str, &str)]) -> World {
    let jwks = JwksServer::start(keys).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let prefix = RedisPrefix::new();
    let bff = TestBff::start(settings(&jwks, &users_url, &prefix, extra)).await;
    World {
        jwks,
        users,
        bff,
        _prefix: prefix,
    }
}

async fn get_account(world: &World, token: &str) -> Result<bff::GetAccountResponse, tonic::Status> {
    let mut client = AccountClient::new(world.bff.channel().await);
    client
        .get_account(with_token(bff::GetAccountRequest {}, token))
        .await
        .map(tonic::Response::into_inner)
}

fn user_claims(issuer: &str) -> (String, Value) {
    let user_id = uuid::Uuid::new_v4().to_string();
    let claims = claims(issuer, &user_id, &["buyer"]);
    (user_id, claims)
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    if let Some(object) = claims.as_object_mut() {
        object.remove(key);
    }
    claims
}

#[tokio::test]
async fn a_valid_token_reaches_the_service_as_the_forwarded_principal() {
    let key = TestKey::ed25519("k1");
    let world = world(&[&key], &[]).await;
    let (user_id, claims) = user_claims(&world.jwks.issuer());

    let account = get_account(&world, &key.sign(&claims))
        .await
        .expect("a valid token is accepted")
        .account
        .expect("account returned");

    assert_eq!(account.user_id, user_id);
    let calls = world.users.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(calls[0].roles.as_deref(), Some("buyer"));
    assert_eq!(calls[0].caller.as_deref(), Some("bff"));
}

#[tokio::test]
async fn rs256_tokens_verify_too() {
    let key = TestKey::rsa("rsa-1");
    let world = world(&[&key], &[]).await;
    let (user_id, claims) = user_claims(&world.jwks.issuer());
    let account = get_account(&world, &key.sign(&claims))
        .await
        .expect("an RS256 token is accepted")
        .account
        .expect("account returned");
    assert_eq!(account.user_id, user_id);
}

#[tokio::test]
async fn every_token_of_the_attack_matrix_is_refused_before_any_downstream_call() {
    let key = TestKey::ed25519("k1");
    let rsa = TestKey::rsa("rsa-1");
    let revoked = TestKey::ed25519("revoked");
    let stranger = TestKey::ed25519("unknown");
    // The revoked key was withdrawn from the JWKS before the BFF ever saw it.
    let world = world(&[&key, &rsa], &[]).await;
    let issuer = world.jwks.issuer();
    let (_, good) = user_claims(&issuer);
    let t = now();

    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(rsa.kid.clone());
        let secret = rsa.public_pem.clone().expect("rsa public pem");
        jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(secret.as_bytes()))
            .expect("hs256 token")
    };
    let missing_kid = key.sign_with(Header::new(Algorithm::EdDSA), &good);
    let valid = key.sign(&good);
    let (_, other_user) = user_claims(&issuer);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&with(
                with(good.clone(), "exp", (t - 120).into()),
                "iat",
                (t - 900).into(),
            )),
            "TOKEN_EXPIRED",
        ),
        (
            "nbf in the future",
            key.sign(&with(good.clone(), "nbf", (t + 600).into())),
            "TOKEN_INVALID",
        ),
        (
            "iat in the future",
            key.sign(&with(good.clone(), "iat", (t + 600).into())),
            "TOKEN_INVALID",
        ),
        (
            "wrong issuer",
            key.sign(&with(good.clone(), "iss", "https://evil.example".into())),
            "TOKEN_INVALID",
        ),
        (
            "wrong audience",
            key.sign(&with(good.clone(), "aud", "someone-else".into())),
            "TOKEN_INVALID",
        ),
        (
            "missing audience",
            key.sign(&without(good.clone(), "aud")),
            "TOKEN_INVALID",
        ),
        (
            "missing expiry",
            key.sign(&without(good.clone(), "exp")),
            "TOKEN_INVALID",
        ),
        ("alg none", unsigned_token(&key.kid, &good), "TOKEN_INVALID"),
        (
            "hs256 signed with the rsa public key",
            hs256_with_public_key,
            "TOKEN_INVALID",
        ),
        ("missing kid", missing_kid, "TOKEN_INVALID"),
        ("unknown kid", stranger.sign(&good), "TOKEN_INVALID"),
        (
            "tampered payload",
            tampered(&valid, &other_user),
            "TOKEN_INVALID",
        ),
        ("revoked key", revoked.sign(&good), "TOKEN_INVALID"),
        (
            "rsa key used with an eddsa header",
            {
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some(rsa.kid.clone());
                key.sign_with(header, &good)
            },
            "TOKEN_INVALID",
        ),
        ("garbage", "not.a.jwt".to_owned(), "TOKEN_INVALID"),
    ];

    for (name, token, expected_reason) in cases {
        let status = get_account(&world, &token)
            .await
            .expect_err(&format!("{name}: must be refused"));
        assert_eq!(status.code(), Code::Unauthenticated, "{name}: {status:?}");
        assert_eq!(reason(&status), expected_reason, "{name}");
    }

    let missing = AccountClient::new(world.bff.channel().await)
        .get_account(bff::GetAccountRequest {})
        .await
        .expect_err("no token must be refused");
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(reason(&missing), "TOKEN_MISSING");
    let request_info = missing
        .get_error_details()
        .request_info()
        .cloned()
        .expect("RequestInfo in the details");
    assert_eq!(
        Some(request_info.request_id.as_str()),
        missing
            .metadata()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
    );
    assert!(request_info.serving_data.starts_with("trace_id="));

    assert_eq!(
        world.users.call_count(),
        0,
        "no refused request may reach the user service"
    );
}

#[tokio::test]
async fn a_rotated_in_key_is_accepted_without_restarting_the_bff() {
    let old = TestKey::ed25519("2026-01");
    let new = TestKey::ed25519("2026-02");
    // A zero cooldown: this test is about rotation, not the storm guard.
    let world = world(&[&old], &[("JWKS_REFRESH_COOLDOWN", "0s")]).await;
    let issuer = world.jwks.issuer();

    get_account(&world, &old.sign(&user_claims(&issuer).1))
        .await
        .expect("the old key verifies");
    world.jwks.publish(&[&old, &new]);
    get_account(&world, &new.sign(&user_claims(&issuer).1))
        .await
        .expect("the new key verifies after rotation");
    get_account(&world, &old.sign(&user_claims(&issuer).1))
        .await
        .expect("the old key still verifies while published");
}

#[tokio::test]
async fn cached_keys_keep_verifying_while_the_jwks_endpoint_is_down() {
    let key = TestKey::ed25519("k1");
    // Every request finds the set stale, so every request tries the (down) issuer.
    let world = world(
        &[&key],
        &[("JWKS_TTL", "0s"), ("JWKS_REFRESH_COOLDOWN", "0s")],
    )
    .await;
    let issuer = world.jwks.issuer();
    get_account(&world, &key.sign(&user_claims(&issuer).1))
        .await
        .expect("verifies while the issuer is up");

    world.jwks.set_down(true);
    let before = world.jwks.fetches();
    get_account(&world, &key.sign(&user_claims(&issuer).1))
        .await
        .expect("cached key verifies while the issuer is down");
    assert!(
        world.jwks.fetches() > before,
        "the BFF did try the issuer, so the cached key was used after a failed fetch"
    );
}

#[tokio::test]
async fn a_key_withdrawn_from_the_jwks_stops_verifying_once_the_set_is_refetched() {
    let key = TestKey::ed25519("compromised");
    let world = world(
        &[&key],
        &[("JWKS_TTL", "0s"), ("JWKS_REFRESH_COOLDOWN", "0s")],
    )
    .await;
    let issuer = world.jwks.issuer();
    get_account(&world, &key.sign(&user_claims(&issuer).1))
        .await
        .expect("verifies while published");

    world.jwks.publish(&[]);
    let status = get_account(&world, &key.sign(&user_claims(&issuer).1))
        .await
        .expect_err("a revoked key must not verify");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(world.users.call_count(), 1);
}

#[tokio::test]
async fn client_supplied_internal_headers_are_stripped() {
    let key = TestKey::ed25519("k1");
    let world = world(&[&key], &[]).await;
    let (user_id, claims) = user_claims(&world.jwks.issuer());
    let victim = uuid::Uuid::new_v4().to_string();

    let mut client = AccountClient::new(world.bff.channel().await);
    let mut request = with_token(bff::GetAccountRequest {}, &key.sign(&claims));
    let metadata = request.metadata_mut();
    metadata.insert("x-mercato-user-id", victim.parse().expect("header"));
    metadata.insert("x-mercato-roles", "admin".parse().expect("header"));
    metadata.insert("x-mercato-caller", "order".parse().expect("header"));
    let account = client
        .get_account(request)
        .await
        .expect("the token is valid")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.user_id, user_id, "identity comes from the token");

    // Without a token, forged headers do not make the caller anyone.
    let mut anonymous = tonic::Request::new(bff::GetAccountRequest {});
    anonymous
        .metadata_mut()
        .insert("x-mercato-user-id", victim.parse().expect("header"));
    let status = client
        .get_account(anonymous)
        .await
        .expect_err("forged headers are not a credential");
    assert_eq!(status.code(), Code::Unauthenticated);

    let calls = world.users.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(calls[0].roles.as_deref(), Some("buyer"));
    assert_eq!(calls[0].caller.as_deref(), Some("bff"));
}

#[tokio::test]
async fn an_external_issuers_subject_is_provisioned_once_and_mapped_to_the_internal_user() {
    let built_in = TestKey::ed25519("builtin");
    let external_key = TestKey::ed25519("idp-key");
    let idp = JwksServer::start(&[&external_key]).await;
    let idp_issuer = idp.issuer();
    let idp_jwks = idp.jwks_url();
    let world = world(
        &[&built_in],
        &[
            ("EXTERNAL_ISSUER", idp_issuer.as_str()),
            ("EXTERNAL_JWKS_URL", idp_jwks.as_str()),
            ("EXTERNAL_CLIENT_ID", "storefront"),
        ],
    )
    .await;
    let mut external_claims = claims(&idp_issuer, "idp|12345", &[]);
    external_claims["email"] = "Shopper@Example.com".into();
    external_claims["email_verified"] = true.into();
    external_claims["name"] = "Shopper".into();

    let first = get_account(&world, &external_key.sign(&external_claims))
        .await
        .expect("external token accepted")
        .account
        .expect("account");
    let second = get_account(&world, &external_key.sign(&external_claims))
        .await
        .expect("external token accepted again")
        .account
        .expect("account");
    assert_eq!(first.user_id, second.user_id);

    let provisioned = world.users.provisioned();
    assert_eq!(provisioned.len(), 1, "the mapping is cached");
    assert_eq!(provisioned[0].issuer, idp_issuer);
    assert_eq!(provisioned[0].subject, "idp|12345");
    assert!(provisioned[0].email_verified);
    let calls = world.users.calls();
    let provision = calls
        .iter()
        .find(|call| call.method == "ProvisionExternalUser")
        .expect("provisioning call");
    assert_eq!(provision.user_id, None, "the BFF provisions as itself");
    let reads: Vec<_> = calls
        .iter()
        .filter(|call| call.method == "GetCurrentUser")
        .collect();
    assert_eq!(reads.len(), 2);
    assert!(
        reads
            .iter()
            .all(|call| call.user_id.as_deref() == Some(first.user_id.as_str()))
    );

    // A token of an issuer nobody configured is refused.
    let rogue = JwksServer::start(&[&external_key]).await;
    let status = get_account(
        &world,
        &external_key.sign(&claims(&rogue.issuer(), "x", &[])),
    )
    .await
    .expect_err("unknown issuer refused");
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut auth = bff::auth_service_client::AuthServiceClient::new(world.bff.channel().await);
    let config = auth
        .get_auth_config(bff::GetAuthConfigRequest {})
        .await
        .expect("auth config is public")
        .into_inner();
    assert_eq!(config.mode, i32::from(bff::AuthMode::External));
    assert_eq!(config.issuer, idp_issuer);
    assert_eq!(config.client_id, "storefront");
}

#[tokio::test]
async fn public_rpcs_need_no_token_and_ignore_a_bad_one() {
    let key = TestKey::ed25519("k1");
    let world = world(&[&key], &[]).await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(world.bff.channel().await);
    let login = auth
        .login(bff::LoginRequest {
            email: "shopper@example.com".into(),
            password: "correct horse".into(),
        })
        .await
        .expect("login is public")
        .into_inner();
    assert_eq!(login.tokens.expect("tokens").token_type, "Bearer");

    let config = auth
        .get_auth_config(with_token(bff::GetAuthConfigRequest {}, "garbage"))
        .await
        .expect("a stale token does not block a public rpc")
        .into_inner();
    assert_eq!(config.mode, i32::from(bff::AuthMode::BuiltIn));
    assert_eq!(config.audience, "mercato");

    let wrong = auth
        .login(bff::LoginRequest {
            email: "shopper@example.com".into(),
            password: "wrong".into(),
        })
        .await
        .expect_err("bad password");
    assert_eq!(wrong.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn internal_errors_from_services_are_masked_and_every_response_carries_ids() {
    let key = TestKey::ed25519("k1");
    let world = world(&[&key], &[]).await;
    let (_, claims) = user_claims(&world.jwks.issuer());
    let mut client = AccountClient::new(world.bff.channel().await);

    let mut request = with_token(
        bff::UpdateAccountRequest {
            display_name: "New".into(),
            ..bff::UpdateAccountRequest::default()
        },
        &key.sign(&claims),
    );
    request
        .metadata_mut()
        .insert("x-request-id", "client-chosen-42".parse().expect("header"));
    let status = client
        .update_account(request)
        .await
        .expect_err("the fake fails internally");
    assert_eq!(status.code(), Code::Internal);
    assert!(
        !status.message().contains("hunter2"),
        "internal detail leaked: {}",
        status.message()
    );
    assert_eq!(
        status
            .metadata()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok()),
        Some("client-chosen-42")
    );
    assert!(status.metadata().get("x-trace-id").is_some());

    // A client error from the service passes through, annotated with the ids.
    let not_found = client
        .get_shipping_address(with_token(
            bff::GetShippingAddressRequest {},
            &key.sign(&claims),
        ))
        .await
        .expect_err("the fake has no address");
    assert_eq!(not_found.code(), Code::NotFound);
    let request_info = not_found
        .get_error_details()
        .request_info()
        .cloned()
        .expect("RequestInfo added by the edge");
    assert_eq!(
        Some(request_info.request_id.as_str()),
        not_found
            .metadata()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
    );

    let response = client
        .get_account(with_token(bff::GetAccountRequest {}, &key.sign(&claims)))
        .await
        .expect("ok");
    let request_id = response
        .metadata()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .expect("generated request id");
    assert!(uuid::Uuid::parse_str(request_id).is_ok());
    assert!(response.metadata().get("x-trace-id").is_some());
}
