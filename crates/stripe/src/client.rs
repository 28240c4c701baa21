//! The HTTP client: one method per Stripe call we make, plain types in and out.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stripe::StripeRequest;
use stripe_connect::transfer::CreateTransfer;
use stripe_connect::transfer_reversal::CreateIdTransferReversal;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CreatePaymentIntent, RetrievePaymentIntent,
};
use stripe_core::refund::CreateRefund;

use crate::convert;
use crate::error::StripeError;
use crate::types::{
    CreatedPaymentIntent, NewPaymentIntent, NewRefund, NewTransfer, NewTransferReversal,
    ORDER_ID_METADATA_KEY, PAYMENT_ID_METADATA_KEY, PaymentIntent, REFUND_ID_METADATA_KEY, Refund,
    Transfer, TransferReversal,
};

/// Stripe's API host. Tests point [`StripeConfig::base_url`] at localstripe (through the
/// normalizing proxy of the `testing` feature) or at a fixture server instead.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// How long one request may take before it fails with [`StripeError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and as whom the client talks to Stripe.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `sk_live_…` / `sk_test_…` (or a restricted `rk_…` key).
    pub secret_key: SecretString,
    /// Scheme and host, optionally a path prefix; `/v1/...` is appended. A trailing `/` is optional.
    pub base_url: String,
    /// Per request (each attempt), see [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
}

impl StripeConfig {
    /// Stripe itself, with the default timeout.
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            secret_key: SecretString::from(secret_key.into()),
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A Stripe API client. Cheap to clone (connections are not pooled: async-stripe opens one per
/// request).
#[derive(Debug, Clone)]
pub struct StripeClient {
    inner: stripe::Client,
}

impl StripeClient {
    /// Builds the client; fails on an empty secret key or an unusable base URL. Sends nothing.
    pub fn new(config: StripeConfig) -> Result<Self, StripeError> {
        let secret = config.secret_key.expose_secret();
        if secret.trim().is_empty() {
            return Err(StripeError::Config("the secret key is empty".to_owned()));
        }
        let base_url = config.base_url.trim();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(StripeError::Config(format!(
                "the base url {base_url:?} must start with https:// or http://"
            )));
        }
        // async-stripe formats `{base}v1{path}`, so the base must end with a slash.
        let base_url = if base_url.ends_with('/') {
            base_url.to_owned()
        } else {
            format!("{base_url}/")
        };
        let inner = stripe::ClientBuilder::new(secret)
            .url(base_url)
            .timeout(config.timeout)
            .build()
            .map_err(convert::error)?;
        Ok(Self { inner })
    }

    /// `POST /v1/payment_intents` with amount, currency, `metadata[order_id]` (and
    /// `metadata[payment_id]`); no payment method, so the browser confirms it with the returned
    /// client secret.
    #[tracing::instrument(skip_all, fields(order.id = %new.order_id, stripe.payment_intent))]
    pub async fn create_payment_intent(
        &self,
        new: &NewPaymentIntent,
    ) -> Result<CreatedPaymentIntent, StripeError> {
        let amount = convert::amount("amount", new.amount)?;
        let currency = convert::currency(&new.currency)?;
        let order_id = convert::metadata_value("order_id", &new.order_id)?;
        let strategy = convert::idempotency_key(&new.idempotency_key)?;
        let mut metadata = HashMap::from([(ORDER_ID_METADATA_KEY.to_owned(), order_id)]);
        if let Some(payment_id) = &new.payment_id {
            metadata.insert(
                PAYMENT_ID_METADATA_KEY.to_owned(),
                convert::metadata_value("payment_id", payment_id)?,
            );
        }
        let mut request = CreatePaymentIntent::new(amount, currency).metadata(metadata);
        if let Some(group) = &new.transfer_group {
            request = request.transfer_group(convert::metadata_value("transfer_group", group)?);
        }
        let pi = request
            .customize()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        tracing::Span::current().record("stripe.payment_intent", pi.id.as_str());
        let client_secret = pi.client_secret.clone().ok_or_else(|| {
            StripeError::Decode(format!(
                "payment intent {} came without a client secret",
                pi.id
            ))
        })?;
        Ok(CreatedPaymentIntent {
            id: pi.id.to_string(),
            client_secret,
            status: convert::status(&pi.status),
        })
    }

    /// `GET /v1/payment_intents/{id}`: the current state, to trust instead of a webhook's body.
    #[tracing::instrument(skip(self), fields(stripe.payment_intent = %id))]
    pub async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, StripeError> {
        let id = convert::object_id("payment_intent", id, "pi_")?;
        let pi = RetrievePaymentIntent::new(id)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        Ok(convert::payment_intent(pi))
    }

    /// `POST /v1/payment_intents/{id}/cancel`, e.g. for an order cancelled before payment.
    /// Stripe refuses (400) once the PaymentIntent succeeded or was already cancelled; with the
    /// same idempotency key a retry replays the first answer instead.
    #[tracing::instrument(skip(self, idempotency_key), fields(stripe.payment_intent = %id))]
    pub async fn cancel_payment_intent(
        &self,
        id: &str,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let id = convert::object_id("payment_intent", id, "pi_")?;
        let strategy = convert::idempotency_key(idempotency_key)?;
        let pi = CancelPaymentIntent::new(id)
            .customize()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        Ok(convert::payment_intent(pi))
    }

    /// `POST /v1/refunds` for a PaymentIntent, whole or partial.
    #[tracing::instrument(skip_all, fields(stripe.payment_intent = %new.payment_intent, stripe.refund))]
    pub async fn create_refund(&self, new: &NewRefund) -> Result<Refund, StripeError> {
        let payment_intent = convert::object_id("payment_intent", &new.payment_intent, "pi_")?;
        let strategy = convert::idempotency_key(&new.idempotency_key)?;
        let mut request = CreateRefund::new().payment_intent(payment_intent);
        if let Some(refund_id) = &new.refund_id {
            request = request.metadata(HashMap::from([(
                REFUND_ID_METADATA_KEY.to_owned(),
                convert::metadata_value("refund_id", refund_id)?,
            )]));
        }
        if let Some(amount) = new.amount {
            request = request.amount(convert::amount("amount", amount)?);
        }
        let refund = request
            .customize()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        tracing::Span::current().record("stripe.refund", refund.id.as_str());
        Ok(convert::refund(refund))
    }

    /// `POST /v1/transfers`: pays a seller's connected account from the platform balance.
    #[tracing::instrument(skip_all, fields(stripe.account = %new.destination, stripe.transfer))]
    pub async fn create_transfer(&self, new: &NewTransfer) -> Result<Transfer, StripeError> {
        let amount = convert::amount("amount", new.amount)?;
        let currency = convert::currency(&new.currency)?;
        let destination = convert::object_id("destination", &new.destination, "acct_")?;
        let strategy = convert::idempotency_key(&new.idempotency_key)?;
        let mut request = CreateTransfer::new(currency, destination).amount(amount);
        if let Some(group) = &new.transfer_group {
            request = request.transfer_group(convert::metadata_value("transfer_group", group)?);
        }
        if let Some(charge) = &new.source_transaction {
            request = request.source_transaction(convert::object_id(
                "source_transaction",
                charge,
                "ch_",
            )?);
        }
        let transfer = request
            .customize()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        tracing::Span::current().record("stripe.transfer", transfer.id.as_str());
        Ok(convert::transfer(transfer))
    }

    /// `POST /v1/transfers/{id}/reversals`: takes a transfer (or part of it) back, e.g. on refund.
    #[tracing::instrument(skip_all, fields(stripe.transfer = %new.transfer))]
    pub async fn reverse_transfer(
        &self,
        new: &NewTransferReversal,
    ) -> Result<TransferReversal, StripeError> {
        let transfer = convert::object_id("transfer", &new.transfer, "tr_")?;
        let strategy = convert::idempotency_key(&new.idempotency_key)?;
        let mut request = CreateIdTransferReversal::new(transfer);
        if let Some(amount) = new.amount {
            request = request.amount(convert::amount("amount", amount)?);
        }
        let reversal = request
            .customize()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        Ok(convert::transfer_reversal(reversal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_needs_a_secret_key_and_an_http_base_url() {
        assert!(StripeClient::new(StripeConfig::new("sk_test_1")).is_ok());
        assert!(
            StripeClient::new(StripeConfig::new("sk_test_1").with_base_url("http://127.0.0.1:9"))
                .is_ok()
        );
        assert!(matches!(
            StripeClient::new(StripeConfig::new(" ")),
            Err(StripeError::Config(_))
        ));
        assert!(matches!(
            StripeClient::new(StripeConfig::new("sk_test_1").with_base_url("api.stripe.com")),
            Err(StripeError::Config(_))
        ));
    }

    #[test]
    fn the_config_does_not_show_its_secret_key() {
        let shown = format!("{:?}", StripeConfig::new("sk_test_very_secret"));
        assert!(!shown.contains("very_secret"), "{shown}");
    }
}
