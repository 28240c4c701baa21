//! The storefront in a real browser: the whole system starts in-process on its own databases
//! (user, product, order, payment and process services on one bus), the BFF serves the built SPA
//! (`make web`), and the Playwright journeys of `bff/web/e2e/storefront.mjs` drive Debian's
//! chromium through it, with no console errors:
//!
//! - the shopper: register, browse and search a seeded product, switch variants, save an
//!   address after a validation error, sign out and in, fill a cart with two variants (one beyond
//!   its stock), claim coupons, check out (refused while a line is sold out, then placed), follow
//!   the order live over gRPC-Web streaming, find it in the history and cancel it; then the
//!   wallet (a refused charge showing the server's message and trace id, a charge, its history),
//!   a second checkout paid with points and the coupon, the order moving PAID → SHIPPED (with its
//!   tracking number) → FINISHED on screen, and the history and the wallet showing it;
//! - the sandbox payment: another shopper pays on the payment service's sandbox page in a new
//!   tab and watches the order reach FINISHED in the storefront's tab;
//! - the card payment, on a BFF with a publishable key whose `STRIPE_JS_URL` names localstripe's
//!   Stripe.js ([`stripe_js`]): a declined card shows Stripe's message and the order is
//!   cancelled with nothing charged; the Visa test card typed into localstripe's card form is
//!   confirmed, localstripe's signed webhook reaches the payment service, and the order moves to
//!   FINISHED on screen;
//! - the edges: a page on an origin the BFF's CORS allow-list names reads a gRPC-Web answer, one
//!   on another origin is refused by the browser; on a second BFF with a tiny write budget, the
//!   action over the budget shows a friendly "try again" with the wait, not a generic failure.
//!
//! The payment service sends STRIPE payments to a localstripe of the test's (with the normalizing
//! proxy and its webhook registered, as [`support::FullStack::stripe`] sets up); the main BFF is
//! given no publishable key, so the sandbox journey also sees a card step without Stripe.
//!
//! The process service runs its manual carrier and this test plays the carrier
//! ([`TestCarrier`]): the journey asks it to ship and to deliver once the page has shown the
//! previous state, so every step is on screen, delivered by the order's stream, whatever the
//! machine's speed.
//!
//! `make test` builds the SPA and installs chromium first; run alone, this test needs
//! `make web` and `/usr/bin/chromium` (or `CHROMIUM_PATH`).

#[path = "support/mod.rs"]
mod support;

#[path = "browser/stripe_js.rs"]
mod stripe_js;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::process::v1 as process;
use mercato_proto::mercato::user::v1 as user;
use stripe_js::{Confirmation, StripeJs};
use support::{FullStack, RedisPrefix, STRIPE_PUBLISHABLE_KEY, Services};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;
use uuid::Uuid;

/// The BFF's `WATCH_MAX_DURATION` in the journeys, in seconds: short, so an order page outlives
/// a watch.
const WATCH_MAX_SECONDS: u64 = 2;

/// Writes the rate-limited BFF admits from one shopper back to back; the next is refused.
const LIMITED_WRITES: u32 = 2;

/// The carrier name the test carrier ships with.
const CARRIER: &str = "Mercato Test Post";

/// How long the test carrier waits for a paid order's shipment to be ready to ship.
const SHIPMENT_PATIENCE: Duration = Duration::from_secs(30);

/// The page another site serves to call the BFF from the browser.
const CROSS_ORIGIN_PAGE: &str = include_str!("../web/e2e/cross-origin.html");

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

    let services = Services::start_full_with(FullStack {
        stripe: true,
        carrier: mercato_process::settings::CarrierMode::Manual,
        ..FullStack::default()
    })
    .await;
    let carrier = TestCarrier::start(&services.process_uri()).await;
    // Two other sites: the allow-list names the first only.
    let allowed_site = OtherSite::start().await;
    let foreign_site = OtherSite::start().await;

    let root = dist.display().to_string();
    // Watches end after WATCH_MAX_SECONDS (UNAVAILABLE), so the journey sees the order page
    // watch again and stay live.
    let watch_max = format!("{WATCH_MAX_SECONDS}s");
    let allowed_origin = allowed_site.origin();
    let bff = services
        .bff(&[
            ("WEB_ROOT", &root),
            ("WATCH_MAX_DURATION", &watch_max),
            ("CORS_ALLOWED_ORIGINS", &allowed_origin),
            // No publishable key (empty is unset): a card order there has no card form.
            ("STRIPE_PUBLISHABLE_KEY", ""),
        ])
        .await;
    // The same system behind a BFF that hands payers the publishable key and loads Stripe.js
    // from localstripe's copy, for the card journey.
    let stripe_js = StripeJs::start(services.stripe().direct_url(), STRIPE_PUBLISHABLE_KEY).await;
    let stripe_js_url = stripe_js.url();
    let card_bff = services
        .bff(&[("WEB_ROOT", &root), ("STRIPE_JS_URL", &stripe_js_url)])
        .await;
    // The same system behind a BFF with a tiny write budget (its own rate-limit keys), for the
    // rate-limited action.
    let limited_prefix = RedisPrefix::new();
    let limited_writes = LIMITED_WRITES.to_string();
    let limited = services
        .bff(&[
            ("WEB_ROOT", &root),
            ("REDIS_KEY_PREFIX", &limited_prefix.0),
            ("RATE_LIMIT_WRITE_REQUESTS", &limited_writes),
            ("RATE_LIMIT_WRITE_BURST", &limited_writes),
            ("RATE_LIMIT_WRITE_PERIOD", "1m"),
        ])
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
        .env("E2E_CARRIER_URL", carrier.url())
        .env("E2E_ALLOWED_ORIGIN_URL", allowed_site.page_url())
        .env("E2E_FOREIGN_ORIGIN_URL", foreign_site.page_url())
        .env("E2E_LIMITED_URL", limited.url())
        .env("E2E_LIMITED_WRITES", &limited_writes)
        .env("E2E_STRIPE_URL", card_bff.url())
        .env("E2E_STRIPE_JS_URL", &stripe_js_url)
        .env("CHROMIUM_PATH", &chromium)
        .env("E2E_ARTIFACTS", &artifacts)
        .current_dir(&web)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
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
        report.contains(" 0 failed"),
        "the script reported no summary:\n{report}"
    );
    let shipped = carrier.shipped();
    assert_eq!(
        shipped.len(),
        3,
        "the points, the sandbox and the card orders are all shipped and delivered by the test \
         carrier: {shipped:?}"
    );
    // The card journey confirmed two intents through the page's Stripe.js: the declined card
    // (localstripe's 402), then the Visa test card on the next order.
    let confirmations = stripe_js.confirmations();
    assert!(
        matches!(
            confirmations.as_slice(),
            [
                Confirmation { intent: declined, status: 402 },
                Confirmation { intent: paid, status: 200 },
            ] if declined != paid
        ),
        "the card journey's confirmations: {confirmations:?}"
    );
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&artifacts);
    }

    drop((
        bff,
        limited,
        card_bff,
        stripe_js,
        carrier,
        allowed_site,
        foreign_site,
    ));
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

/// Serves `router` on a fresh loopback port until the token is cancelled; returns the address.
async fn serve(router: axum::Router, stop: &CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    let stopped = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped.cancelled_owned())
            .await
            .expect("the test server serves");
    });
    addr
}

/// Another web site on its own origin (`http://127.0.0.1:<port>`), serving the page that calls
/// the BFF from the browser.
struct OtherSite {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl OtherSite {
    async fn start() -> Self {
        let stop = CancellationToken::new();
        let router = axum::Router::new().route("/", get(|| async { Html(CROSS_ORIGIN_PAGE) }));
        let addr = serve(router, &stop).await;
        Self { addr, stop }
    }

    /// The site's origin, as a browser sends it.
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The calling page (the journey adds `?api=<the BFF>`).
    fn page_url(&self) -> String {
        format!("{}/", self.origin())
    }
}

impl Drop for OtherSite {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The carrier of the process service's manual mode, under the journey's control:
/// `POST /orders/{order_id}/ship?tracking_number=…` hands the order's parcel over (once the
/// process service has it ready: PREPARING) and `POST /orders/{order_id}/deliver` delivers it,
/// both through `ShipmentService` as an operator. Answers 200, or 500 with the reason.
struct TestCarrier {
    addr: SocketAddr,
    state: CarrierState,
    stop: CancellationToken,
}

#[derive(Clone)]
struct CarrierState {
    shipments: process::shipment_service_client::ShipmentServiceClient<Channel>,
    /// `(order id, tracking number)` of every parcel delivered.
    delivered: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

#[derive(serde::Deserialize)]
struct ShipQuery {
    tracking_number: String,
}

impl TestCarrier {
    async fn start(process_uri: &str) -> Self {
        let state = CarrierState {
            shipments: process::shipment_service_client::ShipmentServiceClient::new(
                Channel::from_shared(process_uri.to_owned())
                    .expect("process uri")
                    .connect_lazy(),
            ),
            delivered: std::sync::Arc::default(),
        };
        let router = axum::Router::new()
            .route("/orders/{order_id}/ship", post(carrier_ship))
            .route("/orders/{order_id}/deliver", post(carrier_deliver))
            .with_state(state.clone());
        let stop = CancellationToken::new();
        let addr = serve(router, &stop).await;
        Self { addr, state, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The parcels delivered so far.
    fn shipped(&self) -> Vec<(String, String)> {
        self.state.delivered.lock().expect("delivered lock").clone()
    }
}

impl Drop for TestCarrier {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A request from an operator (the process service accepts ROLE_ADMIN).
fn as_operator<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    Principal::new(Uuid::new_v4(), [Role::Admin]).write_metadata(request.metadata_mut());
    request
}

/// The order's shipment once it is in `status`, waiting for the process service's worker (it
/// commits the reservation after `order.paid` arrives) within [`SHIPMENT_PATIENCE`].
async fn shipment_in(
    state: &CarrierState,
    order_id: &str,
    status: common::ShipmentStatus,
) -> Result<process::Shipment, String> {
    let deadline = tokio::time::Instant::now() + SHIPMENT_PATIENCE;
    loop {
        let found = state
            .shipments
            .clone()
            .list_shipments(as_operator(process::ListShipmentsRequest {
                order_id: order_id.to_owned(),
                ..process::ListShipmentsRequest::default()
            }))
            .await
            .map_err(|status| format!("ListShipments: {status:?}"))?
            .into_inner()
            .shipments
            .into_iter()
            .next();
        match found {
            Some(shipment) if shipment.status == i32::from(status) => return Ok(shipment),
            other if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "no {status:?} shipment for order {order_id} within {SHIPMENT_PATIENCE:?}: {other:?}"
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn carrier_ship(
    State(state): State<CarrierState>,
    UrlPath(order_id): UrlPath<String>,
    Query(query): Query<ShipQuery>,
) -> (StatusCode, String) {
    let shipment = match shipment_in(&state, &order_id, common::ShipmentStatus::Preparing).await {
        Ok(shipment) => shipment,
        Err(reason) => return (StatusCode::INTERNAL_SERVER_ERROR, reason),
    };
    match state
        .shipments
        .clone()
        .mark_shipment_shipped(as_operator(process::MarkShipmentShippedRequest {
            shipment_id: shipment.shipment_id,
            carrier: CARRIER.to_owned(),
            tracking_number: query.tracking_number,
            ..process::MarkShipmentShippedRequest::default()
        }))
        .await
    {
        Ok(_) => (StatusCode::OK, "shipped".to_owned()),
        Err(status) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("MarkShipmentShipped: {status:?}"),
        ),
    }
}

async fn carrier_deliver(
    State(state): State<CarrierState>,
    UrlPath(order_id): UrlPath<String>,
) -> (StatusCode, String) {
    let shipment = match shipment_in(&state, &order_id, common::ShipmentStatus::Shipped).await {
        Ok(shipment) => shipment,
        Err(reason) => return (StatusCode::INTERNAL_SERVER_ERROR, reason),
    };
    let tracking_number = shipment.tracking_number.clone();
    match state
        .shipments
        .clone()
        .mark_shipment_delivered(as_operator(process::MarkShipmentDeliveredRequest {
            shipment_id: shipment.shipment_id,
            deliver_time: None,
        }))
        .await
    {
        Ok(_) => {
            state
                .delivered
                .lock()
                .expect("delivered lock")
                .push((order_id, tracking_number));
            (StatusCode::OK, "delivered".to_owned())
        }
        Err(status) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("MarkShipmentDelivered: {status:?}"),
        ),
    }
}
