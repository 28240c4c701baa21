//! Settings of the stock part, read from `MERCATO_PRODUCT__<KEY>` (then `MERCATO__<KEY>`, then
//! the defaults documented on each field).

use std::time::Duration;

use mercato_platform::settings::Reader;

/// The shortest reservation TTL a caller may ask for (the contract's lower bound).
pub const MIN_RESERVATION_TTL: Duration = Duration::from_secs(60);

/// Settings of the stock part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockSettings {
    /// `RESERVATION_DEFAULT_TTL`: the TTL of a reservation whose request sets none, default 15m.
    pub reservation_default_ttl: Duration,
    /// `RESERVATION_MAX_TTL`: the longest TTL a caller may ask for, default 1h (the contract's
    /// upper bound; it may be lowered, not raised).
    pub reservation_max_ttl: Duration,
    /// `SWEEPER_ENABLED`: whether this replica runs the expiry sweeper, default true.
    pub sweeper_enabled: bool,
    /// `SWEEPER_INTERVAL`: the pause between sweeps when the last one found nothing to do,
    /// default 5s.
    pub sweeper_interval: Duration,
    /// `SWEEPER_BATCH_SIZE`: reservations expired per transaction, default 100.
    pub sweeper_batch_size: u32,
    /// `SOLD_OUT_MARKER_TTL`: lifetime of a SKU's sold-out marker in Redis, default 5s. Short on
    /// purpose: a stale marker can only refuse reservations for this long.
    pub sold_out_marker_ttl: Duration,
    /// `LOW_STOCK_THRESHOLD`: `stock.low` is published when a SKU's available units fall to or
    /// below this, default 5.
    pub low_stock_threshold: i64,
}

impl Default for StockSettings {
    fn default() -> Self {
        Self {
            reservation_default_ttl: Duration::from_secs(15 * 60),
            reservation_max_ttl: Duration::from_secs(3600),
            sweeper_enabled: true,
            sweeper_interval: Duration::from_secs(5),
            sweeper_batch_size: 100,
            sold_out_marker_ttl: Duration::from_secs(5),
            low_stock_threshold: 5,
        }
    }
}

impl StockSettings {
    /// Reads the stock settings (problems are recorded in `reader`).
    pub fn read(reader: &Reader<'_>) -> Option<Self> {
        let defaults = Self::default();
        let reservation_default_ttl =
            reader.with_default("RESERVATION_DEFAULT_TTL", defaults.reservation_default_ttl);
        let reservation_max_ttl =
            reader.with_default("RESERVATION_MAX_TTL", defaults.reservation_max_ttl);
        let sweeper_enabled = reader.with_default("SWEEPER_ENABLED", defaults.sweeper_enabled);
        let sweeper_interval = reader.with_default("SWEEPER_INTERVAL", defaults.sweeper_interval);
        let sweeper_batch_size =
            reader.with_default("SWEEPER_BATCH_SIZE", defaults.sweeper_batch_size);
        let sold_out_marker_ttl =
            reader.with_default("SOLD_OUT_MARKER_TTL", defaults.sold_out_marker_ttl);
        let low_stock_threshold =
            reader.with_default("LOW_STOCK_THRESHOLD", defaults.low_stock_threshold);

        if let Some(max) = reservation_max_ttl
            && !(MIN_RESERVATION_TTL..=defaults.reservation_max_ttl).contains(&max)
        {
            reader.invalid("RESERVATION_MAX_TTL", "must be between 1m and 1h");
            return None;
        }
        if let (Some(default), Some(max)) = (reservation_default_ttl, reservation_max_ttl)
            && !(MIN_RESERVATION_TTL..=max).contains(&default)
        {
            reader.invalid(
                "RESERVATION_DEFAULT_TTL",
                "must be between 1m and RESERVATION_MAX_TTL",
            );
            return None;
        }
        if sweeper_interval.is_some_and(|d| d.is_zero()) {
            reader.invalid("SWEEPER_INTERVAL", "must be positive");
            return None;
        }
        if sweeper_batch_size == Some(0) {
            reader.invalid("SWEEPER_BATCH_SIZE", "must be positive");
            return None;
        }
        if sold_out_marker_ttl.is_some_and(|d| d.as_millis() == 0) {
            reader.invalid("SOLD_OUT_MARKER_TTL", "must be at least 1ms");
            return None;
        }
        if low_stock_threshold.is_some_and(|t| t < 0) {
            reader.invalid("LOW_STOCK_THRESHOLD", "must not be negative");
            return None;
        }
        Some(Self {
            reservation_default_ttl: reservation_default_ttl?,
            reservation_max_ttl: reservation_max_ttl?,
            sweeper_enabled: sweeper_enabled?,
            sweeper_interval: sweeper_interval?,
            sweeper_batch_size: sweeper_batch_size?,
            sold_out_marker_ttl: sold_out_marker_ttl?,
            low_stock_threshold: low_stock_threshold?,
        })
    }

    /// The settings tests start with: the defaults, with a fast sweeper.
    pub fn test_defaults() -> Self {
        Self {
            sweeper_interval: Duration::from_millis(200),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use mercato_platform::settings::EnvSource;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<StockSettings, String> {
        let source = EnvSource::from_pairs(pairs.iter().copied());
        let reader = source.service("product");
        let settings = StockSettings::read(&reader);
        reader
            .finish(|| settings)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn unset_variables_give_the_defaults() {
        assert_eq!(read(&[]), Ok(StockSettings::default()));
    }

    #[test]
    fn variables_override_the_defaults() {
        let settings = read(&[
            ("MERCATO_PRODUCT__SWEEPER_INTERVAL", "250ms"),
            ("MERCATO_PRODUCT__SWEEPER_BATCH_SIZE", "7"),
            ("MERCATO_PRODUCT__RESERVATION_DEFAULT_TTL", "10m"),
            ("MERCATO_PRODUCT__SOLD_OUT_MARKER_TTL", "2s"),
            ("MERCATO_PRODUCT__LOW_STOCK_THRESHOLD", "0"),
        ])
        .expect("valid settings");
        assert_eq!(settings.sweeper_interval, Duration::from_millis(250));
        assert_eq!(settings.sweeper_batch_size, 7);
        assert_eq!(settings.reservation_default_ttl, Duration::from_secs(600));
        assert_eq!(settings.sold_out_marker_ttl, Duration::from_secs(2));
        assert_eq!(settings.low_stock_threshold, 0);
    }

    #[test]
    fn out_of_range_values_name_their_variable() {
        for (name, value) in [
            ("MERCATO_PRODUCT__RESERVATION_MAX_TTL", "2h"),
            ("MERCATO_PRODUCT__RESERVATION_DEFAULT_TTL", "30s"),
            ("MERCATO_PRODUCT__SWEEPER_BATCH_SIZE", "0"),
            ("MERCATO_PRODUCT__SWEEPER_INTERVAL", "0s"),
            ("MERCATO_PRODUCT__LOW_STOCK_THRESHOLD", "-1"),
        ] {
            let error = read(&[(name, value)]).expect_err(name);
            assert!(error.contains(name), "{error}");
        }
    }
}
