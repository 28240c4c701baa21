//! The response-normalizing proxy between the adapter and localstripe.
//!
//! localstripe emulates an older Stripe API, and async-stripe's typed models (generated for the
//! current one) refuse some of its answers. The proxy forwards every request unchanged and patches
//! JSON answers into the current shape, so localstripe's stateful behaviour stays real. What it
//! patches, each found by running the adapter against localstripe 1.15.10 (the localstripe suite
//! fails without any one of the PaymentIntent patches):
//!
//! - PaymentIntent: adds `amount_capturable`, `amount_received`, `confirmation_method` and
//!   `payment_method_types` (required by the current API, absent in localstripe's); turns an
//!   embedded `latest_charge` object into its id (the current API sends the id unless expanded,
//!   and localstripe's charge lacks fields the typed model requires); gives
//!   `last_payment_error` its `type` (`card_error`), which the typed model requires.
//! - Error bodies: a plain-text 404/405 for an endpoint localstripe lacks (Checkout Sessions,
//!   any other) becomes Stripe's JSON "Unrecognized request URL" error, so the adapter reports a
//!   404 instead of an unreadable body; a 402 decline's `type` becomes `card_error` as in Stripe
//!   (localstripe says `invalid_request_error`; fidelity only, nothing breaks without it).
//!
//! Refunds, and localstripe's other error bodies, parse as they are.
//!
//! The Connect endpoints localstripe lacks entirely (accounts, account and login links,
//! transfers and reversals) never reach it: the proxy answers them from the in-memory stand-in
//! in `connect.rs`, asking localstripe only for the charge a transfer names as its source.
//!
//! Webhooks do not pass through here: localstripe posts them, signed, straight to the receiver.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::connect::{self, Connect, ConnectRequest};

/// Largest request body forwarded (Stripe's forms are small).
const MAX_BODY: usize = 1024 * 1024;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: HttpClient,
    connect: Connect,
}

/// A running proxy on a loopback port; stops when dropped.
#[derive(Debug)]
pub(crate) struct NormalizingProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl NormalizingProxy {
    /// Listens on 127.0.0.1:0, forwards to `upstream` (`http://127.0.0.1:PORT`) and answers
    /// the Connect endpoints from `connect`.
    pub(crate) async fn start(upstream: String, connect: Connect) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the normalizing proxy on a loopback port");
        let addr = listener.local_addr().expect("the proxy's address");
        let state = Upstream {
            base: upstream,
            http: http_client(),
            connect,
        };
        let router = axum::Router::new().fallback(forward).with_state(state);
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::warn!(error = %err, "the normalizing proxy stopped");
            }
        });
        Self { addr, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for NormalizingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(err) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &err.to_string(),
            );
        }
    };
    if let Some((call, id)) = connect::route(parts.method.as_str(), parts.uri.path()) {
        return serve_connect(&upstream, &parts, body, call, id).await;
    }
    let mut forwarded = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", upstream.base));
    for (name, value) in &parts.headers {
        if name != header::HOST {
            forwarded = forwarded.header(name, value);
        }
    }
    let forwarded = forwarded
        .body(Full::new(body))
        .expect("a forwardable request");
    let answer = match upstream.http.request(forwarded).await {
        Ok(answer) => answer,
        Err(err) => {
            let message = format!("localstripe did not answer: {err}");
            return stripe_error(StatusCode::BAD_GATEWAY, "api_error", &message);
        }
    };
    let (answer_parts, answer_body) = answer.into_parts();
    let bytes = match answer_body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            let message = format!("localstripe's answer broke off: {err}");
            return stripe_error(StatusCode::BAD_GATEWAY, "api_error", &message);
        }
    };
    let status = answer_parts.status;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut json) => {
            normalize_localstripe_json(status.as_u16(), &mut json);
            let mut response = Response::new(Body::from(json.to_string()));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_)
            if matches!(
                status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ) =>
        {
            let message = format!(
                "Unrecognized request URL ({}: {}); localstripe does not implement this endpoint",
                parts.method,
                parts.uri.path()
            );
            stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", &message)
        }
        Err(_) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = answer_parts.headers;
            response
        }
    }
}

/// Answers a Connect request from the stand-in (see `connect.rs`).
async fn serve_connect(
    upstream: &Upstream,
    parts: &axum::http::request::Parts,
    body: Bytes,
    call: connect::ConnectCall,
    id: Option<String>,
) -> Response {
    use axum::extract::FromRequest as _;
    let params = if parts.method == axum::http::Method::GET {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|query| query.0)
            .map_err(|err| err.to_string())
    } else {
        let form = axum::http::Request::builder()
            .method(axum::http::Method::POST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("a request to parse the form from");
        axum::Form::<Vec<(String, String)>>::from_request(form, &())
            .await
            .map(|form| form.0)
            .map_err(|err| err.to_string())
    };
    let params = match params {
        Ok(params) => params,
        Err(err) => return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", &err),
    };
    let request = ConnectRequest {
        call,
        id,
        params,
        idempotency_key: parts
            .headers
            .get("idempotency-key")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };
    let charge = match connect::source_charge(&request) {
        Some(charge) => Some(fetch_charge(upstream, parts, charge).await),
        None => None,
    };
    let answer = upstream.connect.handle(&request, charge);
    let mut response = Response::new(Body::from(answer.body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if answer.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// localstripe's charge `id` (status and JSON body), with the caller's credentials.
async fn fetch_charge(
    upstream: &Upstream,
    parts: &axum::http::request::Parts,
    id: &str,
) -> (u16, Value) {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return (404, Value::Null);
    }
    let mut request = hyper::Request::builder()
        .method(axum::http::Method::GET)
        .uri(format!("{}/v1/charges/{id}", upstream.base));
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let Ok(request) = request.body(Full::new(Bytes::new())) else {
        return (500, Value::Null);
    };
    let Ok(answer) = upstream.http.request(request).await else {
        return (502, Value::Null);
    };
    let status = answer.status().as_u16();
    let body = match answer.into_body().collect().await {
        Ok(collected) => serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    (status, body)
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "error": { "type": kind, "message": message } });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Patches one localstripe answer (status and parsed body) into the current API's shape.
pub fn normalize_localstripe_json(status: u16, body: &mut Value) {
    if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
        if status == 402
            && error.get("type").and_then(Value::as_str) == Some("invalid_request_error")
        {
            error.insert("type".to_owned(), json!("card_error"));
        }
        return;
    }
    normalize_object(body);
}

fn normalize_object(value: &mut Value) {
    let Some(object) = value.as_object_mut() else {
        return;
    };
    match object.get("object").and_then(Value::as_str) {
        Some("list") => {
            if let Some(items) = object.get_mut("data").and_then(Value::as_array_mut) {
                items.iter_mut().for_each(normalize_object);
            }
        }
        Some("payment_intent") => payment_intent(object),
        Some(_) | None => {}
    }
}

fn payment_intent(pi: &mut Map<String, Value>) {
    let amount = pi.get("amount").and_then(Value::as_i64).unwrap_or(0);
    let status = pi
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // localstripe embeds the whole charge; the current API sends its id.
    let mut charged = None;
    if let Some(Value::Object(charge)) = pi.get("latest_charge") {
        let captured = charge
            .get("captured")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if charge.get("status").and_then(Value::as_str) == Some("succeeded") && captured {
            charged = charge.get("amount").and_then(Value::as_i64);
        }
        let id = charge.get("id").cloned().unwrap_or(Value::Null);
        pi.insert("latest_charge".to_owned(), id);
    }
    let capturable = if status == "requires_capture" {
        amount
    } else {
        0
    };
    let received = if status == "succeeded" {
        charged.unwrap_or(amount)
    } else {
        0
    };
    pi.entry("amount_capturable").or_insert(json!(capturable));
    pi.entry("amount_received").or_insert(json!(received));
    pi.entry("confirmation_method")
        .or_insert(json!("automatic"));
    pi.entry("payment_method_types").or_insert(json!(["card"]));
    if let Some(Value::Object(error)) = pi.get_mut("last_payment_error") {
        error.entry("type").or_insert(json!("card_error"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_succeeded_localstripe_payment_intent_gets_the_current_fields() {
        let mut pi = json!({
            "object": "payment_intent", "id": "pi_1", "amount": 1999, "status": "succeeded",
            "latest_charge": {"object": "charge", "id": "ch_1", "amount": 1999, "captured": true, "status": "succeeded"},
        });
        normalize_localstripe_json(200, &mut pi);
        assert_eq!(pi["latest_charge"], json!("ch_1"));
        assert_eq!(pi["amount_received"], json!(1999));
        assert_eq!(pi["amount_capturable"], json!(0));
        assert_eq!(pi["confirmation_method"], json!("automatic"));
        assert_eq!(pi["payment_method_types"], json!(["card"]));
    }

    #[test]
    fn a_declined_attempt_keeps_its_error_code_and_gets_a_type() {
        let mut pi = json!({
            "object": "payment_intent", "id": "pi_1", "amount": 500, "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
        });
        normalize_localstripe_json(200, &mut pi);
        assert_eq!(pi["amount_received"], json!(0));
        assert_eq!(pi["last_payment_error"]["code"], json!("card_declined"));
        assert_eq!(pi["last_payment_error"]["type"], json!("card_error"));
    }

    #[test]
    fn a_decline_is_a_card_error_and_other_errors_stay_as_they_are() {
        let mut decline =
            json!({"error": {"type": "invalid_request_error", "code": "card_declined"}});
        normalize_localstripe_json(402, &mut decline);
        assert_eq!(decline["error"]["type"], json!("card_error"));
        let mut missing =
            json!({"error": {"type": "invalid_request_error", "message": "Not Found"}});
        normalize_localstripe_json(404, &mut missing);
        assert_eq!(missing["error"]["type"], json!("invalid_request_error"));
    }

    #[test]
    fn fields_localstripe_does_send_are_left_alone() {
        let mut pi = json!({"object": "payment_intent", "id": "pi_1", "amount": 5, "status": "requires_capture",
            "amount_capturable": 3, "payment_method_types": ["sepa_debit"]});
        normalize_localstripe_json(200, &mut pi);
        assert_eq!(pi["amount_capturable"], json!(3));
        assert_eq!(pi["payment_method_types"], json!(["sepa_debit"]));
    }
}
