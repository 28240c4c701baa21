//! Test harness (feature `testing`): a real localstripe per test, the normalizing proxy in front
//! of it (which answers the Connect endpoints localstripe lacks from an in-memory stand-in,
//! [`Connect`]), and what a browser, a seller or the Stripe dashboard would do (confirm a card,
//! finish onboarding, register a webhook endpoint, wipe the data).
//!
//! localstripe (PyPI, pinned in the Makefile) lives in a git-ignored virtualenv under
//! `.cache/tools/localstripe`; `make localstripe` installs it (`make test` does so first). A test
//! that cannot start it fails with that instruction: nothing is skipped.
//!
//! ```no_run
//! # async fn demo() {
//! use mercato_stripe::testing::{LocalStripe, TestCard};
//! let stripe = LocalStripe::start().await;
//! let client = stripe.client(); // talks to localstripe through the proxy
//! # let _ = (client, TestCard::Visa);
//! # }
//! ```

mod connect;
mod proxy;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub use connect::{Connect, ConnectCall, Fault};
pub use proxy::normalize_localstripe_json;

use crate::{StripeClient, StripeConfig};

/// The secret key the harness uses; localstripe accepts any `sk_…` key.
pub const TEST_SECRET_KEY: &str = "sk_test_mercato";

/// Overrides the virtualenv's python (with localstripe installed) the harness runs.
pub const PYTHON_ENV: &str = "MERCATO_TEST_LOCALSTRIPE_PYTHON";

/// How long localstripe may take to start (Python imports aiohttp; a loaded machine is slow).
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Starts localstripe's aiohttp app on a socket bound by Python itself to 127.0.0.1:0 (so there
/// is no port race and nothing listens beyond loopback, unlike `localstripe --port`, which binds
/// every interface), prints the port, and never writes its store to /tmp (each test has its own
/// process and data). It exits when its stdin closes, so a test process that is killed (a
/// timeout) rather than dropping [`LocalStripe`] leaves no localstripe behind.
const LAUNCHER: &str = r#"
import os, socket, sys, threading
def _exit_with_parent():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=_exit_with_parent, daemon=True).start()
from aiohttp import web
from localstripe import server
from localstripe.resources import store
store.dump_to_disk = lambda: None
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
web.run_app(server.app, sock=sock, print=None, access_log=None, handle_signals=True)
"#;

/// A stripe-compatible test card: a PaymentMethod id localstripe (and Stripe's test mode) knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCard {
    /// `pm_card_visa`: the payment succeeds.
    Visa,
    /// `pm_card_chargeCustomerFail`: attaches, then the charge is declined (`card_declined`).
    ChargeCustomerFail,
}

impl TestCard {
    pub fn payment_method(self) -> &'static str {
        match self {
            Self::Visa => "pm_card_visa",
            Self::ChargeCustomerFail => "pm_card_chargeCustomerFail",
        }
    }
}

/// What localstripe answered to a confirmation (a decline is a 402 with a `card_declined` error).
#[derive(Debug, Clone)]
pub struct ConfirmOutcome {
    pub status: u16,
    pub body: Value,
}

/// A localstripe process and the normalizing proxy in front of it. Dropping it kills both.
#[derive(Debug)]
pub struct LocalStripe {
    // Field order: the proxy stops before the process it forwards to.
    proxy: proxy::NormalizingProxy,
    connect: Connect,
    direct_url: String,
    http: proxy::HttpClient,
    _stdout: Lines<BufReader<ChildStdout>>,
    // Held open: localstripe exits when it closes.
    _stdin: ChildStdin,
    _child: Child,
}

impl LocalStripe {
    /// Starts localstripe on a free loopback port and waits until it answers.
    ///
    /// # Panics
    /// When localstripe is not installed (with the command that installs it) or does not start.
    pub async fn start() -> Self {
        let python = python();
        if !python.exists() {
            panic!(
                "{}",
                not_installed(&format!("{} does not exist", python.display()))
            );
        }
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(LAUNCHER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("{}", not_installed(&format!("{}: {err}", python.display())))
            });
        let stdin = child.stdin.take().expect("localstripe's stdin is piped");
        let stdout = child.stdout.take().expect("localstripe's stdout is piped");
        let mut stdout = BufReader::new(stdout).lines();
        let port = match tokio::time::timeout(STARTUP_PATIENCE, stdout.next_line()).await {
            Ok(Ok(Some(line))) => line
                .trim()
                .parse::<u16>()
                .unwrap_or_else(|_| panic!("localstripe printed {line:?} instead of its port")),
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                panic!(
                    "{}",
                    not_installed(&format!(
                        "{} exited ({status}) before listening; its error is above",
                        python.display()
                    ))
                );
            }
            Err(_) => panic!("localstripe did not start within {STARTUP_PATIENCE:?}"),
        };
        let direct_url = format!("http://127.0.0.1:{port}");
        let connect = Connect::default();
        let proxy = proxy::NormalizingProxy::start(direct_url.clone(), connect.clone()).await;
        let stripe = Self {
            proxy,
            connect,
            direct_url,
            http: proxy::http_client(),
            _stdout: stdout,
            _stdin: stdin,
            _child: child,
        };
        stripe.wait_until_answering().await;
        stripe
    }

    async fn wait_until_answering(&self) {
        let deadline = tokio::time::Instant::now() + STARTUP_PATIENCE;
        loop {
            match self.send(Method::GET, "/v1/balance", None).await {
                Ok((StatusCode::OK, _)) => return,
                Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok((status, body)) => {
                    panic!("localstripe answered GET /v1/balance with {status}: {body}")
                }
                Err(err) => panic!("localstripe does not answer: {err}"),
            }
        }
    }

    /// The base URL for the adapter: the normalizing proxy.
    pub fn base_url(&self) -> String {
        self.proxy.url()
    }

    /// localstripe itself, for what a browser or the dashboard does, and to see its raw answers.
    pub fn direct_url(&self) -> &str {
        &self.direct_url
    }

    /// The Connect stand-in behind [`Self::base_url`]: complete or restrict a seller's
    /// onboarding, inject faults, see the transfers made.
    pub fn connect(&self) -> &Connect {
        &self.connect
    }

    /// A client on [`Self::base_url`] with [`TEST_SECRET_KEY`].
    pub fn client(&self) -> StripeClient {
        StripeClient::new(StripeConfig::new(TEST_SECRET_KEY).with_base_url(self.base_url()))
            .expect("a client for localstripe")
    }

    /// Registers a webhook endpoint (`POST /_config/webhooks/{id}`): localstripe then posts every
    /// event (or those of `events`), signed with `secret`, to `url` about a second after it
    /// happens. Registering the same id again replaces the endpoint.
    pub async fn register_webhook(
        &self,
        id: &str,
        url: &str,
        secret: &str,
        events: Option<&[&str]>,
    ) {
        let mut body = json!({ "url": url, "secret": secret });
        if let Some(events) = events {
            body["events"] = json!(events);
        }
        let path = format!("/_config/webhooks/{id}");
        let (status, answer) = self
            .send(
                Method::POST,
                &path,
                Some(("application/json", body.to_string())),
            )
            .await
            .expect("localstripe answers a webhook registration");
        assert_eq!(status, StatusCode::OK, "registering webhook {id}: {answer}");
    }

    /// Wipes every object (`DELETE /_config/data`); registered webhooks stay.
    pub async fn reset(&self) {
        let (status, answer) = self
            .send(Method::DELETE, "/_config/data", None)
            .await
            .expect("localstripe answers a reset");
        assert_eq!(status, StatusCode::OK, "resetting localstripe: {answer}");
    }

    /// Confirms a PaymentIntent with a test card, as Stripe.js does for the browser: attach the
    /// payment method, then confirm. (localstripe does not take `payment_method` on confirm
    /// itself, so it is set by an update first; both requests are valid against Stripe too.)
    pub async fn confirm_payment_intent(&self, id: &str, card: TestCard) -> ConfirmOutcome {
        let form = format!("payment_method={}", card.payment_method());
        let (status, answer) = self
            .send(
                Method::POST,
                &format!("/v1/payment_intents/{id}"),
                Some(("application/x-www-form-urlencoded", form)),
            )
            .await
            .expect("localstripe answers a payment method update");
        assert_eq!(
            status,
            StatusCode::OK,
            "setting the payment method of {id}: {answer}"
        );
        let (status, answer) = self
            .send(
                Method::POST,
                &format!("/v1/payment_intents/{id}/confirm"),
                None,
            )
            .await
            .expect("localstripe answers a confirmation");
        let body = serde_json::from_str(&answer).unwrap_or_else(|_| json!({ "raw": answer }));
        ConfirmOutcome {
            status: status.as_u16(),
            body,
        }
    }

    /// GET on localstripe itself, bypassing the proxy: its raw, unpatched answer.
    pub async fn get_raw(&self, path: &str) -> (u16, Value) {
        let (status, answer) = self
            .send(Method::GET, path, None)
            .await
            .expect("localstripe answers a GET");
        let body = serde_json::from_str(&answer).unwrap_or_else(|_| json!({ "raw": answer }));
        (status.as_u16(), body)
    }

    /// A form POST on localstripe itself, bypassing the proxy (and the Connect stand-in): its
    /// raw answer, the body as JSON or `{"raw": text}`.
    pub async fn post_raw(&self, path: &str, form: &str) -> (u16, Value) {
        let (status, answer) = self
            .send(
                Method::POST,
                path,
                Some(("application/x-www-form-urlencoded", form.to_owned())),
            )
            .await
            .expect("localstripe answers a POST");
        let body = serde_json::from_str(&answer).unwrap_or_else(|_| json!({ "raw": answer }));
        (status.as_u16(), body)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Result<(StatusCode, String), String> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.direct_url))
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {TEST_SECRET_KEY}"),
            );
        let payload = match body {
            Some((content_type, payload)) => {
                request = request.header(hyper::header::CONTENT_TYPE, content_type);
                Bytes::from(payload)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|err| err.to_string())?;
        let answer = self
            .http
            .request(request)
            .await
            .map_err(|err| err.to_string())?;
        let status = answer.status();
        let bytes = answer
            .into_body()
            .collect()
            .await
            .map_err(|err| err.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// A `Stripe-Signature` header value for `payload`: `t={timestamp},v1={hex HMAC-SHA256 of
/// "{timestamp}.{payload}" under secret}`, the scheme Stripe and localstripe use. For tests that
/// post their own signed events (and to check localstripe's).
pub fn sign_webhook_payload(payload: &[u8], secret: &str, timestamp: i64) -> String {
    format!(
        "t={timestamp},v1={}",
        webhook_signature(payload, secret, timestamp)
    )
}

/// The hex `v1` signature of `payload` at `timestamp` under `secret`.
pub fn webhook_signature(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn python() -> PathBuf {
    match std::env::var_os(PYTHON_ENV) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../.cache/tools/localstripe/bin/python"),
    }
}

fn not_installed(detail: &str) -> String {
    format!(
        "localstripe is not installed ({detail}): run `make localstripe` in the repository root \
         (it installs the pinned localstripe into .cache/tools/localstripe; `make test` does it \
         too), or point {PYTHON_ENV} at a python that has localstripe"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_stripes_scheme() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed independently with Python's hmac.
        assert_eq!(
            sign_webhook_payload(b"{}", "whsec_test", 1_700_000_000),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
