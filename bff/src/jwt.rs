//! Access-token verification: the algorithm allow-list, required `kid`/`iss`/`aud`, time claims
//! with a small leeway, and a per-issuer JWKS cache that refreshes with single-flight and a
//! cooldown and keeps serving cached keys while the issuer is unreachable.
//!
//! Why each rule exists:
//! - Only `EdDSA` and `RS256` are accepted, and a key is used only with the algorithm its JWK
//!   declares, so `alg: none` and the HS256-signed-with-the-public-key confusion can never pass.
//! - The issuer is read from the unverified payload only to pick which key set to check against;
//!   it is then verified again as part of the signed claims.
//! - Unknown `kid`s are attacker-controlled, so they may cause at most one JWKS fetch per
//!   cooldown: concurrent misses wait for the one fetch in flight instead of starting their own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

/// The only signature algorithms a token may use.
pub const ALLOWED_ALGORITHMS: [Algorithm; 2] = [Algorithm::EdDSA, Algorithm::RS256];

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Whether an issuer is the shop's own token issuer or an external OIDC provider whose subjects
/// must be mapped to internal user ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerKind {
    /// The user service's built-in issuer: `sub` is the internal user id.
    BuiltIn,
    /// An external provider: `sub` is mapped through `ProvisionExternalUser`.
    External,
}

/// One trusted issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// Where its JWKS is served.
    pub jwks_url: String,
    /// The `aud` its tokens must carry.
    pub audience: String,
    /// Built-in or external.
    pub kind: IssuerKind,
}

/// JWKS cache behaviour.
#[derive(Debug, Clone, Copy)]
pub struct JwksPolicy {
    /// How long a fetched key set is used before it is refetched.
    pub ttl: Duration,
    /// Minimum time between two fetches caused by unknown `kid`s (or by a stale set).
    pub refresh_cooldown: Duration,
    /// Cap on one JWKS fetch.
    pub fetch_timeout: Duration,
    /// Clock skew tolerated on the time claims.
    pub leeway: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            refresh_cooldown: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
            leeway: DEFAULT_LEEWAY,
        }
    }
}

/// Why a token was refused. Every variant becomes `UNAUTHENTICATED`; the distinction is logged
/// and exposed only as the coarse reason a client can act on ([`TokenError::reason`]).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not a well-formed JWT.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not on the allow-list.
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header has no `kid`.
    #[error("token has no key id")]
    MissingKid,
    /// `iss` is missing or not a configured issuer.
    #[error("untrusted issuer")]
    UntrustedIssuer,
    /// No key with this `kid` is published (even after a refresh).
    #[error("unknown key id")]
    UnknownKid,
    /// The key's declared algorithm differs from the token's.
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    /// The token expired.
    #[error("token expired")]
    Expired,
    /// Signature, audience, issuer, `nbf`, `iat` or a required claim failed.
    #[error("token rejected: {0}")]
    Invalid(String),
}

impl TokenError {
    /// The `ErrorInfo` reason sent to the client.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Expired => "TOKEN_EXPIRED",
            Self::Malformed
            | Self::AlgorithmNotAllowed
            | Self::MissingKid
            | Self::UntrustedIssuer
            | Self::UnknownKid
            | Self::AlgorithmMismatch
            | Self::Invalid(_) => "TOKEN_INVALID",
        }
    }

    /// The finer reason counted in `mercato_bff_auth_failures_total` (operators may see it;
    /// clients get only [`reason`](Self::reason)).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::MissingKid => "missing_kid",
            Self::UntrustedIssuer => "untrusted_issuer",
            Self::UnknownKid => "unknown_kid",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::Expired => "expired",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// The claims the BFF reads from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The issuer that signed it.
    pub issuer: String,
    /// Built-in or external issuer.
    pub kind: IssuerKind,
    /// `sub`.
    pub subject: String,
    /// `roles` (unknown names are kept; the principal ignores them).
    pub roles: Vec<String>,
    /// `email`, if present.
    pub email: Option<String>,
    /// `email_verified`.
    pub email_verified: bool,
    /// `name`, else `preferred_username`.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

/// Verifies access tokens against the configured issuers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Verifier {
    issuers: Arc<HashMap<String, Arc<IssuerKeys>>>,
    leeway: Duration,
}

impl Verifier {
    /// A verifier for `issuers`; nothing is fetched until the first token arrives.
    pub fn new(issuers: Vec<IssuerConfig>, policy: JwksPolicy, http: reqwest::Client) -> Self {
        let issuers = issuers
            .into_iter()
            .map(|config| {
                let keys = IssuerKeys::new(config, policy, http.clone());
                (keys.config.issuer.clone(), Arc::new(keys))
            })
            .collect();
        Self {
            issuers: Arc::new(issuers),
            leeway: policy.leeway,
        }
    }

    /// The configured issuer named `issuer`.
    pub fn issuer(&self, issuer: &str) -> Option<&IssuerConfig> {
        self.issuers.get(issuer).map(|keys| &keys.config)
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let kid = header
            .kid
            .filter(|kid| !kid.is_empty())
            .ok_or(TokenError::MissingKid)?;
        // Unverified, only to choose the key set; `iss` is verified with the signature below.
        let issuer = jsonwebtoken::dangerous::insecure_decode::<IssuerOnly>(token)
            .map_err(|_| TokenError::Malformed)?
            .claims
            .iss
            .ok_or(TokenError::UntrustedIssuer)?;
        let keys = self
            .issuers
            .get(&issuer)
            .ok_or(TokenError::UntrustedIssuer)?;
        let key = keys.key(&kid).await.ok_or(TokenError::UnknownKid)?;
        if key.algorithm != header.alg {
            return Err(TokenError::AlgorithmMismatch);
        }

        let leeway = self.leeway.as_secs();
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&keys.config.issuer]);
        validation.set_audience(&[&keys.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|err| {
                // `ErrorKind` is non-exhaustive; only expiry gets its own client-facing reason.
                if matches!(
                    err.kind(),
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature
                ) {
                    TokenError::Expired
                } else {
                    TokenError::Invalid(err.to_string())
                }
            })?;
        let claims = data.claims;
        // jsonwebtoken does not check `iat`; a token issued in the future is a forged or
        // mis-clocked token either way.
        if claims.iat > jsonwebtoken::get_current_timestamp() + leeway {
            return Err(TokenError::Invalid("issued in the future".to_owned()));
        }
        if claims.sub.is_empty() {
            return Err(TokenError::Invalid("empty subject".to_owned()));
        }
        Ok(VerifiedToken {
            issuer,
            kind: keys.config.kind,
            subject: claims.sub,
            roles: claims.roles,
            email: claims.email,
            email_verified: claims.email_verified,
            name: claims.name.or(claims.preferred_username),
        })
    }
}

/// A usable public key.
#[derive(Clone)]
struct Key {
    algorithm: Algorithm,
    decoding: DecodingKey,
}

/// What is cached for one issuer.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Key>,
    /// When the last successful fetch finished.
    fetched_at: Option<Instant>,
    /// When the last fetch (successful or not) started; drives the cooldown.
    attempted_at: Option<Instant>,
}

/// One issuer's configuration and key cache.
struct IssuerKeys {
    config: IssuerConfig,
    policy: JwksPolicy,
    http: reqwest::Client,
    set: RwLock<KeySet>,
    /// Held for the duration of a fetch: the single-flight gate.
    fetching: Mutex<()>,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IssuerKeys {
    fn new(config: IssuerConfig, policy: JwksPolicy, http: reqwest::Client) -> Self {
        Self {
            config,
            policy,
            http,
            set: RwLock::new(KeySet::default()),
            fetching: Mutex::new(()),
        }
    }

    /// The key for `kid`, refreshing the set when it is stale or lacks `kid`.
    async fn key(&self, kid: &str) -> Option<Key> {
        let (cached, stale) = {
            let set = self.set.read().await;
            (set.keys.get(kid).cloned(), self.is_stale(&set))
        };
        match (cached, stale) {
            (Some(key), false) => Some(key),
            // A known key in a stale set: whoever gets the gate refetches (so a revoked key
            // disappears); everyone else keeps using the cached key rather than queueing behind
            // a possibly unreachable issuer.
            (Some(key), true) => match self.fetching.try_lock() {
                Ok(_gate) => {
                    self.refresh_if_due().await;
                    self.set.read().await.keys.get(kid).cloned()
                }
                Err(_) => Some(key),
            },
            // Unknown kid: wait for the one fetch in flight (or start it), then look again.
            (None, _) => {
                let _gate = self.fetching.lock().await;
                self.refresh_if_due().await;
                self.set.read().await.keys.get(kid).cloned()
            }
        }
    }

    fn is_stale(&self, set: &KeySet) -> bool {
        set.fetched_at
            .is_none_or(|at| at.elapsed() >= self.policy.ttl)
    }

    /// Fetches the set unless a fetch started within the cooldown. Call with the gate held.
    async fn refresh_if_due(&self) {
        {
            let mut set = self.set.write().await;
            if set
                .attempted_at
                .is_some_and(|at| at.elapsed() < self.policy.refresh_cooldown)
            {
                return;
            }
            set.attempted_at = Some(Instant::now());
        }
        let fetched = self.fetch().await;
        crate::metrics::jwks_refreshed(&self.config.issuer, fetched.is_ok());
        match fetched {
            Ok(keys) => {
                tracing::debug!(issuer = %self.config.issuer, keys = keys.len(), "jwks refreshed");
                let mut set = self.set.write().await;
                set.keys = keys;
                set.fetched_at = Some(Instant::now());
            }
            // The cached keys stay: an unreachable issuer must not sign everybody out.
            Err(err) => tracing::warn!(
                issuer = %self.config.issuer, url = %self.config.jwks_url, error = %err,
                "jwks fetch failed, keeping cached keys"
            ),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, reqwest::Error> {
        let jwks: JwkSet = self
            .http
            .get(&self.config.jwks_url)
            .timeout(self.policy.fetch_timeout)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(jwks
            .keys
            .iter()
            .filter_map(|jwk| usable_key(jwk).map(|key| (jwk.common.key_id.clone(), key)))
            .filter_map(|(kid, key)| kid.map(|kid| (kid, key)))
            .collect())
    }
}

/// The key a JWK describes, if it is a signing key of an allowed algorithm. Symmetric (`oct`)
/// and encryption keys are never used, whatever the token says.
fn usable_key(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(ref usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::OctetKeyPair(params), None | Some(KeyAlgorithm::EdDSA))
            if params.curve == EllipticCurve::Ed25519 =>
        {
            Algorithm::EdDSA
        }
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        _ => return None,
    };
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        algorithm,
        decoding,
    })
}
