//! The adapter against a real, stateful localstripe (through the normalizing proxy): payments
//! confirmed and declined by test cards, refunds, cancellation, signed webhooks, and what
//! localstripe does not do (idempotency keys, Connect) pinned so a change shows.
//!
//! Each test starts its own localstripe on a free loopback port; without it installed the test
//! fails and says to run `make localstripe`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use mercato_stripe::testing::{LocalStripe, TestCard, sign_webhook_payload, webhook_signature};
use mercato_stripe::{
    ApiErrorKind, EventKind, NewPaymentIntent, NewRefund, PaymentIntentStatus, RefundStatus,
    parse_event,
};
use tokio::sync::mpsc;

/// Bounded wait for a webhook (localstripe sends it about a second after the event).
const WEBHOOK_PATIENCE: Duration = Duration::from_secs(30);

fn new_payment_intent(order_id: &str, amount: i64) -> NewPaymentIntent {
    NewPaymentIntent {
        amount,
        currency: "eur".to_owned(),
        order_id: order_id.to_owned(),
        payment_id: Some(format!("payment-of-{order_id}")),
        idempotency_key: format!("order-{order_id}-payment"),
        // localstripe refuses `transfer_group` on PaymentIntents.
        transfer_group: None,
    }
}

/// A webhook endpoint on 127.0.0.1:0 that hands every delivery (headers, raw body) to the test.
struct Receiver {
    url: String,
    deliveries: mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> Self {
        async fn deliver(
            State(sender): State<mpsc::UnboundedSender<(HeaderMap, Bytes)>>,
            headers: HeaderMap,
            body: Bytes,
        ) {
            let _ = sender.send((headers, body));
        }
        let (sender, deliveries) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let url = format!(
            "http://{}/webhooks/stripe",
            listener.local_addr().expect("its address")
        );
        let router = axum::Router::new()
            .route("/webhooks/stripe", axum::routing::post(deliver))
            .with_state(sender);
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("the receiver serves");
        });
        Self {
            url,
            deliveries,
            task,
        }
    }

    async fn next(&mut self) -> (HeaderMap, Bytes) {
        tokio::time::timeout(WEBHOOK_PATIENCE, self.deliveries.recv())
            .await
            .expect("localstripe delivers the webhook")
            .expect("the receiver is running")
    }
}

/// Splits `t=…,v1=…[,v1=…]` into the timestamp and the signatures.
fn signature_parts(header: &str) -> (i64, Vec<String>) {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = Some(value.parse().expect("a numeric timestamp")),
            Some(("v1", value)) => signatures.push(value.to_owned()),
            Some(_) | None => {}
        }
    }
    (timestamp.expect("a t= timestamp"), signatures)
}

#[tokio::test]
async fn a_payment_confirmed_with_visa_succeeds() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();

    let created = client
        .create_payment_intent(&new_payment_intent("order-visa", 2599))
        .await
        .expect("the payment intent is created");
    assert_eq!(created.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert!(created.id.starts_with("pi_"), "{}", created.id);
    assert!(
        created
            .client_secret
            .starts_with(&format!("{}_secret_", created.id))
    );

    let confirmed = stripe
        .confirm_payment_intent(&created.id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);

    let pi = client
        .retrieve_payment_intent(&created.id)
        .await
        .expect("the payment intent is read");
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!((pi.amount, pi.amount_received), (2599, 2599));
    assert_eq!(pi.currency, "eur");
    assert_eq!(pi.order_id.as_deref(), Some("order-visa"));
    assert_eq!(pi.payment_id.as_deref(), Some("payment-of-order-visa"));
    assert!(
        pi.latest_charge
            .as_deref()
            .is_some_and(|charge| charge.starts_with("ch_")),
        "{pi:?}"
    );
    assert_eq!(pi.last_error, None);
}

#[tokio::test]
async fn a_declined_card_leaves_the_payment_waiting_for_another_method_with_its_error_code() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-declined", 1000))
        .await
        .expect("the payment intent is created");

    let confirmed = stripe
        .confirm_payment_intent(&created.id, TestCard::ChargeCustomerFail)
        .await;
    assert_eq!(confirmed.status, 402, "{}", confirmed.body);
    assert_eq!(confirmed.body["error"]["code"], "card_declined");

    let pi = client
        .retrieve_payment_intent(&created.id)
        .await
        .expect("the payment intent is read");
    assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!(pi.amount_received, 0);
    let error = pi.last_error.expect("the declined attempt's error");
    assert_eq!(error.code.as_deref(), Some("card_declined"));
}

#[tokio::test]
async fn a_paid_payment_is_refunded_in_two_parts() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-refund", 3000))
        .await
        .expect("the payment intent is created");
    let confirmed = stripe
        .confirm_payment_intent(&created.id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);

    let partial = client
        .create_refund(&NewRefund {
            payment_intent: created.id.clone(),
            amount: Some(1200),
            idempotency_key: "order-refund-refund-1".to_owned(),
            refund_id: Some("refund-1".to_owned()),
        })
        .await
        .expect("a partial refund");
    assert!(partial.id.starts_with("re_"), "{}", partial.id);
    assert_eq!(partial.status, RefundStatus::Succeeded);
    assert_eq!((partial.amount, partial.currency.as_str()), (1200, "eur"));
    assert_eq!(partial.payment_intent.as_deref(), Some(created.id.as_str()));

    let rest = client
        .create_refund(&NewRefund {
            payment_intent: created.id.clone(),
            amount: None,
            idempotency_key: "order-refund-refund-2".to_owned(),
            refund_id: None,
        })
        .await
        .expect("the rest refunded");
    assert_eq!(rest.status, RefundStatus::Succeeded);
    assert_ne!(rest.id, partial.id);

    // Refunds do not lower what the PaymentIntent received.
    let pi = client
        .retrieve_payment_intent(&created.id)
        .await
        .expect("the payment intent is read");
    assert_eq!(
        (pi.status, pi.amount_received),
        (PaymentIntentStatus::Succeeded, 3000)
    );
}

#[tokio::test]
async fn an_unpaid_payment_cannot_be_refunded() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-unpaid", 900))
        .await
        .expect("the payment intent is created");

    let err = client
        .create_refund(&NewRefund {
            payment_intent: created.id.clone(),
            amount: None,
            idempotency_key: "order-unpaid-refund".to_owned(),
            refund_id: None,
        })
        .await
        .expect_err("nothing was paid");

    let api = err.api().expect("localstripe's error object");
    assert_eq!(
        (api.status, api.kind.clone()),
        (400, ApiErrorKind::InvalidRequest)
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_cancelled_payment_stays_cancelled_and_cannot_be_cancelled_again() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-cancel", 700))
        .await
        .expect("the payment intent is created");

    let cancelled = client
        .cancel_payment_intent(&created.id, "order-cancel-cancel")
        .await
        .expect("cancelled");
    assert_eq!(cancelled.status, PaymentIntentStatus::Canceled);
    let pi = client
        .retrieve_payment_intent(&created.id)
        .await
        .expect("the payment intent is read");
    assert_eq!(pi.status, PaymentIntentStatus::Canceled);

    let err = client
        .cancel_payment_intent(&created.id, "order-cancel-cancel-again")
        .await
        .expect_err("already cancelled");
    assert_eq!(err.api().map(|api| api.status), Some(400), "{err}");
}

#[tokio::test]
async fn a_registered_webhook_receives_a_signed_payment_intent_succeeded() {
    let stripe = LocalStripe::start().await;
    let mut receiver = Receiver::start().await;
    let secret = "whsec_mercato_localstripe";
    stripe
        .register_webhook(
            "mercato",
            &receiver.url,
            secret,
            Some(&["payment_intent.succeeded"]),
        )
        .await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-webhook", 4200))
        .await
        .expect("the payment intent is created");
    let confirmed = stripe
        .confirm_payment_intent(&created.id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);

    let (headers, body) = receiver.next().await;

    // The signature format the payment service verifies: HMAC-SHA256 of "{t}.{raw body}".
    let header = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok())
        .expect("a Stripe-Signature header");
    let (timestamp, signatures) = signature_parts(header);
    assert_eq!(
        signatures,
        [webhook_signature(&body, secret, timestamp)],
        "{header}"
    );
    assert_eq!(header, sign_webhook_payload(&body, secret, timestamp));
    assert!(!signatures.contains(&webhook_signature(&body, "whsec_other", timestamp)));
    let mut altered = body.to_vec();
    altered.push(b'\n');
    assert!(!signatures.contains(&webhook_signature(&altered, secret, timestamp)));

    let event = parse_event(&body).expect("the delivery is an event");
    assert!(event.id.starts_with("evt_"), "{}", event.id);
    assert_eq!(event.kind, EventKind::PaymentIntentSucceeded);
    assert_eq!(
        event.created, timestamp,
        "localstripe signs with the event's creation time"
    );
    assert_eq!(
        event.payment_intent_id.as_deref(),
        Some(created.id.as_str())
    );
}

#[tokio::test]
async fn a_declined_payment_sends_a_signed_payment_failed_webhook() {
    let stripe = LocalStripe::start().await;
    let mut receiver = Receiver::start().await;
    let secret = "whsec_mercato_declines";
    stripe
        .register_webhook("mercato", &receiver.url, secret, None)
        .await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-webhook-declined", 1500))
        .await
        .expect("the payment intent is created");
    let confirmed = stripe
        .confirm_payment_intent(&created.id, TestCard::ChargeCustomerFail)
        .await;
    assert_eq!(confirmed.status, 402, "{}", confirmed.body);

    // Other events (the charge's) may come too; wait for the PaymentIntent's.
    let (event, timestamp, signatures, body) = loop {
        let (headers, body) = receiver.next().await;
        let event = parse_event(&body).expect("the delivery is an event");
        if event.kind == EventKind::PaymentIntentPaymentFailed {
            let header = headers
                .get("stripe-signature")
                .and_then(|value| value.to_str().ok())
                .expect("a Stripe-Signature header")
                .to_owned();
            let (timestamp, signatures) = signature_parts(&header);
            break (event, timestamp, signatures, body);
        }
    };
    assert_eq!(signatures, [webhook_signature(&body, secret, timestamp)]);
    assert_eq!(
        event.payment_intent_id.as_deref(),
        Some(created.id.as_str())
    );
}

#[tokio::test]
async fn an_unknown_payment_intent_is_not_found() {
    let stripe = LocalStripe::start().await;

    let err = stripe
        .client()
        .retrieve_payment_intent("pi_doesnotexist000000")
        .await
        .expect_err("no such payment intent");

    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn a_reset_wipes_the_payments() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-reset", 100))
        .await
        .expect("the payment intent is created");

    stripe.reset().await;

    let err = client
        .retrieve_payment_intent(&created.id)
        .await
        .expect_err("wiped");
    assert!(err.is_not_found(), "{err}");
}

/// localstripe ignores `Idempotency-Key`: the same key creates a second PaymentIntent. This is
/// why the payment service keeps its own dedupe (one payment per order) in front of the adapter.
#[tokio::test]
async fn localstripe_ignores_idempotency_keys() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let new = new_payment_intent("order-idempotency", 1234);

    let first = client
        .create_payment_intent(&new)
        .await
        .expect("first create");
    let second = client
        .create_payment_intent(&new)
        .await
        .expect("second create");

    assert_ne!(
        first.id, second.id,
        "localstripe now honours idempotency keys: update the docs"
    );
}

/// The proxy is what makes localstripe usable: its own PaymentIntent lacks fields async-stripe's
/// current models require, and embeds the charge.
#[tokio::test]
async fn localstripe_answers_in_an_older_shape_that_the_proxy_patches() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-shape", 1999))
        .await
        .expect("created through the proxy");
    let confirmed = stripe
        .confirm_payment_intent(&created.id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);

    let (status, raw) = stripe
        .get_raw(&format!("/v1/payment_intents/{}", created.id))
        .await;
    assert_eq!(status, 200, "{raw}");
    for missing in [
        "amount_capturable",
        "amount_received",
        "confirmation_method",
    ] {
        assert!(
            raw.get(missing).is_none(),
            "localstripe now sends {missing}: review the proxy"
        );
    }
    assert!(
        raw["latest_charge"].is_object(),
        "localstripe now sends the charge id: review the proxy"
    );

    let pi = client
        .retrieve_payment_intent(&created.id)
        .await
        .expect("read through the proxy");
    assert_eq!(pi.amount_received, 1999);
    assert_eq!(
        pi.latest_charge.as_deref(),
        raw["latest_charge"]["id"].as_str()
    );
}

/// localstripe has no Connect at all: every endpoint seller payouts use answers 404 on
/// localstripe itself (through the proxy, the Connect stand-in answers them instead; see
/// `tests/connect`). Pinned so a localstripe that adds them is noticed.
#[tokio::test]
async fn localstripe_itself_has_no_connect_endpoints() {
    let stripe = LocalStripe::start().await;

    for (path, form) in [
        (
            "/v1/accounts",
            "country=JP&controller[stripe_dashboard][type]=express",
        ),
        (
            "/v1/account_links",
            "account=acct_1Seller0000000001&type=account_onboarding",
        ),
        ("/v1/accounts/acct_1Seller0000000001/login_links", ""),
        (
            "/v1/transfers",
            "amount=1000&currency=eur&destination=acct_1Seller0000000001",
        ),
        (
            "/v1/transfers/tr_1Transfer000000001/reversals",
            "amount=100",
        ),
    ] {
        let (status, body) = stripe.post_raw(path, form).await;
        assert_eq!(status, 404, "localstripe now serves POST {path}: {body}");
    }
    for path in [
        "/v1/accounts/acct_1Seller0000000001",
        "/v1/transfers",
        "/v1/transfers/tr_1Transfer000000001",
    ] {
        let (status, body) = stripe.get_raw(path).await;
        assert_eq!(status, 404, "localstripe now serves GET {path}: {body}");
    }
}

/// localstripe refuses `transfer_group` on a PaymentIntent (Stripe accepts it): seller payouts
/// group their transfers by order, so that part is covered by the contract tests only.
#[tokio::test]
async fn localstripe_refuses_a_transfer_group_on_payment_intents() {
    let stripe = LocalStripe::start().await;
    let new = NewPaymentIntent {
        transfer_group: Some("order-grouped".to_owned()),
        ..new_payment_intent("order-grouped", 500)
    };

    let err = stripe
        .client()
        .create_payment_intent(&new)
        .await
        .expect_err("refused");

    let api = err.api().expect("localstripe's error object");
    assert_eq!(
        api.status, 400,
        "localstripe now accepts transfer_group: update the docs"
    );
    assert!(
        api.message
            .as_deref()
            .is_some_and(|m| m.contains("transfer_group")),
        "{api:?}"
    );
}

/// localstripe refunds more than was paid (Stripe refuses with `charge_already_refunded`), so
/// the payment service's own refund bookkeeping is what keeps refunds within the payment.
#[tokio::test]
async fn localstripe_does_not_check_over_refunds() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let created = client
        .create_payment_intent(&new_payment_intent("order-over-refund", 800))
        .await
        .expect("the payment intent is created");
    let confirmed = stripe
        .confirm_payment_intent(&created.id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);

    for attempt in 1..=2 {
        let refund = client
            .create_refund(&NewRefund {
                payment_intent: created.id.clone(),
                amount: None,
                idempotency_key: format!("order-over-refund-{attempt}"),
                refund_id: None,
            })
            .await
            .unwrap_or_else(|err| {
                panic!("refund {attempt}: {err} (localstripe now checks: update the docs)")
            });
        assert_eq!(refund.amount, 800);
    }
}
