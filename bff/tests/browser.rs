//! The storefront in a real browser: the user, product and order services and the BFF start
//! in-process on their own databases, the BFF serves the built SPA (`make web`), and the
//! Playwright journeys of `bff/web/e2e/storefront.mjs` drive Debian's chromium through it —
//! register, browse and search a seeded product, switch variants, save an address after a
//! validation error, sign out and in, see a server error shown with its message, fill a cart
//! with two variants (one beyond its stock), claim coupons from seeded campaigns, check out,
//! follow the order live over gRPC-Web streaming, find it in the history and cancel it — with no
//! console errors.
//!
//! `make test` builds the SPA and installs chromium first; run alone, this test needs
//! `make web` and `/usr/bin/chromium` (or `CHROMIUM_PATH`).

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::user::v1 as user;
use support::Services;
use tonic::Request;
use tonic::transport::Channel;
use uuid::Uuid;

/// The BFF's `WATCH_MAX_DURATION` in the journey, in seconds: short, so an order page outlives a
/// watch.
const WATCH_MAX_SECONDS: u64 = 2;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storefront_journeys_pass_in_chromium() {
    let web = web_dir();
    let dist = web.join("dist");
    assert!(
        dist.join("index.html").is_file() && web.join("e2e/gen").is_dir(),
        "the storefront is not built: run `make web` (make test does)"
    );
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "no browser at {chromium}: install Debian's chromium (make test does) or set CHROMIUM_PATH"
    );

    let services = Services::start().await;
    let root = dist.display().to_string();
    // Watches end after WATCH_MAX_SECONDS (UNAVAILABLE), so the journey sees the order page
    // watch again and stay live.
    let watch_max = format!("{WATCH_MAX_SECONDS}s");
    let bff = services
        .bff(&[("WEB_ROOT", &root), ("WATCH_MAX_DURATION", &watch_max)])
        .await;
    let channel = bff.channel().await;
    let user_uri = services.users.grpc_uri();
    let seller_token = token_with_role(&channel, &user_uri, common::Role::Seller).await;
    let admin_token = token_with_role(&channel, &user_uri, common::Role::Admin).await;

    // Screenshots of every step: kept in MERCATO_E2E_ARTIFACTS when it is set (to look at them or
    // keep them from CI), else in a temporary folder removed after a passing run.
    let kept = std::env::var_os("MERCATO_E2E_ARTIFACTS").map(PathBuf::from);
    let artifacts = kept.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mercato-e2e-{}", Uuid::new_v4().simple()))
    });
    let output = tokio::process::Command::new("node")
        .arg(web.join("e2e/storefront.mjs"))
        .env("BASE_URL", bff.url())
        .env("SEED_SELLER_TOKEN", seller_token)
        .env("SEED_ADMIN_TOKEN", admin_token)
        .env("E2E_WATCH_MAX_SECONDS", WATCH_MAX_SECONDS.to_string())
        .env("CHROMIUM_PATH", &chromium)
        .env("E2E_ARTIFACTS", &artifacts)
        .current_dir(&web)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("node runs the e2e script");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    #[allow(
        clippy::print_stdout,
        reason = "the journey's steps and summary, shown with --no-capture or --success-output"
    )]
    {
        println!("{report}");
    }
    assert!(
        output.status.success(),
        "storefront journeys failed (screenshots in {}):\n{report}",
        artifacts.display()
    );
    assert!(
        report.contains("0 failed"),
        "the script reported no summary:\n{report}"
    );
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&artifacts);
    }

    drop(bff);
    services.stop().await;
}

/// An access token with `role`, for the script to seed through the public API (a product through
/// `SellerService`, coupon campaigns through `AdminService`): registered through the BFF, given
/// the role on the user service, signed in again.
async fn token_with_role(bff_channel: &Channel, user_uri: &str, role: common::Role) -> String {
    let mut auth = bff::auth_service_client::AuthServiceClient::new(bff_channel.clone());
    let email = format!("staff-{}@example.com", Uuid::new_v4().simple());
    let password = "correct horse battery".to_owned();
    let registered = auth
        .register(bff::RegisterRequest {
            email: email.clone(),
            password: password.clone(),
            display_name: format!("E2E {role:?}"),
        })
        .await
        .expect("the staff member registers")
        .into_inner();
    let user_id = registered.account.expect("account").user_id;
    let mut grant = Request::new(user::GrantRoleRequest {
        user_id,
        role: role.into(),
    });
    Principal::new(Uuid::new_v4(), [Role::Admin]).write_metadata(grant.metadata_mut());
    user::user_service_client::UserServiceClient::new(
        Channel::from_shared(user_uri.to_owned())
            .expect("user uri")
            .connect_lazy(),
    )
    .grant_role(grant)
    .await
    .expect("the role is granted");
    auth.login(bff::LoginRequest { email, password })
        .await
        .expect("the staff member signs in")
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token
}
