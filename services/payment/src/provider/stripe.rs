//! The Stripe provider: [`PaymentProvider`] over `mercato_stripe::StripeClient`, used for STRIPE
//! payments when `STRIPE_SECRET_KEY` is set.
//!
//! A PaymentIntent is created with the order and payment ids in its metadata and no payment
//! method; the browser confirms it with the client secret (Stripe.js), so there is no payment
//! URL. Stripe's statuses map onto [`Observed`]: a declined attempt (`requires_payment_method`
//! with a last payment error) is `Failed` with the decline's code and message; the other
//! `requires_*` statuses wait for the buyer (`RequiresAction`); `processing` and
//! `requires_capture` (authorised, captured automatically) are `Processing`; `succeeded` and
//! `canceled` are final. Errors: no answer, 409, 429 and 5xx are `Unavailable` (retried with the
//! same idempotency key), a 404 is `NotFound`, everything else `Rejected`.

use futures::future::BoxFuture;
use mercato_stripe::{
    NewPaymentIntent, NewRefund, PaymentIntent, PaymentIntentStatus, RefundStatus, StripeClient,
    StripeConfig, StripeError,
};
use secrecy::{ExposeSecret as _, SecretString};

use super::{
    CreateIntent, Intent, PaymentProvider, ProviderError, ProviderRefund, RefundRequest,
    RefundState,
};
use crate::domain::Observed;

/// The provider name stored with Stripe payments.
pub const NAME: &str = "stripe";

/// The code of a failed attempt whose error carries none.
const UNKNOWN_FAILURE_CODE: &str = "payment_failed";
/// Its message when Stripe gives none.
const UNKNOWN_FAILURE_MESSAGE: &str = "the payment was declined";

/// The Stripe provider.
#[derive(Debug, Clone)]
pub struct StripeProvider {
    client: StripeClient,
}

impl StripeProvider {
    /// A provider calling Stripe at `base_url` (`https://api.stripe.com`, or a test server) with
    /// `secret_key`; sends nothing yet.
    pub fn new(secret_key: &SecretString, base_url: &str) -> Result<Self, StripeError> {
        let config = StripeConfig::new(secret_key.expose_secret()).with_base_url(base_url);
        Ok(Self::from_client(StripeClient::new(config)?))
    }

    /// A provider over an existing client.
    pub fn from_client(client: StripeClient) -> Self {
        Self { client }
    }
}

/// Stripe's status (and last error) as the payment service observes it.
pub fn observe(status: &PaymentIntentStatus, intent: Option<&PaymentIntent>) -> Observed {
    let last_error = intent.and_then(|i| i.last_error.as_ref());
    match (status, last_error) {
        (PaymentIntentStatus::RequiresPaymentMethod, Some(error)) => Observed::Failed {
            code: error
                .code
                .clone()
                .or_else(|| error.decline_code.clone())
                .unwrap_or_else(|| UNKNOWN_FAILURE_CODE.to_owned()),
            message: error
                .message
                .clone()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| UNKNOWN_FAILURE_MESSAGE.to_owned()),
        },
        (
            PaymentIntentStatus::RequiresPaymentMethod
            | PaymentIntentStatus::RequiresConfirmation
            | PaymentIntentStatus::RequiresAction,
            _,
        ) => Observed::RequiresAction,
        (PaymentIntentStatus::Processing | PaymentIntentStatus::RequiresCapture, _) => {
            Observed::Processing
        }
        (PaymentIntentStatus::Succeeded, _) => Observed::Succeeded,
        (PaymentIntentStatus::Canceled, _) => Observed::Cancelled,
        // A status of a newer API version: not final, so the payment waits (reconciliation
        // looks again).
        (PaymentIntentStatus::Other(_), _) => Observed::Processing,
    }
}

/// A Stripe error as the provider boundary sees it.
pub fn provider_error(error: &StripeError) -> ProviderError {
    if error.is_retryable() {
        return ProviderError::Unavailable(error.to_string());
    }
    if error.is_not_found() {
        return ProviderError::NotFound(
            error
                .api()
                .and_then(|api| api.message.clone())
                .unwrap_or_else(|| error.to_string()),
        );
    }
    match error {
        StripeError::Api(api) => ProviderError::Rejected {
            code: api
                .code
                .clone()
                .unwrap_or_else(|| api.kind.as_str().to_owned()),
            message: api.message.clone().unwrap_or_else(|| api.to_string()),
        },
        StripeError::InvalidArgument { field, reason } => ProviderError::Rejected {
            code: format!("invalid_{field}"),
            message: reason.clone(),
        },
        StripeError::Decode(_) => ProviderError::Rejected {
            code: "stripe_decode".to_owned(),
            message: error.to_string(),
        },
        StripeError::Config(_) => ProviderError::Rejected {
            code: "stripe_config".to_owned(),
            message: error.to_string(),
        },
        // Retryable, handled above.
        StripeError::Transport(_) | StripeError::Timeout => {
            ProviderError::Unavailable(error.to_string())
        }
    }
}

fn to_intent(intent: PaymentIntent, client_secret: Option<SecretString>) -> Intent {
    Intent {
        status: observe(&intent.status, Some(&intent)),
        currency: intent.currency.to_ascii_uppercase(),
        amount: intent.amount,
        id: intent.id,
        client_secret,
        payment_url: None,
    }
}

fn refund_state(status: &RefundStatus) -> RefundState {
    match status {
        RefundStatus::Succeeded => RefundState::Succeeded,
        RefundStatus::Failed => RefundState::Failed("stripe failed the refund".to_owned()),
        RefundStatus::Canceled => RefundState::Failed("the refund was canceled".to_owned()),
        RefundStatus::Pending | RefundStatus::RequiresAction | RefundStatus::Other(_) => {
            RefundState::Pending
        }
    }
}

impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create_intent<'a>(
        &'a self,
        request: &'a CreateIntent,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            let created = self
                .client
                .create_payment_intent(&NewPaymentIntent {
                    amount: request.amount,
                    currency: request.currency.clone(),
                    order_id: request.order_id.to_string(),
                    payment_id: Some(request.payment_id.to_string()),
                    idempotency_key: request.idempotency_key.clone(),
                    transfer_group: None,
                })
                .await
                .map_err(|e| provider_error(&e))?;
            // The creation answer has no last error; a fresh intent has none anyway.
            let intent = self
                .client
                .retrieve_payment_intent(&created.id)
                .await
                .map_err(|e| provider_error(&e))?;
            if intent.amount != request.amount
                || !intent.currency.eq_ignore_ascii_case(&request.currency)
            {
                return Err(ProviderError::Rejected {
                    code: "idempotency_key_reused".to_owned(),
                    message: format!(
                        "stripe's intent {} is {} {}, not {} {}",
                        intent.id, intent.amount, intent.currency, request.amount, request.currency
                    ),
                });
            }
            Ok(to_intent(
                intent,
                Some(SecretString::from(created.client_secret)),
            ))
        })
    }

    fn retrieve_intent<'a>(
        &'a self,
        intent_id: &'a str,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            let intent = self
                .client
                .retrieve_payment_intent(intent_id)
                .await
                .map_err(|e| provider_error(&e))?;
            Ok(to_intent(intent, None))
        })
    }

    fn cancel_intent<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            match self
                .client
                .cancel_payment_intent(intent_id, idempotency_key)
                .await
            {
                Ok(intent) => Ok(to_intent(intent, None)),
                Err(error) => {
                    let mapped = provider_error(&error);
                    if !matches!(mapped, ProviderError::Rejected { .. }) {
                        return Err(mapped);
                    }
                    // Stripe refuses to cancel an intent that succeeded (or was cancelled)
                    // meanwhile: report it as it is, so a captured payment gets refunded.
                    let intent = self
                        .client
                        .retrieve_payment_intent(intent_id)
                        .await
                        .map_err(|e| provider_error(&e))?;
                    if intent.status.is_terminal() {
                        Ok(to_intent(intent, None))
                    } else {
                        Err(mapped)
                    }
                }
            }
        })
    }

    fn refund<'a>(
        &'a self,
        request: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>> {
        Box::pin(async move {
            let refund = self
                .client
                .create_refund(&NewRefund {
                    payment_intent: request.intent_id.clone(),
                    amount: Some(request.amount),
                    idempotency_key: request.idempotency_key.clone(),
                    refund_id: Some(request.refund_id.to_string()),
                })
                .await
                .map_err(|e| provider_error(&e))?;
            Ok(ProviderRefund {
                state: refund_state(&refund.status),
                id: refund.id,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use mercato_stripe::{ApiError, ApiErrorKind, PaymentError};

    use super::*;

    fn intent(status: PaymentIntentStatus, last_error: Option<PaymentError>) -> PaymentIntent {
        PaymentIntent {
            id: "pi_1".to_owned(),
            status,
            amount: 1_200,
            amount_received: 0,
            currency: "jpy".to_owned(),
            order_id: None,
            payment_id: None,
            latest_charge: None,
            last_error,
            created: 0,
        }
    }

    fn api(status: u16, code: Option<&str>) -> StripeError {
        StripeError::Api(Box::new(ApiError {
            status,
            kind: ApiErrorKind::InvalidRequest,
            code: code.map(str::to_owned),
            decline_code: None,
            message: Some("refused".to_owned()),
            param: None,
        }))
    }

    #[test]
    fn statuses_map_onto_observations() {
        use PaymentIntentStatus as S;
        let declined = intent(
            S::RequiresPaymentMethod,
            Some(PaymentError {
                code: Some("card_declined".to_owned()),
                decline_code: Some("generic_decline".to_owned()),
                message: Some("Your card was declined.".to_owned()),
            }),
        );
        assert_eq!(
            observe(&declined.status, Some(&declined)),
            Observed::Failed {
                code: "card_declined".to_owned(),
                message: "Your card was declined.".to_owned(),
            }
        );
        for waiting in [
            S::RequiresPaymentMethod,
            S::RequiresConfirmation,
            S::RequiresAction,
        ] {
            let fresh = intent(waiting.clone(), None);
            assert_eq!(
                observe(&waiting, Some(&fresh)),
                Observed::RequiresAction,
                "{waiting}"
            );
        }
        assert_eq!(observe(&S::Processing, None), Observed::Processing);
        assert_eq!(observe(&S::RequiresCapture, None), Observed::Processing);
        assert_eq!(observe(&S::Succeeded, None), Observed::Succeeded);
        assert_eq!(observe(&S::Canceled, None), Observed::Cancelled);
        let bare = intent(
            S::RequiresPaymentMethod,
            Some(PaymentError {
                code: None,
                decline_code: None,
                message: None,
            }),
        );
        assert_eq!(
            observe(&bare.status, Some(&bare)),
            Observed::Failed {
                code: UNKNOWN_FAILURE_CODE.to_owned(),
                message: UNKNOWN_FAILURE_MESSAGE.to_owned(),
            }
        );
        let converted = to_intent(intent(S::Succeeded, None), None);
        assert_eq!(converted.currency, "JPY");
        assert!(converted.payment_url.is_none());
    }

    #[test]
    fn errors_map_onto_provider_errors() {
        assert!(matches!(
            provider_error(&StripeError::Timeout),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            provider_error(&api(503, None)),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            provider_error(&api(429, Some("rate_limit"))),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            provider_error(&api(404, Some("resource_missing"))),
            ProviderError::NotFound(_)
        ));
        match provider_error(&api(400, Some("amount_too_small"))) {
            ProviderError::Rejected { code, message } => {
                assert_eq!(code, "amount_too_small");
                assert_eq!(message, "refused");
            }
            other @ (ProviderError::Unavailable(_) | ProviderError::NotFound(_)) => {
                panic!("expected Rejected, got {other:?}")
            }
        }
        match provider_error(&api(400, None)) {
            ProviderError::Rejected { code, .. } => assert_eq!(code, "invalid_request_error"),
            other @ (ProviderError::Unavailable(_) | ProviderError::NotFound(_)) => {
                panic!("expected Rejected, got {other:?}")
            }
        }
    }

    #[test]
    fn refund_statuses_map_onto_refund_states() {
        assert_eq!(
            refund_state(&RefundStatus::Succeeded),
            RefundState::Succeeded
        );
        assert_eq!(refund_state(&RefundStatus::Pending), RefundState::Pending);
        assert!(matches!(
            refund_state(&RefundStatus::Failed),
            RefundState::Failed(_)
        ));
    }
}
