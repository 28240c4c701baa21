//! `keys list` and `keys rotate`: the user service's `SigningKeyService`.
//!
//! A rotation publishes the new key first (state NEXT) and signs with it only after the activation
//! delay, so every verifier's cached JWKS knows it before the first token it signed arrives;
//! `--activation-delay 0s` activates it at once (an emergency: verifiers refresh on the unknown
//! `kid`).

use std::time::Duration;

use mercato_proto::mercato::user::v1 as user;
use serde_json::{Value, json};

use crate::connect::Operator;
use crate::coupons::key_or_fresh;
use crate::error::{Answer as _, CliError};
use crate::render::{self, Table};

/// `keys rotate` flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RotateArgs {
    /// JOSE algorithm of the new key, `EdDSA` or `RS256` (default: the configured one).
    #[arg(long)]
    pub algorithm: Option<String>,
    /// How long the new key is published before it signs, e.g. `1h` (default: the configured
    /// delay).
    #[arg(long, value_parser = mercato_platform::settings::parse_duration)]
    pub activation_delay: Option<Duration>,
    /// Makes a retry safe: the same key returns the key the first call created (default: a fresh
    /// UUID).
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Every signing key still within its retention, newest first (all pages).
pub async fn list(operator: &Operator) -> Result<Vec<user::SigningKey>, CliError> {
    let mut client = operator.signing_keys()?;
    let mut keys = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_signing_keys(operator.request(user::ListSigningKeysRequest {
                page_size: 100,
                page_token,
            }))
            .await
            .answer("SigningKeyService.ListSigningKeys")?;
        keys.extend(page.signing_keys);
        if page.next_page_token.is_empty() {
            return Ok(keys);
        }
        page_token = page.next_page_token;
    }
}

/// Starts a rotation; the new key (NEXT, or ACTIVE with a zero delay).
pub async fn rotate(operator: &Operator, args: &RotateArgs) -> Result<user::SigningKey, CliError> {
    let activation_delay = args
        .activation_delay
        .map(|delay| {
            prost_types::Duration::try_from(delay).map_err(|_| {
                CliError::Usage(format!("--activation-delay {delay:?} is out of range"))
            })
        })
        .transpose()?;
    operator
        .signing_keys()?
        .rotate_signing_key(operator.request(user::RotateSigningKeyRequest {
            idempotency_key: key_or_fresh(args.idempotency_key.as_deref()),
            algorithm: args.algorithm.clone().unwrap_or_default(),
            activation_delay,
        }))
        .await
        .answer("SigningKeyService.RotateSigningKey")?
        .signing_key
        .ok_or_else(|| CliError::Failed("RotateSigningKey answered without the key".to_owned()))
}

/// `ACTIVE`.
pub fn state_name(key: &user::SigningKey) -> String {
    let name = user::SigningKeyState::try_from(key.state)
        .ok()
        .map(|state| state.as_str_name());
    render::enum_name(name, "SIGNING_KEY_STATE_", key.state)
}

/// One key as JSON (the public JWK included).
pub fn key_json(key: &user::SigningKey) -> Value {
    json!({
        "kid": key.kid,
        "algorithm": key.algorithm,
        "state": state_name(key),
        "create_time": render::time_json(key.create_time.as_ref()),
        "activate_time": render::time_json(key.activate_time.as_ref()),
        "retire_time": render::time_json(key.retire_time.as_ref()),
        "unpublish_time": render::time_json(key.unpublish_time.as_ref()),
        "public_jwk": serde_json::from_str::<Value>(&key.public_jwk).unwrap_or(Value::Null),
    })
}

/// Keys as a table.
pub fn keys_table(keys: &[user::SigningKey]) -> String {
    let mut table = Table::with_header([
        "kid",
        "algorithm",
        "state",
        "created",
        "activates",
        "retires",
    ]);
    for key in keys {
        table.row([
            key.kid.clone(),
            key.algorithm.clone(),
            state_name(key),
            render::time(key.create_time.as_ref()),
            render::time(key.activate_time.as_ref()),
            render::time(key.retire_time.as_ref()),
        ]);
    }
    table.render()
}
