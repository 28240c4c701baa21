//! Log hygiene at a verbose level: a sign-up, a sign-in, a failed sign-in, a token refresh, a
//! sandbox checkout and a STRIPE checkout (through localstripe and its signed webhook), both to
//! FINISHED, with every log line the whole system writes at `debug` captured; then every line is
//! checked:
//!
//! - it is one JSON object with `timestamp`, `level`, `target` and `service`; a line the
//!   services write inside a span carries the span's `trace_id` and `span_id` (a line of a
//!   library's own untraced debug span, such as h2's connection span, has no ids to carry);
//! - it contains no secret: the shopper's password (and the wrong one typed), any access or
//!   refresh token issued to the shopper, the Stripe client secret, the JWT signing key, the
//!   Stripe secret key, any webhook secret, the broker's credentials, a `Bearer` credential, a
//!   JWT, or a card number.
//!
//! The run must log enough for the scan to mean something: hundreds of lines, lines inside
//! traces of every service, and the failed sign-in findable by the trace id the BFF answered.
//!
//! One test in its own binary: the subscriber is process-global.

use mercato_e2e::logs::{self, CapturedLogs};
use mercato_e2e::stack::{
    PASSWORD, Shop, Shopper, Stack, StackOptions, press, seed_sku, with_token,
};
use mercato_e2e::telemetry::ProcessTelemetry;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_stripe::testing::TestCard;
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};
use tonic::Code;
use uuid::Uuid;

/// Everything at debug, libraries included: h2 frames, sqlx statements, the Stripe client's
/// requests, every service's own debug lines (about 2,000 lines for this run).
const LOG_FILTER: &str = "debug";

/// What the shopper mistypes; as secret as the real one.
const WRONG_PASSWORD: &str = "wrong horse battery staple 8";

/// Fewer lines than this and the scan would prove little.
const ENOUGH_LINES: usize = 500;

/// Fewer lines inside traces than this and the id checks would prove little.
const ENOUGH_TRACED_LINES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verbose_run_writes_structured_lines_and_never_a_secret() {
    let telemetry = ProcessTelemetry::install(None, LOG_FILTER);
    let stack = Stack::start(StackOptions {
        stripe: true,
        bff_settings: &[],
    })
    .await;
    let mut shop = stack.shop().await;
    let sku = seed_sku(&stack.products.grpc_uri(), 5).await;

    let mut secrets = vec![
        ("the password".to_owned(), PASSWORD.to_owned()),
        ("the wrong password".to_owned(), WRONG_PASSWORD.to_owned()),
    ];
    let (shopper, failed_sign_in_trace) = authenticate(&mut shop, &mut secrets).await;
    let _ = shop
        .orders
        .list_orders(with_token(
            bff::ListOrdersRequest::default(),
            &shopper.access_token,
        ))
        .await
        .expect("orders listed");
    sandbox_checkout(&mut shop, &shopper, &sku).await;
    let client_secret = stripe_checkout(&stack, &mut shop, &shopper, &sku).await;
    secrets.push(("the Stripe client secret".to_owned(), client_secret));
    secrets.extend(configured_secrets(&stack).await);
    drop(shop);
    stack.stop().await;

    let lines = parsed_lines(&telemetry.logs);
    assert!(
        lines.len() >= ENOUGH_LINES,
        "only {} lines at {LOG_FILTER}",
        lines.len()
    );
    check_structure(&lines);
    check_coverage(&lines, &failed_sign_in_trace);
    check_no_secret(&telemetry.logs.text(), &secrets);
}

/// Registers a shopper, signs in, fails a sign-in and refreshes the session; the shopper with
/// the last tokens and the failed sign-in's trace id. Every token issued is added to `secrets`.
async fn authenticate(shop: &mut Shop, secrets: &mut Vec<(String, String)>) -> (Shopper, String) {
    let email = format!("shopper-{}@example.com", Uuid::new_v4().simple());
    let registered = shop
        .auth
        .register(bff::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.to_owned(),
            display_name: "Shopper".to_owned(),
        })
        .await
        .expect("registered")
        .into_inner()
        .tokens
        .expect("tokens");
    let signed_in = shop
        .auth
        .login(bff::LoginRequest {
            email: email.clone(),
            password: PASSWORD.to_owned(),
        })
        .await
        .expect("signed in")
        .into_inner()
        .tokens
        .expect("tokens");
    let refused = shop
        .auth
        .login(bff::LoginRequest {
            email: email.clone(),
            password: WRONG_PASSWORD.to_owned(),
        })
        .await
        .expect_err("the wrong password is refused");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let failed_trace = refused
        .metadata()
        .get("x-trace-id")
        .and_then(|value| value.to_str().ok())
        .expect("the refusal carries x-trace-id")
        .to_owned();
    let refreshed = shop
        .auth
        .refresh_token(bff::RefreshTokenRequest {
            refresh_token: signed_in.refresh_token.clone(),
        })
        .await
        .expect("refreshed")
        .into_inner()
        .tokens
        .expect("tokens");
    for (when, tokens) in [
        ("registration", &registered),
        ("sign-in", &signed_in),
        ("refresh", &refreshed),
    ] {
        secrets.push((
            format!("the {when}'s access token"),
            tokens.access_token.clone(),
        ));
        secrets.push((
            format!("the {when}'s refresh token"),
            tokens.refresh_token.clone(),
        ));
    }
    let shopper = Shopper {
        email,
        access_token: refreshed.access_token,
        refresh_token: refreshed.refresh_token,
    };
    (shopper, failed_trace)
}

/// One SANDBOX checkout: the Pay button, then FINISHED.
async fn sandbox_checkout(shop: &mut Shop, shopper: &Shopper, sku: &str) {
    let (placed, _) = shop
        .checkout(shopper, sku, 1, common::PaymentMethod::Sandbox)
        .await;
    let payment = shop.payment(shopper, &placed.order_id).await;
    assert_eq!(press(&payment.payment_url, "Pay").await, 200);
    shop.watch_until(shopper, &placed.order_id, common::OrderStatus::Finished)
        .await;
}

/// One STRIPE checkout: the PaymentIntent confirmed with the Visa test card as Stripe.js would,
/// localstripe's signed webhook, then FINISHED. The intent's client secret.
async fn stripe_checkout(stack: &Stack, shop: &mut Shop, shopper: &Shopper, sku: &str) -> String {
    let (placed, _) = shop
        .checkout(shopper, sku, 1, common::PaymentMethod::Stripe)
        .await;
    let payment = shop.payment(shopper, &placed.order_id).await;
    let intent = payment
        .client_secret
        .split_once("_secret_")
        .map(|(intent, _)| intent.to_owned())
        .unwrap_or_else(|| panic!("a client secret names its intent: {payment:?}"));
    let confirmed = stack
        .stripe
        .as_ref()
        .expect("the stack runs localstripe")
        .confirm_payment_intent(&intent, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    shop.watch_until(shopper, &placed.order_id, common::OrderStatus::Finished)
        .await;
    payment.client_secret
}

/// The secrets the running services were configured with or generated: the user service's JWT
/// signing keys (read from its database as an operator would), the payment service's Stripe
/// secret key and webhook secrets, and the broker URL's credentials.
async fn configured_secrets(stack: &Stack) -> Vec<(String, String)> {
    let mut secrets = Vec::new();
    let users = sqlx::PgPool::connect(&stack.database_url("user"))
        .await
        .expect("the user database accepts connections");
    let keys: Vec<String> = sqlx::query_scalar("SELECT private_key_pem FROM signing_keys")
        .fetch_all(&users)
        .await
        .expect("the signing keys are readable");
    users.close().await;
    assert!(!keys.is_empty(), "the user service signs with a key");
    for pem in keys {
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "the test setup stores keys unencrypted, so the scan knows them"
        );
        // A line written to JSON has its newlines escaped: each base64 line is searched alone.
        for line in pem.lines().filter(|line| !line.starts_with("-----")) {
            secrets.push(("a line of the JWT signing key".to_owned(), line.to_owned()));
        }
    }
    let settings = &stack.payments.context.settings;
    let stripe_key = settings
        .payments
        .stripe_secret_key
        .as_ref()
        .expect("the payment service has a Stripe secret key");
    secrets.push((
        "the Stripe secret key".to_owned(),
        stripe_key.expose_secret().to_owned(),
    ));
    assert_eq!(
        settings.payments.webhook_secrets.len(),
        2,
        "the sandbox's and localstripe's webhook secrets"
    );
    for secret in &settings.payments.webhook_secrets {
        secrets.push((
            "a webhook secret".to_owned(),
            secret.expose_secret().to_owned(),
        ));
    }
    let amqp = settings.amqp.url.expose_secret();
    if let Some((userinfo, _)) = amqp
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
    {
        secrets.push((
            "the broker's credentials".to_owned(),
            format!("{userinfo}@"),
        ));
    }
    secrets
}

/// Every captured line as a JSON object (a line that is not one fails the test).
fn parsed_lines(logs: &CapturedLogs) -> Vec<Map<String, Value>> {
    logs.text()
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(object)) => object,
            _ => panic!("a log line that is not a JSON object: {line}"),
        })
        .collect()
}

fn text<'a>(line: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    line.get(key).and_then(Value::as_str)
}

fn is_hex(value: Option<&str>, length: usize) -> bool {
    value.is_some_and(|value| {
        value.len() == length && value.bytes().all(|byte| byte.is_ascii_hexdigit())
    })
}

/// The fixed fields on every line; the ids on every line the services write inside a span.
fn check_structure(lines: &[Map<String, Value>]) {
    for line in lines {
        let shown = Value::Object(line.clone());
        for key in ["timestamp", "level", "target"] {
            assert!(
                text(line, key).is_some_and(|value| !value.is_empty()),
                "{key} on {shown}"
            );
        }
        assert_eq!(text(line, "service"), Some("mercato-e2e"), "{shown}");
        let traced = line.contains_key("trace_id");
        assert_eq!(
            traced,
            line.contains_key("span_id"),
            "both ids or none: {shown}"
        );
        if traced {
            assert!(is_hex(text(line, "trace_id"), 32), "{shown}");
            assert!(is_hex(text(line, "span_id"), 16), "{shown}");
            assert!(line.contains_key("span"), "ids only inside a span: {shown}");
        }
        let ours = text(line, "target").is_some_and(|target| target.starts_with("mercato"));
        if ours && line.contains_key("span") {
            assert!(
                traced,
                "a service's line inside a span carries its ids: {shown}"
            );
        }
    }
}

/// Enough was logged for the scan to mean something (see the module docs).
fn check_coverage(lines: &[Map<String, Value>], failed_sign_in_trace: &str) {
    let traced: Vec<_> = lines
        .iter()
        .filter(|line| line.contains_key("trace_id"))
        .collect();
    assert!(
        traced.len() >= ENOUGH_TRACED_LINES,
        "only {} lines inside traces",
        traced.len()
    );
    for package in ["bff", "user", "product", "order", "payment"] {
        let prefix = format!("mercato.{package}.v1.");
        assert!(
            traced
                .iter()
                .any(|line| text(line, "rpc.service").is_some_and(|s| s.starts_with(&prefix))),
            "some line is logged inside a {prefix}* call"
        );
    }
    assert!(
        traced
            .iter()
            .any(|line| text(line, "span") == Some("process.shipment_step")),
        "the shipment worker's steps are logged inside their traces"
    );
    assert!(
        traced.iter().any(|line| {
            text(line, "trace_id") == Some(failed_sign_in_trace)
                && text(line, "error.reason") == Some("INVALID_CREDENTIALS")
        }),
        "the failed sign-in is logged under the trace id the BFF answered ({failed_sign_in_trace})"
    );
}

/// No line holds a secret, a bearer credential, a JWT or a card number.
fn check_no_secret(text: &str, secrets: &[(String, String)]) {
    for (what, secret) in secrets {
        assert!(secret.len() >= 8, "{what} is long enough to search for");
    }
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        for (what, secret) in secrets {
            assert!(!line.contains(secret.as_str()), "{what} is logged: {line}");
        }
        if let Some(found) = logs::bearer_credential(line) {
            panic!("a bearer credential ({found}) is logged: {line}");
        }
        if let Some(found) = logs::jwt(line) {
            panic!("a JWT ({found}) is logged: {line}");
        }
        if let Some(found) = logs::card_number(line) {
            panic!("a card number ({found}) is logged: {line}");
        }
    }
    assert!(lines >= ENOUGH_LINES);
}
