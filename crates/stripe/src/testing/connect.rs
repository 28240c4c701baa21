//! An in-memory stand-in for the Stripe Connect endpoints localstripe lacks, served by the
//! normalizing proxy beside localstripe's own.
//!
//! localstripe 1.15.10 implements no Connect resource at all: `/v1/accounts`,
//! `/v1/account_links`, `/v1/accounts/{id}/login_links`, `/v1/transfers` and
//! `/v1/transfers/{id}/reversals` answer 404 there (pinned by the localstripe tests). So the proxy
//! answers them itself, from state kept here, with objects built from the same fixtures the
//! contract tests hold against Stripe's documented shapes (`tests/fixtures/account_created.json`,
//! `account_link.json`, `login_link.json`, `transfer.json`, `transfer_reversal.json`). It keeps
//! the rules a caller depends on:
//!
//! - accounts: `country` required and among the countries listed below (`country_unsupported`
//!   otherwise), the controller properties and requested capabilities recorded; nothing is
//!   enabled until the test completes onboarding ([`Connect::complete_onboarding`], what the
//!   seller does in Stripe's hosted form); [`Connect::restrict`] disables it again;
//! - account links: the account must exist, `type` must be `account_onboarding` (Stripe refuses
//!   `account_update` for accounts whose requirements Stripe collects), both URLs required;
//!   login links only for Express accounts that finished onboarding;
//! - transfers: a positive amount, a known destination whose `transfers` capability is active
//!   (`insufficient_capabilities_for_transfer` otherwise), and, with `source_transaction`, a
//!   charge that exists at localstripe in the same currency whose transfers never exceed it;
//!   listing by `transfer_group` / `destination`, newest first;
//! - reversals: at most what is left of the transfer (whole by default); the transfer's
//!   `amount_reversed` and `reversed` follow;
//! - idempotency: like Stripe, a POST with a seen `Idempotency-Key` replays the first answer
//!   (with `Idempotent-Replayed: true`), and the same key with other parameters is an
//!   `idempotency_error`. [`Connect::ignore_idempotency_keys`] switches that off (localstripe's
//!   own behaviour), so a caller can show its own dedupe holds without it.
//!
//! [`Connect::fail_next`] injects faults: a 503 before anything happens, or a lost answer (the
//! effect happens, the caller gets a 500), which is what a crash between the Stripe call and the
//! caller's own write looks like from the caller's side.
//!
//! What it does not model: the platform's available balance (a transfer without a source
//! transaction always succeeds), balance transactions, payouts to bank accounts, events and
//! webhooks (tests post `account.updated` themselves), persons, capabilities other than
//! `transfers` and `card_payments`, and pagination cursors.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

const ACCOUNT_TEMPLATE: &str = include_str!("../../tests/fixtures/account_created.json");
const ACCOUNT_LINK_TEMPLATE: &str = include_str!("../../tests/fixtures/account_link.json");
const LOGIN_LINK_TEMPLATE: &str = include_str!("../../tests/fixtures/login_link.json");
const TRANSFER_TEMPLATE: &str = include_str!("../../tests/fixtures/transfer.json");
const REVERSAL_TEMPLATE: &str = include_str!("../../tests/fixtures/transfer_reversal.json");

/// Countries the stand-in accepts for new accounts: a subset of those Stripe lists for
/// connected accounts, enough for tests to use a supported and an unsupported one.
const COUNTRIES: &[&str] = &[
    "AT", "AU", "BE", "BG", "CA", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GR",
    "HK", "HR", "HU", "IE", "IT", "JP", "LI", "LT", "LU", "LV", "MT", "MX", "NL", "NO", "NZ", "PL",
    "PT", "RO", "SE", "SG", "SI", "SK", "TH", "US",
];

/// How long an account link stays usable (Stripe's links expire after a few minutes).
const ACCOUNT_LINK_SECONDS: i64 = 300;

/// One kind of Connect request, for [`Connect::fail_next`] and [`Connect::calls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectCall {
    CreateAccount,
    RetrieveAccount,
    CreateAccountLink,
    CreateLoginLink,
    CreateTransfer,
    RetrieveTransfer,
    ListTransfers,
    ReverseTransfer,
}

/// A fault to inject into the next request of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 `api_error` before anything happens: nothing is created or changed.
    Unavailable,
    /// The request takes effect (and its answer is kept for an idempotent replay), but the
    /// caller gets a 500 `api_error`: an answer lost on the way back.
    LoseAnswer,
}

/// A request the proxy hands over: what it matched, and the parsed form or query.
#[derive(Debug, Clone)]
pub(crate) struct ConnectRequest {
    pub(crate) call: ConnectCall,
    /// The object id in the path, if any.
    pub(crate) id: Option<String>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) idempotency_key: Option<String>,
}

/// What the proxy answers.
#[derive(Debug, Clone)]
pub(crate) struct ConnectAnswer {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) replayed: bool,
}

/// Matches a Connect path; `None` for everything localstripe serves itself.
pub(crate) fn route(method: &str, path: &str) -> Option<(ConnectCall, Option<String>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["", "v1", "accounts"]) => Some((ConnectCall::CreateAccount, None)),
        ("GET", ["", "v1", "accounts", id]) => {
            Some((ConnectCall::RetrieveAccount, Some((*id).to_owned())))
        }
        ("POST", ["", "v1", "accounts", id, "login_links"]) => {
            Some((ConnectCall::CreateLoginLink, Some((*id).to_owned())))
        }
        ("POST", ["", "v1", "account_links"]) => Some((ConnectCall::CreateAccountLink, None)),
        ("POST", ["", "v1", "transfers"]) => Some((ConnectCall::CreateTransfer, None)),
        ("GET", ["", "v1", "transfers"]) => Some((ConnectCall::ListTransfers, None)),
        ("GET", ["", "v1", "transfers", id]) => {
            Some((ConnectCall::RetrieveTransfer, Some((*id).to_owned())))
        }
        ("POST", ["", "v1", "transfers", id, "reversals"]) => {
            Some((ConnectCall::ReverseTransfer, Some((*id).to_owned())))
        }
        _ => None,
    }
}

/// The charge a transfer request names as its source, which the proxy fetches from localstripe
/// before [`Connect::handle`] checks it.
pub(crate) fn source_charge(request: &ConnectRequest) -> Option<&str> {
    (request.call == ConnectCall::CreateTransfer)
        .then(|| param(&request.params, "source_transaction"))
        .flatten()
}

#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<String, Value>,
    /// Oldest first.
    transfers: Vec<Value>,
    replays: HashMap<String, Replay>,
    ignore_keys: bool,
    faults: Vec<(ConnectCall, Fault)>,
    calls: BTreeMap<ConnectCall, usize>,
    sequence: u64,
}

#[derive(Debug, Clone)]
struct Replay {
    call: ConnectCall,
    id: Option<String>,
    params: Vec<(String, String)>,
    status: u16,
    body: Value,
}

/// The Connect stand-in's state, shared by the proxy and the test. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    state: Arc<Mutex<State>>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn template(raw: &str) -> Value {
    serde_json::from_str(raw).expect("the Connect fixtures are JSON")
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `metadata[key]=value` pairs as an object.
fn metadata(params: &[(String, String)]) -> Value {
    let mut object = Map::new();
    for (key, value) in params {
        if let Some(name) = key
            .strip_prefix("metadata[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            object.insert(name.to_owned(), json!(value));
        }
    }
    Value::Object(object)
}

fn error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> ConnectAnswer {
    let mut body = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    if let Some(param) = param {
        body["param"] = json!(param);
    }
    ConnectAnswer {
        status,
        body: json!({ "error": body }),
        replayed: false,
    }
}

fn invalid(param: &str, message: &str) -> ConnectAnswer {
    error(400, "invalid_request_error", None, Some(param), message)
}

fn missing(param: &str, what: &str, id: &str) -> ConnectAnswer {
    error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        Some(param),
        &format!("No such {what}: '{id}'"),
    )
}

fn ok(body: Value) -> ConnectAnswer {
    ConnectAnswer {
        status: 200,
        body,
        replayed: false,
    }
}

fn default_currency(country: &str) -> &'static str {
    match country {
        "JP" => "jpy",
        "GB" => "gbp",
        "CA" => "cad",
        "AU" => "aud",
        "CH" | "LI" => "chf",
        "AT" | "BE" | "CY" | "DE" | "EE" | "ES" | "FI" | "FR" | "GR" | "HR" | "IE" | "IT"
        | "LT" | "LU" | "LV" | "MT" | "NL" | "PT" | "SI" | "SK" => "eur",
        _ => "usd",
    }
}

fn cleared_requirements() -> Value {
    json!({
        "alternatives": [], "current_deadline": null, "currently_due": [],
        "disabled_reason": null, "errors": [], "eventually_due": [], "past_due": [],
        "pending_verification": [],
    })
}

impl Connect {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Injects `fault` into the next request of `call` (faults of one kind are used oldest first).
    pub fn fail_next(&self, call: ConnectCall, fault: Fault) {
        self.lock().faults.push((call, fault));
    }

    /// `true`: idempotency keys are ignored, as localstripe does; `false` (the default): they
    /// replay like Stripe's.
    pub fn ignore_idempotency_keys(&self, ignore: bool) {
        self.lock().ignore_keys = ignore;
    }

    /// What the seller's finished onboarding does: details submitted, charges and payouts
    /// enabled, every requested capability active, no requirement due.
    ///
    /// # Panics
    /// When the account does not exist.
    pub fn complete_onboarding(&self, account: &str) {
        let mut state = self.lock();
        let object = state
            .accounts
            .get_mut(account)
            .unwrap_or_else(|| panic!("no connected account {account}"));
        object["details_submitted"] = json!(true);
        object["charges_enabled"] = json!(true);
        object["payouts_enabled"] = json!(true);
        object["business_type"] = json!("individual");
        object["requirements"] = cleared_requirements();
        object["tos_acceptance"] =
            json!({ "date": now(), "ip": "203.0.113.10", "user_agent": null });
        if let Some(capabilities) = object["capabilities"].as_object_mut() {
            for status in capabilities.values_mut() {
                *status = json!("active");
            }
        }
    }

    /// What Stripe does when it needs more information: charges, payouts and the capabilities
    /// disabled, a requirement past due (the details stay submitted).
    ///
    /// # Panics
    /// When the account does not exist.
    pub fn restrict(&self, account: &str) {
        let mut state = self.lock();
        let object = state
            .accounts
            .get_mut(account)
            .unwrap_or_else(|| panic!("no connected account {account}"));
        object["charges_enabled"] = json!(false);
        object["payouts_enabled"] = json!(false);
        let due = json!(["individual.verification.document"]);
        object["requirements"] = json!({
            "alternatives": [], "current_deadline": null, "currently_due": due,
            "disabled_reason": "requirements.past_due", "errors": [], "eventually_due": due,
            "past_due": due, "pending_verification": [],
        });
        if let Some(capabilities) = object["capabilities"].as_object_mut() {
            for status in capabilities.values_mut() {
                *status = json!("inactive");
            }
        }
    }

    /// Every connected account, by id.
    pub fn accounts(&self) -> Vec<Value> {
        self.lock().accounts.values().cloned().collect()
    }

    /// Every transfer, oldest first (with its reversals).
    pub fn transfers(&self) -> Vec<Value> {
        self.lock().transfers.clone()
    }

    /// How many requests of `call` arrived (replays and injected faults included).
    pub fn calls(&self, call: ConnectCall) -> usize {
        self.lock().calls.get(&call).copied().unwrap_or(0)
    }

    /// Answers one Connect request. `charge` is localstripe's answer for the transfer's
    /// `source_transaction` (status and body), when it names one.
    pub(crate) fn handle(
        &self,
        request: &ConnectRequest,
        charge: Option<(u16, Value)>,
    ) -> ConnectAnswer {
        let mut state = self.lock();
        *state.calls.entry(request.call).or_default() += 1;
        let fault = state
            .faults
            .iter()
            .position(|(call, _)| *call == request.call)
            .map(|at| state.faults.remove(at).1);
        if fault == Some(Fault::Unavailable) {
            return error(
                503,
                "api_error",
                None,
                None,
                "injected: Stripe is unavailable",
            );
        }
        let key = request
            .idempotency_key
            .clone()
            .filter(|_| !state.ignore_keys && is_write(request.call));
        if let Some(key) = &key
            && let Some(seen) = state.replays.get(key)
        {
            if seen.call != request.call || seen.id != request.id || seen.params != request.params {
                return error(
                    400,
                    "idempotency_error",
                    None,
                    None,
                    "Keys for idempotent requests can only be used with the same parameters they \
                     were first used with.",
                );
            }
            let answer = ConnectAnswer {
                status: seen.status,
                body: seen.body.clone(),
                replayed: true,
            };
            return if fault == Some(Fault::LoseAnswer) {
                error(
                    500,
                    "api_error",
                    None,
                    None,
                    "injected: the answer was lost",
                )
            } else {
                answer
            };
        }
        let answer = state.execute(request, charge);
        if let Some(key) = key {
            state.replays.insert(
                key,
                Replay {
                    call: request.call,
                    id: request.id.clone(),
                    params: request.params.clone(),
                    status: answer.status,
                    body: answer.body.clone(),
                },
            );
        }
        if fault == Some(Fault::LoseAnswer) {
            return error(
                500,
                "api_error",
                None,
                None,
                "injected: the answer was lost",
            );
        }
        answer
    }
}

fn is_write(call: ConnectCall) -> bool {
    matches!(
        call,
        ConnectCall::CreateAccount
            | ConnectCall::CreateAccountLink
            | ConnectCall::CreateLoginLink
            | ConnectCall::CreateTransfer
            | ConnectCall::ReverseTransfer
    )
}

impl State {
    fn next_id(&mut self, prefix: &str) -> String {
        self.sequence += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{prefix}1Mercato{nanos:09}{:08}", self.sequence)
    }

    fn execute(&mut self, request: &ConnectRequest, charge: Option<(u16, Value)>) -> ConnectAnswer {
        let params = &request.params;
        let id = request.id.as_deref().unwrap_or_default();
        match request.call {
            ConnectCall::CreateAccount => self.create_account(params),
            ConnectCall::RetrieveAccount => match self.accounts.get(id) {
                Some(account) => ok(account.clone()),
                None => missing("account", "account", id),
            },
            ConnectCall::CreateAccountLink => self.create_account_link(params),
            ConnectCall::CreateLoginLink => self.create_login_link(id),
            ConnectCall::CreateTransfer => self.create_transfer(params, charge),
            ConnectCall::RetrieveTransfer => {
                match self.transfers.iter().find(|t| t["id"] == json!(id)) {
                    Some(transfer) => ok(transfer.clone()),
                    None => missing("id", "transfer", id),
                }
            }
            ConnectCall::ListTransfers => self.list_transfers(params),
            ConnectCall::ReverseTransfer => self.reverse_transfer(id, params),
        }
    }

    fn create_account(&mut self, params: &[(String, String)]) -> ConnectAnswer {
        let Some(country) = param(params, "country") else {
            return invalid("country", "Missing required param: country.");
        };
        if !COUNTRIES.contains(&country) {
            return error(
                400,
                "invalid_request_error",
                Some("country_unsupported"),
                Some("country"),
                &format!("Connected accounts in {country} are not supported for this platform."),
            );
        }
        let dashboard = param(params, "controller[stripe_dashboard][type]").unwrap_or("full");
        let payer = param(params, "controller[fees][payer]").unwrap_or("account");
        let losses = param(params, "controller[losses][payments]").unwrap_or("stripe");
        let id = self.next_id("acct_");
        let mut account = template(ACCOUNT_TEMPLATE);
        account["id"] = json!(id);
        account["country"] = json!(country);
        account["created"] = json!(now());
        account["default_currency"] = json!(default_currency(country));
        account["email"] = param(params, "email").map_or(Value::Null, |e| json!(e));
        account["metadata"] = metadata(params);
        account["controller"]["stripe_dashboard"]["type"] = json!(dashboard);
        account["controller"]["fees"]["payer"] = json!(payer);
        account["controller"]["losses"]["payments"] = json!(losses);
        account["type"] = json!(match dashboard {
            "express" => "express",
            "full" => "standard",
            _ => "custom",
        });
        account["external_accounts"]["url"] = json!(format!("/v1/accounts/{id}/external_accounts"));
        let mut capabilities = Map::new();
        for (key, value) in params {
            if let Some(name) = key
                .strip_prefix("capabilities[")
                .and_then(|rest| rest.strip_suffix("][requested]"))
                && value == "true"
            {
                capabilities.insert(name.to_owned(), json!("inactive"));
            }
        }
        account["capabilities"] = Value::Object(capabilities);
        self.accounts.insert(id, account.clone());
        ok(account)
    }

    fn create_account_link(&mut self, params: &[(String, String)]) -> ConnectAnswer {
        let Some(account) = param(params, "account") else {
            return invalid("account", "Missing required param: account.");
        };
        let Some(object) = self.accounts.get(account) else {
            return error(
                400,
                "invalid_request_error",
                Some("resource_missing"),
                Some("account"),
                &format!("No such account: '{account}'"),
            );
        };
        match param(params, "type") {
            Some("account_onboarding") => {}
            Some("account_update")
                if object["controller"]["requirement_collection"] == json!("stripe") =>
            {
                return invalid(
                    "type",
                    "You cannot create `account_update` type Account Links for accounts where \
                     Stripe collects requirements.",
                );
            }
            Some("account_update") => {}
            Some(_) | None => {
                return invalid(
                    "type",
                    "Invalid type: must be account_onboarding or account_update.",
                );
            }
        }
        for url in ["return_url", "refresh_url"] {
            if param(params, url)
                .is_none_or(|u| !(u.starts_with("https://") || u.starts_with("http://")))
            {
                return invalid(url, &format!("Missing or invalid param: {url}."));
            }
        }
        let created = now();
        let mut link = template(ACCOUNT_LINK_TEMPLATE);
        link["created"] = json!(created);
        link["expires_at"] = json!(created + ACCOUNT_LINK_SECONDS);
        let token = self.next_id("");
        link["url"] = json!(format!(
            "https://connect.stripe.com/setup/e/{account}/{token}"
        ));
        ok(link)
    }

    fn create_login_link(&mut self, account: &str) -> ConnectAnswer {
        let Some(object) = self.accounts.get(account) else {
            return missing("account", "account", account);
        };
        if object["controller"]["stripe_dashboard"]["type"] != json!("express") {
            return invalid(
                "account",
                "You can only create login links for accounts that use the Express Dashboard.",
            );
        }
        if object["details_submitted"] != json!(true) {
            return invalid(
                "account",
                "Cannot create a login link for an account that has not completed onboarding.",
            );
        }
        let mut link = template(LOGIN_LINK_TEMPLATE);
        link["created"] = json!(now());
        let token = self.next_id("");
        link["url"] = json!(format!(
            "https://connect.stripe.com/express/{account}/{token}"
        ));
        ok(link)
    }

    fn create_transfer(
        &mut self,
        params: &[(String, String)],
        charge: Option<(u16, Value)>,
    ) -> ConnectAnswer {
        let amount = match param(params, "amount").map(str::parse::<i64>) {
            Some(Ok(amount)) if amount > 0 => amount,
            Some(_) => return invalid("amount", "Invalid positive integer"),
            None => return invalid("amount", "Missing required param: amount."),
        };
        let Some(currency) = param(params, "currency") else {
            return invalid("currency", "Missing required param: currency.");
        };
        let Some(destination) = param(params, "destination") else {
            return invalid("destination", "Missing required param: destination.");
        };
        let Some(account) = self.accounts.get(destination) else {
            return error(
                400,
                "invalid_request_error",
                Some("resource_missing"),
                Some("destination"),
                &format!("No such destination: '{destination}'"),
            );
        };
        if account["capabilities"]["transfers"] != json!("active") {
            return error(
                400,
                "invalid_request_error",
                Some("insufficient_capabilities_for_transfer"),
                Some("destination"),
                "Your destination account needs to have at least one of the following \
                 capabilities enabled: transfers, crypto_transfers, legacy_payments",
            );
        }
        let source = param(params, "source_transaction");
        if let Some(source) = source {
            let Some((200, charge)) = charge else {
                return error(
                    400,
                    "invalid_request_error",
                    Some("resource_missing"),
                    Some("source_transaction"),
                    &format!("No such charge: '{source}'"),
                );
            };
            if charge["currency"].as_str() != Some(currency) {
                return invalid(
                    "currency",
                    "The currency of source_transaction's balance transaction must match the \
                     transfer currency.",
                );
            }
            let charged = charge["amount"].as_i64().unwrap_or(0);
            let transferred: i64 = self
                .transfers
                .iter()
                .filter(|t| t["source_transaction"] == json!(source))
                .filter_map(|t| t["amount"].as_i64())
                .sum();
            if transferred + amount > charged {
                return invalid(
                    "amount",
                    &format!(
                        "The transfers from {source} would total {} but it is only {charged}.",
                        transferred + amount
                    ),
                );
            }
        }
        let id = self.next_id("tr_");
        let mut transfer = template(TRANSFER_TEMPLATE);
        transfer["id"] = json!(id);
        transfer["amount"] = json!(amount);
        transfer["amount_reversed"] = json!(0);
        transfer["created"] = json!(now());
        transfer["currency"] = json!(currency);
        transfer["destination"] = json!(destination);
        transfer["balance_transaction"] = json!(self.next_id("txn_"));
        transfer["destination_payment"] = json!(self.next_id("py_"));
        transfer["metadata"] = metadata(params);
        transfer["reversed"] = json!(false);
        transfer["reversals"]["data"] = json!([]);
        transfer["reversals"]["total_count"] = json!(0);
        transfer["reversals"]["url"] = json!(format!("/v1/transfers/{id}/reversals"));
        transfer["source_transaction"] = source.map_or(Value::Null, |s| json!(s));
        transfer["source_type"] = json!("card");
        transfer["transfer_group"] =
            param(params, "transfer_group").map_or(Value::Null, |g| json!(g));
        self.transfers.push(transfer.clone());
        ok(transfer)
    }

    fn list_transfers(&self, params: &[(String, String)]) -> ConnectAnswer {
        let limit = match param(params, "limit").map(str::parse::<usize>) {
            None => 10,
            Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
            Some(_) => return invalid("limit", "This value must be between 1 and 100."),
        };
        let group = param(params, "transfer_group");
        let destination = param(params, "destination");
        let matching: Vec<&Value> = self
            .transfers
            .iter()
            .rev()
            .filter(|t| group.is_none_or(|g| t["transfer_group"] == json!(g)))
            .filter(|t| destination.is_none_or(|d| t["destination"] == json!(d)))
            .collect();
        let has_more = matching.len() > limit;
        let data: Vec<Value> = matching.into_iter().take(limit).cloned().collect();
        ok(json!({ "object": "list", "data": data, "has_more": has_more, "url": "/v1/transfers" }))
    }

    fn reverse_transfer(&mut self, id: &str, params: &[(String, String)]) -> ConnectAnswer {
        let reversal_id = self.next_id("trr_");
        let refund_id = self.next_id("pyr_");
        let txn_id = self.next_id("txn_");
        let Some(transfer) = self.transfers.iter_mut().find(|t| t["id"] == json!(id)) else {
            return missing("id", "transfer", id);
        };
        let total = transfer["amount"].as_i64().unwrap_or(0);
        let reversed = transfer["amount_reversed"].as_i64().unwrap_or(0);
        let left = total - reversed;
        if left <= 0 {
            return invalid(
                "amount",
                &format!("Transfer {id} has already been fully reversed."),
            );
        }
        let amount = match param(params, "amount").map(str::parse::<i64>) {
            None => left,
            Some(Ok(amount)) if amount > 0 && amount <= left => amount,
            Some(Ok(amount)) if amount > left => {
                return invalid(
                    "amount",
                    &format!("Amount ({amount}) exceeds the {left} left to reverse on {id}."),
                );
            }
            Some(_) => return invalid("amount", "Invalid positive integer"),
        };
        let mut reversal = template(REVERSAL_TEMPLATE);
        reversal["id"] = json!(reversal_id);
        reversal["amount"] = json!(amount);
        reversal["created"] = json!(now());
        reversal["currency"] = transfer["currency"].clone();
        reversal["balance_transaction"] = json!(txn_id);
        reversal["destination_payment_refund"] = json!(refund_id);
        reversal["metadata"] = metadata(params);
        reversal["transfer"] = json!(id);
        transfer["amount_reversed"] = json!(reversed + amount);
        transfer["reversed"] = json!(reversed + amount == total);
        if let Some(list) = transfer["reversals"]["data"].as_array_mut() {
            list.push(reversal.clone());
        }
        let count = transfer["reversals"]["data"].as_array().map_or(0, Vec::len);
        transfer["reversals"]["total_count"] = json!(count);
        ok(reversal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        call: ConnectCall,
        id: Option<&str>,
        params: &[(&str, &str)],
        key: Option<&str>,
    ) -> ConnectRequest {
        ConnectRequest {
            call,
            id: id.map(str::to_owned),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            idempotency_key: key.map(str::to_owned),
        }
    }

    fn express(connect: &Connect) -> String {
        let answer = connect.handle(
            &request(
                ConnectCall::CreateAccount,
                None,
                &[
                    ("country", "JP"),
                    ("controller[stripe_dashboard][type]", "express"),
                    ("capabilities[transfers][requested]", "true"),
                ],
                None,
            ),
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["id"].as_str().expect("an id").to_owned()
    }

    #[test]
    fn routes_cover_the_connect_paths_only() {
        assert_eq!(
            route("POST", "/v1/accounts"),
            Some((ConnectCall::CreateAccount, None))
        );
        assert_eq!(
            route("POST", "/v1/transfers/tr_1/reversals"),
            Some((ConnectCall::ReverseTransfer, Some("tr_1".to_owned())))
        );
        assert_eq!(route("POST", "/v1/payment_intents"), None);
        assert_eq!(route("GET", "/v1/charges/ch_1"), None);
    }

    #[test]
    fn a_transfer_needs_an_onboarded_destination() {
        let connect = Connect::default();
        let account = express(&connect);
        let new = request(
            ConnectCall::CreateTransfer,
            None,
            &[
                ("amount", "900"),
                ("currency", "jpy"),
                ("destination", &account),
            ],
            None,
        );
        let refused = connect.handle(&new, None);
        assert_eq!(refused.status, 400);
        assert_eq!(
            refused.body["error"]["code"],
            json!("insufficient_capabilities_for_transfer")
        );
        connect.complete_onboarding(&account);
        assert_eq!(connect.handle(&new, None).status, 200);
        assert_eq!(connect.transfers().len(), 1);
    }

    #[test]
    fn a_key_replays_its_first_answer_unless_keys_are_ignored() {
        let connect = Connect::default();
        let account = express(&connect);
        connect.complete_onboarding(&account);
        let new = request(
            ConnectCall::CreateTransfer,
            None,
            &[
                ("amount", "900"),
                ("currency", "jpy"),
                ("destination", &account),
            ],
            Some("key-1"),
        );
        let first = connect.handle(&new, None);
        let again = connect.handle(&new, None);
        assert!(again.replayed);
        assert_eq!(first.body["id"], again.body["id"]);
        let mut other = new.clone();
        other.params[0].1 = "901".to_owned();
        assert_eq!(
            connect.handle(&other, None).body["error"]["type"],
            json!("idempotency_error")
        );
        connect.ignore_idempotency_keys(true);
        assert_ne!(connect.handle(&new, None).body["id"], first.body["id"]);
        assert_eq!(connect.transfers().len(), 2);
    }

    #[test]
    fn a_lost_answer_still_takes_effect() {
        let connect = Connect::default();
        let account = express(&connect);
        connect.complete_onboarding(&account);
        connect.fail_next(ConnectCall::CreateTransfer, Fault::LoseAnswer);
        let new = request(
            ConnectCall::CreateTransfer,
            None,
            &[
                ("amount", "900"),
                ("currency", "jpy"),
                ("destination", &account),
            ],
            Some("key-2"),
        );
        assert_eq!(connect.handle(&new, None).status, 500);
        assert_eq!(connect.transfers().len(), 1);
        let replay = connect.handle(&new, None);
        assert_eq!((replay.status, replay.replayed), (200, true));
        assert_eq!(connect.transfers().len(), 1);
    }

    #[test]
    fn reversals_never_exceed_the_transfer() {
        let connect = Connect::default();
        let account = express(&connect);
        connect.complete_onboarding(&account);
        let created = connect.handle(
            &request(
                ConnectCall::CreateTransfer,
                None,
                &[
                    ("amount", "900"),
                    ("currency", "jpy"),
                    ("destination", &account),
                ],
                None,
            ),
            None,
        );
        let id = created.body["id"].as_str().expect("id").to_owned();
        let reverse = |amount: Option<&str>| {
            let params: Vec<(&str, &str)> = amount.map(|a| ("amount", a)).into_iter().collect();
            connect.handle(
                &request(ConnectCall::ReverseTransfer, Some(&id), &params, None),
                None,
            )
        };
        assert_eq!(reverse(Some("300")).status, 200);
        assert_eq!(reverse(Some("601")).status, 400);
        assert_eq!(reverse(None).body["amount"], json!(600));
        assert_eq!(reverse(None).status, 400);
        let transfer = &connect.transfers()[0];
        assert_eq!(
            (
                transfer["amount_reversed"].clone(),
                transfer["reversed"].clone()
            ),
            (json!(900), json!(true))
        );
    }
}
