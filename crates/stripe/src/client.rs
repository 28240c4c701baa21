//! The HTTP client: one method per Stripe call we make, plain types in and out.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stripe::StripeRequest;
use stripe_connect::account::{
    CreateAccount, CreateAccountCapabilities, CreateAccountCapabilitiesCardPayments,
    CreateAccountCapabilitiesTransfers, CreateAccountController, CreateAccountControllerFees,
    CreateAccountControllerFeesPayer, CreateAccountControllerLosses,
    CreateAccountControllerLossesPayments, CreateAccountControllerStripeDashboard,
    CreateAccountControllerStripeDashboardType, RetrieveAccount,
};
use stripe_connect::account_link::{CreateAccountLink, CreateAccountLinkType};
use stripe_connect::login_link::CreateAccountLoginLink;
use stripe_connect::transfer::{CreateTransfer, ListTransfer, RetrieveTransfer};
use stripe_connect::transfer_reversal::CreateIdTransferReversal;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CreatePaymentIntent, RetrievePaymentIntent,
};
use stripe_core::refund::CreateRefund;

use crate::convert;
use crate::error::StripeError;
use crate::types::{
    Account, AccountKind, AccountLink, AccountLinkKind, CreatedPaymentIntent, LoginLink,
    NewAccount, NewAccountLink, NewPaymentIntent, NewRefund, NewTransfer, NewTransferReversal,
    ORDER_ID_METADATA_KEY, PAYMENT_ID_METADATA_KEY, PAYOUT_ID_METADATA_KEY, PaymentIntent,
    REFUND_ID_METADATA_KEY, Refund, SELLER_ID_METADATA_KEY, Transfer, TransferQuery,
    TransferReversal,
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

    /// `POST /v1/accounts`: a connected account for a seller, configured by controller
    /// properties ([`AccountKind`]), with the seller id in its metadata and the `transfers` and
    /// `card_payments` capabilities requested. Nothing is enabled until the seller completes
    /// onboarding ([`Self::create_account_link`]).
    #[tracing::instrument(skip_all, fields(seller.id = %new.seller_id, stripe.account))]
    pub async fn create_account(&self, new: &NewAccount) -> Result<Account, StripeError> {
        let country = convert::country(&new.country)?;
        let seller_id = convert::metadata_value("seller_id", &new.seller_id)?;
        let strategy = convert::idempotency_key(&new.idempotency_key)?;
        let (dashboard, payer, losses) = match new.kind {
            AccountKind::Express => (
                CreateAccountControllerStripeDashboardType::Express,
                CreateAccountControllerFeesPayer::Application,
                CreateAccountControllerLossesPayments::Application,
            ),
            AccountKind::Standard => (
                CreateAccountControllerStripeDashboardType::Full,
                CreateAccountControllerFeesPayer::Account,
                CreateAccountControllerLossesPayments::Stripe,
            ),
        };
        let mut controller = CreateAccountController::new();
        controller.stripe_dashboard = Some(CreateAccountControllerStripeDashboard {
            type_: Some(dashboard),
        });
        controller.fees = Some(CreateAccountControllerFees { payer: Some(payer) });
        controller.losses = Some(CreateAccountControllerLosses {
            payments: Some(losses),
        });
        let mut capabilities = CreateAccountCapabilities::new();
        capabilities.transfers = Some(CreateAccountCapabilitiesTransfers {
            requested: Some(true),
        });
        capabilities.card_payments = Some(CreateAccountCapabilitiesCardPayments {
            requested: Some(true),
        });
        let mut request = CreateAccount::new()
            .country(country)
            .controller(controller)
            .capabilities(capabilities)
            .metadata(HashMap::from([(
                SELLER_ID_METADATA_KEY.to_owned(),
                seller_id,
            )]));
        if let Some(email) = &new.email {
            request = request.email(convert::metadata_value("email", email)?);
        }
        let account = request
            .customize()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        tracing::Span::current().record("stripe.account", account.id.as_str());
        Ok(convert::account(account))
    }

    /// `GET /v1/accounts/{id}`: whether the account can receive transfers and payouts now.
    #[tracing::instrument(skip(self), fields(stripe.account = %id))]
    pub async fn retrieve_account(&self, id: &str) -> Result<Account, StripeError> {
        let id = convert::object_id("account", id, "acct_")?;
        let account = RetrieveAccount::new(id)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        Ok(convert::account(account))
    }

    /// `POST /v1/account_links`: a single-use link into Stripe-hosted onboarding. Links are
    /// cheap and expire within minutes, so a retry simply makes another (no idempotency key).
    #[tracing::instrument(skip_all, fields(stripe.account = %new.account))]
    pub async fn create_account_link(
        &self,
        new: &NewAccountLink,
    ) -> Result<AccountLink, StripeError> {
        let account = convert::object_id("account", &new.account, "acct_")?;
        let return_url = convert::url("return_url", &new.return_url)?;
        let refresh_url = convert::url("refresh_url", &new.refresh_url)?;
        let kind = match new.kind {
            AccountLinkKind::Onboarding => CreateAccountLinkType::AccountOnboarding,
            AccountLinkKind::Update => CreateAccountLinkType::AccountUpdate,
        };
        let link = CreateAccountLink::new(account, kind)
            .return_url(return_url)
            .refresh_url(refresh_url)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        Ok(convert::account_link(link))
    }

    /// `POST /v1/accounts/{id}/login_links`: a single-use link into an Express account's
    /// dashboard (Stripe refuses it for other accounts and before onboarding is complete).
    #[tracing::instrument(skip(self), fields(stripe.account = %account))]
    pub async fn create_login_link(&self, account: &str) -> Result<LoginLink, StripeError> {
        let account = convert::object_id("account", account, "acct_")?;
        let link = CreateAccountLoginLink::new(account)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        Ok(convert::login_link(link))
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
        if let Some(payout_id) = &new.payout_id {
            request = request.metadata(HashMap::from([(
                PAYOUT_ID_METADATA_KEY.to_owned(),
                convert::metadata_value("payout_id", payout_id)?,
            )]));
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

    /// `GET /v1/transfers/{id}`: the transfer now, with how much of it is reversed.
    #[tracing::instrument(skip(self), fields(stripe.transfer = %id))]
    pub async fn retrieve_transfer(&self, id: &str) -> Result<Transfer, StripeError> {
        let id = convert::object_id("transfer", id, "tr_")?;
        let transfer = RetrieveTransfer::new(id)
            .send(&self.inner)
            .await
            .map_err(convert::error)?;
        Ok(convert::transfer(transfer))
    }

    /// `GET /v1/transfers`: one page of transfers, newest first, filtered by group and
    /// destination. Finds a transfer whose creation answer was lost (match on its `payout_id`),
    /// whether or not Stripe still remembers the idempotency key.
    #[tracing::instrument(skip_all)]
    pub async fn list_transfers(
        &self,
        query: &TransferQuery,
    ) -> Result<Vec<Transfer>, StripeError> {
        let mut request = ListTransfer::new();
        if let Some(group) = &query.transfer_group {
            request = request.transfer_group(convert::metadata_value("transfer_group", group)?);
        }
        if let Some(destination) = &query.destination {
            request = request.destination(convert::object_id("destination", destination, "acct_")?);
        }
        if let Some(limit) = query.limit {
            request = request.limit(convert::limit(limit)?);
        }
        let page = request.send(&self.inner).await.map_err(convert::error)?;
        Ok(page.data.into_iter().map(convert::transfer).collect())
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
