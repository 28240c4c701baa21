//! The BFF in front of the real user service (PostgreSQL, Redis and RabbitMQ included): sign up,
//! use the issued access token, refresh and sign out, all through the public API. The BFF trusts
//! the user service's JWKS exactly as deployed.

mod support;

use mercato_bff::BffSettings;
use mercato_platform::settings::EnvSource;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_user::testing::TestEnv;
use support::{RedisPrefix, TestBff, reason, redis_url, with_token};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_signs_up_and_uses_the_issued_token_through_the_bff() {
    let env = TestEnv::new().await.expect("user service resources");
    let user = env.start(|_| {}).await.expect("user service starts");
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
            email: format!("shopper-{}@example.com", uuid::Uuid::new_v4().simple()),
            password: "correct horse battery".into(),
            display_name: "Shopper".into(),
        })
        .await
        .expect("register through the bff")
        .into_inner();
    let account = registered.account.expect("account");
    let tokens = registered.tokens.expect("tokens");

    let me = accounts
        .get_account(with_token(bff::GetAccountRequest {}, &tokens.access_token))
        .await
        .expect("the issued access token verifies at the bff")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(me.user_id, account.user_id);
    assert_eq!(me.display_name, "Shopper");

    let anonymous = accounts
        .get_account(bff::GetAccountRequest {})
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(reason(&anonymous), "TOKEN_MISSING");

    let refreshed = auth
        .refresh_token(bff::RefreshTokenRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await
        .expect("refresh through the bff")
        .into_inner()
        .tokens
        .expect("new tokens");
    assert_ne!(refreshed.refresh_token, tokens.refresh_token);
    accounts
        .get_account(with_token(
            bff::GetAccountRequest {},
            &refreshed.access_token,
        ))
        .await
        .expect("the refreshed access token verifies");

    auth.logout(bff::LogoutRequest {
        refresh_token: refreshed.refresh_token.clone(),
        all_sessions: false,
    })
    .await
    .expect("logout through the bff");
    let after_logout = auth
        .refresh_token(bff::RefreshTokenRequest {
            refresh_token: refreshed.refresh_token,
        })
        .await
        .expect_err("a logged-out session cannot refresh");
    assert_eq!(after_logout.code(), Code::Unauthenticated);

    drop(bff);
    user.stop().await.expect("user service stops cleanly");
}
