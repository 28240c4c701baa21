//! Stripe Connect for seller payouts: connected accounts, their onboarding and dashboard links,
//! transfers and reversals, over `mercato_stripe::StripeClient`. Used when `STRIPE_SECRET_KEY`
//! is set; without it the service makes no payouts.
//!
//! Like [`super::PaymentProvider`], callers see only plain types and [`ConnectError`]: no answer,
//! 409, 429 and 5xx are `Unavailable` (retry with the same idempotency key), 404 is `NotFound`,
//! anything else `Rejected` with Stripe's code and the parameter it names. Accounts are created
//! as Express accounts (the contract's "Stripe Connect Express").

use mercato_stripe::{
    Account, AccountKind, AccountLinkKind, CapabilityStatus, NewAccount, NewAccountLink,
    NewTransfer, NewTransferReversal, StripeClient, StripeConfig, StripeError, Transfer,
    TransferQuery,
};
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

use crate::payouts::rules::{self, AccountFlags};

/// Why a Connect call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// No answer, a conflict, rate limiting or a server error: retry later with the same key.
    #[error("stripe connect is unavailable: {0}")]
    Unavailable(String),
    /// The object does not exist at Stripe.
    #[error("stripe has no {0}")]
    NotFound(String),
    /// Refused for good (bad parameter, wrong state).
    #[error("stripe refused: {code}: {message}")]
    Rejected {
        /// Stripe's code (or error type).
        code: String,
        /// Its explanation.
        message: String,
        /// The request parameter at fault, when Stripe names one.
        param: Option<String>,
    },
}

fn connect_error(error: &StripeError) -> ConnectError {
    if error.is_retryable() {
        return ConnectError::Unavailable(error.to_string());
    }
    if error.is_not_found() {
        return ConnectError::NotFound(
            error
                .api()
                .and_then(|api| api.message.clone())
                .unwrap_or_else(|| error.to_string()),
        );
    }
    match error {
        StripeError::Api(api) => ConnectError::Rejected {
            code: api
                .code
                .clone()
                .unwrap_or_else(|| api.kind.as_str().to_owned()),
            message: api.message.clone().unwrap_or_else(|| api.to_string()),
            param: api.param.clone(),
        },
        StripeError::InvalidArgument { field, reason } => ConnectError::Rejected {
            code: format!("invalid_{field}"),
            message: reason.clone(),
            param: Some((*field).to_owned()),
        },
        StripeError::Decode(_) | StripeError::Config(_) => ConnectError::Rejected {
            code: "stripe_error".to_owned(),
            message: error.to_string(),
            param: None,
        },
        StripeError::Transport(_) | StripeError::Timeout => {
            ConnectError::Unavailable(error.to_string())
        }
    }
}

/// A connected account as the payout rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAccount {
    /// `acct_…`.
    pub id: String,
    /// Upper case, when reported.
    pub country: Option<String>,
    /// May create charges (reported, not decisive).
    pub charges_enabled: bool,
    /// What the status depends on.
    pub flags: AccountFlags,
}

fn to_account(account: Account) -> ProviderAccount {
    ProviderAccount {
        flags: AccountFlags {
            details_submitted: account.details_submitted,
            payouts_enabled: account.payouts_enabled,
            transfers_active: account.transfers == CapabilityStatus::Active,
        },
        charges_enabled: account.charges_enabled,
        country: account.country,
        id: account.id,
    }
}

/// A link to open in the seller's browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URL.
    pub url: String,
    /// Unix seconds when it stops working; `None` where Stripe gives no time (dashboard links
    /// are single-use instead).
    pub expires_at: Option<i64>,
}

/// A transfer as the payout worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTransfer {
    /// `tr_…`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// How much of it is reversed at Stripe now.
    pub amount_reversed: i64,
}

fn to_transfer(transfer: Transfer) -> ProviderTransfer {
    ProviderTransfer {
        id: transfer.id,
        amount: transfer.amount,
        amount_reversed: transfer.amount_reversed,
    }
}

/// A payout's transfer to make.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    /// Our payout (metadata; found again by it).
    pub payout_id: Uuid,
    /// Its order (the transfer group).
    pub order_id: Uuid,
    /// The connected account.
    pub destination: String,
    /// Minor units, > 0.
    pub amount: i64,
    /// ISO 4217, any case.
    pub currency: String,
    /// The paid charge the money comes from (Stripe payments), so the transfer does not wait
    /// for the platform's available balance.
    pub source_charge: Option<String>,
}

/// Stripe Connect for payouts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StripeConnect {
    client: StripeClient,
}

impl StripeConnect {
    /// Connect at `base_url` with `secret_key`; sends nothing yet.
    pub fn new(secret_key: &SecretString, base_url: &str) -> Result<Self, StripeError> {
        let config = StripeConfig::new(secret_key.expose_secret()).with_base_url(base_url);
        Ok(Self {
            client: StripeClient::new(config)?,
        })
    }

    /// Creates the seller's Express account (keyed by the seller: a retry, or a concurrent
    /// duplicate, gets the same account while Stripe remembers the key).
    pub async fn create_account(
        &self,
        seller_id: Uuid,
        country: &str,
    ) -> Result<ProviderAccount, ConnectError> {
        self.client
            .create_account(&NewAccount {
                kind: AccountKind::Express,
                country: country.to_owned(),
                seller_id: seller_id.to_string(),
                email: None,
                idempotency_key: rules::account_key(seller_id),
            })
            .await
            .map(to_account)
            .map_err(|e| connect_error(&e))
    }

    /// The account as Stripe reports it now.
    pub async fn account(&self, account: &str) -> Result<ProviderAccount, ConnectError> {
        self.client
            .retrieve_account(account)
            .await
            .map(to_account)
            .map_err(|e| connect_error(&e))
    }

    /// A link into Stripe-hosted onboarding.
    pub async fn onboarding_link(
        &self,
        account: &str,
        return_url: &str,
        refresh_url: &str,
    ) -> Result<Link, ConnectError> {
        self.client
            .create_account_link(&NewAccountLink {
                account: account.to_owned(),
                kind: AccountLinkKind::Onboarding,
                return_url: return_url.to_owned(),
                refresh_url: refresh_url.to_owned(),
            })
            .await
            .map(|link| Link {
                url: link.url,
                expires_at: Some(link.expires_at),
            })
            .map_err(|e| connect_error(&e))
    }

    /// A link into the Express dashboard (onboarded accounts only).
    pub async fn dashboard_link(&self, account: &str) -> Result<Link, ConnectError> {
        self.client
            .create_login_link(account)
            .await
            .map(|link| Link {
                url: link.url,
                expires_at: None,
            })
            .map_err(|e| connect_error(&e))
    }

    /// The paid charge of a Stripe PaymentIntent (a transfer's source).
    pub async fn source_charge(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, ConnectError> {
        self.client
            .retrieve_payment_intent(payment_intent)
            .await
            .map(|intent| intent.latest_charge)
            .map_err(|e| connect_error(&e))
    }

    /// The transfer already made for `payout_id`, if any: looked up by the order's transfer
    /// group, the destination and the payout id in its metadata, so a transfer whose answer was
    /// lost is found even after Stripe forgot the idempotency key.
    pub async fn find_transfer(
        &self,
        payout_id: Uuid,
        order_id: Uuid,
        destination: &str,
    ) -> Result<Option<ProviderTransfer>, ConnectError> {
        let transfers = self
            .client
            .list_transfers(&TransferQuery {
                transfer_group: Some(rules::transfer_group(order_id)),
                destination: Some(destination.to_owned()),
                limit: Some(100),
            })
            .await
            .map_err(|e| connect_error(&e))?;
        let wanted = payout_id.to_string();
        Ok(transfers
            .into_iter()
            .find(|t| t.payout_id.as_deref() == Some(wanted.as_str()))
            .map(to_transfer))
    }

    /// Makes the payout's transfer (one per payout: the key is derived from it).
    pub async fn transfer(
        &self,
        request: &TransferRequest,
    ) -> Result<ProviderTransfer, ConnectError> {
        self.client
            .create_transfer(&NewTransfer {
                amount: request.amount,
                currency: request.currency.clone(),
                destination: request.destination.clone(),
                transfer_group: Some(rules::transfer_group(request.order_id)),
                source_transaction: request.source_charge.clone(),
                payout_id: Some(request.payout_id.to_string()),
                idempotency_key: rules::transfer_key(request.payout_id),
            })
            .await
            .map(to_transfer)
            .map_err(|e| connect_error(&e))
    }

    /// The transfer now (how much of it is reversed).
    pub async fn transfer_state(&self, transfer: &str) -> Result<ProviderTransfer, ConnectError> {
        self.client
            .retrieve_transfer(transfer)
            .await
            .map(to_transfer)
            .map_err(|e| connect_error(&e))
    }

    /// Reverses `amount` of the transfer with `idempotency_key`; the amount reversed.
    pub async fn reverse(
        &self,
        transfer: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<i64, ConnectError> {
        self.client
            .reverse_transfer(&NewTransferReversal {
                transfer: transfer.to_owned(),
                amount: Some(amount),
                idempotency_key: idempotency_key.to_owned(),
            })
            .await
            .map(|reversal| reversal.amount)
            .map_err(|e| connect_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use mercato_stripe::{ApiError, ApiErrorKind};

    use super::*;

    #[test]
    fn stripe_errors_map_onto_connect_errors_with_their_parameter() {
        let api = |status, code: &str, param: Option<&str>| {
            StripeError::Api(Box::new(ApiError {
                status,
                kind: ApiErrorKind::InvalidRequest,
                code: Some(code.to_owned()),
                decline_code: None,
                message: Some("refused".to_owned()),
                param: param.map(str::to_owned),
            }))
        };
        assert!(matches!(
            connect_error(&api(503, "api_error", None)),
            ConnectError::Unavailable(_)
        ));
        assert!(matches!(
            connect_error(&api(404, "resource_missing", Some("account"))),
            ConnectError::NotFound(_)
        ));
        match connect_error(&api(400, "country_unsupported", Some("country"))) {
            ConnectError::Rejected { code, param, .. } => {
                assert_eq!(code, "country_unsupported");
                assert_eq!(param.as_deref(), Some("country"));
            }
            other @ (ConnectError::Unavailable(_) | ConnectError::NotFound(_)) => {
                panic!("expected Rejected, got {other:?}")
            }
        }
        assert!(matches!(
            connect_error(&StripeError::Timeout),
            ConnectError::Unavailable(_)
        ));
    }
}
