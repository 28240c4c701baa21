//! The payment service's typed settings: the shared blocks plus the order service's address, the
//! webhook secrets, the wallet limits and the reconciliation sweep, read from
//! `MERCATO_PAYMENT__<KEY>` (then `MERCATO__<KEY>`, then the defaults).

use std::time::Duration;

use mercato_platform::settings::{
    AmqpSettings, CommonSettings, ConfigError, DatabaseSettings, EnvSource, ListenSettings, Reader,
};
use secrecy::{ExposeSecret as _, SecretString};

/// The service name used for variables, logs and the `application_name`.
pub const SERVICE: &str = "payment";

/// Everything the payment service reads at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listeners, telemetry, limits, shutdown grace.
    pub common: CommonSettings,
    /// The service's PostgreSQL database.
    pub database: DatabaseSettings,
    /// RabbitMQ (consumers and the outbox relay).
    pub amqp: AmqpSettings,
    /// `BUS_NAMESPACE`: prefix of every exchange and queue name, empty by default.
    pub bus_namespace: String,
    /// `ORDER_SERVICE_URL`: gRPC base URI of the order service (default
    /// `http://127.0.0.1:50053`), called for `AttachPayment`.
    pub order_service_url: String,
    /// Payments: currency, webhook secrets, the public URL of the sandbox page, reconciliation.
    pub payments: PaymentSettings,
    /// The points wallet.
    pub wallet: WalletSettings,
    /// Seller payouts (Stripe Connect).
    pub payouts: PayoutSettings,
}

/// Settings of seller payouts (`MERCATO_PAYMENT__<KEY>`). Payouts go through Stripe Connect, so
/// they need `STRIPE_SECRET_KEY`; without it `PayoutService` refuses to create accounts and no
/// payout is ever recorded.
#[derive(Debug, Clone)]
pub struct PayoutSettings {
    /// `PLATFORM_FEE_BPS`: the platform's fee on a seller's lines, in basis points of their
    /// total, 0-10,000 (default 1,000 = 10 %). The fee is rounded up to a whole minor unit, so the
    /// seller's net is rounded down, in the platform's favour.
    pub platform_fee_bps: u16,
    /// `PAYOUT_RETRY_BASE_MS`: the first wait before a failed transfer, reversal or account check
    /// is tried again, doubled per attempt, 10-3,600,000 ms (default 1,000).
    pub retry_base: Duration,
    /// `PAYOUT_RETRY_MAX_SECS`: the longest such wait, 1-86,400 s (default 3,600); also how often
    /// a seller whose account is not ACTIVE has it re-read while payouts wait for it.
    pub retry_max: Duration,
    /// `PAYOUT_SWEEP_INTERVAL_MS`: how often the payout worker looks for due work without being
    /// woken, 50-3,600,000 ms (default 30,000).
    pub sweep_interval: Duration,
}

impl Default for PayoutSettings {
    fn default() -> Self {
        Self {
            platform_fee_bps: 1_000,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(3_600),
            sweep_interval: Duration::from_secs(30),
        }
    }
}

impl PayoutSettings {
    /// Reads the payout settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let fee = reader.with_default("PLATFORM_FEE_BPS", u32::from(defaults.platform_fee_bps));
        let base = reader.with_default("PAYOUT_RETRY_BASE_MS", 1_000_u64);
        let max = reader.with_default("PAYOUT_RETRY_MAX_SECS", defaults.retry_max.as_secs());
        let sweep = reader.with_default("PAYOUT_SWEEP_INTERVAL_MS", 30_000_u64);
        if fee.is_some_and(|f| f > 10_000) {
            reader.invalid(
                "PLATFORM_FEE_BPS",
                "must be between 0 and 10000 basis points",
            );
        }
        if base.is_some_and(|b| !(10..=3_600_000).contains(&b)) {
            reader.invalid("PAYOUT_RETRY_BASE_MS", "must be between 10 and 3600000");
        }
        if max.is_some_and(|m| !(1..=86_400).contains(&m)) {
            reader.invalid("PAYOUT_RETRY_MAX_SECS", "must be between 1 and 86400");
        }
        if sweep.is_some_and(|i| !(50..=3_600_000).contains(&i)) {
            reader.invalid("PAYOUT_SWEEP_INTERVAL_MS", "must be between 50 and 3600000");
        }
        Some(Self {
            platform_fee_bps: u16::try_from(fee?).ok()?,
            retry_base: Duration::from_millis(base?),
            retry_max: Duration::from_secs(max?),
            sweep_interval: Duration::from_millis(sweep?),
        })
    }
}

/// Settings of payments (`MERCATO_PAYMENT__<KEY>`).
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// `CURRENCY`: the shop currency (default `JPY`); points are minor units of it.
    pub currency: String,
    /// `WEBHOOK_SECRETS`: comma-separated signing secrets accepted on the webhook endpoint (the
    /// first also signs sandbox events). Several at once let a secret be rotated without
    /// downtime. Empty (the default) means a random secret for this process, which is enough
    /// for the sandbox but not for a real provider.
    pub webhook_secrets: Vec<SecretString>,
    /// `WEBHOOK_TOLERANCE_SECS`: how far a signature's timestamp may be from now, 1-3,600
    /// seconds (default 300, Stripe's value).
    pub webhook_tolerance: Duration,
    /// `PUBLIC_URL`: base URL under which browsers reach this service's HTTP side (the sandbox
    /// payment page). Unset: `http://<HTTP_ADDR>`.
    pub public_url: Option<String>,
    /// `RECONCILE_AFTER_SECS`: how long a payment may stay unsettled before the sweeper
    /// re-fetches it from the provider, 0-2,592,000 seconds (default 600).
    pub reconcile_after: Duration,
    /// `RECONCILE_INTERVAL_MS`: how often the sweeper runs, 50-3,600,000 ms (default 60,000).
    pub reconcile_interval: Duration,
    /// `STRIPE_SECRET_KEY` (secret): when set, STRIPE payments go to Stripe; unset (the
    /// default), the sandbox serves them.
    pub stripe_secret_key: Option<SecretString>,
    /// `STRIPE_API_BASE_URL`: where the Stripe API is (default `https://api.stripe.com`; a test
    /// server such as localstripe otherwise).
    pub stripe_api_base_url: String,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            currency: "JPY".to_owned(),
            webhook_secrets: Vec::new(),
            webhook_tolerance: Duration::from_secs(300),
            public_url: None,
            reconcile_after: Duration::from_secs(600),
            reconcile_interval: Duration::from_secs(60),
            stripe_secret_key: None,
            stripe_api_base_url: mercato_stripe::DEFAULT_BASE_URL.to_owned(),
        }
    }
}

impl PaymentSettings {
    /// Reads the payment settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let currency = reader.with_default("CURRENCY", defaults.currency);
        let secrets = reader.optional_secret("WEBHOOK_SECRETS");
        let tolerance = reader.with_default(
            "WEBHOOK_TOLERANCE_SECS",
            defaults.webhook_tolerance.as_secs(),
        );
        let public_url = reader.optional::<String>("PUBLIC_URL");
        let after = reader.with_default("RECONCILE_AFTER_SECS", defaults.reconcile_after.as_secs());
        let interval = reader.with_default("RECONCILE_INTERVAL_MS", 60_000_u64);
        let stripe_secret_key = reader.optional_secret("STRIPE_SECRET_KEY");
        let stripe_api_base_url =
            reader.with_default("STRIPE_API_BASE_URL", defaults.stripe_api_base_url);
        if currency
            .as_deref()
            .is_some_and(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            reader.invalid(
                "CURRENCY",
                "must be a three-letter upper-case iso 4217 code",
            );
        }
        if tolerance.is_some_and(|t| !(1..=3_600).contains(&t)) {
            reader.invalid("WEBHOOK_TOLERANCE_SECS", "must be between 1 and 3600");
        }
        if after.is_some_and(|a| a > 2_592_000) {
            reader.invalid("RECONCILE_AFTER_SECS", "must be at most 2592000 (30 days)");
        }
        if interval.is_some_and(|i| !(50..=3_600_000).contains(&i)) {
            reader.invalid("RECONCILE_INTERVAL_MS", "must be between 50 and 3600000");
        }
        let public_url = public_url?.map(|url| url.trim_end_matches('/').to_owned());
        if public_url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            reader.invalid("PUBLIC_URL", "must be an http or https url");
        }
        let stripe_api_base_url = stripe_api_base_url?;
        if !(stripe_api_base_url.starts_with("http://")
            || stripe_api_base_url.starts_with("https://"))
        {
            reader.invalid("STRIPE_API_BASE_URL", "must be an http or https url");
        }
        let stripe_secret_key = stripe_secret_key?;
        if stripe_secret_key
            .as_ref()
            .is_some_and(|key| key.expose_secret().trim().is_empty())
        {
            reader.invalid("STRIPE_SECRET_KEY", "must not be empty when set");
        }
        let webhook_secrets = match secrets? {
            None => Vec::new(),
            Some(list) => {
                let parts: Vec<SecretString> = list
                    .expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(SecretString::from)
                    .collect();
                if parts.is_empty() {
                    reader.invalid("WEBHOOK_SECRETS", "must name at least one secret when set");
                }
                parts
            }
        };
        Some(Self {
            currency: currency?,
            webhook_secrets,
            webhook_tolerance: Duration::from_secs(tolerance?),
            public_url,
            reconcile_after: Duration::from_secs(after?),
            reconcile_interval: Duration::from_millis(interval?),
            stripe_secret_key,
            stripe_api_base_url,
        })
    }
}

/// Settings of the points wallet (`MERCATO_PAYMENT__<KEY>`).
#[derive(Debug, Clone)]
pub struct WalletSettings {
    /// `WALLET_MAX_BALANCE`: the most points a wallet may hold after a charge, 1 to 10^12
    /// (default 10,000,000).
    pub max_balance: i64,
    /// `WALLET_LOCK_TIMEOUT_MS`: how long a charge waits for the wallet's row lock before the
    /// attempt fails and is retried (up to 3 times, then ABORTED), 10-60,000 ms (default 5,000).
    pub lock_timeout: std::time::Duration,
}

/// The most points one ChargePoints call may add (the contract's limit).
pub const MAX_CHARGE: i64 = 1_000_000;

impl Default for WalletSettings {
    fn default() -> Self {
        Self {
            max_balance: 10_000_000,
            lock_timeout: std::time::Duration::from_secs(5),
        }
    }
}

impl WalletSettings {
    /// Reads the wallet settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let max = reader.with_default("WALLET_MAX_BALANCE", Self::default().max_balance);
        let lock = reader.with_default("WALLET_LOCK_TIMEOUT_MS", 5_000_u64);
        if max.is_some_and(|m| !(1..=1_000_000_000_000).contains(&m)) {
            reader.invalid("WALLET_MAX_BALANCE", "must be between 1 and 1000000000000");
        }
        if lock.is_some_and(|l| !(10..=60_000).contains(&l)) {
            reader.invalid("WALLET_LOCK_TIMEOUT_MS", "must be between 10 and 60000");
        }
        Some(Self {
            max_balance: max?,
            lock_timeout: std::time::Duration::from_millis(lock?),
        })
    }
}

impl Settings {
    /// Reads every setting, reporting all problems at once.
    pub fn read(source: &EnvSource) -> Result<Self, ConfigError> {
        let reader = source.service(SERVICE);
        let listen = ListenSettings {
            grpc_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 50054)),
            http_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8084)),
        };
        let common = CommonSettings::read(&reader, listen);
        let database = DatabaseSettings::read(&reader);
        let amqp = AmqpSettings::read(&reader);
        let bus_namespace = reader.with_default("BUS_NAMESPACE", String::new());
        let order_service_url =
            reader.with_default("ORDER_SERVICE_URL", "http://127.0.0.1:50053".to_owned());
        let payments = PaymentSettings::read(&reader);
        let wallet = WalletSettings::read(&reader);
        let payouts = PayoutSettings::read(&reader);
        reader.finish(|| {
            Some(Self {
                common: common?,
                database: database?,
                amqp: amqp?,
                bus_namespace: bus_namespace?,
                order_service_url: order_service_url?,
                payments: payments?,
                wallet: wallet?,
                payouts: payouts?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<PaymentSettings, String> {
        let source = EnvSource::from_pairs(pairs.iter().copied());
        let reader = source.service(SERVICE);
        let settings = PaymentSettings::read(&reader);
        reader.finish(|| settings).map_err(|e| e.to_string())
    }

    #[test]
    fn webhook_secrets_are_a_comma_separated_list() {
        let settings =
            read(&[("MERCATO_PAYMENT__WEBHOOK_SECRETS", "whsec_new, whsec_old")]).expect("valid");
        let secrets: Vec<&str> = settings
            .webhook_secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        assert_eq!(secrets, ["whsec_new", "whsec_old"]);
        assert_eq!(read(&[]).expect("defaults").webhook_secrets.len(), 0);
    }

    #[test]
    fn an_out_of_range_tolerance_names_its_variable() {
        let error = read(&[("MERCATO_PAYMENT__WEBHOOK_TOLERANCE_SECS", "0")]).expect_err("invalid");
        assert!(
            error.contains("MERCATO_PAYMENT__WEBHOOK_TOLERANCE_SECS"),
            "{error}"
        );
        let error = read(&[("MERCATO_PAYMENT__WEBHOOK_SECRETS", " , ")]).expect_err("invalid");
        assert!(
            error.contains("MERCATO_PAYMENT__WEBHOOK_SECRETS"),
            "{error}"
        );
    }

    fn read_payouts(pairs: &[(&str, &str)]) -> Result<PayoutSettings, String> {
        let source = EnvSource::from_pairs(pairs.iter().copied());
        let reader = source.service(SERVICE);
        let settings = PayoutSettings::read(&reader);
        reader.finish(|| settings).map_err(|e| e.to_string())
    }

    #[test]
    fn the_platform_fee_is_basis_points_up_to_the_whole_amount() {
        assert_eq!(read_payouts(&[]).expect("defaults").platform_fee_bps, 1_000);
        for fee in ["0", "250", "10000"] {
            let settings =
                read_payouts(&[("MERCATO_PAYMENT__PLATFORM_FEE_BPS", fee)]).expect("valid");
            assert_eq!(settings.platform_fee_bps.to_string(), fee);
        }
        for bad in ["10001", "-1", "12.5", "ten"] {
            let error =
                read_payouts(&[("MERCATO_PAYMENT__PLATFORM_FEE_BPS", bad)]).expect_err("invalid");
            assert!(
                error.contains("MERCATO_PAYMENT__PLATFORM_FEE_BPS"),
                "{bad}: {error}"
            );
        }
        let error =
            read_payouts(&[("MERCATO_PAYMENT__PAYOUT_RETRY_MAX_SECS", "0")]).expect_err("invalid");
        assert!(
            error.contains("MERCATO_PAYMENT__PAYOUT_RETRY_MAX_SECS"),
            "{error}"
        );
    }

    #[test]
    fn stripe_is_configured_by_its_key_and_base_url() {
        let defaults = read(&[]).expect("defaults");
        assert!(defaults.stripe_secret_key.is_none());
        assert_eq!(defaults.stripe_api_base_url, "https://api.stripe.com");
        let settings = read(&[
            ("MERCATO_PAYMENT__STRIPE_SECRET_KEY", "sk_test_123"),
            (
                "MERCATO_PAYMENT__STRIPE_API_BASE_URL",
                "http://127.0.0.1:8420",
            ),
        ])
        .expect("valid");
        assert_eq!(
            settings
                .stripe_secret_key
                .as_ref()
                .map(|k| k.expose_secret()),
            Some("sk_test_123")
        );
        assert_eq!(settings.stripe_api_base_url, "http://127.0.0.1:8420");
        let error = read(&[("MERCATO_PAYMENT__STRIPE_API_BASE_URL", "api.stripe.com")])
            .expect_err("invalid");
        assert!(
            error.contains("MERCATO_PAYMENT__STRIPE_API_BASE_URL"),
            "{error}"
        );
    }
}
