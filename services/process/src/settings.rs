//! The process service's typed settings: the shared blocks plus the order and product services'
//! addresses, fulfilment (carrier mode, shipment delay, retries) and the notifier, read from
//! `MERCATO_PROCESS__<KEY>` (then `MERCATO__<KEY>`, then the defaults).

use std::time::Duration;

use mercato_platform::settings::{
    AmqpSettings, CommonSettings, ConfigError, DatabaseSettings, EnvSource, ListenSettings, Reader,
};

/// The service name used for variables, logs and the `application_name`.
pub const SERVICE: &str = "process";

/// Everything the process service reads at start-up.
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
    /// `http://127.0.0.1:50053`), called for `MarkOrderShipped`, `MarkOrderFinished` and
    /// `LookupOrder`.
    pub order_service_url: String,
    /// `PRODUCT_SERVICE_URL`: gRPC base URI of the product service (default
    /// `http://127.0.0.1:50052`), called for `CommitReservation`.
    pub product_service_url: String,
    /// Shipments.
    pub fulfilment: FulfilmentSettings,
    /// Notifications.
    pub notifier: NotifierSettings,
}

/// Who hands parcels over and delivers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierMode {
    /// `simulated`: the built-in carrier ships every prepared parcel and delivers it, each step
    /// `SHIPMENT_DELAY` after the previous one.
    Simulated,
    /// `manual`: the worker only commits the stock; operators (or a carrier integration) call
    /// `MarkShipmentShipped` and `MarkShipmentDelivered`.
    Manual,
}

impl CarrierMode {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Simulated => "simulated",
            Self::Manual => "manual",
        }
    }
}

/// Settings of shipments (`MERCATO_PROCESS__<KEY>`).
#[derive(Debug, Clone)]
pub struct FulfilmentSettings {
    /// `CARRIER`: `simulated` (default) or `manual`.
    pub carrier: CarrierMode,
    /// `SHIPMENT_DELAY`: how long the simulated carrier takes from committed stock to handover
    /// and from handover to delivery, 0 to 24 h (default `2s`).
    pub shipment_delay: Duration,
    /// `SHIPMENT_SWEEP_INTERVAL`: how often the worker looks for due shipments when no new one
    /// woke it, 10 ms to 1 h (default `1s`).
    pub sweep_interval: Duration,
    /// `SHIPMENT_RETRY_BASE`: the first wait after a failed step, doubled per failure up to
    /// `SHIPMENT_RETRY_MAX`, 10 ms to 1 h (default `500ms`).
    pub retry_base: Duration,
    /// `SHIPMENT_RETRY_MAX`: the longest wait between retries, 10 ms to 24 h (default `5m`).
    pub retry_max: Duration,
}

impl Default for FulfilmentSettings {
    fn default() -> Self {
        Self {
            carrier: CarrierMode::Simulated,
            shipment_delay: Duration::from_secs(2),
            sweep_interval: Duration::from_secs(1),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(300),
        }
    }
}

fn check_range(
    reader: &Reader<'_>,
    key: &str,
    value: Option<Duration>,
    min: Duration,
    max: Duration,
    text: &str,
) {
    if value.is_some_and(|v| v < min || v > max) {
        reader.invalid(key, format!("must be between {text}"));
    }
}

impl FulfilmentSettings {
    /// Reads the fulfilment settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let carrier = reader.with_default("CARRIER", "simulated".to_owned());
        let delay = reader.with_default("SHIPMENT_DELAY", defaults.shipment_delay);
        let sweep = reader.with_default("SHIPMENT_SWEEP_INTERVAL", defaults.sweep_interval);
        let base = reader.with_default("SHIPMENT_RETRY_BASE", defaults.retry_base);
        let max = reader.with_default("SHIPMENT_RETRY_MAX", defaults.retry_max);
        let ms = Duration::from_millis;
        let hour = Duration::from_secs(3_600);
        check_range(
            reader,
            "SHIPMENT_DELAY",
            delay,
            Duration::ZERO,
            24 * hour,
            "0 and 24h",
        );
        check_range(
            reader,
            "SHIPMENT_SWEEP_INTERVAL",
            sweep,
            ms(10),
            hour,
            "10ms and 1h",
        );
        check_range(
            reader,
            "SHIPMENT_RETRY_BASE",
            base,
            ms(10),
            hour,
            "10ms and 1h",
        );
        check_range(
            reader,
            "SHIPMENT_RETRY_MAX",
            max,
            ms(10),
            24 * hour,
            "10ms and 24h",
        );
        if let (Some(base), Some(max)) = (base, max)
            && max < base
        {
            reader.invalid(
                "SHIPMENT_RETRY_MAX",
                "must not be below SHIPMENT_RETRY_BASE",
            );
        }
        let carrier = match carrier?.as_str() {
            "simulated" => CarrierMode::Simulated,
            "manual" => CarrierMode::Manual,
            _ => {
                reader.invalid("CARRIER", "must be simulated or manual");
                return None;
            }
        };
        Some(Self {
            carrier,
            shipment_delay: delay?,
            sweep_interval: sweep?,
            retry_base: base?,
            retry_max: max?,
        })
    }
}

/// Where notifications are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifierSink {
    /// `log`: each notification is written to the service log as one structured line.
    Log,
}

/// Settings of notifications (`MERCATO_PROCESS__<KEY>`).
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// `NOTIFIER`: `log` (the default and, for now, the only sink; SMTP delivery is not
    /// implemented and `smtp` is refused at start-up rather than silently logged).
    pub sink: NotifierSink,
    /// `NOTIFICATION_MAX_ATTEMPTS`: deliveries tried before a notification is FAILED, 1-20
    /// (default 5).
    pub max_attempts: i32,
    /// `NOTIFICATION_SWEEP_INTERVAL`: how often the sender looks for due notifications when
    /// nothing woke it, 10 ms to 1 h (default `1s`).
    pub sweep_interval: Duration,
    /// `NOTIFICATION_RETRY_BASE`: the first wait after a failed delivery, doubled per failure
    /// (at most an hour), 10 ms to 1 h (default `1s`).
    pub retry_base: Duration,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            sink: NotifierSink::Log,
            max_attempts: 5,
            sweep_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
        }
    }
}

impl NotifierSettings {
    /// Reads the notifier settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let sink = reader.with_default("NOTIFIER", "log".to_owned());
        let attempts = reader.with_default("NOTIFICATION_MAX_ATTEMPTS", 5_u32);
        let sweep = reader.with_default("NOTIFICATION_SWEEP_INTERVAL", defaults.sweep_interval);
        let base = reader.with_default("NOTIFICATION_RETRY_BASE", defaults.retry_base);
        let ms = Duration::from_millis;
        let hour = Duration::from_secs(3_600);
        check_range(
            reader,
            "NOTIFICATION_SWEEP_INTERVAL",
            sweep,
            ms(10),
            hour,
            "10ms and 1h",
        );
        check_range(
            reader,
            "NOTIFICATION_RETRY_BASE",
            base,
            ms(10),
            hour,
            "10ms and 1h",
        );
        if attempts.is_some_and(|a| !(1..=20).contains(&a)) {
            reader.invalid("NOTIFICATION_MAX_ATTEMPTS", "must be between 1 and 20");
        }
        let sink = match sink?.as_str() {
            "log" => NotifierSink::Log,
            "smtp" => {
                reader.invalid("NOTIFIER", "smtp delivery is not implemented yet; use log");
                return None;
            }
            _ => {
                reader.invalid("NOTIFIER", "must be log");
                return None;
            }
        };
        Some(Self {
            sink,
            max_attempts: i32::try_from(attempts?).unwrap_or(5),
            sweep_interval: sweep?,
            retry_base: base?,
        })
    }
}

impl Settings {
    /// Reads every setting, reporting all problems at once.
    pub fn read(source: &EnvSource) -> Result<Self, ConfigError> {
        let reader = source.service(SERVICE);
        let listen = ListenSettings {
            grpc_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 50055)),
            http_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8085)),
        };
        let common = CommonSettings::read(&reader, listen);
        let database = DatabaseSettings::read(&reader);
        let amqp = AmqpSettings::read(&reader);
        let bus_namespace = reader.with_default("BUS_NAMESPACE", String::new());
        let order_service_url =
            reader.with_default("ORDER_SERVICE_URL", "http://127.0.0.1:50053".to_owned());
        let product_service_url =
            reader.with_default("PRODUCT_SERVICE_URL", "http://127.0.0.1:50052".to_owned());
        let fulfilment = FulfilmentSettings::read(&reader);
        let notifier = NotifierSettings::read(&reader);
        reader.finish(|| {
            Some(Self {
                common: common?,
                database: database?,
                amqp: amqp?,
                bus_namespace: bus_namespace?,
                order_service_url: order_service_url?,
                product_service_url: product_service_url?,
                fulfilment: fulfilment?,
                notifier: notifier?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fulfilment(pairs: &[(&str, &str)]) -> Result<FulfilmentSettings, String> {
        let source = EnvSource::from_pairs(pairs.iter().copied());
        let reader = source.service(SERVICE);
        let settings = FulfilmentSettings::read(&reader);
        reader.finish(|| settings).map_err(|e| e.to_string())
    }

    fn notifier(pairs: &[(&str, &str)]) -> Result<NotifierSettings, String> {
        let source = EnvSource::from_pairs(pairs.iter().copied());
        let reader = source.service(SERVICE);
        let settings = NotifierSettings::read(&reader);
        reader.finish(|| settings).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_simulate_the_carrier_with_a_small_delay_and_log_notifications() {
        let f = fulfilment(&[]).expect("defaults are valid");
        assert_eq!(f.carrier, CarrierMode::Simulated);
        assert_eq!(f.shipment_delay, Duration::from_secs(2));
        assert_eq!(notifier(&[]).expect("defaults").sink, NotifierSink::Log);
    }

    #[test]
    fn the_shipment_delay_takes_a_duration_and_zero_is_allowed() {
        let f = fulfilment(&[("MERCATO_PROCESS__SHIPMENT_DELAY", "0s")]).expect("valid");
        assert_eq!(f.shipment_delay, Duration::ZERO);
        let error =
            fulfilment(&[("MERCATO_PROCESS__SHIPMENT_DELAY", "25h")]).expect_err("too long");
        assert!(error.contains("MERCATO_PROCESS__SHIPMENT_DELAY"), "{error}");
    }

    #[test]
    fn an_unknown_carrier_or_smtp_notifier_is_refused_naming_the_variable() {
        let error = fulfilment(&[("MERCATO_PROCESS__CARRIER", "yamato")]).expect_err("unknown");
        assert!(error.contains("MERCATO_PROCESS__CARRIER"), "{error}");
        let error = notifier(&[("MERCATO_PROCESS__NOTIFIER", "smtp")]).expect_err("not built");
        assert!(error.contains("MERCATO_PROCESS__NOTIFIER"), "{error}");
        assert!(error.contains("not implemented"), "{error}");
    }

    #[test]
    fn a_retry_maximum_below_its_base_is_refused() {
        let error = fulfilment(&[
            ("MERCATO_PROCESS__SHIPMENT_RETRY_BASE", "2s"),
            ("MERCATO_PROCESS__SHIPMENT_RETRY_MAX", "1s"),
        ])
        .expect_err("inverted");
        assert!(
            error.contains("MERCATO_PROCESS__SHIPMENT_RETRY_MAX"),
            "{error}"
        );
    }
}
