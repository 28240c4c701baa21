//! Rate limiting against the real Redis: two BFF replicas sharing one prefix hold one budget,
//! refusals carry QuotaFailure and RetryInfo, and the documented Redis-down policy (auth fails
//! closed, reads and writes fail open).

mod support;

use futures::StreamExt as _;
use mercato_proto::mercato::bff::v1 as bff;
use support::{
    FakeUsers, JwksServer, RedisPrefix, TestBff, TestKey, claims, reason, settings, with_token,
};
use tonic::Code;
use tonic_types::StatusExt as _;

type AccountClient = bff::account_service_client::AccountServiceClient<tonic::transport::Channel>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bff_replicas_sharing_redis_hold_one_budget() {
    const BUDGET: usize = 100;
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let prefix = RedisPrefix::new();
    // A burst of BUDGET and a refill of one per hour: what both replicas admit together is the
    // budget, whatever the test's speed.
    let limits = [
        ("RATE_LIMIT_READ_REQUESTS", "1"),
        ("RATE_LIMIT_READ_PERIOD", "1h"),
        ("RATE_LIMIT_READ_BURST", "100"),
    ];
    let first = TestBff::start(settings(&jwks, &users_url, &prefix, &limits)).await;
    let second = TestBff::start(settings(&jwks, &users_url, &prefix, &limits)).await;
    let token = key.sign(&claims(
        &jwks.issuer(),
        &uuid::Uuid::new_v4().to_string(),
        &["buyer"],
    ));

    let clients = [
        AccountClient::new(first.channel().await),
        AccountClient::new(second.channel().await),
    ];
    // Requests overlap (16 in flight, alternating replicas) so the script's atomicity is what
    // keeps the count, while the single test process is not so saturated that Redis replies
    // time out (a timeout is the fail-open path, tested separately).
    let outcomes: Vec<Result<_, tonic::Status>> = futures::stream::iter(0..(BUDGET * 2))
        .map(|i| {
            let mut client = clients[i % 2].clone();
            let token = token.clone();
            async move {
                client
                    .get_account(with_token(bff::GetAccountRequest {}, &token))
                    .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut admitted: usize = 0;
    let mut limited = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(_) => admitted += 1,
            Err(status) => limited.push(status),
        }
    }
    let tolerance = BUDGET / 20;
    assert!(
        admitted.abs_diff(BUDGET) <= tolerance,
        "admitted {admitted}, budget {BUDGET} ± {tolerance}"
    );
    let status = limited.first().expect("some requests are limited");
    assert!(limited.iter().all(|s| s.code() == Code::ResourceExhausted));
    assert_eq!(reason(status), "RATE_LIMITED");
    let details = status.get_error_details();
    let quota = details.quota_failure().expect("QuotaFailure present");
    assert!(
        quota.violations[0].subject.starts_with("ip:")
            || quota.violations[0].subject.starts_with("user:")
    );
    let retry = details.retry_info().expect("RetryInfo present");
    assert!(retry.retry_delay.is_some_and(|delay| !delay.is_zero()));
    assert_eq!(
        users.call_count(),
        admitted,
        "limited requests never reach the service"
    );
}

#[tokio::test]
async fn with_redis_down_sign_in_fails_closed_and_reads_fail_open() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = FakeUsers::default();
    let users_url = users.start().await;
    let prefix = RedisPrefix::new();
    // A port that was just free: nothing listens there.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
        listener.local_addr().expect("probe addr")
    };
    let dead_url = format!("redis://{dead}");
    let bff = TestBff::start(settings(
        &jwks,
        &users_url,
        &prefix,
        &[("REDIS_URL", dead_url.as_str())],
    ))
    .await;
    let channel = bff.channel().await;

    let token = key.sign(&claims(
        &jwks.issuer(),
        &uuid::Uuid::new_v4().to_string(),
        &["buyer"],
    ));
    AccountClient::new(channel.clone())
        .get_account(with_token(bff::GetAccountRequest {}, &token))
        .await
        .expect("reads fail open");

    let status = bff::auth_service_client::AuthServiceClient::new(channel)
        .login(bff::LoginRequest {
            email: "shopper@example.com".into(),
            password: "correct horse".into(),
        })
        .await
        .expect_err("sign-in fails closed");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UNAVAILABLE");
    assert!(
        users.calls().iter().all(|call| call.method != "Login"),
        "the login never reached the user service"
    );
}
