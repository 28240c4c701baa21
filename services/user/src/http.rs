//! The issuer's public HTTP documents: the JWKS at `/.well-known/jwks.json` and the OpenID
//! Connect discovery document at `/.well-known/openid-configuration`, both cacheable.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::app::UserApp;

/// Path of the JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The `/.well-known/*` routes, merged into the readiness router.
pub fn well_known_router(app: UserApp) -> Router {
    Router::new()
        .route(JWKS_PATH, get(jwks))
        .route(DISCOVERY_PATH, get(discovery))
        .with_state(app)
}

fn cacheable(app: &UserApp, body: serde_json::Value) -> Response {
    let max_age = app.auth().jwks_max_age.as_secs();
    let mut response = axum::Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

async fn jwks(State(app): State<UserApp>) -> Response {
    match app.published_jwks().await {
        Ok(keys) => cacheable(&app, json!({ "keys": keys })),
        Err(error) => {
            // Verifiers keep their cached keys when this fails; they must not cache an error.
            tracing::warn!(%error, "jwks unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "jwks unavailable").into_response()
        }
    }
}

async fn discovery(State(app): State<UserApp>) -> Response {
    // The algorithms of the published keys, so a verifier knows what to expect before fetching
    // the JWKS (both during a rotation from one algorithm to the other).
    let algorithms = match app.published_jwks().await {
        Ok(keys) => keys
            .iter()
            .filter_map(|jwk| jwk.get("alg").and_then(serde_json::Value::as_str))
            .map(str::to_owned)
            .collect::<BTreeSet<String>>(),
        Err(error) => {
            tracing::warn!(%error, "discovery unavailable");
            return (StatusCode::SERVICE_UNAVAILABLE, "discovery unavailable").into_response();
        }
    };
    let issuer = app.auth().issuer.trim_end_matches('/').to_owned();
    let body = json!({
        "issuer": app.auth().issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["iss", "aud", "sub", "exp", "nbf", "iat", "jti", "roles", "email"],
    });
    cacheable(&app, body)
}
