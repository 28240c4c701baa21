//! What every part of the service shares: the pool, the clock, the bus, the settings, the order
//! service client, the payment providers and Stripe Connect for payouts.

use std::sync::Arc;

use mercato_messaging::{Connector, Namespace};
use mercato_platform::clock::Clock;
use mercato_platform::grpc::ClientChannel;
use mercato_proto::mercato::order::v1::order_service_client::OrderServiceClient;
use secrecy::SecretString;
use sqlx::PgPool;

use crate::provider::Providers;
use crate::provider::connect::StripeConnect;
use crate::provider::sandbox::SandboxProvider;
use crate::settings::Settings;

/// The shared context of the service's parts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PaymentContext {
    /// The service's database.
    pub pool: PgPool,
    /// "Now" for business rules and signature tolerances.
    pub clock: Clock,
    /// The broker connection.
    pub connector: Connector,
    /// The broker namespace (exchange and queue names).
    pub namespace: Namespace,
    /// Every setting.
    pub settings: Arc<Settings>,
    /// The order service (AttachPayment), connected lazily.
    pub orders: OrderServiceClient<ClientChannel>,
    /// The providers by method and by name.
    pub providers: Providers,
    /// The built-in sandbox (its page and buttons).
    pub sandbox: SandboxProvider,
    /// Stripe Connect for seller payouts; `None` without `STRIPE_SECRET_KEY` (no payouts).
    pub connect: Option<StripeConnect>,
    /// The webhook signing secrets in force: the configured ones, or one random secret for this
    /// process when none is configured. The first signs sandbox events.
    pub webhook_secrets: Arc<Vec<SecretString>>,
}
