//! The order service's typed settings: the shared blocks plus the product service's address and
//! the cart limits, read from `MERCATO_ORDER__<KEY>` (then `MERCATO__<KEY>`, then the defaults).

use std::time::Duration;

use mercato_platform::settings::{
    AmqpSettings, CommonSettings, ConfigError, DatabaseSettings, EnvSource, ListenSettings, Reader,
    RedisSettings,
};

/// The service name used for variables, logs and the `application_name`.
pub const SERVICE: &str = "order";

/// The most distinct lines a cart may ever hold (the contract's limit, and the most SKU ids one
/// `BatchGetSkus` call accepts).
pub const MAX_CART_LINES_LIMIT: usize = 100;

/// Everything the order service reads at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listeners, telemetry, limits, shutdown grace.
    pub common: CommonSettings,
    /// The service's PostgreSQL database.
    pub database: DatabaseSettings,
    /// Redis.
    pub redis: RedisSettings,
    /// RabbitMQ (the outbox relay).
    pub amqp: AmqpSettings,
    /// `BUS_NAMESPACE`: prefix of every exchange and queue name, empty (the root namespace) by
    /// default.
    pub bus_namespace: String,
    /// `PRODUCT_SERVICE_URL`: gRPC base URI of the product service (default
    /// `http://127.0.0.1:50052`).
    pub product_service_url: String,
    /// The cart's limits and currency.
    pub cart: CartSettings,
    /// Checkout: payment deadline, shipping fee, the expiry sweeper.
    pub orders: OrderSettings,
}

/// Settings of checkout and the order lifecycle (`MERCATO_ORDER__<KEY>`).
#[derive(Debug, Clone)]
pub struct OrderSettings {
    /// `PAYMENT_TTL_SECS`: how long a new order may stay unpaid before it expires, 60-3,300
    /// seconds (default 1,800). The stock reservation is asked for this plus five minutes, and a
    /// reservation may last at most an hour.
    pub payment_ttl: Duration,
    /// `SHIPPING_FEE`: flat fee per order in minor units of the shop currency (default 0).
    pub shipping_fee: i64,
    /// `FREE_SHIPPING_MINIMUM`: subtotal from which shipping is free; 0 (the default) means
    /// never free when a fee is set.
    pub free_shipping_minimum: i64,
    /// `ORDER_SWEEP_INTERVAL_MS`: how often the expiry sweeper looks for unpaid orders past their
    /// deadline, 50-600,000 ms (default 5,000).
    pub sweep_interval: Duration,
}

/// Margin by which a stock reservation outlives its order's payment deadline, so the order
/// always expires (and gives the stock back itself) before the reservation would.
pub const RESERVATION_MARGIN: Duration = Duration::from_secs(300);

impl Default for OrderSettings {
    fn default() -> Self {
        Self {
            payment_ttl: Duration::from_secs(1_800),
            shipping_fee: 0,
            free_shipping_minimum: 0,
            sweep_interval: Duration::from_secs(5),
        }
    }
}

impl OrderSettings {
    /// Reads the checkout settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let ttl = reader.with_default("PAYMENT_TTL_SECS", defaults.payment_ttl.as_secs());
        let fee = reader.with_default("SHIPPING_FEE", defaults.shipping_fee);
        let free = reader.with_default("FREE_SHIPPING_MINIMUM", defaults.free_shipping_minimum);
        let sweep = reader.with_default(
            "ORDER_SWEEP_INTERVAL_MS",
            u64::try_from(defaults.sweep_interval.as_millis()).unwrap_or(5_000),
        );
        if ttl.is_some_and(|t| !(60..=3_300).contains(&t)) {
            reader.invalid("PAYMENT_TTL_SECS", "must be between 60 and 3300");
        }
        if fee.is_some_and(|f| f < 0) {
            reader.invalid("SHIPPING_FEE", "must not be negative");
        }
        if free.is_some_and(|f| f < 0) {
            reader.invalid("FREE_SHIPPING_MINIMUM", "must not be negative");
        }
        if sweep.is_some_and(|s| !(50..=600_000).contains(&s)) {
            reader.invalid("ORDER_SWEEP_INTERVAL_MS", "must be between 50 and 600000");
        }
        Some(Self {
            payment_ttl: Duration::from_secs(ttl?),
            shipping_fee: fee?,
            free_shipping_minimum: free?,
            sweep_interval: Duration::from_millis(sweep?),
        })
    }

    /// How long the stock reservation of a new order holds.
    pub fn reservation_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.payment_ttl + RESERVATION_MARGIN)
            .unwrap_or(chrono::Duration::hours(1))
    }

    /// The shipping fee of an order with this subtotal.
    pub fn shipping_fee_for(&self, subtotal: i64) -> i64 {
        if self.free_shipping_minimum > 0 && subtotal >= self.free_shipping_minimum {
            0
        } else {
            self.shipping_fee
        }
    }
}

/// Settings of the cart (`MERCATO_ORDER__<KEY>`).
#[derive(Debug, Clone)]
pub struct CartSettings {
    /// `CART_MAX_LINES`: distinct lines per cart, 1-100 (default 50).
    pub max_lines: usize,
    /// `CURRENCY`: the shop currency, used for the subtotal of an empty cart (default `JPY`).
    pub currency: String,
}

impl Default for CartSettings {
    fn default() -> Self {
        Self {
            max_lines: 50,
            currency: "JPY".to_owned(),
        }
    }
}

impl CartSettings {
    /// Reads the cart settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let max_lines = reader.with_default("CART_MAX_LINES", defaults.max_lines);
        let currency = reader.with_default("CURRENCY", defaults.currency);
        if max_lines.is_some_and(|n| n == 0 || n > MAX_CART_LINES_LIMIT) {
            reader.invalid("CART_MAX_LINES", "must be between 1 and 100");
        }
        if currency
            .as_deref()
            .is_some_and(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            reader.invalid(
                "CURRENCY",
                "must be a three-letter upper-case iso 4217 code",
            );
        }
        Some(Self {
            max_lines: max_lines?,
            currency: currency?,
        })
    }
}

impl Settings {
    /// Reads every setting, reporting all problems at once.
    pub fn read(source: &EnvSource) -> Result<Self, ConfigError> {
        let reader = source.service(SERVICE);
        let listen = ListenSettings {
            grpc_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 50053)),
            http_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8083)),
        };
        let common = CommonSettings::read(&reader, listen);
        let database = DatabaseSettings::read(&reader);
        let redis = RedisSettings::read(&reader);
        let amqp = AmqpSettings::read(&reader);
        let bus_namespace = reader.with_default("BUS_NAMESPACE", String::new());
        let product_service_url =
            reader.with_default("PRODUCT_SERVICE_URL", "http://127.0.0.1:50052".to_owned());
        let cart = CartSettings::read(&reader);
        let orders = OrderSettings::read(&reader);
        reader.finish(|| {
            Some(Self {
                common: common?,
                database: database?,
                redis: redis?,
                amqp: amqp?,
                bus_namespace: bus_namespace?,
                product_service_url: product_service_url?,
                cart: cart?,
                orders: orders?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<CartSettings, String> {
        let source = EnvSource::from_pairs(pairs.iter().copied());
        let reader = source.service(SERVICE);
        let settings = CartSettings::read(&reader);
        reader.finish(|| settings).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = read(&[]).expect("defaults are valid");
        assert_eq!(settings.max_lines, 50);
        assert_eq!(settings.currency, "JPY");
    }

    #[test]
    fn a_line_limit_outside_the_contract_is_rejected() {
        for bad in ["0", "101"] {
            let error = read(&[("MERCATO_ORDER__CART_MAX_LINES", bad)]).expect_err("invalid");
            assert!(error.contains("MERCATO_ORDER__CART_MAX_LINES"), "{error}");
        }
        let settings = read(&[("MERCATO_ORDER__CART_MAX_LINES", "100")]).expect("valid");
        assert_eq!(settings.max_lines, 100);
    }
}
