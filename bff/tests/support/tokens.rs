//! Signing keys and tokens as an issuer makes them, and a JWKS server that counts its fetches.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The built-in issuer and audience every test BFF trusts.
pub const AUDIENCE: &str = "mercato";

/// The RSA key used by tests (generated for tests only; never used anywhere else).
const RSA_TEST_KEY: &str = include_str!("../fixtures/rsa_test_key.pem");

/// Seconds since the epoch.
pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after epoch")
            .as_secs(),
    )
    .expect("timestamp fits i64")
}

/// A signing key with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
    /// RSA only: the public key PEM (for the HS256 confusion attack).
    pub public_pem: Option<String>,
}

impl TestKey {
    /// A fresh Ed25519 key.
    pub fn ed25519(kid: &str) -> Self {
        let seed: [u8; 32] = rand::random();
        // PKCS#8 v1 wrapping of an Ed25519 seed: a fixed prefix then the 32 seed bytes.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&der),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(public),
            }),
            public_pem: None,
        }
    }

    /// The fixture RSA key.
    pub fn rsa(kid: &str) -> Self {
        use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
        use rsa::traits::PublicKeyParts as _;
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_TEST_KEY).expect("fixture key parses");
        let public = private.to_public_key();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(RSA_TEST_KEY.as_bytes()).expect("fixture key"),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }),
            public_pem: Some(
                public
                    .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                    .expect("public pem"),
            ),
        }
    }

    /// Signs `claims` with this key's algorithm and kid.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// Signs `claims` under an arbitrary header.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("token signs")
    }
}

/// Standard valid claims for `sub`.
pub fn claims(issuer: &str, sub: &str, roles: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": issuer, "aud": AUDIENCE, "sub": sub, "roles": roles,
        "iat": now, "nbf": now, "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// A compact JWS with `alg: none` and an empty signature.
pub fn unsigned_token(kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `token` with its payload replaced by `claims` and the original signature kept.
pub fn tampered(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().expect("header part");
    let _payload = parts.next().expect("payload part");
    let signature = parts.next().expect("signature part");
    format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A JWKS endpoint whose key set tests change at run time, counting fetches; it can be made to
/// fail as if the issuer were down.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<JwksState>,
    stop: CancellationToken,
}

struct JwksState {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    down: AtomicBool,
}

impl JwksServer {
    /// Starts the server publishing `keys`.
    pub async fn start(keys: &[&TestKey]) -> Self {
        let state = Arc::new(JwksState {
            keys: Mutex::new(keys.iter().map(|key| key.jwk.clone()).collect()),
            fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        });
        let router = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind jwks");
        let addr = listener.local_addr().expect("jwks addr");
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
                .expect("jwks server runs");
        });
        Self { addr, state, stop }
    }

    /// The issuer URL (the server's base URL).
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// Replaces the published keys.
    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().expect("keys lock") =
            keys.iter().map(|key| key.jwk.clone()).collect();
    }

    /// Publishes raw JWK values.
    pub fn publish_raw(&self, keys: Vec<Value>) {
        *self.state.keys.lock().expect("keys lock") = keys;
    }

    /// How many times the JWKS was requested.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Makes every fetch fail (503) or succeed again.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.state) <= 2 {
            self.stop.cancel();
        }
    }
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = state.keys.lock().expect("keys lock").clone();
    Json(json!({ "keys": keys })).into_response()
}
