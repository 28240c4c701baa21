//! The process service's typed settings: the shared blocks plus the order, product and user
//! services' addresses, fulfilment (carrier mode, shipment delay, retries) and the notifier (log
//! or SMTP, retries, timeout), read from `MERCATO_PROCESS__<KEY>` (then `MERCATO__<KEY>`, then
//! the defaults).

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use mercato_platform::settings::{
    AmqpSettings, CommonSettings, ConfigError, DatabaseSettings, EnvSource, ListenSettings, Reader,
};
use secrecy::{ExposeSecret as _, SecretString};

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
    /// `USER_SERVICE_URL`: gRPC base URI of the user service (default `http://127.0.0.1:50051`),
    /// called for `GetUser` (the buyer's e-mail address) when `NOTIFIER=smtp`.
    pub user_service_url: String,
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
    /// `SHIPMENT_WORKERS`: shipments advanced at once, 1 to 64 (default 4). Each step holds its
    /// row lock across a call to another service, so one worker caps the saga at about one
    /// step per round trip.
    pub workers: usize,
}

impl Default for FulfilmentSettings {
    fn default() -> Self {
        Self {
            carrier: CarrierMode::Simulated,
            shipment_delay: Duration::from_secs(2),
            sweep_interval: Duration::from_secs(1),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(300),
            workers: 4,
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
        let workers = reader.with_default("SHIPMENT_WORKERS", defaults.workers);
        if workers.is_some_and(|workers| !(1..=64).contains(&workers)) {
            reader.invalid("SHIPMENT_WORKERS", "must be between 1 and 64");
        }
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
            workers: workers?,
        })
    }
}

/// How the connection to the SMTP relay is secured (`SMTP_URL`'s scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain text, no TLS (a relay on the same host or network); port 25 by default.
    None,
    /// `smtp+starttls://`: plain connection upgraded with STARTTLS, which the relay must offer
    /// (never silently skipped); port 587 by default.
    StartTls,
    /// `smtps://`: TLS from the first byte (implicit TLS); port 465 by default.
    Tls,
}

impl SmtpSecurity {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::None => "smtp",
            Self::StartTls => "smtp+starttls",
            Self::Tls => "smtps",
        }
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::StartTls => 587,
            Self::Tls => 465,
        }
    }
}

/// Where the SMTP relay is: `SMTP_URL` parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// TLS mode.
    pub security: SmtpSecurity,
    /// Host name or IP address (an IPv6 address without its brackets); also the name the relay's
    /// certificate must carry.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl SmtpUrl {
    /// Parses `smtp://host[:port]`, `smtp+starttls://host[:port]` or `smtps://host[:port]`
    /// (IPv6 hosts in brackets). Credentials, paths and queries are refused: the user name and
    /// password have their own settings. The error never quotes the value, which could hold a
    /// password someone put in the URL.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (scheme, authority) = raw.split_once("://").ok_or(
            "must be smtp://host[:port], smtp+starttls://host[:port] or smtps://host[:port]",
        )?;
        let security = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => SmtpSecurity::None,
            "smtp+starttls" => SmtpSecurity::StartTls,
            "smtps" => SmtpSecurity::Tls,
            _ => return Err("the scheme must be smtp, smtp+starttls or smtps".to_owned()),
        };
        if authority.contains('@') {
            return Err(
                "must not carry credentials; use SMTP_USERNAME and SMTP_PASSWORD".to_owned(),
            );
        }
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains(['/', '?', '#']) {
            return Err("must be only a scheme, a host and a port (no path or query)".to_owned());
        }
        let valid_name = |host: &str| {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or("has an IPv6 address without its closing bracket")?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| "has an invalid IPv6 address in brackets".to_owned())?;
            let port = match after {
                "" => None,
                port => Some(
                    port.strip_prefix(':')
                        .ok_or("has text after the IPv6 address")?,
                ),
            };
            (host, port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            if !valid_name(host) {
                return Err("must name a host (letters, digits, '-' and '.')".to_owned());
            }
            (host, port)
        };
        let port = match port {
            None => security.default_port(),
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or("has a port that is not between 1 and 65535")?,
        };
        Ok(Self {
            security,
            host: host.to_owned(),
            port,
        })
    }
}

/// The SMTP relay (`MERCATO_PROCESS__SMTP_*`), read when `NOTIFIER=smtp`.
///
/// `Debug` shows the password as `[REDACTED]` (it is a [`SecretString`]); nothing logs it.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `SMTP_URL` (required): the relay and its TLS mode.
    pub url: SmtpUrl,
    /// `SMTP_USERNAME` (optional, with `SMTP_PASSWORD`): AUTH PLAIN/LOGIN user, only over TLS.
    pub username: Option<String>,
    /// `SMTP_PASSWORD` (optional, with `SMTP_USERNAME`).
    pub password: Option<SecretString>,
    /// `SMTP_FROM` (required): the sender, `noreply@shop.example` or
    /// `Mercato <noreply@shop.example>`; also the domain of each message's `Message-ID`.
    pub from: Mailbox,
    /// `SMTP_TLS_CA_FILE` (optional): a PEM file of CA certificates trusted besides the system's
    /// (a relay with a private CA); only with `smtp+starttls://` or `smtps://`.
    pub tls_ca_file: Option<PathBuf>,
}

impl SmtpSettings {
    /// Reads the SMTP settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        // Read as a secret so that a malformed value, which might hold a password, is never
        // quoted in the error; a valid URL holds none.
        let url = reader
            .secret_with("SMTP_URL", |raw| SmtpUrl::parse(raw).map(|_| ()))
            .and_then(|raw| SmtpUrl::parse(raw.expose_secret()).ok());
        let username = reader.optional::<String>("SMTP_USERNAME");
        let password = reader.optional_secret("SMTP_PASSWORD");
        let from = reader.required::<String>("SMTP_FROM");
        let tls_ca_file = reader.optional::<String>("SMTP_TLS_CA_FILE");
        let from = from.and_then(|raw| match raw.trim().parse::<Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(error) => {
                reader.invalid(
                    "SMTP_FROM",
                    format!("must be an e-mail address, optionally with a name ({error})"),
                );
                None
            }
        });
        let username = username.map(|u| u.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()));
        match (&username, &password) {
            (Some(Some(_)), Some(None)) => {
                reader.invalid("SMTP_PASSWORD", "must be set when SMTP_USERNAME is");
            }
            (Some(None), Some(Some(_))) => {
                reader.invalid("SMTP_USERNAME", "must be set when SMTP_PASSWORD is");
            }
            _ => {}
        }
        if let Some(url) = &url
            && url.security == SmtpSecurity::None
        {
            if matches!(username, Some(Some(_))) {
                reader.invalid(
                    "SMTP_URL",
                    "must be smtp+starttls:// or smtps:// when SMTP_USERNAME is set: the \
                     password would cross the network in clear text",
                );
            }
            if matches!(tls_ca_file, Some(Some(_))) {
                reader.invalid(
                    "SMTP_TLS_CA_FILE",
                    "is only read with smtp+starttls:// or smtps:// in SMTP_URL",
                );
            }
        }
        Some(Self {
            url: url?,
            username: username?,
            password: password?,
            from: from?,
            tls_ca_file: tls_ca_file?.map(PathBuf::from),
        })
    }
}

/// Where notifications are delivered.
#[derive(Debug, Clone)]
pub enum NotifierSink {
    /// `log`: each notification is written to the service log as one structured line, addressed
    /// to the user id.
    Log,
    /// `smtp`: each notification is an e-mail to the buyer's address (looked up in the user
    /// service at send time) through this relay.
    Smtp(Box<SmtpSettings>),
}

impl NotifierSink {
    /// The setting's value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Smtp(_) => "smtp",
        }
    }
}

/// Settings of notifications (`MERCATO_PROCESS__<KEY>`).
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// `NOTIFIER`: `log` (the default) or `smtp` (then the `SMTP_*` settings are required).
    pub sink: NotifierSink,
    /// `NOTIFICATION_MAX_ATTEMPTS`: deliveries tried before a notification is FAILED, 1-20
    /// (default 5). A permanent refusal (a deleted account, an SMTP 5xx) fails it at once.
    pub max_attempts: i32,
    /// `NOTIFICATION_SWEEP_INTERVAL`: how often the sender looks for due notifications when
    /// nothing woke it, 10 ms to 1 h (default `1s`).
    pub sweep_interval: Duration,
    /// `NOTIFICATION_RETRY_BASE`: the first wait after a failed delivery, doubled per failure
    /// (at most an hour), 10 ms to 1 h (default `1s`).
    pub retry_base: Duration,
    /// `NOTIFICATION_SEND_TIMEOUT`: the longest one delivery may take (the e-mail lookup and
    /// the whole SMTP exchange), after which it counts as a failed attempt, 100 ms to 10 min
    /// (default `30s`).
    pub send_timeout: Duration,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            sink: NotifierSink::Log,
            max_attempts: 5,
            sweep_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            send_timeout: Duration::from_secs(30),
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
        let timeout = reader.with_default("NOTIFICATION_SEND_TIMEOUT", defaults.send_timeout);
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
        check_range(
            reader,
            "NOTIFICATION_SEND_TIMEOUT",
            timeout,
            ms(100),
            Duration::from_secs(600),
            "100ms and 10m",
        );
        if attempts.is_some_and(|a| !(1..=20).contains(&a)) {
            reader.invalid("NOTIFICATION_MAX_ATTEMPTS", "must be between 1 and 20");
        }
        let sink = match sink?.trim() {
            "log" => NotifierSink::Log,
            "smtp" => NotifierSink::Smtp(Box::new(SmtpSettings::read(reader)?)),
            _ => {
                reader.invalid("NOTIFIER", "must be log or smtp");
                return None;
            }
        };
        Some(Self {
            sink,
            max_attempts: i32::try_from(attempts?).unwrap_or(5),
            sweep_interval: sweep?,
            retry_base: base?,
            send_timeout: timeout?,
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
        let user_service_url =
            reader.with_default("USER_SERVICE_URL", "http://127.0.0.1:50051".to_owned());
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
                user_service_url: user_service_url?,
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
        assert!(matches!(
            notifier(&[]).expect("defaults").sink,
            NotifierSink::Log
        ));
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
    fn an_unknown_carrier_or_notifier_is_refused_naming_the_variable() {
        let error = fulfilment(&[("MERCATO_PROCESS__CARRIER", "yamato")]).expect_err("unknown");
        assert!(error.contains("MERCATO_PROCESS__CARRIER"), "{error}");
        let error = notifier(&[("MERCATO_PROCESS__NOTIFIER", "pigeon")]).expect_err("unknown");
        assert!(error.contains("MERCATO_PROCESS__NOTIFIER"), "{error}");
        assert!(error.contains("log or smtp"), "{error}");
    }

    fn smtp(pairs: &[(&str, &str)]) -> Result<SmtpSettings, String> {
        let mut all = vec![("MERCATO_PROCESS__NOTIFIER", "smtp")];
        all.extend_from_slice(pairs);
        notifier(&all).map(|settings| match settings.sink {
            NotifierSink::Smtp(smtp) => *smtp,
            NotifierSink::Log => panic!("NOTIFIER=smtp read as the log sink"),
        })
    }

    #[test]
    fn smtp_needs_a_url_and_a_sender_and_names_both_when_missing() {
        let error = smtp(&[]).expect_err("nothing configured");
        assert!(error.contains("MERCATO_PROCESS__SMTP_URL"), "{error}");
        assert!(error.contains("MERCATO_PROCESS__SMTP_FROM"), "{error}");
    }

    #[test]
    fn the_smtp_url_scheme_chooses_the_tls_mode_and_its_default_port() {
        for (raw, security, host, port) in [
            (
                "smtp://relay.internal",
                SmtpSecurity::None,
                "relay.internal",
                25,
            ),
            (
                "smtp://127.0.0.1:2525",
                SmtpSecurity::None,
                "127.0.0.1",
                2525,
            ),
            (
                "smtp+starttls://mail.example.com",
                SmtpSecurity::StartTls,
                "mail.example.com",
                587,
            ),
            (
                "SMTPS://mail.example.com:4650/",
                SmtpSecurity::Tls,
                "mail.example.com",
                4650,
            ),
            ("smtps://[::1]", SmtpSecurity::Tls, "::1", 465),
            ("smtp://[::1]:25", SmtpSecurity::None, "::1", 25),
        ] {
            let url = SmtpUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(
                url,
                SmtpUrl {
                    security,
                    host: host.to_owned(),
                    port
                },
                "{raw}"
            );
        }
        for raw in [
            "mail.example.com:25",
            "http://mail.example.com",
            "smtp://",
            "smtp://:25",
            "smtp://host:0",
            "smtp://host:99999",
            "smtp://host/path",
            "smtp://host?tls=yes",
            "smtp://[::1",
            "smtp://[not-v6]:25",
            "smtp://host name",
        ] {
            assert!(SmtpUrl::parse(raw).is_err(), "{raw} was accepted");
        }
    }

    #[test]
    fn a_valid_smtp_configuration_is_read_and_its_password_never_shown() {
        let settings = smtp(&[
            (
                "MERCATO_PROCESS__SMTP_URL",
                "smtp+starttls://mail.example.com",
            ),
            ("MERCATO_PROCESS__SMTP_USERNAME", "mercato"),
            ("MERCATO_PROCESS__SMTP_PASSWORD", "hunter2-secret"),
            (
                "MERCATO_PROCESS__SMTP_FROM",
                "Mercato <noreply@shop.example>",
            ),
        ])
        .expect("valid");
        assert_eq!(settings.url.security, SmtpSecurity::StartTls);
        assert_eq!(settings.url.port, 587);
        assert_eq!(settings.username.as_deref(), Some("mercato"));
        assert_eq!(settings.from.email.to_string(), "noreply@shop.example");
        assert_eq!(settings.from.name.as_deref(), Some("Mercato"));
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_quoting_them() {
        let error = smtp(&[
            (
                "MERCATO_PROCESS__SMTP_URL",
                "smtps://user:hunter2@mail.example.com",
            ),
            ("MERCATO_PROCESS__SMTP_FROM", "noreply@shop.example"),
        ])
        .expect_err("credentials in the url");
        assert!(error.contains("MERCATO_PROCESS__SMTP_URL"), "{error}");
        assert!(error.contains("SMTP_USERNAME"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_password_is_refused_over_plain_smtp_and_needs_its_user_name() {
        let error = smtp(&[
            ("MERCATO_PROCESS__SMTP_URL", "smtp://mail.example.com"),
            ("MERCATO_PROCESS__SMTP_USERNAME", "mercato"),
            ("MERCATO_PROCESS__SMTP_PASSWORD", "hunter2"),
            ("MERCATO_PROCESS__SMTP_FROM", "noreply@shop.example"),
        ])
        .expect_err("clear-text password");
        assert!(error.contains("MERCATO_PROCESS__SMTP_URL"), "{error}");
        assert!(error.contains("clear text"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        let error = smtp(&[
            ("MERCATO_PROCESS__SMTP_URL", "smtps://mail.example.com"),
            ("MERCATO_PROCESS__SMTP_PASSWORD", "hunter2"),
            ("MERCATO_PROCESS__SMTP_FROM", "noreply@shop.example"),
        ])
        .expect_err("a password without a user");
        assert!(error.contains("MERCATO_PROCESS__SMTP_USERNAME"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn an_invalid_sender_address_is_refused_naming_smtp_from() {
        for from in ["noreply", "Mercato <noreply>", "a@b@c", "<>"] {
            let error = smtp(&[
                ("MERCATO_PROCESS__SMTP_URL", "smtp://127.0.0.1:2525"),
                ("MERCATO_PROCESS__SMTP_FROM", from),
            ])
            .expect_err("invalid sender");
            assert!(
                error.contains("MERCATO_PROCESS__SMTP_FROM"),
                "{from}: {error}"
            );
        }
    }

    #[test]
    fn the_send_timeout_is_bounded() {
        let settings = notifier(&[("MERCATO_PROCESS__NOTIFICATION_SEND_TIMEOUT", "5s")])
            .expect("valid timeout");
        assert_eq!(settings.send_timeout, Duration::from_secs(5));
        let error = notifier(&[("MERCATO_PROCESS__NOTIFICATION_SEND_TIMEOUT", "1ms")])
            .expect_err("too short");
        assert!(
            error.contains("MERCATO_PROCESS__NOTIFICATION_SEND_TIMEOUT"),
            "{error}"
        );
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
