//! Conversions between async-stripe's generated types and the adapter's plain ones, and the input
//! checks that run before a request is built. The only module besides `client` that names Stripe
//! types.

use std::str::FromStr;

use stripe_types::Currency;

use crate::error::{ApiError, ApiErrorKind, StripeError};
use crate::types::{
    Account, AccountLink, CapabilityStatus, LoginLink, ORDER_ID_METADATA_KEY,
    PAYMENT_ID_METADATA_KEY, PAYOUT_ID_METADATA_KEY, PaymentError, PaymentIntent,
    PaymentIntentStatus, Refund, RefundStatus, SELLER_ID_METADATA_KEY, Transfer, TransferReversal,
};

/// Stripe's largest amount: eight digits of minor units.
pub(crate) const MAX_AMOUNT: i64 = 99_999_999;
/// Stripe's limit for a metadata value.
const MAX_METADATA_VALUE: usize = 500;
/// The longest redirect URL accepted (browsers and Stripe handle far longer, but nothing we send
/// needs more).
const MAX_URL: usize = 2_048;

// ---- input checks ---------------------------------------------------------------------------

pub(crate) fn amount(field: &'static str, amount: i64) -> Result<i64, StripeError> {
    if amount <= 0 {
        return Err(StripeError::invalid(
            field,
            "must be a positive number of minor units",
        ));
    }
    if amount > MAX_AMOUNT {
        return Err(StripeError::invalid(
            field,
            format!("must be at most {MAX_AMOUNT}"),
        ));
    }
    Ok(amount)
}

pub(crate) fn currency(code: &str) -> Result<Currency, StripeError> {
    let lower = code.to_ascii_lowercase();
    if lower.len() != 3 || !lower.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(StripeError::invalid(
            "currency",
            "must be a three-letter ISO 4217 code",
        ));
    }
    match Currency::from_str(&lower) {
        Ok(Currency::Unknown(_)) | Err(_) => Err(StripeError::invalid(
            "currency",
            format!("{lower} is not a currency Stripe supports"),
        )),
        Ok(currency) => Ok(currency),
    }
}

pub(crate) fn idempotency_key(key: &str) -> Result<stripe::RequestStrategy, StripeError> {
    stripe::IdempotencyKey::new(key)
        .map(stripe::RequestStrategy::Idempotent)
        .map_err(|err| StripeError::invalid("idempotency_key", err.to_string()))
}

/// A Stripe object id with the expected prefix, made only of the characters Stripe uses, so it
/// can go into a URL path as is.
pub(crate) fn object_id<'a>(
    field: &'static str,
    id: &'a str,
    prefix: &str,
) -> Result<&'a str, StripeError> {
    let well_formed = id.len() > prefix.len()
        && id.len() <= 255
        && id.starts_with(prefix)
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if well_formed {
        Ok(id)
    } else {
        Err(StripeError::invalid(
            field,
            format!("must be a Stripe id starting with {prefix}"),
        ))
    }
}

pub(crate) fn metadata_value(field: &'static str, value: &str) -> Result<String, StripeError> {
    if value.is_empty() {
        return Err(StripeError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_METADATA_VALUE {
        return Err(StripeError::invalid(
            field,
            format!("must be at most {MAX_METADATA_VALUE} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An ISO 3166-1 alpha-2 country code, sent upper case. Whether Stripe supports it for the
/// account's configuration is Stripe's answer (a 400 naming `country`).
pub(crate) fn country(code: &str) -> Result<String, StripeError> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(StripeError::invalid(
            "country",
            "must be a two-letter ISO 3166-1 code",
        ))
    }
}

/// An absolute http(s) URL without spaces or control characters (a redirect target).
pub(crate) fn url(field: &'static str, url: &str) -> Result<String, StripeError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host_present = rest.is_some_and(|rest| {
        rest.split(['/', '?', '#'])
            .next()
            .is_some_and(|host| !host.is_empty())
    });
    if !host_present {
        return Err(StripeError::invalid(field, "must be an http or https url"));
    }
    if url.len() > MAX_URL {
        return Err(StripeError::invalid(
            field,
            format!("must be at most {MAX_URL} characters"),
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StripeError::invalid(
            field,
            "must not contain spaces or control characters",
        ));
    }
    Ok(url.to_owned())
}

/// 1 ..= 100, Stripe's page sizes.
pub(crate) fn limit(limit: i64) -> Result<i64, StripeError> {
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(StripeError::invalid("limit", "must be between 1 and 100"))
    }
}

// ---- Stripe → ours --------------------------------------------------------------------------

pub(crate) fn error(err: stripe::StripeError) -> StripeError {
    match err {
        stripe::StripeError::Stripe(api, status) => StripeError::Api(Box::new(ApiError {
            status,
            kind: error_kind(&api.type_),
            code: api.code.as_ref().map(|code| code.as_str().to_owned()),
            decline_code: api.decline_code.clone(),
            message: api.message.clone(),
            param: api.param.clone(),
        })),
        stripe::StripeError::JSONDeserialize(msg) => StripeError::Decode(msg),
        stripe::StripeError::ClientError(msg) => StripeError::Transport(msg),
        stripe::StripeError::ConfigError(msg) => StripeError::Config(msg),
        stripe::StripeError::Timeout => StripeError::Timeout,
    }
}

// Both enums are `#[non_exhaustive]`: match Stripe's spelling, so a value added later lands in
// `Other` instead of needing a wildcard arm.
fn error_kind(kind: &stripe::ApiErrorsType) -> ApiErrorKind {
    match kind.as_str() {
        "card_error" => ApiErrorKind::Card,
        "invalid_request_error" => ApiErrorKind::InvalidRequest,
        "idempotency_error" => ApiErrorKind::Idempotency,
        "api_error" => ApiErrorKind::Api,
        other => ApiErrorKind::Other(other.to_owned()),
    }
}

pub(crate) fn status(status: &stripe_core::PaymentIntentStatus) -> PaymentIntentStatus {
    match status.as_str() {
        "requires_payment_method" => PaymentIntentStatus::RequiresPaymentMethod,
        "requires_confirmation" => PaymentIntentStatus::RequiresConfirmation,
        "requires_action" => PaymentIntentStatus::RequiresAction,
        "processing" => PaymentIntentStatus::Processing,
        "requires_capture" => PaymentIntentStatus::RequiresCapture,
        "succeeded" => PaymentIntentStatus::Succeeded,
        "canceled" => PaymentIntentStatus::Canceled,
        other => PaymentIntentStatus::Other(other.to_owned()),
    }
}

pub(crate) fn payment_intent(pi: stripe_core::PaymentIntent) -> PaymentIntent {
    PaymentIntent {
        id: pi.id.to_string(),
        status: status(&pi.status),
        amount: pi.amount,
        amount_received: pi.amount_received,
        currency: pi.currency.to_string(),
        order_id: pi.metadata.get(ORDER_ID_METADATA_KEY).cloned(),
        payment_id: pi.metadata.get(PAYMENT_ID_METADATA_KEY).cloned(),
        latest_charge: pi
            .latest_charge
            .as_ref()
            .map(|charge| charge.id().to_string()),
        last_error: pi.last_payment_error.map(|err| PaymentError {
            code: err.code.as_ref().map(|code| code.as_str().to_owned()),
            decline_code: err.decline_code,
            message: err.message,
        }),
        created: pi.created,
    }
}

pub(crate) fn refund(refund: stripe_core::Refund) -> Refund {
    let status = match refund.status.as_deref() {
        Some("pending") => RefundStatus::Pending,
        Some("requires_action") => RefundStatus::RequiresAction,
        Some("succeeded") => RefundStatus::Succeeded,
        Some("failed") => RefundStatus::Failed,
        Some("canceled") => RefundStatus::Canceled,
        Some(other) => RefundStatus::Other(other.to_owned()),
        None => RefundStatus::Other(String::new()),
    };
    Refund {
        id: refund.id.to_string(),
        status,
        amount: refund.amount,
        currency: refund.currency.to_string(),
        payment_intent: refund.payment_intent.as_ref().map(|pi| pi.id().to_string()),
    }
}

pub(crate) fn transfer(transfer: stripe_connect::Transfer) -> Transfer {
    Transfer {
        id: transfer.id.to_string(),
        amount: transfer.amount,
        amount_reversed: transfer.amount_reversed,
        currency: transfer.currency.to_string(),
        destination: transfer
            .destination
            .as_ref()
            .map(|account| account.id().to_string()),
        transfer_group: transfer.transfer_group,
        source_transaction: transfer
            .source_transaction
            .as_ref()
            .map(|charge| charge.id().to_string()),
        payout_id: transfer.metadata.get(PAYOUT_ID_METADATA_KEY).cloned(),
        reversed: transfer.reversed,
        created: transfer.created,
    }
}

fn capability(status: Option<&stripe_connect::AccountCapabilitiesStatus>) -> CapabilityStatus {
    match status.map(stripe_connect::AccountCapabilitiesStatus::as_str) {
        None => CapabilityStatus::Absent,
        Some("active") => CapabilityStatus::Active,
        Some("inactive") => CapabilityStatus::Inactive,
        Some("pending") => CapabilityStatus::Pending,
        Some(other) => CapabilityStatus::Other(other.to_owned()),
    }
}

pub(crate) fn account(account: stripe_connect::Account) -> Account {
    Account {
        id: account.id.to_string(),
        country: account.country.map(|c| c.to_ascii_uppercase()),
        charges_enabled: account.charges_enabled.unwrap_or(false),
        payouts_enabled: account.payouts_enabled.unwrap_or(false),
        details_submitted: account.details_submitted.unwrap_or(false),
        transfers: capability(
            account
                .capabilities
                .as_ref()
                .and_then(|capabilities| capabilities.transfers.as_ref()),
        ),
        seller_id: account
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.get(SELLER_ID_METADATA_KEY).cloned()),
        created: account.created,
    }
}

pub(crate) fn account_link(link: stripe_connect::AccountLink) -> AccountLink {
    AccountLink {
        url: link.url,
        created: link.created,
        expires_at: link.expires_at,
    }
}

pub(crate) fn login_link(link: stripe_connect::LoginLink) -> LoginLink {
    LoginLink {
        url: link.url,
        created: link.created,
    }
}

pub(crate) fn transfer_reversal(reversal: stripe_connect::TransferReversal) -> TransferReversal {
    TransferReversal {
        id: reversal.id.to_string(),
        transfer: reversal.transfer.id().to_string(),
        amount: reversal.amount,
        currency: reversal.currency.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_must_be_positive_and_at_most_eight_digits() {
        assert!(amount("amount", 1).is_ok());
        assert!(amount("amount", MAX_AMOUNT).is_ok());
        for bad in [0, -1, MAX_AMOUNT + 1, i64::MAX, i64::MIN] {
            assert!(
                matches!(
                    amount("amount", bad),
                    Err(StripeError::InvalidArgument {
                        field: "amount",
                        ..
                    })
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn currencies_are_lowercased_and_must_be_known_to_stripe() {
        assert_eq!(currency("EUR").expect("eur").to_string(), "eur");
        assert_eq!(currency("usd").expect("usd").to_string(), "usd");
        for bad in ["", "eu", "euro", "e1r", "zzz", "€ur"] {
            assert!(
                matches!(
                    currency(bad),
                    Err(StripeError::InvalidArgument {
                        field: "currency",
                        ..
                    })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn object_ids_need_their_prefix_and_no_path_characters() {
        assert!(object_id("id", "pi_3MtwBwLkdIwHu7ix28a3tqPa", "pi_").is_ok());
        for bad in [
            "",
            "pi_",
            "ch_123",
            "pi_12/../refunds",
            "pi_1?expand=x",
            "pi_1 2",
        ] {
            assert!(object_id("id", bad, "pi_").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn countries_are_two_letters_sent_upper_case() {
        assert_eq!(country("jp").expect("jp"), "JP");
        assert_eq!(country("US").expect("us"), "US");
        for bad in ["", "J", "JPN", "J1", "日本"] {
            assert!(country(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn redirect_urls_must_be_absolute_http_urls() {
        for good in [
            "https://shop.example/seller/payouts?done=1",
            "http://127.0.0.1:5173/seller",
        ] {
            assert_eq!(url("return_url", good).expect("accepted"), good);
        }
        for bad in [
            "",
            "shop.example/seller",
            "https://",
            "https:///path",
            "ftp://shop.example",
            "javascript:alert(1)",
            "https://shop.example/a b",
        ] {
            assert!(
                matches!(
                    url("return_url", bad),
                    Err(StripeError::InvalidArgument {
                        field: "return_url",
                        ..
                    })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(
            url(
                "return_url",
                &format!("https://a.example/{}", "x".repeat(MAX_URL))
            )
            .is_err()
        );
    }

    #[test]
    fn idempotency_keys_must_be_1_to_255_characters() {
        assert!(idempotency_key("order-1:payment").is_ok());
        assert!(idempotency_key(&"k".repeat(255)).is_ok());
        assert!(idempotency_key("").is_err());
        assert!(idempotency_key(&"k".repeat(256)).is_err());
    }
}
