//! The BFF and the real user service trusting a real third-party OpenID Connect provider
//! (oauth2-mock-server, run with node from `tests/oidc`) as the external issuer: its access
//! tokens are accepted and auto-provision one account per subject, an unverified e-mail is
//! refused, and tokens of any other issuer are refused.
//!
//! Needs node and npm on the PATH: the provider's package is installed with `npm ci` on first use.
//! Without them these tests fail; they never skip.

mod support;

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use mercato_bff::BffSettings;
use mercato_platform::settings::EnvSource;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::user::v1 as user;
use mercato_user::testing::{RunningUser, TestEnv};
use serde_json::Value;
use support::{RedisPrefix, TestBff, reason, redis_url, with_token};
use tonic::Code;

/// The audience the shop registered at the provider; deliberately not the built-in one.
const EXTERNAL_AUDIENCE: &str = "mercato-storefront";

/// How long the provider may take to install or to start before the test gives up.
const PATIENCE: Duration = Duration::from_secs(90);

/// The folder holding the provider's package manifest, lock file and `server.mjs`.
fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Installs the locked provider package unless a completed install is present. Test binaries
/// run as parallel processes, so the install runs under an exclusive file lock and the check is
/// repeated once it is held.
fn ensure_provider_installed() {
    let dir = oidc_dir();
    let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bff-oidc-npm-ci.lock");
    let lock = File::create(&lock_path).expect("create the npm install lock file");
    lock.lock().expect("take the npm install lock");
    if install_is_current(&dir) {
        return;
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .unwrap_or_else(|error| {
            panic!(
                "npm is required to install the test OIDC provider ({error}); install node and \
                 npm (`make lint` does, with apt)"
            )
        });
    assert!(
        status.success(),
        "npm ci in {} failed: {status}",
        dir.display()
    );
    assert!(
        install_is_current(&dir),
        "npm ci finished without writing node_modules/.package-lock.json"
    );
}

/// npm writes `node_modules/.package-lock.json` when an install completes; one older than the
/// lock file predates a change of the pinned versions.
fn install_is_current(dir: &Path) -> bool {
    let modified = |path: PathBuf| std::fs::metadata(path).and_then(|meta| meta.modified());
    match (
        modified(dir.join("node_modules/.package-lock.json")),
        modified(dir.join("package-lock.json")),
    ) {
        (Ok(installed), Ok(locked)) => installed >= locked,
        _ => false,
    }
}

/// One running provider: a `node server.mjs` child, killed when this drops.
struct MockProvider {
    child: Child,
    // Held open: the server exits when its stdin closes, should the kill below ever be missed.
    _stdin: ChildStdin,
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
}

impl MockProvider {
    /// Installs the package if needed, starts a provider and reads where it listens.
    async fn start() -> Self {
        tokio::time::timeout(PATIENCE, tokio::task::spawn_blocking(Self::start_blocking))
            .await
            .expect("the OIDC provider starts in time")
            .expect("the OIDC provider start-up task completes")
    }

    fn start_blocking() -> Self {
        ensure_provider_installed();
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(oidc_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("node is required to run the test OIDC provider ({error})")
            });
        let stdin = child.stdin.take().expect("provider stdin is piped");
        let stdout = child.stdout.take().expect("provider stdout is piped");
        // Build the guard before reading, so a failed start still kills the child.
        let mut provider = Self {
            child,
            _stdin: stdin,
            issuer: String::new(),
            jwks_uri: String::new(),
            token_endpoint: String::new(),
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the provider's address line");
        assert!(
            !line.is_empty(),
            "the OIDC provider exited before printing its addresses (its stderr is above)"
        );
        let announced: Value = serde_json::from_str(&line).expect("the address line is JSON");
        let field = |name: &str| {
            announced[name]
                .as_str()
                .unwrap_or_else(|| panic!("the address line has {name}: {line}"))
                .to_owned()
        };
        provider.issuer = field("issuer");
        provider.jwks_uri = field("jwks_uri");
        provider.token_endpoint = field("token_endpoint");
        provider
    }

    /// An access token for `subject` from the provider's token endpoint (client credentials
    /// grant; the provider copies these parameters into the token's claims).
    async fn access_token(&self, subject: &str, email: &str, email_verified: bool) -> String {
        mercato_bff::app::install_crypto_provider();
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("scope", "openid email"),
            ("aud", EXTERNAL_AUDIENCE),
            ("sub", subject),
            ("email", email),
            (
                "email_verified",
                if email_verified { "true" } else { "false" },
            ),
        ]);
        let response = reqwest::Client::new()
            .post(&self.token_endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .expect("the token endpoint answers");
        assert!(
            response.status().is_success(),
            "the token endpoint refused: {}",
            response.status()
        );
        let body: Value = response.json().await.expect("token response is JSON");
        body["access_token"]
            .as_str()
            .expect("the token response has an access_token")
            .to_owned()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        // Already exited is fine; the wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    fn encode(value: &str) -> String {
        value
            .bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(byte).to_string()
                }
                _ => format!("%{byte:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The user service trusting `provider`, on its own database, Redis prefix and broker namespace.
async fn start_user_service(env: &TestEnv, provider: &MockProvider) -> RunningUser {
    let issuer = provider.issuer.clone();
    env.start(|settings| settings.auth.external_issuers = vec![issuer])
        .await
        .expect("user service starts in external mode")
}

/// A BFF (one replica) trusting `provider` as its external issuer, in front of `users`.
async fn start_bff(users: &RunningUser, provider: &MockProvider, prefix: &RedisPrefix) -> TestBff {
    let settings = BffSettings::from_source(&EnvSource::from_pairs([
        ("MERCATO_BFF__REDIS_URL".to_owned(), redis_url()),
        ("MERCATO_BFF__REDIS_KEY_PREFIX".to_owned(), prefix.0.clone()),
        ("MERCATO_BFF__USER_SERVICE_URL".to_owned(), users.grpc_uri()),
        (
            "MERCATO_BFF__ISSUER".to_owned(),
            format!("http://{}", users.http_addr),
        ),
        (
            "MERCATO_BFF__EXTERNAL_ISSUER".to_owned(),
            provider.issuer.clone(),
        ),
        (
            "MERCATO_BFF__EXTERNAL_JWKS_URL".to_owned(),
            provider.jwks_uri.clone(),
        ),
        (
            "MERCATO_BFF__EXTERNAL_AUDIENCE".to_owned(),
            EXTERNAL_AUDIENCE.to_owned(),
        ),
    ]))
    .expect("bff settings");
    TestBff::start(settings).await
}

/// The accounts whose e-mail matches `email`, asked of the user service directly as an admin.
async fn accounts_with_email(users: &RunningUser, email: &str) -> Vec<user::User> {
    let mut client = user::user_service_client::UserServiceClient::connect(users.grpc_uri())
        .await
        .expect("connect to the user service");
    let mut request = tonic::Request::new(user::ListUsersRequest {
        query: email.to_owned(),
        show_deleted: true,
        ..user::ListUsersRequest::default()
    });
    let metadata = request.metadata_mut();
    metadata.insert(
        "x-mercato-user-id",
        uuid::Uuid::new_v4()
            .to_string()
            .parse()
            .expect("uuid metadata"),
    );
    metadata.insert("x-mercato-roles", "admin".parse().expect("roles metadata"));
    metadata.insert("x-mercato-caller", "test".parse().expect("caller metadata"));
    client
        .list_users(request)
        .await
        .expect("list users as an admin")
        .into_inner()
        .users
        .into_iter()
        .filter(|account| account.email == email)
        .collect()
}

fn unique_email() -> String {
    format!("oidc-{}@example.com", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_the_external_provider_provisions_its_subject_once() {
    let provider = MockProvider::start().await;
    let env = TestEnv::new().await.expect("user service resources");
    let users = start_user_service(&env, &provider).await;
    let prefix = RedisPrefix::new();
    let first_replica = start_bff(&users, &provider, &prefix).await;
    let second_replica = start_bff(&users, &provider, &prefix).await;

    let email = unique_email();
    let subject = format!("provider-subject-{}", uuid::Uuid::new_v4().simple());
    let token = provider.access_token(&subject, &email, true).await;
    assert!(
        accounts_with_email(&users, &email).await.is_empty(),
        "no account exists before the first call"
    );

    let mut accounts =
        bff::account_service_client::AccountServiceClient::new(first_replica.channel().await);
    let provisioned = accounts
        .get_account(with_token(bff::GetAccountRequest {}, &token))
        .await
        .expect("the provider's token is accepted")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(provisioned.email, email);
    assert!(provisioned.email_verified);
    uuid::Uuid::parse_str(&provisioned.user_id).expect("the account has a mercato user id");

    let again = accounts
        .get_account(with_token(bff::GetAccountRequest {}, &token))
        .await
        .expect("the same token is accepted again")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(again.user_id, provisioned.user_id);

    // Another replica has no cached mapping and asks the user service, which finds the account.
    let fresh_token = provider.access_token(&subject, &email, true).await;
    let mut other_accounts =
        bff::account_service_client::AccountServiceClient::new(second_replica.channel().await);
    let from_other_replica = other_accounts
        .get_account(with_token(bff::GetAccountRequest {}, &fresh_token))
        .await
        .expect("another replica accepts a new token of the same subject")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(from_other_replica.user_id, provisioned.user_id);

    let stored = accounts_with_email(&users, &email).await;
    assert_eq!(stored.len(), 1, "exactly one account: {stored:?}");
    assert_eq!(stored[0].user_id, provisioned.user_id);

    drop(first_replica);
    drop(second_replica);
    users.stop().await.expect("user service stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_a_provider_that_is_not_configured_is_refused() {
    let trusted = MockProvider::start().await;
    let stranger = MockProvider::start().await;
    assert_ne!(trusted.issuer, stranger.issuer);
    let env = TestEnv::new().await.expect("user service resources");
    let users = start_user_service(&env, &trusted).await;
    let prefix = RedisPrefix::new();
    let bff = start_bff(&users, &trusted, &prefix).await;
    let mut accounts = bff::account_service_client::AccountServiceClient::new(bff.channel().await);

    // Everything but the issuer is what the trusted provider would have signed.
    let email = unique_email();
    let token = stranger
        .access_token("stranger-subject", &email, true)
        .await;
    let refused = accounts
        .get_account(with_token(bff::GetAccountRequest {}, &token))
        .await
        .expect_err("a token of an unconfigured issuer is refused");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(reason(&refused), "TOKEN_INVALID");
    assert!(
        accounts_with_email(&users, &email).await.is_empty(),
        "no account is provisioned for a refused token"
    );

    // The trusted provider's token for the same identity still works, so the refusal was the
    // issuer's doing.
    let trusted_token = trusted.access_token("stranger-subject", &email, true).await;
    accounts
        .get_account(with_token(bff::GetAccountRequest {}, &trusted_token))
        .await
        .expect("the configured provider's token is accepted");

    drop(bff);
    users.stop().await.expect("user service stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_email_from_the_configured_provider_is_refused() {
    let provider = MockProvider::start().await;
    let env = TestEnv::new().await.expect("user service resources");
    let users = start_user_service(&env, &provider).await;
    let prefix = RedisPrefix::new();
    let bff = start_bff(&users, &provider, &prefix).await;
    let mut accounts = bff::account_service_client::AccountServiceClient::new(bff.channel().await);

    let email = unique_email();
    let token = provider
        .access_token("unverified-subject", &email, false)
        .await;
    let refused = accounts
        .get_account(with_token(bff::GetAccountRequest {}, &token))
        .await
        .expect_err("an unverified e-mail is refused");
    // The token itself is valid; the user service declines to provision an account for an
    // address the provider has not verified, and the BFF passes that client error through.
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "EMAIL_NOT_VERIFIED");
    assert!(
        accounts_with_email(&users, &email).await.is_empty(),
        "no account is provisioned for an unverified e-mail"
    );

    drop(bff);
    users.stop().await.expect("user service stops cleanly");
}
