//! Where setting values come from and how they are parsed: the environment snapshot
//! ([`EnvSource`]), the [`Reader`] that applies the variable scheme and collects every problem,
//! [`FromSetting`] for the value types, and duration parsing.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use secrecy::SecretString;

/// Prefix shared by every Mercato variable.
const PREFIX: &str = "MERCATO_";

/// A snapshot of environment variables to read settings from.
///
/// Built from the process environment in `main` ([`EnvSource::from_env`]) and from explicit
/// pairs in tests ([`EnvSource::from_pairs`]), so tests never mutate the process environment.
#[derive(Clone, Default)]
pub struct EnvSource {
    vars: BTreeMap<String, String>,
    /// Names whose values are not valid UTF-8; reported as problems only if a setting asks for them.
    not_unicode: BTreeSet<String>,
}

impl fmt::Debug for EnvSource {
    // Values may be secrets, so only the names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSource")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EnvSource {
    /// Snapshots the process environment.
    pub fn from_env() -> Self {
        let mut source = Self::default();
        for (name, value) in std::env::vars_os() {
            // A variable whose *name* is not Unicode can never be one of ours; skip it.
            let Ok(name) = name.into_string() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => {
                    source.vars.insert(name, value);
                }
                Err(_) => {
                    source.not_unicode.insert(name);
                }
            }
        }
        source
    }

    /// Builds a source from explicit name/value pairs (tests, tools).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            not_unicode: BTreeSet::new(),
        }
    }

    /// Returns a copy with one more variable set (handy for tests that vary one setting).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Starts reading the settings of `service` (e.g. `"order"`).
    pub fn service(&self, service: &str) -> Reader<'_> {
        let upper = service.to_ascii_uppercase().replace('-', "_");
        Reader {
            source: self,
            service: service.to_owned(),
            service_prefix: format!("{PREFIX}{upper}__"),
            problems: RefCell::new(Vec::new()),
        }
    }

    /// The raw value of `name`, treating empty as unset.
    fn lookup(&self, name: &str) -> Lookup<'_> {
        if self.not_unicode.contains(name) {
            return Lookup::NotUnicode;
        }
        match self.vars.get(name) {
            Some(value) if !value.is_empty() => Lookup::Found(value),
            Some(_) | None => Lookup::Unset,
        }
    }
}

enum Lookup<'a> {
    Found(&'a str),
    Unset,
    NotUnicode,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A required variable is unset (neither the service's own nor the shared one).
    Missing {
        /// The service's own variable name.
        variable: String,
        /// The shared fallback name, when the setting has one.
        fallback: Option<String>,
    },
    /// A variable is set to something that does not parse or validate.
    Invalid {
        /// The variable that supplied the value.
        variable: String,
        /// The offending value, or `None` for secrets (never echoed).
        value: Option<String>,
        /// What is wrong, in lowercase.
        reason: String,
    },
    /// A variable's value is not valid UTF-8.
    NotUnicode {
        /// The variable name.
        variable: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing {
                variable,
                fallback: Some(fallback),
            } => write!(f, "missing {variable} (or {fallback})"),
            Self::Missing {
                variable,
                fallback: None,
            } => write!(f, "missing {variable}"),
            Self::Invalid {
                variable,
                value: Some(value),
                reason,
            } => write!(f, "{variable}={value:?}: {reason}"),
            Self::Invalid {
                variable,
                value: None,
                reason,
            } => write!(f, "{variable}=<hidden>: {reason}"),
            Self::NotUnicode { variable } => write!(f, "{variable}: value is not valid utf-8"),
        }
    }
}

/// Every problem found while reading a service's settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", join(.problems))]
pub struct ConfigError {
    /// The problems, in the order the settings were read.
    pub problems: Vec<Problem>,
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A value that can be parsed from one environment variable.
///
/// The error is a short lowercase reason; the reader adds the variable name and value.
pub trait FromSetting: Sized {
    /// Parses the raw (non-empty) value.
    fn from_setting(raw: &str) -> Result<Self, String>;
}

macro_rules! from_str_setting {
    ($($ty:ty => $what:literal),* $(,)?) => {$(
        impl FromSetting for $ty {
            fn from_setting(raw: &str) -> Result<Self, String> {
                raw.trim().parse().map_err(|_| concat!("expected ", $what).to_owned())
            }
        }
    )*};
}

from_str_setting! {
    u16 => "an integer between 0 and 65535",
    u32 => "a non-negative integer",
    u64 => "a non-negative integer",
    usize => "a non-negative integer",
    i64 => "an integer",
    NonZeroU16 => "an integer between 1 and 65535",
    NonZeroU32 => "a positive integer",
    NonZeroUsize => "a positive integer",
    IpAddr => "an ip address",
}

impl FromSetting for String {
    fn from_setting(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
}

impl FromSetting for SocketAddr {
    fn from_setting(raw: &str) -> Result<Self, String> {
        raw.trim()
            .parse()
            .map_err(|_| "invalid socket address syntax (expected host-ip:port)".to_owned())
    }
}

impl FromSetting for bool {
    fn from_setting(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        }
    }
}

impl FromSetting for Duration {
    /// Accepts one number and a unit: `250ms`, `30s`, `5m`, `1h`.
    fn from_setting(raw: &str) -> Result<Self, String> {
        parse_duration(raw)
    }
}

/// Parses `250ms`, `30s`, `5m` or `1h` (one integer, one unit).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration such as 250ms, 30s, 5m or 1h";
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{EXPECTED} (missing unit)"))?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(EXPECTED.to_owned()),
    };
    number
        .checked_mul(per_unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| "duration is too large".to_owned())
}

/// Reads the settings of one service and collects every problem (see the [module docs](super)).
///
/// Each accessor returns `None` when the setting is missing or invalid, after recording why;
/// [`Reader::finish`] turns the collected problems into one [`ConfigError`].
pub struct Reader<'a> {
    source: &'a EnvSource,
    service: String,
    service_prefix: String,
    problems: RefCell<Vec<Problem>>,
}

impl fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("service", &self.service)
            .field("problems", &self.problems.borrow().len())
            .finish_non_exhaustive()
    }
}

/// Where a value came from: the variable name and the raw text.
struct Raw<'a> {
    variable: String,
    value: &'a str,
}

impl<'a> Reader<'a> {
    /// The service name this reader was created for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The service's own variable for `key` (`MERCATO_ORDER__GRPC_ADDR`).
    pub fn variable(&self, key: &str) -> String {
        format!("{}{key}", self.service_prefix)
    }

    /// The shared fallback variable for `key` (`MERCATO__GRPC_ADDR`).
    pub fn shared_variable(key: &str) -> String {
        format!("{PREFIX}_{key}")
    }

    /// A required setting; records "missing" when neither variable is set.
    pub fn required<T: FromSetting>(&self, key: &str) -> Option<T> {
        match self.raw(key)? {
            Some(raw) => self.parse(&raw, T::from_setting),
            None => {
                self.missing(key);
                None
            }
        }
    }

    /// An optional setting: `Some(None)` when unset, `None` when set but invalid.
    pub fn optional<T: FromSetting>(&self, key: &str) -> Option<Option<T>> {
        match self.raw(key)? {
            Some(raw) => self.parse(&raw, T::from_setting).map(Some),
            None => Some(None),
        }
    }

    /// A setting with a default used when unset; `None` only when set but invalid.
    pub fn with_default<T: FromSetting>(&self, key: &str, default: T) -> Option<T> {
        match self.raw(key)? {
            Some(raw) => self.parse(&raw, T::from_setting),
            None => Some(default),
        }
    }

    /// A required secret (URL with password, key). Its value never appears in errors or `Debug`.
    pub fn secret(&self, key: &str) -> Option<SecretString> {
        self.secret_with(key, |_| Ok(()))
    }

    /// A required secret checked by `validate`, whose error must not quote the value.
    pub fn secret_with(
        &self,
        key: &str,
        validate: impl FnOnce(&str) -> Result<(), String>,
    ) -> Option<SecretString> {
        let Some(raw) = self.raw(key)? else {
            self.missing(key);
            return None;
        };
        match validate(raw.value) {
            Ok(()) => Some(SecretString::from(raw.value)),
            Err(reason) => {
                self.record(Problem::Invalid {
                    variable: raw.variable,
                    value: None,
                    reason,
                });
                None
            }
        }
    }

    /// An optional secret: `Some(None)` when unset.
    pub fn optional_secret(&self, key: &str) -> Option<Option<SecretString>> {
        Some(self.raw(key)?.map(|raw| SecretString::from(raw.value)))
    }

    /// A variable named by an external standard, read without the Mercato prefix
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`). `Some(None)` when unset, `None` when invalid.
    pub fn standard<T: FromSetting>(&self, name: &str) -> Option<Option<T>> {
        match self.source.lookup(name) {
            Lookup::Found(value) => {
                let raw = Raw {
                    variable: name.to_owned(),
                    value,
                };
                self.parse(&raw, T::from_setting).map(Some)
            }
            Lookup::Unset => Some(None),
            Lookup::NotUnicode => {
                self.record(Problem::NotUnicode {
                    variable: name.to_owned(),
                });
                None
            }
        }
    }

    /// Records a problem found by validation beyond parsing (a zero timeout, two settings that
    /// contradict each other). Names the variable that supplied `key`'s value (the service's own or the shared one).
    pub fn invalid(&self, key: &str, reason: impl Into<String>) {
        let (variable, value) = match self.raw(key) {
            Some(Some(raw)) => (raw.variable, Some(raw.value.to_owned())),
            Some(None) | None => (self.variable(key), None),
        };
        self.record(Problem::Invalid {
            variable,
            value,
            reason: reason.into(),
        });
    }

    /// Finishes reading: every recorded problem becomes one [`ConfigError`]; otherwise `build`
    /// assembles the settings from the values read (each `?` unwraps one of them).
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ConfigError> {
        let problems = self.problems.into_inner();
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        // Every accessor that returns `None` records a problem first, so with no problems
        // `build` only fails if it reads a value from a different reader.
        build().ok_or_else(|| ConfigError {
            problems: vec![Problem::Invalid {
                variable: format!("{}*", self.service_prefix),
                value: None,
                reason: "settings were assembled from values read by another reader".to_owned(),
            }],
        })
    }

    /// The problems recorded so far (for tools that want to print them their own way).
    pub fn problems(&self) -> Vec<Problem> {
        self.problems.borrow().clone()
    }

    /// Finds the raw value for `key`: `Some(Some(raw))` found, `Some(None)` unset,
    /// `None` unreadable (already recorded).
    fn raw(&self, key: &str) -> Option<Option<Raw<'a>>> {
        for variable in [self.variable(key), Self::shared_variable(key)] {
            match self.source.lookup(&variable) {
                Lookup::Found(value) => return Some(Some(Raw { variable, value })),
                Lookup::Unset => {}
                Lookup::NotUnicode => {
                    self.record(Problem::NotUnicode { variable });
                    return None;
                }
            }
        }
        Some(None)
    }

    fn parse<T>(&self, raw: &Raw<'_>, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        match parse(raw.value) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.record(Problem::Invalid {
                    variable: raw.variable.clone(),
                    value: Some(raw.value.to_owned()),
                    reason,
                });
                None
            }
        }
    }

    fn missing(&self, key: &str) {
        self.record(Problem::Missing {
            variable: self.variable(key),
            fallback: Some(Self::shared_variable(key)),
        });
    }

    fn record(&self, problem: Problem) {
        self.problems.borrow_mut().push(problem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_number_and_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("30").is_err(), "a bare number is ambiguous");
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn the_service_variable_wins_over_the_shared_one() {
        let source = EnvSource::from_pairs([
            ("MERCATO_ORDER__HTTP_ADDR", "127.0.0.1:1"),
            ("MERCATO__HTTP_ADDR", "127.0.0.1:2"),
            ("MERCATO__GRPC_ADDR", "127.0.0.1:3"),
        ]);
        let reader = source.service("order");
        let http: Option<SocketAddr> = reader.required("HTTP_ADDR");
        let grpc: Option<SocketAddr> = reader.required("GRPC_ADDR");
        assert_eq!(http.map(|a| a.port()), Some(1));
        assert_eq!(
            grpc.map(|a| a.port()),
            Some(3),
            "the shared fallback applies"
        );
    }

    #[test]
    fn hyphenated_service_names_become_underscores() {
        let source = EnvSource::from_pairs([("MERCATO_LOAD_GEN__RATE", "5")]);
        let reader = source.service("load-gen");
        assert_eq!(reader.required::<u32>("RATE"), Some(5));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let source = EnvSource::from_pairs([("MERCATO_ORDER__REQUEST_TIMEOUT", "")]);
        let reader = source.service("order");
        assert_eq!(
            reader.with_default("REQUEST_TIMEOUT", Duration::from_secs(7)),
            Some(Duration::from_secs(7))
        );
    }
}
