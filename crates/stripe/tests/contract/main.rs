//! Contract tests: the adapter against an in-test HTTP server standing for api.stripe.com, which
//! answers with fixtures in the shape Stripe documents for the current API (tests/fixtures) and
//! records every request. They pin what localstripe cannot: the current response shapes parsed
//! without the normalizing proxy, the exact form fields, the `Idempotency-Key`, `Stripe-Version`
//! and auth headers, Connect (connected accounts, onboarding and dashboard links, transfers and
//! their reversals), and how Stripe's error objects map.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use mercato_stripe::{
    AccountKind, AccountLinkKind, ApiErrorKind, CapabilityStatus, EventKind, NewAccount,
    NewAccountLink, NewPaymentIntent, NewRefund, NewTransfer, NewTransferReversal,
    PaymentIntentStatus, RefundStatus, StripeClient, StripeConfig, StripeError, TransferQuery,
    parse_event,
};

const SECRET_KEY: &str = "sk_test_contract_4eC39HqLyjWDarjtT1zdp7dc";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {path}: {err}"))
}

/// One request as the fake Stripe received it.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    form: Vec<(String, String)>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn field_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.form.iter().map(|(key, _)| key.as_str()).collect();
        names.sort_unstable();
        names
    }
}

#[derive(Clone)]
struct Route {
    method: Method,
    path: &'static str,
    status: u16,
    fixture: &'static str,
}

#[derive(Clone)]
struct Fake {
    routes: Arc<Vec<Route>>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

/// The stand-in for api.stripe.com on 127.0.0.1:0.
struct FakeStripe {
    url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStripe {
    async fn serve(routes: Vec<Route>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake stripe");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let fake = Fake {
            routes: Arc::new(routes),
            recorded: Arc::default(),
        };
        let recorded = fake.recorded.clone();
        let router = axum::Router::new().fallback(answer).with_state(fake);
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("the fake stripe serves");
        });
        Self {
            url,
            recorded,
            task,
        }
    }

    fn client(&self) -> StripeClient {
        StripeClient::new(StripeConfig::new(SECRET_KEY).with_base_url(&self.url))
            .expect("a client for the fake stripe")
    }

    fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().expect("the request log").clone()
    }

    fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "exactly one request expected: {requests:#?}"
        );
        requests.into_iter().next().expect("one request")
    }
}

async fn answer(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form_request = axum::http::Request::builder()
        .method(Method::POST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("a request to parse the form from");
    let axum::Form(form) = axum::Form::<Vec<(String, String)>>::from_request(form_request, &())
        .await
        .expect("the adapter sends a url-encoded form");
    fake.recorded
        .lock()
        .expect("the request log")
        .push(Recorded {
            method: method.clone(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            form,
        });
    let route = fake
        .routes
        .iter()
        .find(|route| route.method == method && route.path == uri.path());
    let (status, body) = match route {
        Some(route) => (route.status, fixture(route.fixture)),
        None => (404, fixture("error_resource_missing.json")),
    };
    Response::builder()
        .status(StatusCode::from_u16(status).expect("a status"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a response")
}

fn route(method: Method, path: &'static str, status: u16, fixture: &'static str) -> Route {
    Route {
        method,
        path,
        status,
        fixture,
    }
}

fn new_payment_intent() -> NewPaymentIntent {
    NewPaymentIntent {
        amount: 1999,
        currency: "EUR".to_owned(),
        order_id: "0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69".to_owned(),
        payment_id: Some("0193a5a4-7a11-7d2e-8f00-1b2c3d4e5f60".to_owned()),
        idempotency_key: "order-0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69-payment".to_owned(),
        transfer_group: Some("order_0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69".to_owned()),
    }
}

/// Every call carries the secret key as a bearer token and pins Stripe's API version; the version
/// is the one the fixtures are written for (the event fixture's `api_version`).
fn assert_authenticated_and_versioned(request: &Recorded) {
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {SECRET_KEY}").as_str())
    );
    let event: serde_json::Value =
        serde_json::from_str(&fixture("event_payment_intent_succeeded.json")).expect("json");
    assert_eq!(
        request.header("stripe-version"),
        event["api_version"].as_str(),
        "async-stripe speaks another API version than the fixtures: review tests/fixtures"
    );
}

#[tokio::test]
async fn creating_a_payment_intent_sends_amount_currency_order_and_idempotency_key() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/payment_intents",
        200,
        "payment_intent_created.json",
    )])
    .await;

    let created = stripe
        .client()
        .create_payment_intent(&new_payment_intent())
        .await
        .expect("the payment intent is created");

    assert_eq!(created.id, "pi_3QmercatoCreated0001");
    assert_eq!(
        created.client_secret,
        "pi_3QmercatoCreated0001_secret_Fx8ContractFixture"
    );
    assert_eq!(created.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert!(
        !format!("{created:?}").contains("secret_Fx8"),
        "the client secret is not logged"
    );

    let request = stripe.only_request();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/v1/payment_intents");
    assert_authenticated_and_versioned(&request);
    assert_eq!(
        request.header("idempotency-key"),
        Some("order-0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69-payment")
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        request.field_names(),
        [
            "amount",
            "currency",
            "metadata[order_id]",
            "metadata[payment_id]",
            "transfer_group"
        ],
        "no payment method: the browser confirms"
    );
    assert_eq!(request.field("amount"), Some("1999"));
    assert_eq!(request.field("currency"), Some("eur"));
    assert_eq!(
        request.field("metadata[order_id]"),
        Some("0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69")
    );
    assert_eq!(
        request.field("transfer_group"),
        Some("order_0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69")
    );
}

#[tokio::test]
async fn a_succeeded_payment_intent_reads_as_succeeded_with_its_order_and_charge() {
    let stripe = FakeStripe::serve(vec![route(
        Method::GET,
        "/v1/payment_intents/pi_3QmercatoSucceeded01",
        200,
        "payment_intent_succeeded.json",
    )])
    .await;

    let pi = stripe
        .client()
        .retrieve_payment_intent("pi_3QmercatoSucceeded01")
        .await
        .expect("the payment intent is read");

    assert_eq!(pi.id, "pi_3QmercatoSucceeded01");
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!((pi.amount, pi.amount_received), (1999, 1999));
    assert_eq!(pi.currency, "eur");
    assert_eq!(
        pi.order_id.as_deref(),
        Some("0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69")
    );
    assert_eq!(pi.latest_charge.as_deref(), Some("ch_3QmercatoCharge00001"));
    assert_eq!(pi.last_error, None);
    assert_eq!(pi.created, 1_764_000_000);

    let request = stripe.only_request();
    assert_eq!(
        (request.method.clone(), request.path.as_str()),
        (Method::GET, "/v1/payment_intents/pi_3QmercatoSucceeded01")
    );
    assert_authenticated_and_versioned(&request);
    assert_eq!(
        request.header("idempotency-key"),
        None,
        "reads carry no idempotency key"
    );
}

#[tokio::test]
async fn a_declined_payment_intent_reports_the_decline_code() {
    let stripe = FakeStripe::serve(vec![route(
        Method::GET,
        "/v1/payment_intents/pi_3QmercatoDeclined001",
        200,
        "payment_intent_declined.json",
    )])
    .await;

    let pi = stripe
        .client()
        .retrieve_payment_intent("pi_3QmercatoDeclined001")
        .await
        .expect("the payment intent is read");

    assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!(pi.amount_received, 0);
    let error = pi.last_error.expect("the failed attempt's error");
    assert_eq!(error.code.as_deref(), Some("card_declined"));
    assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(
        error.message.as_deref(),
        Some("Your card has insufficient funds.")
    );
}

#[tokio::test]
async fn cancelling_posts_to_the_cancel_endpoint() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/payment_intents/pi_3QmercatoCreated0001/cancel",
        200,
        "payment_intent_canceled.json",
    )])
    .await;

    let pi = stripe
        .client()
        .cancel_payment_intent("pi_3QmercatoCreated0001", "order-0193a5a4-cancel")
        .await
        .expect("the payment intent is cancelled");

    assert_eq!(pi.status, PaymentIntentStatus::Canceled);
    assert!(pi.status.is_terminal());
    let request = stripe.only_request();
    assert_eq!(
        request.path,
        "/v1/payment_intents/pi_3QmercatoCreated0001/cancel"
    );
    assert!(request.form.is_empty(), "{:?}", request.form);
}

#[tokio::test]
async fn a_refund_names_the_payment_intent_the_amount_and_its_idempotency_key() {
    let stripe =
        FakeStripe::serve(vec![route(Method::POST, "/v1/refunds", 200, "refund.json")]).await;

    let refund = stripe
        .client()
        .create_refund(&NewRefund {
            payment_intent: "pi_3QmercatoSucceeded01".to_owned(),
            amount: Some(500),
            idempotency_key: "order-0193a5a4-refund-1".to_owned(),
            refund_id: Some("0193a5a4-9b00-7000-8000-000000000001".to_owned()),
        })
        .await
        .expect("the refund is created");

    assert_eq!(refund.id, "re_3QmercatoRefund000001");
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert_eq!((refund.amount, refund.currency.as_str()), (500, "eur"));
    assert_eq!(
        refund.payment_intent.as_deref(),
        Some("pi_3QmercatoSucceeded01")
    );

    let request = stripe.only_request();
    assert_eq!(request.path, "/v1/refunds");
    assert_authenticated_and_versioned(&request);
    assert_eq!(
        request.header("idempotency-key"),
        Some("order-0193a5a4-refund-1")
    );
    assert_eq!(
        request.field_names(),
        ["amount", "metadata[refund_id]", "payment_intent"]
    );
    assert_eq!(
        request.field("metadata[refund_id]"),
        Some("0193a5a4-9b00-7000-8000-000000000001")
    );
    assert_eq!(
        request.field("payment_intent"),
        Some("pi_3QmercatoSucceeded01")
    );
    assert_eq!(request.field("amount"), Some("500"));
}

#[tokio::test]
async fn a_full_refund_sends_no_amount() {
    let stripe =
        FakeStripe::serve(vec![route(Method::POST, "/v1/refunds", 200, "refund.json")]).await;

    stripe
        .client()
        .create_refund(&NewRefund {
            payment_intent: "pi_3QmercatoSucceeded01".to_owned(),
            amount: None,
            idempotency_key: "order-0193a5a4-refund".to_owned(),
            refund_id: None,
        })
        .await
        .expect("the refund is created");

    assert_eq!(stripe.only_request().field_names(), ["payment_intent"]);
}

#[tokio::test]
async fn a_seller_transfer_names_amount_destination_group_and_source_charge() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/transfers",
        200,
        "transfer.json",
    )])
    .await;

    let transfer = stripe
        .client()
        .create_transfer(&NewTransfer {
            amount: 1799,
            currency: "eur".to_owned(),
            destination: "acct_1QmercatoSeller00001".to_owned(),
            transfer_group: Some("order_0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69".to_owned()),
            source_transaction: Some("ch_3QmercatoCharge00001".to_owned()),
            payout_id: Some("0193a5a4-8c00-7000-8000-0000000000bb".to_owned()),
            idempotency_key: "order-0193a5a4-transfer-acct_1QmercatoSeller00001".to_owned(),
        })
        .await
        .expect("the transfer is created");

    assert_eq!(transfer.id, "tr_1QmercatoTransfer00001");
    assert_eq!((transfer.amount, transfer.amount_reversed), (1799, 0));
    assert_eq!(
        transfer.destination.as_deref(),
        Some("acct_1QmercatoSeller00001")
    );
    assert_eq!(
        transfer.transfer_group.as_deref(),
        Some("order_0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69")
    );
    assert!(!transfer.reversed);

    let request = stripe.only_request();
    assert_eq!(request.path, "/v1/transfers");
    assert_authenticated_and_versioned(&request);
    assert_eq!(
        request.header("idempotency-key"),
        Some("order-0193a5a4-transfer-acct_1QmercatoSeller00001")
    );
    assert_eq!(
        request.field_names(),
        [
            "amount",
            "currency",
            "destination",
            "metadata[payout_id]",
            "source_transaction",
            "transfer_group"
        ]
    );
    assert_eq!(
        request.field("metadata[payout_id]"),
        Some("0193a5a4-8c00-7000-8000-0000000000bb")
    );
    assert_eq!(
        transfer.source_transaction.as_deref(),
        Some("ch_3QmercatoCharge00001")
    );
    assert_eq!(transfer.created, 1_764_000_400);
    assert_eq!(request.field("amount"), Some("1799"));
    assert_eq!(request.field("currency"), Some("eur"));
    assert_eq!(
        request.field("destination"),
        Some("acct_1QmercatoSeller00001")
    );
    assert_eq!(
        request.field("source_transaction"),
        Some("ch_3QmercatoCharge00001")
    );
}

#[tokio::test]
async fn reversing_a_transfer_posts_to_its_reversals() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/transfers/tr_1QmercatoTransfer00001/reversals",
        200,
        "transfer_reversal.json",
    )])
    .await;

    let reversal = stripe
        .client()
        .reverse_transfer(&NewTransferReversal {
            transfer: "tr_1QmercatoTransfer00001".to_owned(),
            amount: Some(1799),
            idempotency_key: "order-0193a5a4-reversal-tr_1QmercatoTransfer00001".to_owned(),
        })
        .await
        .expect("the transfer is reversed");

    assert_eq!(reversal.id, "trr_1QmercatoReversal0001");
    assert_eq!(reversal.transfer, "tr_1QmercatoTransfer00001");
    assert_eq!((reversal.amount, reversal.currency.as_str()), (1799, "eur"));

    let request = stripe.only_request();
    assert_eq!(
        request.path,
        "/v1/transfers/tr_1QmercatoTransfer00001/reversals"
    );
    assert_eq!(
        request.header("idempotency-key"),
        Some("order-0193a5a4-reversal-tr_1QmercatoTransfer00001")
    );
    assert_eq!(request.field_names(), ["amount"]);
    assert_eq!(request.field("amount"), Some("1799"));
}

fn new_account(kind: AccountKind) -> NewAccount {
    NewAccount {
        kind,
        country: "jp".to_owned(),
        seller_id: "0193a5a4-5e00-7000-8000-00000000aaaa".to_owned(),
        email: None,
        idempotency_key: "mercato-seller-account-0193a5a45e0070008000".to_owned(),
    }
}

fn new_account_link() -> NewAccountLink {
    NewAccountLink {
        account: "acct_1QmercatoSeller00001".to_owned(),
        kind: AccountLinkKind::Onboarding,
        return_url: "https://shop.example/seller/payouts?onboarded=1".to_owned(),
        refresh_url: "https://shop.example/seller/payouts/refresh".to_owned(),
    }
}

#[tokio::test]
async fn an_express_account_is_created_with_controller_properties_capabilities_and_its_seller() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/accounts",
        200,
        "account_created.json",
    )])
    .await;

    let account = stripe
        .client()
        .create_account(&new_account(AccountKind::Express))
        .await
        .expect("the account is created");

    assert_eq!(account.id, "acct_1QmercatoSeller00001");
    assert_eq!(account.country.as_deref(), Some("JP"));
    assert!(!account.charges_enabled && !account.payouts_enabled && !account.details_submitted);
    assert_eq!(account.transfers, CapabilityStatus::Inactive);
    assert_eq!(
        account.seller_id.as_deref(),
        Some("0193a5a4-5e00-7000-8000-00000000aaaa")
    );
    assert_eq!(account.created, Some(1_764_000_600));

    let request = stripe.only_request();
    assert_eq!(
        (request.method.clone(), request.path.as_str()),
        (Method::POST, "/v1/accounts")
    );
    assert_authenticated_and_versioned(&request);
    assert_eq!(
        request.header("idempotency-key"),
        Some("mercato-seller-account-0193a5a45e0070008000")
    );
    assert_eq!(
        request.field_names(),
        [
            "capabilities[card_payments][requested]",
            "capabilities[transfers][requested]",
            "controller[fees][payer]",
            "controller[losses][payments]",
            "controller[stripe_dashboard][type]",
            "country",
            "metadata[seller_id]",
        ],
        "controller properties, not the deprecated type"
    );
    assert_eq!(
        request.field("controller[stripe_dashboard][type]"),
        Some("express")
    );
    assert_eq!(
        request.field("controller[fees][payer]"),
        Some("application")
    );
    assert_eq!(
        request.field("controller[losses][payments]"),
        Some("application")
    );
    assert_eq!(
        request.field("capabilities[transfers][requested]"),
        Some("true")
    );
    assert_eq!(request.field("country"), Some("JP"));
    assert_eq!(
        request.field("metadata[seller_id]"),
        Some("0193a5a4-5e00-7000-8000-00000000aaaa")
    );
}

#[tokio::test]
async fn a_standard_account_has_the_full_dashboard_and_pays_its_own_fees() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/accounts",
        200,
        "account_created.json",
    )])
    .await;

    stripe
        .client()
        .create_account(&NewAccount {
            email: Some("seller@example.com".to_owned()),
            ..new_account(AccountKind::Standard)
        })
        .await
        .expect("the account is created");

    let request = stripe.only_request();
    assert_eq!(
        request.field("controller[stripe_dashboard][type]"),
        Some("full")
    );
    assert_eq!(request.field("controller[fees][payer]"), Some("account"));
    assert_eq!(
        request.field("controller[losses][payments]"),
        Some("stripe")
    );
    assert_eq!(request.field("email"), Some("seller@example.com"));
    assert_eq!(request.field("type"), None);
}

#[tokio::test]
async fn an_onboarded_account_reads_as_enabled_for_transfers_and_payouts() {
    let stripe = FakeStripe::serve(vec![route(
        Method::GET,
        "/v1/accounts/acct_1QmercatoSeller00001",
        200,
        "account_active.json",
    )])
    .await;

    let account = stripe
        .client()
        .retrieve_account("acct_1QmercatoSeller00001")
        .await
        .expect("the account is read");

    assert!(account.charges_enabled && account.payouts_enabled && account.details_submitted);
    assert_eq!(account.transfers, CapabilityStatus::Active);
    let request = stripe.only_request();
    assert_eq!(request.method, Method::GET);
    assert_authenticated_and_versioned(&request);
    assert_eq!(request.header("idempotency-key"), None);
}

#[tokio::test]
async fn an_onboarding_link_names_the_account_its_type_and_both_urls() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/account_links",
        200,
        "account_link.json",
    )])
    .await;

    let link = stripe
        .client()
        .create_account_link(&new_account_link())
        .await
        .expect("the link is created");

    assert_eq!(
        link.url,
        "https://connect.stripe.com/setup/e/acct_1QmercatoSeller00001/Fx8ContractOnboardingLink"
    );
    assert_eq!(
        (link.created, link.expires_at),
        (1_764_000_610, 1_764_000_910)
    );
    let request = stripe.only_request();
    assert_authenticated_and_versioned(&request);
    assert_eq!(
        request.field_names(),
        ["account", "refresh_url", "return_url", "type"]
    );
    assert_eq!(request.field("account"), Some("acct_1QmercatoSeller00001"));
    assert_eq!(request.field("type"), Some("account_onboarding"));
    assert_eq!(
        request.field("return_url"),
        Some("https://shop.example/seller/payouts?onboarded=1")
    );
    assert_eq!(
        request.field("refresh_url"),
        Some("https://shop.example/seller/payouts/refresh")
    );
}

#[tokio::test]
async fn a_dashboard_link_posts_to_the_accounts_login_links() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/accounts/acct_1QmercatoSeller00001/login_links",
        200,
        "login_link.json",
    )])
    .await;

    let link = stripe
        .client()
        .create_login_link("acct_1QmercatoSeller00001")
        .await
        .expect("the link is created");

    assert_eq!(
        link.url,
        "https://connect.stripe.com/express/acct_1QmercatoSeller00001/Fx8ContractDashboardLink"
    );
    assert_eq!(link.created, 1_764_000_950);
    assert!(stripe.only_request().form.is_empty());
}

#[tokio::test]
async fn transfers_are_listed_by_group_and_destination_with_their_payout_and_reversals() {
    let stripe = FakeStripe::serve(vec![route(
        Method::GET,
        "/v1/transfers",
        200,
        "transfer_list.json",
    )])
    .await;

    let transfers = stripe
        .client()
        .list_transfers(&TransferQuery {
            transfer_group: Some("order_0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69".to_owned()),
            destination: Some("acct_1QmercatoSeller00001".to_owned()),
            limit: Some(100),
        })
        .await
        .expect("the transfers are listed");

    assert_eq!(transfers.len(), 1);
    let transfer = &transfers[0];
    assert_eq!(transfer.id, "tr_1QmercatoTransfer00001");
    assert_eq!((transfer.amount, transfer.amount_reversed), (1799, 500));
    assert_eq!(
        transfer.payout_id.as_deref(),
        Some("0193a5a4-8c00-7000-8000-0000000000bb")
    );
    let request = stripe.only_request();
    assert_authenticated_and_versioned(&request);
    let mut query: Vec<(String, String)> = request
        .query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    query.sort();
    assert_eq!(
        query,
        [
            (
                "destination".to_owned(),
                "acct_1QmercatoSeller00001".to_owned()
            ),
            ("limit".to_owned(), "100".to_owned()),
            (
                "transfer_group".to_owned(),
                "order_0193a5a4-6f0e-7c3a-9d55-3f1d2c4b5a69".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_transfer_is_read_by_its_id() {
    let stripe = FakeStripe::serve(vec![route(
        Method::GET,
        "/v1/transfers/tr_1QmercatoTransfer00001",
        200,
        "transfer.json",
    )])
    .await;

    let transfer = stripe
        .client()
        .retrieve_transfer("tr_1QmercatoTransfer00001")
        .await
        .expect("the transfer is read");

    assert_eq!(transfer.id, "tr_1QmercatoTransfer00001");
    assert_eq!(transfer.payout_id, None);
    assert!(!transfer.reversed);
    assert_eq!(stripe.only_request().method, Method::GET);
}

#[tokio::test]
async fn a_card_decline_is_a_card_error_with_its_codes_and_not_retryable() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/payment_intents",
        402,
        "error_card_declined.json",
    )])
    .await;

    let err = stripe
        .client()
        .create_payment_intent(&new_payment_intent())
        .await
        .expect_err("the fake declines");

    let api = err.api().expect("stripe's error object");
    assert_eq!(api.status, 402);
    assert_eq!(api.kind, ApiErrorKind::Card);
    assert_eq!(api.code.as_deref(), Some("card_declined"));
    assert_eq!(api.decline_code.as_deref(), Some("insufficient_funds"));
    assert!(!err.is_retryable());
    assert_eq!(stripe.requests().len(), 1, "a refusal is not retried");
}

#[tokio::test]
async fn an_unknown_payment_intent_is_not_found() {
    let stripe = FakeStripe::serve(vec![]).await;

    let err = stripe
        .client()
        .retrieve_payment_intent("pi_3QmercatoUnknown0001")
        .await
        .expect_err("no such payment intent");

    assert!(err.is_not_found(), "{err}");
    let api = err.api().expect("stripe's error object");
    assert_eq!(api.kind, ApiErrorKind::InvalidRequest);
    assert_eq!(api.code.as_deref(), Some("resource_missing"));
    assert_eq!(api.param.as_deref(), Some("intent"));
}

#[tokio::test]
async fn a_server_error_is_retryable() {
    let stripe = FakeStripe::serve(vec![route(
        Method::POST,
        "/v1/refunds",
        500,
        "error_api.json",
    )])
    .await;

    let err = stripe
        .client()
        .create_refund(&NewRefund {
            payment_intent: "pi_3QmercatoSucceeded01".to_owned(),
            amount: None,
            idempotency_key: "order-0193a5a4-refund".to_owned(),
            refund_id: None,
        })
        .await
        .expect_err("the fake fails");

    assert_eq!(
        err.api().map(|api| (api.status, api.kind.clone())),
        Some((500, ApiErrorKind::Api))
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn an_unreachable_stripe_is_a_retryable_transport_error() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to close");
        listener.local_addr().expect("its address")
    };
    let client =
        StripeClient::new(StripeConfig::new(SECRET_KEY).with_base_url(format!("http://{closed}")))
            .expect("a client");

    let err = client
        .retrieve_payment_intent("pi_3QmercatoSucceeded01")
        .await
        .expect_err("nobody listens");

    assert!(matches!(err, StripeError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_sent() {
    let stripe = FakeStripe::serve(vec![]).await;
    let client = stripe.client();
    let field_of = |err: StripeError| {
        if let StripeError::InvalidArgument { field, .. } = err {
            field
        } else {
            panic!("expected an invalid argument, got {err:?}")
        }
    };

    for (new, field) in [
        (
            NewPaymentIntent {
                amount: 0,
                ..new_payment_intent()
            },
            "amount",
        ),
        (
            NewPaymentIntent {
                amount: -5,
                ..new_payment_intent()
            },
            "amount",
        ),
        (
            NewPaymentIntent {
                amount: 100_000_000,
                ..new_payment_intent()
            },
            "amount",
        ),
        (
            NewPaymentIntent {
                currency: "euro".to_owned(),
                ..new_payment_intent()
            },
            "currency",
        ),
        (
            NewPaymentIntent {
                currency: "xyz".to_owned(),
                ..new_payment_intent()
            },
            "currency",
        ),
        (
            NewPaymentIntent {
                order_id: String::new(),
                ..new_payment_intent()
            },
            "order_id",
        ),
        (
            NewPaymentIntent {
                idempotency_key: String::new(),
                ..new_payment_intent()
            },
            "idempotency_key",
        ),
        (
            NewPaymentIntent {
                idempotency_key: "k".repeat(256),
                ..new_payment_intent()
            },
            "idempotency_key",
        ),
    ] {
        let err = client
            .create_payment_intent(&new)
            .await
            .expect_err("refused");
        assert_eq!(field_of(err), field, "{new:?}");
    }
    let err = client
        .retrieve_payment_intent("pi_1/../../v1/refunds")
        .await
        .expect_err("refused");
    assert_eq!(field_of(err), "payment_intent");
    let err = client
        .create_refund(&NewRefund {
            payment_intent: "ch_1".to_owned(),
            amount: None,
            idempotency_key: "k".to_owned(),
            refund_id: None,
        })
        .await
        .expect_err("refused");
    assert_eq!(field_of(err), "payment_intent");
    let err = client
        .create_transfer(&NewTransfer {
            amount: 100,
            currency: "eur".to_owned(),
            destination: "cus_123".to_owned(),
            transfer_group: None,
            source_transaction: None,
            payout_id: None,
            idempotency_key: "k".to_owned(),
        })
        .await
        .expect_err("refused");
    assert_eq!(field_of(err), "destination");
    let err = client
        .reverse_transfer(&NewTransferReversal {
            transfer: "tr_1".to_owned(),
            amount: Some(0),
            idempotency_key: "k".to_owned(),
        })
        .await
        .expect_err("refused");
    assert_eq!(field_of(err), "amount");
    for (new, field) in [
        (
            NewAccount {
                country: "JPN".to_owned(),
                ..new_account(AccountKind::Express)
            },
            "country",
        ),
        (
            NewAccount {
                seller_id: String::new(),
                ..new_account(AccountKind::Express)
            },
            "seller_id",
        ),
        (
            NewAccount {
                idempotency_key: String::new(),
                ..new_account(AccountKind::Standard)
            },
            "idempotency_key",
        ),
    ] {
        let err = client.create_account(&new).await.expect_err("refused");
        assert_eq!(field_of(err), field, "{new:?}");
    }
    for (new, field) in [
        (
            NewAccountLink {
                account: "cus_1".to_owned(),
                ..new_account_link()
            },
            "account",
        ),
        (
            NewAccountLink {
                return_url: "javascript:alert(1)".to_owned(),
                ..new_account_link()
            },
            "return_url",
        ),
        (
            NewAccountLink {
                refresh_url: "/seller/payouts".to_owned(),
                ..new_account_link()
            },
            "refresh_url",
        ),
    ] {
        let err = client.create_account_link(&new).await.expect_err("refused");
        assert_eq!(field_of(err), field, "{new:?}");
    }
    let err = client
        .retrieve_account("acct_1/../../v1/balance")
        .await
        .expect_err("refused");
    assert_eq!(field_of(err), "account");
    let err = client
        .create_login_link("acct_")
        .await
        .expect_err("refused");
    assert_eq!(field_of(err), "account");
    let err = client
        .retrieve_transfer("tr_1?expand=destination")
        .await
        .expect_err("refused");
    assert_eq!(field_of(err), "transfer");
    let err = client
        .list_transfers(&TransferQuery {
            limit: Some(0),
            ..TransferQuery::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(field_of(err), "limit");

    assert!(stripe.requests().is_empty(), "{:#?}", stripe.requests());
}

#[test]
fn a_current_payment_intent_succeeded_event_parses() {
    let event = parse_event(fixture("event_payment_intent_succeeded.json").as_bytes())
        .expect("the documented event shape parses");

    assert_eq!(event.id, "evt_3QmercatoEvent0000001");
    assert_eq!(event.kind, EventKind::PaymentIntentSucceeded);
    assert_eq!(event.created, 1_764_000_150);
    assert!(!event.livemode);
    assert_eq!(
        event.payment_intent_id.as_deref(),
        Some("pi_3QmercatoSucceeded01")
    );
}
