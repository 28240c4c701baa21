//! Conversions between async-stripe's generated types and the adapter's plain ones, and the input
//! checks that run before a request is built. The only module besides `client` that names Stripe
//! types.

use std::str::FromStr;

use stripe_types::Currency;

use crate::error::{ApiError, ApiErrorKind, StripeError};
use crate::types::{
    ORDER_ID_METADATA_KEY, PAYMENT_ID_METADATA_KEY, PaymentError, PaymentIntent,
    PaymentIntentStatus, Refund, RefundStatus, Transfer, TransferReversal,
};

/// Stripe's largest amount: eight digits of minor units.
pub(crate) const MAX_AMOUNT: i64 = 99_999_999;
/// Stripe's limit for a metadata value.
const MAX_METADATA_VALUE: usize = 500;

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
        reversed: transfer.reversed,
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
    fn idempotency_keys_must_be_1_to_255_characters() {
        assert!(idempotency_key("order-1:payment").is_ok());
        assert!(idempotency_key(&"k".repeat(255)).is_ok());
        assert!(idempotency_key("").is_err());
        assert!(idempotency_key(&"k".repeat(256)).is_err());
    }
}
