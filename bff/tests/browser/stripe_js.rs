//! The Stripe.js of the card journey (the card BFF's `STRIPE_JS_URL`): localstripe's own
//! replacement for Stripe.js (its `/js.stripe.com/v3/`: `Stripe()`, `elements()`, the card
//! Element the shopper types into) with `bff/web/e2e/stripe-confirm.js` appended, served from an
//! origin of the test's that also answers the one browser call localstripe lacks.
//!
//! localstripe's `confirmCardPayment` never reads the card Element: it only completes a 3-D
//! Secure step (`/_authenticate`) of an intent already confirmed with a secret key, and its API
//! takes a publishable key neither for PaymentMethods nor for a confirmation. Stripe.js itself
//! confirms a PaymentIntent from the page with the publishable key, the client secret and the
//! card (`POST /v1/payment_intents/{id}/confirm` with `payment_method_data`). The appended script
//! makes that call to this origin (the script's own), and [`confirm`] does with it what Stripe
//! does, through localstripe's secret-key API: it checks the publishable key and the client
//! secret, creates the card's PaymentMethod, sets it on the intent and confirms it. localstripe
//! then charges the card (declining its decline numbers), answers as Stripe would (the intent, or
//! a 402 with the decline, normalised as the adapter's proxy does) and posts its own signed
//! webhook to the payment service. 3-D Secure cards are not part of the journey.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::serve;

/// What the page appends to localstripe's script.
const CONFIRM_SCRIPT: &str = include_str!("../../web/e2e/stripe-confirm.js");

/// Where the script is served, as localstripe serves its own (its script derives the API's base
/// URL from this path).
const SCRIPT_PATH: &str = "/js.stripe.com/v3/";

/// One confirmation the page asked for: the intent and the HTTP status localstripe answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Confirmation {
    pub(crate) intent: String,
    pub(crate) status: u16,
}

/// The test's Stripe.js origin; stops when dropped.
pub(crate) struct StripeJs {
    addr: SocketAddr,
    state: Arc<Front>,
    stop: CancellationToken,
}

struct Front {
    script: String,
    localstripe: String,
    publishable_key: String,
    http: reqwest::Client,
    confirmations: Mutex<Vec<Confirmation>>,
}

/// The card fields of `payment_method_data`, as localstripe's Element reports them.
#[derive(serde::Deserialize)]
struct Card {
    number: String,
    exp_month: String,
    exp_year: String,
    cvc: String,
}

#[derive(serde::Deserialize)]
struct PaymentMethodData {
    r#type: String,
    card: Card,
}

/// The page's confirmation, as Stripe.js sends it.
#[derive(serde::Deserialize)]
struct ConfirmRequest {
    key: String,
    client_secret: String,
    payment_method_data: PaymentMethodData,
}

impl StripeJs {
    /// Serves localstripe's script (read from `localstripe`, its direct URL) with the appended
    /// confirmation, accepting confirmations made with `publishable_key`.
    pub(crate) async fn start(localstripe: &str, publishable_key: &str) -> Self {
        mercato_bff::app::install_crypto_provider();
        let http = reqwest::Client::new();
        let own = http
            .get(format!("{localstripe}{SCRIPT_PATH}"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("localstripe serves its Stripe.js");
        let own = own.text().await.expect("localstripe's Stripe.js reads");
        assert!(
            own.contains("confirmCardPayment") && own.contains("LOCALSTRIPE_BASE_API"),
            "localstripe's Stripe.js is not the one the appended script extends"
        );
        let state = Arc::new(Front {
            script: format!("{own}\n{CONFIRM_SCRIPT}"),
            localstripe: localstripe.to_owned(),
            publishable_key: publishable_key.to_owned(),
            http,
            confirmations: Mutex::default(),
        });
        let router = axum::Router::new()
            .route(SCRIPT_PATH, get(script))
            .route("/v1/payment_intents/{intent}/confirm", post(confirm))
            .with_state(Arc::clone(&state));
        let stop = CancellationToken::new();
        let addr = serve(router, &stop).await;
        Self { addr, state, stop }
    }

    /// The script's URL, for `STRIPE_JS_URL`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}{SCRIPT_PATH}", self.addr)
    }

    /// The confirmations made so far.
    pub(crate) fn confirmations(&self) -> Vec<Confirmation> {
        self.state
            .confirmations
            .lock()
            .expect("confirmations lock")
            .clone()
    }
}

impl Drop for StripeJs {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn script(State(front): State<Arc<Front>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/javascript")],
        front.script.clone(),
    )
        .into_response()
}

/// A JSON answer the storefront's origin may read (Stripe's API answers any origin).
fn answer(status: StatusCode, body: &Value) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// A Stripe error body.
fn refusal(status: StatusCode, kind: &str, message: &str) -> Response {
    answer(
        status,
        &json!({ "error": { "type": kind, "message": message } }),
    )
}

impl Front {
    /// A request to localstripe with the secret key; its status and JSON body.
    async fn localstripe(&self, path: &str, form: Option<String>) -> (u16, Value) {
        let url = format!("{}{path}", self.localstripe);
        let request = match form {
            Some(form) => self
                .http
                .post(url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form),
            None => self.http.get(url),
        };
        let response = request
            .bearer_auth(mercato_stripe::testing::TEST_SECRET_KEY)
            .send()
            .await
            .expect("localstripe answers");
        let status = response.status().as_u16();
        let mut body = response
            .json::<Value>()
            .await
            .unwrap_or_else(|err| json!({ "error": { "message": err.to_string() } }));
        mercato_stripe::testing::normalize_localstripe_json(status, &mut body);
        (status, body)
    }
}

/// localstripe's answer passed on, or `None` when it was a success.
fn unless_ok((status, body): &(u16, Value)) -> Option<Response> {
    (*status != 200).then(|| {
        answer(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
            body,
        )
    })
}

/// `POST /v1/payment_intents/{intent}/confirm` from the page: the intent confirmed with the card
/// at localstripe, answered with localstripe's intent or error.
async fn confirm(
    State(front): State<Arc<Front>>,
    UrlPath(intent): UrlPath<String>,
    body: String,
) -> Response {
    let Ok(request) = serde_json::from_str::<ConfirmRequest>(&body) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the confirmation needs key, client_secret and payment_method_data",
        );
    };
    if request.key != front.publishable_key {
        return refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        );
    }
    if !intent.starts_with("pi_")
        || !intent
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return refusal(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "No such payment_intent",
        );
    }
    let found = front
        .localstripe(&format!("/v1/payment_intents/{intent}"), None)
        .await;
    if let Some(refused) = unless_ok(&found) {
        return refused;
    }
    if found.1["client_secret"].as_str() != Some(request.client_secret.as_str()) {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "The client_secret provided does not match the client_secret associated with the \
             PaymentIntent.",
        );
    }
    let PaymentMethodData { r#type, card } = request.payment_method_data;
    let fields = [
        ("number", card.number),
        ("exp_month", card.exp_month),
        ("exp_year", card.exp_year),
        ("cvc", card.cvc),
    ];
    // Digits only, so the form needs no escaping; localstripe judges lengths and dates.
    if r#type != "card"
        || fields
            .iter()
            .any(|(_, value)| value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()))
    {
        return refusal(
            StatusCode::PAYMENT_REQUIRED,
            "card_error",
            "Your card's number, expiry and security code must be digits.",
        );
    }
    let form = fields
        .iter()
        .map(|(name, value)| format!("card%5B{name}%5D={value}"))
        .collect::<Vec<_>>()
        .join("&");
    let method = front
        .localstripe("/v1/payment_methods", Some(format!("type=card&{form}")))
        .await;
    if let Some(refused) = unless_ok(&method) {
        return refused;
    }
    let Some(method_id) = method.1["id"].as_str() else {
        return refusal(
            StatusCode::BAD_GATEWAY,
            "api_error",
            "localstripe made a PaymentMethod without an id",
        );
    };
    let attached = front
        .localstripe(
            &format!("/v1/payment_intents/{intent}"),
            Some(format!("payment_method={method_id}")),
        )
        .await;
    if let Some(refused) = unless_ok(&attached) {
        return refused;
    }
    let (status, body) = front
        .localstripe(
            &format!("/v1/payment_intents/{intent}/confirm"),
            Some(String::new()),
        )
        .await;
    front
        .confirmations
        .lock()
        .expect("confirmations lock")
        .push(Confirmation { intent, status });
    answer(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        &body,
    )
}
