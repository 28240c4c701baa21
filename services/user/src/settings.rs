//! The user service's typed settings: the shared blocks plus the token issuer's keys, read from
//! `MERCATO_USER__<KEY>` (then `MERCATO__<KEY>`, then the defaults below).

use std::time::Duration;

use mercato_platform::settings::{
    AmqpSettings, CommonSettings, ConfigError, DatabaseSettings, EnvSource, FromSetting,
    ListenSettings, RedisSettings,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::key_encryption::KeyEncryptionKey;
use crate::keys::SigningAlgorithm;

/// The service name used for variables, logs and the `application_name`.
pub const SERVICE: &str = "user";

/// Everything the user service reads at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listeners, telemetry, limits, shutdown grace.
    pub common: CommonSettings,
    /// The service's PostgreSQL database.
    pub database: DatabaseSettings,
    /// Redis (login throttling).
    pub redis: RedisSettings,
    /// RabbitMQ (the outbox relay publishes `user.registered` / `user.deleted`).
    pub amqp: AmqpSettings,
    /// `BUS_NAMESPACE`: prefix of every exchange name, empty (the root namespace) by default.
    pub bus_namespace: String,
    /// Token issuer and sign-in rules.
    pub auth: AuthSettings,
}

/// Settings of the built-in token issuer and the sign-in rules.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `ISSUER`: the `iss` of issued tokens and the base URL of the discovery document, default
    /// `http://127.0.0.1:8081`.
    pub issuer: String,
    /// `AUDIENCE`: the `aud` of issued tokens, default `mercato`.
    pub audience: String,
    /// `ACCESS_TOKEN_TTL`, default 15m.
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL`: lifetime of a token family, default 720h (30 days).
    pub refresh_token_ttl: Duration,
    /// `SIGNING_KEY_PEM`: a PKCS#8 Ed25519 or RSA private key (detected from the key) to sign
    /// with instead of a generated one (secret). It is stored (once) like a generated key, so
    /// rotation works the same way.
    pub signing_key_pem: Option<SecretString>,
    /// `SIGNING_ALGORITHM`: `EdDSA` (default) or `RS256`, the algorithm of keys the service
    /// generates (at first start and on rotation). Keys of both kinds coexist, so changing it
    /// and rotating moves to the other algorithm while older tokens keep verifying.
    pub signing_algorithm: SigningAlgorithm,
    /// `KEY_ENCRYPTION_KEY`: 32 random bytes in base64 (secret). When set, private signing keys
    /// are stored AES-256-GCM encrypted under it, and plaintext keys are encrypted at start-up.
    /// Once keys are encrypted, starting without it (or with another one) fails.
    pub key_encryption_key: Option<SecretString>,
    /// `KEY_ACTIVATION_DELAY`: how long a rotated key is published before it signs, default 10m
    /// (at least the verifiers' JWKS cache TTL).
    pub key_activation_delay: Duration,
    /// `JWKS_MAX_AGE`: `Cache-Control: max-age` of the JWKS and discovery document, default 5m.
    pub jwks_max_age: Duration,
    /// `EXTERNAL_ISSUERS`: comma-separated issuer URLs of external identity providers. When set,
    /// local sign-in and token issuing are disabled.
    pub external_issuers: Vec<String>,
    /// Password hashing cost.
    pub password_hashing: PasswordHashing,
    /// `LOGIN_MAX_FAILURES` (default 5) failed logins per e-mail within `LOGIN_FAILURE_WINDOW`
    /// (default 15m) lock that address until the window ends.
    pub login_max_failures: u32,
    /// See `login_max_failures`.
    pub login_failure_window: Duration,
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashing {
    /// `PASSWORD_HASH_MEMORY_KIB`, default 19456 (19 MiB, the OWASP recommendation).
    pub memory_kib: u32,
    /// `PASSWORD_HASH_ITERATIONS`, default 2.
    pub iterations: u32,
    /// `PASSWORD_HASH_CONCURRENCY`, default the number of cores: hashes and verifications run
    /// at once at most; more wait their turn. Each runs on a thread of its own that keeps a
    /// block of `memory_kib` for all its runs, so the service holds this × `memory_kib` once
    /// busy, and a burst of sign-ups or logins multiplies neither memory nor cores.
    pub concurrency: u32,
}

impl Default for PasswordHashing {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            concurrency: std::thread::available_parallelism()
                .map_or(1, |cores| u32::try_from(cores.get()).unwrap_or(u32::MAX)),
        }
    }
}

impl AuthSettings {
    /// Whether an external identity provider replaces the built-in issuer.
    pub fn external_mode(&self) -> bool {
        !self.external_issuers.is_empty()
    }

    /// The defaults, for tests and tools.
    pub fn local_defaults() -> Self {
        Self {
            issuer: "http://127.0.0.1:8081".to_owned(),
            audience: "mercato".to_owned(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            signing_key_pem: None,
            signing_algorithm: SigningAlgorithm::EdDsa,
            key_encryption_key: None,
            key_activation_delay: Duration::from_secs(10 * 60),
            jwks_max_age: Duration::from_secs(5 * 60),
            external_issuers: Vec::new(),
            password_hashing: PasswordHashing::default(),
            login_max_failures: 5,
            login_failure_window: Duration::from_secs(15 * 60),
        }
    }
}

impl Settings {
    /// Reads every setting, reporting all problems at once.
    pub fn read(source: &EnvSource) -> Result<Self, ConfigError> {
        let reader = source.service(SERVICE);
        let listen = ListenSettings {
            grpc_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 50051)),
            http_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8081)),
        };
        let defaults = AuthSettings::local_defaults();
        let common = CommonSettings::read(&reader, listen);
        let database = DatabaseSettings::read(&reader);
        let redis = RedisSettings::read(&reader);
        let amqp = AmqpSettings::read(&reader);
        let bus_namespace = reader.with_default("BUS_NAMESPACE", String::new());
        let issuer = reader.with_default("ISSUER", defaults.issuer);
        let audience = reader.with_default("AUDIENCE", defaults.audience);
        let access_token_ttl = reader.with_default("ACCESS_TOKEN_TTL", defaults.access_token_ttl);
        let refresh_token_ttl =
            reader.with_default("REFRESH_TOKEN_TTL", defaults.refresh_token_ttl);
        let signing_key_pem = reader.optional_secret("SIGNING_KEY_PEM");
        let signing_algorithm =
            reader.with_default("SIGNING_ALGORITHM", defaults.signing_algorithm);
        let key_encryption_key = reader.optional_secret("KEY_ENCRYPTION_KEY");
        if let Some(Some(kek)) = &key_encryption_key
            && KeyEncryptionKey::from_base64(kek.expose_secret()).is_err()
        {
            reader.invalid(
                "KEY_ENCRYPTION_KEY",
                "must be 32 random bytes encoded in base64 (openssl rand -base64 32)",
            );
        }
        let key_activation_delay =
            reader.with_default("KEY_ACTIVATION_DELAY", defaults.key_activation_delay);
        let jwks_max_age = reader.with_default("JWKS_MAX_AGE", defaults.jwks_max_age);
        let external_issuers = reader
            .optional::<String>("EXTERNAL_ISSUERS")
            .map(|list| split_list(list.as_deref()));
        let memory_kib = reader.with_default(
            "PASSWORD_HASH_MEMORY_KIB",
            defaults.password_hashing.memory_kib,
        );
        let iterations = reader.with_default(
            "PASSWORD_HASH_ITERATIONS",
            defaults.password_hashing.iterations,
        );
        let hash_concurrency = reader.with_default(
            "PASSWORD_HASH_CONCURRENCY",
            defaults.password_hashing.concurrency,
        );
        let login_max_failures =
            reader.with_default("LOGIN_MAX_FAILURES", defaults.login_max_failures);
        let login_failure_window =
            reader.with_default("LOGIN_FAILURE_WINDOW", defaults.login_failure_window);
        if access_token_ttl == Some(Duration::ZERO) {
            reader.invalid("ACCESS_TOKEN_TTL", "must be greater than zero");
        }
        if refresh_token_ttl == Some(Duration::ZERO) {
            reader.invalid("REFRESH_TOKEN_TTL", "must be greater than zero");
        }
        if memory_kib.is_some_and(|kib| kib < 8) {
            reader.invalid("PASSWORD_HASH_MEMORY_KIB", "must be at least 8");
        }
        if iterations == Some(0) {
            reader.invalid("PASSWORD_HASH_ITERATIONS", "must be at least 1");
        }
        if hash_concurrency == Some(0) {
            reader.invalid("PASSWORD_HASH_CONCURRENCY", "must be at least 1");
        }
        reader.finish(|| {
            Some(Self {
                common: common?,
                database: database?,
                redis: redis?,
                amqp: amqp?,
                bus_namespace: bus_namespace?,
                auth: AuthSettings {
                    issuer: issuer?,
                    audience: audience?,
                    access_token_ttl: access_token_ttl?,
                    refresh_token_ttl: refresh_token_ttl?,
                    signing_key_pem: signing_key_pem?,
                    signing_algorithm: signing_algorithm?,
                    key_encryption_key: key_encryption_key?,
                    key_activation_delay: key_activation_delay?,
                    jwks_max_age: jwks_max_age?,
                    external_issuers: external_issuers?,
                    password_hashing: PasswordHashing {
                        memory_kib: memory_kib?,
                        iterations: iterations?,
                        concurrency: hash_concurrency?,
                    },
                    login_max_failures: login_max_failures?,
                    login_failure_window: login_failure_window?,
                },
            })
        })
    }
}

impl FromSetting for SigningAlgorithm {
    fn from_setting(raw: &str) -> Result<Self, String> {
        raw.trim().parse()
    }
}

/// `a, b,,c` → `[a, b, c]`.
fn split_list(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> EnvSource {
        EnvSource::from_pairs([
            (
                "MERCATO__DATABASE_URL",
                "postgres://postgres@127.0.0.1/user",
            ),
            ("MERCATO__REDIS_URL", "redis://127.0.0.1:6379"),
            ("MERCATO__AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        ])
    }

    #[test]
    fn defaults_issue_local_tokens() {
        let settings = Settings::read(&base()).expect("valid");
        assert_eq!(settings.auth.issuer, "http://127.0.0.1:8081");
        assert_eq!(settings.auth.audience, "mercato");
        assert_eq!(settings.auth.access_token_ttl, Duration::from_secs(900));
        assert!(!settings.auth.external_mode());
    }

    #[test]
    fn external_issuers_are_a_comma_separated_list() {
        let source = base().with(
            "MERCATO_USER__EXTERNAL_ISSUERS",
            " https://idp.example.com/ ,https://other.example.com",
        );
        let settings = Settings::read(&source).expect("valid");
        assert_eq!(
            settings.auth.external_issuers,
            ["https://idp.example.com/", "https://other.example.com"]
        );
        assert!(settings.auth.external_mode());
    }

    #[test]
    fn the_signing_algorithm_is_eddsa_unless_rs256_is_chosen() {
        let settings = Settings::read(&base()).expect("valid");
        assert_eq!(settings.auth.signing_algorithm, SigningAlgorithm::EdDsa);
        let source = base().with("MERCATO_USER__SIGNING_ALGORITHM", "RS256");
        let settings = Settings::read(&source).expect("valid");
        assert_eq!(settings.auth.signing_algorithm, SigningAlgorithm::Rs256);
        let source = base().with("MERCATO_USER__SIGNING_ALGORITHM", "HS256");
        let err = Settings::read(&source).expect_err("invalid");
        assert!(err.to_string().contains("MERCATO_USER__SIGNING_ALGORITHM"));
    }

    #[test]
    fn a_key_encryption_key_must_be_32_bytes_of_base64() {
        let settings = Settings::read(&base()).expect("valid");
        assert!(settings.auth.key_encryption_key.is_none());
        let good = base().with(
            "MERCATO_USER__KEY_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
        assert!(
            Settings::read(&good)
                .expect("valid")
                .auth
                .key_encryption_key
                .is_some()
        );
        let short = base().with("MERCATO_USER__KEY_ENCRYPTION_KEY", "c2hvcnQ=");
        let err = Settings::read(&short).expect_err("invalid");
        assert!(err.to_string().contains("MERCATO_USER__KEY_ENCRYPTION_KEY"));
    }

    #[test]
    fn a_zero_token_lifetime_names_the_variable() {
        let source = base().with("MERCATO_USER__ACCESS_TOKEN_TTL", "0s");
        let err = Settings::read(&source).expect_err("invalid");
        assert!(err.to_string().contains("MERCATO_USER__ACCESS_TOKEN_TTL"));
    }
}
