//! Accounts over a real gRPC channel: profile, shipping address, soft delete, roles, external
//! provisioning, and the service started through `TestSystem`.

mod common;

use std::time::Duration;

use common::*;
use mercato_platform::principal::Role;
use mercato_proto::mercato::common::v1 as pb_common;
use mercato_proto::mercato::user::v1::{
    DeleteCurrentUserRequest, GetCurrentUserRequest, GetShippingAddressRequest, GetUserRequest,
    GrantRoleRequest, ListUsersRequest, ProvisionExternalUserRequest, RefreshTokenRequest,
    RevokeRoleRequest, UpdateCurrentUserRequest, UpdateShippingAddressRequest, User,
};
use mercato_testkit::TestSystem;
use mercato_user::testing::{TestEnv, UserService, http_addr_of};
use tonic::Code;

const IDP: &str = "https://idp.example.com";

fn tokyo() -> pb_common::PostalAddress {
    pb_common::PostalAddress {
        recipient_name: "山田 太郎".to_owned(),
        recipient_name_kana: "ヤマダ タロウ".to_owned(),
        country_code: "JP".to_owned(),
        postal_code: "1500001".to_owned(),
        region: "東京都".to_owned(),
        locality: "渋谷区".to_owned(),
        address_line1: "神宮前1-2-3".to_owned(),
        address_line2: String::new(),
        phone_number: "090-1234-5678".to_owned(),
    }
}

#[tokio::test]
async fn profile_address_and_soft_delete_act_on_the_forwarded_user() {
    let env = TestEnv::new().await.expect("test resources");
    let service = env.start(|_| {}).await.expect("service starts");
    let uri = service.grpc_uri();
    let email = email();
    let registered = register(&uri, &email).await;
    let me = user_id(&registered);
    let mut users = user_client(&uri);

    let anonymous = users
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect_err("anonymous");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(reason(&anonymous), "TOKEN_MISSING");

    let updated = users
        .update_current_user(as_user(
            UpdateCurrentUserRequest {
                user: Some(User {
                    display_name: "  Taro  ".to_owned(),
                    description: "maker of cups".to_owned(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".to_owned()],
                }),
            },
            me,
            &[Role::Buyer],
        ))
        .await
        .expect("update")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(updated.display_name, "Taro");
    assert_eq!(
        updated.description, "",
        "fields outside the mask are untouched"
    );

    let bad = users
        .update_current_user(as_user(
            UpdateCurrentUserRequest {
                user: Some(User {
                    display_name: "x".repeat(101),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".to_owned(), "email".to_owned()],
                }),
            },
            me,
            &[Role::Buyer],
        ))
        .await
        .expect_err("invalid update");
    assert_eq!(violated_fields(&bad), ["update_mask", "user.display_name"]);

    let missing = users
        .get_shipping_address(as_user(GetShippingAddressRequest {}, me, &[Role::Buyer]))
        .await
        .expect_err("none saved");
    assert_eq!(missing.code(), Code::NotFound);

    let saved = users
        .update_shipping_address(as_user(
            UpdateShippingAddressRequest {
                shipping_address: Some(tokyo()),
                update_mask: None,
            },
            me,
            &[Role::Buyer],
        ))
        .await
        .expect("address saved")
        .into_inner()
        .shipping_address
        .expect("address");
    assert_eq!(saved.postal_code, "150-0001");
    assert_eq!(saved.phone_number, "09012345678");

    let bad = users
        .update_shipping_address(as_user(
            UpdateShippingAddressRequest {
                shipping_address: Some(pb_common::PostalAddress {
                    postal_code: "150-001".to_owned(),
                    region: "Tokyo".to_owned(),
                    ..tokyo()
                }),
                update_mask: None,
            },
            me,
            &[Role::Buyer],
        ))
        .await
        .expect_err("invalid address");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&bad),
        ["shipping_address.postal_code", "shipping_address.region"]
    );
    let patched = users
        .update_shipping_address(as_user(
            UpdateShippingAddressRequest {
                shipping_address: Some(pb_common::PostalAddress {
                    postal_code: "5300001".to_owned(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["postal_code".to_owned()],
                }),
            },
            me,
            &[Role::Buyer],
        ))
        .await
        .expect("partial update")
        .into_inner()
        .shipping_address
        .expect("address");
    assert_eq!(patched.postal_code, "530-0001");
    assert_eq!(patched.locality, "渋谷区", "other fields kept");
    let fetched = users
        .get_shipping_address(as_user(GetShippingAddressRequest {}, me, &[Role::Buyer]))
        .await
        .expect("address")
        .into_inner()
        .shipping_address
        .expect("address");
    assert_eq!(fetched, patched, "the invalid update wrote nothing");

    users
        .delete_current_user(as_user(DeleteCurrentUserRequest {}, me, &[Role::Buyer]))
        .await
        .expect("delete");
    let gone = users
        .get_current_user(as_user(GetCurrentUserRequest {}, me, &[Role::Buyer]))
        .await
        .expect_err("deleted accounts are invisible");
    assert_eq!(gone.code(), Code::NotFound);
    let refresh = auth_client(&uri)
        .refresh_token(RefreshTokenRequest {
            refresh_token: registered.tokens.expect("tokens").refresh_token,
        })
        .await
        .expect_err("sessions of a deleted account end");
    assert_eq!(reason(&refresh), "REFRESH_TOKEN_INVALID");
    let again = register(&uri, &email).await;
    assert_ne!(user_id(&again), me, "the address can be registered again");

    let events: Vec<String> = sqlx::query_scalar("SELECT event_type FROM outbox ORDER BY id")
        .fetch_all(env.database().pool())
        .await
        .expect("outbox rows");
    assert_eq!(
        events,
        ["user.registered", "user.deleted", "user.registered"]
    );
}

#[tokio::test]
async fn roles_are_granted_and_revoked_by_admins_only() {
    let env = TestEnv::new().await.expect("test resources");
    let service = env.start(|_| {}).await.expect("service starts");
    let uri = service.grpc_uri();
    let admin = user_id(&register(&uri, &email()).await);
    sqlx::query("UPDATE users SET roles = ARRAY['admin', 'buyer'] WHERE user_id = $1")
        .bind(admin)
        .execute(env.database().pool())
        .await
        .expect("bootstrap admin");
    let target_registration = register(&uri, &email()).await;
    let target = user_id(&target_registration);
    let mut users = user_client(&uri);
    let grant = GrantRoleRequest {
        user_id: target.to_string(),
        role: pb_common::Role::Seller as i32,
    };

    let denied = users
        .grant_role(as_user(grant.clone(), target, &[Role::Buyer]))
        .await
        .expect_err("buyers cannot grant");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(reason(&denied), "ROLE_REQUIRED");
    let anonymous = users
        .grant_role(grant.clone())
        .await
        .expect_err("anonymous");
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    let granted = users
        .grant_role(as_user(grant.clone(), admin, &[Role::Buyer, Role::Admin]))
        .await
        .expect("admin grants")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(
        granted.roles,
        [
            pb_common::Role::Buyer as i32,
            pb_common::Role::Seller as i32
        ]
    );
    users
        .grant_role(as_user(grant, admin, &[Role::Admin]))
        .await
        .expect("granting again is a no-op");
    let refreshed = auth_client(&uri)
        .refresh_token(RefreshTokenRequest {
            refresh_token: target_registration.tokens.expect("tokens").refresh_token,
        })
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .expect("tokens");
    assert_eq!(
        token_roles(&refreshed.access_token),
        ["buyer", "seller"],
        "a refresh reads the roles fresh"
    );

    let revoke = |user_id: uuid::Uuid, role: pb_common::Role| RevokeRoleRequest {
        user_id: user_id.to_string(),
        role: role as i32,
    };
    let buyer = users
        .revoke_role(as_user(
            revoke(target, pb_common::Role::Buyer),
            admin,
            &[Role::Admin],
        ))
        .await
        .expect_err("buyer is permanent");
    assert_eq!(violated_fields(&buyer), ["role"]);
    let own = users
        .revoke_role(as_user(
            revoke(admin, pb_common::Role::Admin),
            admin,
            &[Role::Admin],
        ))
        .await
        .expect_err("an admin keeps their own admin role");
    assert_eq!(own.code(), Code::InvalidArgument);
    let revoked = users
        .revoke_role(as_user(
            revoke(target, pb_common::Role::Seller),
            admin,
            &[Role::Admin],
        ))
        .await
        .expect("revoke")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(revoked.roles, [pb_common::Role::Buyer as i32]);

    let listed = users
        .list_users(as_user(
            ListUsersRequest {
                page_size: 1,
                ..Default::default()
            },
            admin,
            &[Role::Admin],
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].user_id, target.to_string(), "newest first");
    let rest = users
        .list_users(as_user(
            ListUsersRequest {
                page_size: 1,
                page_token: listed.next_page_token,
                ..Default::default()
            },
            admin,
            &[Role::Admin],
        ))
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(rest.users[0].user_id, admin.to_string());
    assert!(rest.next_page_token.is_empty());
    let tampered = users
        .list_users(as_user(
            ListUsersRequest {
                page_size: 1,
                page_token: "bm90IGEgY3Vyc29y".to_owned(),
                ..Default::default()
            },
            admin,
            &[Role::Admin],
        ))
        .await
        .expect_err("a forged page token");
    assert_eq!(reason(&tampered), "INVALID_PAGE_TOKEN");

    let by_service = users
        .get_user(as_service(GetUserRequest {
            user_id: target.to_string(),
            show_deleted: false,
        }))
        .await
        .expect("internal services read any account");
    assert_eq!(
        by_service.into_inner().user.expect("user").user_id,
        target.to_string()
    );
    let by_buyer = users
        .get_user(as_user(
            GetUserRequest {
                user_id: admin.to_string(),
                show_deleted: false,
            },
            target,
            &[Role::Buyer],
        ))
        .await
        .expect_err("buyers cannot read other accounts");
    assert_eq!(by_buyer.code(), Code::PermissionDenied);
}

/// The `roles` claim of a JWT (its signature is checked in the auth tests).
fn token_roles(token: &str) -> Vec<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a jwt payload");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    let claims: serde_json::Value = serde_json::from_slice(&json).expect("json claims");
    serde_json::from_value(claims["roles"].clone()).expect("roles array")
}

fn provision(subject: &str, email: &str, verified: bool) -> ProvisionExternalUserRequest {
    ProvisionExternalUserRequest {
        issuer: IDP.to_owned(),
        subject: subject.to_owned(),
        email: email.to_owned(),
        email_verified: verified,
        display_name: "Hanako".to_owned(),
    }
}

#[tokio::test]
async fn external_provisioning_creates_one_account_under_concurrency() {
    let env = TestEnv::new().await.expect("test resources");
    let service = env
        .start(|s| s.auth.external_issuers = vec![IDP.to_owned()])
        .await
        .expect("service starts");
    let uri = service.grpc_uri();
    let email = email();
    let calls = (0..20).map(|_| {
        let mut client = user_client(&uri);
        let request = provision("idp-subject-1", &email, true);
        async move {
            client
                .provision_external_user(as_service(request))
                .await
                .expect("provisioning succeeds")
                .into_inner()
        }
    });
    let results = futures::future::join_all(calls).await;
    let created = results.iter().filter(|r| r.created).count();
    assert_eq!(created, 1, "exactly one call created the account");
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|r| r.user.as_ref().expect("user").user_id.clone())
        .collect();
    assert_eq!(ids.len(), 1, "every call returned the same account");
    let user = results[0].user.clone().expect("user");
    assert!(user.email_verified);
    assert_eq!(user.issuer, IDP);
    assert_eq!(user.subject, "idp-subject-1");
    let rows: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM users), \
                (SELECT count(*) FROM outbox WHERE event_type = 'user.registered')",
    )
    .fetch_one(env.database().pool())
    .await
    .expect("counts");
    assert_eq!(rows, (1, 1), "one account, one event");
}

#[tokio::test]
async fn external_provisioning_refuses_unverified_emails_and_unknown_callers() {
    let env = TestEnv::new().await.expect("test resources");
    let service = env
        .start(|s| s.auth.external_issuers = vec![IDP.to_owned()])
        .await
        .expect("service starts");
    let mut users = user_client(&service.grpc_uri());
    let unverified = users
        .provision_external_user(as_service(provision("s-2", &email(), false)))
        .await
        .expect_err("unverified");
    assert_eq!(unverified.code(), Code::PermissionDenied);
    assert_eq!(reason(&unverified), "EMAIL_NOT_VERIFIED");
    let anonymous = users
        .provision_external_user(provision("s-2", &email(), true))
        .await
        .expect_err("not a service");
    assert_eq!(reason(&anonymous), "ROLE_REQUIRED");
    let other_issuer = users
        .provision_external_user(as_service(ProvisionExternalUserRequest {
            issuer: "https://evil.example.com".to_owned(),
            ..provision("s-2", &email(), true)
        }))
        .await
        .expect_err("unknown issuer");
    assert_eq!(violated_fields(&other_issuer), ["issuer"]);
    let email = email();
    users
        .provision_external_user(as_service(provision("s-3", &email, true)))
        .await
        .expect("first subject");
    let taken = users
        .provision_external_user(as_service(provision("s-4", &email, true)))
        .await
        .expect_err("another subject with the same e-mail");
    assert_eq!(reason(&taken), "EMAIL_ALREADY_REGISTERED");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(env.database().pool())
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn the_test_system_starts_the_service_and_finds_its_jwks() {
    let system = TestSystem::builder()
        .with::<UserService>()
        .start()
        .await
        .expect("system starts");
    // The service's relay declares the namespace's exchanges; delete them with the test.
    let broker = system.broker();
    broker.track_exchange(broker.name("mercato.events"));
    broker.track_exchange(broker.name("mercato.events.dlx"));
    let mut auth = system.client(
        "user",
        mercato_proto::mercato::user::v1::auth_service_client::AuthServiceClient::new,
    );
    auth.register(register_request(&email()))
        .await
        .expect("registration through the system");
    let grpc = system.peers().addr("user").expect("user runs");
    let http = http_addr_of(grpc, Duration::from_secs(10))
        .await
        .expect("http address announced");
    let (status, _, body) = http_get(http, "/.well-known/jwks.json").await;
    assert_eq!(status, 200, "{body}");
    system.shutdown().await.expect("clean shutdown");
}
