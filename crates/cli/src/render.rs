//! Formatting shared by the commands: aligned tables, money in minor units, RFC 3339 times,
//! protobuf enum names without their prefix, and the same values for `--json`.

use chrono::{DateTime, SecondsFormat, Utc};
use mercato_proto::mercato::common::v1 as common;
use serde_json::{Value, json};

/// Rows of cells printed with every column padded to its widest cell.
#[derive(Debug, Default, Clone)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is `header`.
    pub fn with_header<const N: usize>(header: [&str; N]) -> Self {
        let mut table = Self::default();
        table.row(header.map(str::to_owned));
        table
    }

    /// Adds a row.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().collect());
    }

    /// The number of rows, the header included.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows at all.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rendered table, one line per row, trailing spaces trimmed.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                let width = widths.get(column).copied().unwrap_or(0);
                line.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `JPY 1200` (amounts are minor units); `-` when unset.
pub fn money(value: Option<&common::Money>) -> String {
    match value {
        Some(money) => format!("{} {}", money.currency_code, money.amount_minor),
        None => "-".to_owned(),
    }
}

/// `{"currency_code": "JPY", "amount_minor": 1200}` or `null`.
pub fn money_json(value: Option<&common::Money>) -> Value {
    match value {
        Some(money) => json!({
            "currency_code": money.currency_code,
            "amount_minor": money.amount_minor,
        }),
        None => Value::Null,
    }
}

/// The time of a protobuf timestamp.
pub fn time_of(value: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let value = value?;
    DateTime::from_timestamp(value.seconds, u32::try_from(value.nanos).unwrap_or(0))
}

/// A protobuf timestamp of `time`.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// RFC 3339 in UTC to the second; `-` when unset.
pub fn time(value: Option<&prost_types::Timestamp>) -> String {
    time_of(value)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".to_owned())
}

/// RFC 3339 with milliseconds, or `null`.
pub fn time_json(value: Option<&prost_types::Timestamp>) -> Value {
    time_of(value)
        .map(|time| Value::String(time.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// A protobuf enum name without its type prefix: `ORDER_STATUS_PAID` → `PAID`; empty names (an
/// unknown number) become the number.
pub fn enum_name(name: Option<&str>, prefix: &str, number: i32) -> String {
    match name {
        Some(name) => name.strip_prefix(prefix).unwrap_or(name).to_owned(),
        None => number.to_string(),
    }
}

/// `PAID`.
pub fn order_status(number: i32) -> String {
    let name = common::OrderStatus::try_from(number)
        .ok()
        .map(|status| status.as_str_name());
    enum_name(name, "ORDER_STATUS_", number)
}

/// `SUCCEEDED`.
pub fn payment_status(number: i32) -> String {
    let name = common::PaymentStatus::try_from(number)
        .ok()
        .map(|status| status.as_str_name());
    enum_name(name, "PAYMENT_STATUS_", number)
}

/// `SANDBOX`.
pub fn payment_method(number: i32) -> String {
    let name = common::PaymentMethod::try_from(number)
        .ok()
        .map(|method| method.as_str_name());
    enum_name(name, "PAYMENT_METHOD_", number)
}

/// `DELIVERED`.
pub fn shipment_status(number: i32) -> String {
    let name = common::ShipmentStatus::try_from(number)
        .ok()
        .map(|status| status.as_str_name());
    enum_name(name, "SHIPMENT_STATUS_", number)
}

/// `FIXED`.
pub fn coupon_kind(number: i32) -> String {
    let name = common::CouponKind::try_from(number)
        .ok()
        .map(|kind| kind.as_str_name());
    enum_name(name, "COUPON_KIND_", number)
}

/// `-` for an empty string.
pub fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value.to_owned()
    }
}

/// Pretty JSON with a trailing newline.
pub fn json_document(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_every_column_to_its_widest_cell() {
        let mut table = Table::with_header(["kid", "state"]);
        table.row(["a-long-kid".to_owned(), "ACTIVE".to_owned()]);
        assert_eq!(table.render(), "kid         state\na-long-kid  ACTIVE\n");
    }

    #[test]
    fn enum_names_lose_their_prefix() {
        assert_eq!(
            order_status(common::OrderStatus::Finished as i32),
            "FINISHED"
        );
        assert_eq!(order_status(99), "99");
    }

    #[test]
    fn timestamps_print_in_utc() {
        let stamp = prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 0,
        };
        assert_eq!(time(Some(&stamp)), "2026-01-01T00:00:00Z");
        assert_eq!(time(None), "-");
    }
}
