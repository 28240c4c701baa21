//! The payment provider boundary: a small object-safe trait ([`PaymentProvider`]) that the
//! payment use cases call, and the registry choosing a provider per method ([`Providers`]).
//!
//! The domain sees only the types of this module: amounts in minor units, the provider's ids as
//! strings and [`Observed`] statuses. An adapter (the built-in [`sandbox`], a Stripe crate) maps
//! its own types to these. Every call that changes provider state carries an idempotency key
//! derived from our own ids, so a retry after a crash or a timeout never creates a second intent
//! or refund; the payment service also deduplicates on its side (one payment per order, one
//! refund per scope), so an adapter whose provider ignores keys is still safe.

pub mod connect;
pub mod sandbox;
pub mod stripe;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use secrecy::SecretString;
use uuid::Uuid;

use crate::domain::{Method, Observed};

/// What to ask the provider for when a payment is created.
#[derive(Debug, Clone)]
pub struct CreateIntent {
    /// Our payment id (put in the intent's metadata).
    pub payment_id: Uuid,
    /// The order it pays (put in the intent's metadata).
    pub order_id: Uuid,
    /// The payer.
    pub user_id: Uuid,
    /// Amount in minor units, more than 0.
    pub amount: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// Derived from the order ([`crate::domain::intent_key`]): the same for every attempt.
    pub idempotency_key: String,
}

/// A payment intent as the provider reports it.
#[derive(Clone)]
pub struct Intent {
    /// The provider's id (`pi_…`, `sbx_…`).
    pub id: String,
    /// Its current status.
    pub status: Observed,
    /// Amount in minor units.
    pub amount: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// Secret for the browser to confirm the intent (Stripe.js); `None` where not used.
    pub client_secret: Option<SecretString>,
    /// Page where the buyer pays (the sandbox page); `None` where the browser confirms itself.
    pub payment_url: Option<String>,
}

impl fmt::Debug for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intent")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("amount", &self.amount)
            .field("currency", &self.currency)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("payment_url", &self.payment_url)
            .finish()
    }
}

/// A refund to ask the provider for.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The provider's intent id.
    pub intent_id: String,
    /// Our refund id (metadata).
    pub refund_id: Uuid,
    /// Amount in minor units, more than 0.
    pub amount: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// Derived from our refund's idempotency scope.
    pub idempotency_key: String,
}

/// The outcome of a refund at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundState {
    /// Accepted; the provider confirms later.
    Pending,
    /// Money returned.
    Succeeded,
    /// Refused, with the provider's explanation.
    Failed(String),
}

/// A refund as the provider reports it.
#[derive(Debug, Clone)]
pub struct ProviderRefund {
    /// The provider's refund id (`re_…`).
    pub id: String,
    /// Its state.
    pub state: RefundState,
}

/// Why a provider call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered with a server error: retry later (with the
    /// same idempotency key).
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider does not know the object.
    #[error("the payment provider has no {0}")]
    NotFound(String),
    /// The provider refused the request for good (invalid amount, intent in the wrong state).
    #[error("the payment provider refused: {code}: {message}")]
    Rejected {
        /// The provider's code.
        code: String,
        /// Its explanation.
        message: String,
    },
}

/// A payment provider. Object-safe, so the registry holds `Arc<dyn PaymentProvider>`; an adapter
/// in another crate implements it and is handed to [`crate::Application::with_provider`].
pub trait PaymentProvider: Send + Sync + fmt::Debug + 'static {
    /// A short stable name stored with each payment (`sandbox`, `stripe`); webhooks and
    /// reconciliation find the provider of a payment by it.
    fn name(&self) -> &'static str;

    /// Creates (or, for a key already used, returns) the intent of a payment.
    fn create_intent<'a>(
        &'a self,
        request: &'a CreateIntent,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>>;

    /// The intent's current state (webhooks and reconciliation never trust an event's body).
    fn retrieve_intent<'a>(
        &'a self,
        intent_id: &'a str,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>>;

    /// Cancels an intent that has not succeeded (order cancelled or expired). Returns the intent
    /// afterwards: one that succeeded meanwhile is returned as such (and is then refunded).
    fn cancel_intent<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>>;

    /// Refunds part or all of a succeeded intent.
    fn refund<'a>(
        &'a self,
        request: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>>;
}

/// The providers of this process: by method (which one new payments use) and by name (which one
/// an existing payment was created with).
#[derive(Debug, Clone, Default)]
pub struct Providers {
    by_method: HashMap<&'static str, Arc<dyn PaymentProvider>>,
    by_name: HashMap<&'static str, Arc<dyn PaymentProvider>>,
}

impl Providers {
    /// No provider yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `provider` for new payments of `method` (and for existing ones made with it).
    pub fn set(&mut self, method: Method, provider: Arc<dyn PaymentProvider>) {
        self.by_name.insert(provider.name(), Arc::clone(&provider));
        self.by_method.insert(method.as_str(), provider);
    }

    /// The provider new payments of `method` use; `None` for POINTS (no provider).
    pub fn for_method(&self, method: Method) -> Option<Arc<dyn PaymentProvider>> {
        self.by_method.get(method.as_str()).cloned()
    }

    /// The provider called `name`.
    pub fn by_name(&self, name: &str) -> Option<Arc<dyn PaymentProvider>> {
        self.by_name.get(name).cloned()
    }
}
