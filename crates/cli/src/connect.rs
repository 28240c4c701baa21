//! Where the services and the broker are, and who the CLI acts as: [`Endpoints`] (flags with
//! environment fallbacks) and [`Operator`], which builds the service clients and stamps every
//! request with the operator's admin principal.
//!
//! Each client runs over [`mercato_platform::grpc::connect_lazy`], the channel every service uses
//! to call another (trace context, deadline, `x-mercato-caller: mercato-cli`); the principal is
//! written on each request explicitly, which the outbound layer keeps as it is.

use std::time::Duration;

use mercato_platform::grpc::{ChannelOptions, ClientChannel, connect_lazy};
use mercato_platform::principal::{Principal, Role};
use mercato_platform::settings::parse_duration;
use mercato_proto::mercato::order::v1 as order;
use mercato_proto::mercato::payment::v1 as payment;
use mercato_proto::mercato::process::v1 as process;
use mercato_proto::mercato::product::v1 as product;
use mercato_proto::mercato::user::v1 as user;
use tonic::Request;
use uuid::Uuid;

use crate::error::CliError;

/// The caller name the CLI's channels send as `x-mercato-caller`.
pub const CALLER: &str = "mercato-cli";

/// The operator id used when none is configured: a fixed, recognisable id (it is no account), so
/// audit records of an unnamed operator are at least attributable to the CLI.
pub const DEFAULT_OPERATOR_ID: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f00_8000_0000_0c11_0001);

/// The internal services' gRPC addresses and the operator identity.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct Endpoints {
    /// The user service's gRPC URL.
    #[arg(
        long,
        env = "MERCATO_USER_URL",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub user_url: String,
    /// The product service's gRPC URL.
    #[arg(
        long,
        env = "MERCATO_PRODUCT_URL",
        default_value = "http://127.0.0.1:50052",
        global = true
    )]
    pub product_url: String,
    /// The order service's gRPC URL.
    #[arg(
        long,
        env = "MERCATO_ORDER_URL",
        default_value = "http://127.0.0.1:50053",
        global = true
    )]
    pub order_url: String,
    /// The payment service's gRPC URL.
    #[arg(
        long,
        env = "MERCATO_PAYMENT_URL",
        default_value = "http://127.0.0.1:50054",
        global = true
    )]
    pub payment_url: String,
    /// The process service's gRPC URL.
    #[arg(
        long,
        env = "MERCATO_PROCESS_URL",
        default_value = "http://127.0.0.1:50055",
        global = true
    )]
    pub process_url: String,
    /// The admin the CLI acts as (a user id); services record it as the acting admin.
    #[arg(long, env = "MERCATO_OPERATOR_ID", default_value_t = DEFAULT_OPERATOR_ID, global = true)]
    pub operator_id: Uuid,
    /// Per-call deadline, e.g. `30s`.
    #[arg(long, env = "MERCATO_CALL_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
}

impl Endpoints {
    /// The five services at the given URLs, the default operator and a 30 s deadline.
    pub fn new(
        user_url: impl Into<String>,
        product_url: impl Into<String>,
        order_url: impl Into<String>,
        payment_url: impl Into<String>,
        process_url: impl Into<String>,
    ) -> Self {
        Self {
            user_url: user_url.into(),
            product_url: product_url.into(),
            order_url: order_url.into(),
            payment_url: payment_url.into(),
            process_url: process_url.into(),
            operator_id: DEFAULT_OPERATOR_ID,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The broker and the namespace the services' queues live in.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Broker")]
pub struct BrokerArgs {
    /// RabbitMQ URL (`amqp://user:pass@host:port/vhost`).
    #[arg(
        long,
        env = "MERCATO_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// The services' bus namespace (their `BUS_NAMESPACE`; empty in production): queues are
    /// `<namespace>.<service>.<consumer>`.
    #[arg(long, env = "MERCATO_BUS_NAMESPACE", default_value = "")]
    pub namespace: String,
}

/// The CLI acting as an operator: builds clients and stamps requests with the admin principal.
#[derive(Debug, Clone)]
pub struct Operator {
    endpoints: Endpoints,
    principal: Principal,
    options: ChannelOptions,
}

impl Operator {
    /// An operator acting as `endpoints.operator_id` with the admin role.
    pub fn new(endpoints: Endpoints) -> Self {
        let principal = Principal::new(endpoints.operator_id, [Role::Admin]);
        let mut options = ChannelOptions::new(CALLER);
        options.request_timeout = endpoints.timeout;
        Self {
            endpoints,
            principal,
            options,
        }
    }

    /// The admin principal every request carries.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// `message` as a request carrying the operator's principal.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.principal.write_metadata(request.metadata_mut());
        request
    }

    fn channel(&self, service: &str, url: &str) -> Result<ClientChannel, CliError> {
        connect_lazy(url, &self.options)
            .map_err(|error| CliError::Usage(format!("--{service}-url {url:?}: {error}")))
    }

    /// The user service's account RPCs.
    pub fn users(
        &self,
    ) -> Result<user::user_service_client::UserServiceClient<ClientChannel>, CliError> {
        let channel = self.channel("user", &self.endpoints.user_url)?;
        Ok(user::user_service_client::UserServiceClient::new(channel))
    }

    /// The user service's registration.
    pub fn auth(
        &self,
    ) -> Result<user::auth_service_client::AuthServiceClient<ClientChannel>, CliError> {
        let channel = self.channel("user", &self.endpoints.user_url)?;
        Ok(user::auth_service_client::AuthServiceClient::new(channel))
    }

    /// The user service's signing keys.
    pub fn signing_keys(
        &self,
    ) -> Result<user::signing_key_service_client::SigningKeyServiceClient<ClientChannel>, CliError>
    {
        let channel = self.channel("user", &self.endpoints.user_url)?;
        Ok(user::signing_key_service_client::SigningKeyServiceClient::new(channel))
    }

    /// The catalog.
    pub fn products(
        &self,
    ) -> Result<product::product_service_client::ProductServiceClient<ClientChannel>, CliError>
    {
        let channel = self.channel("product", &self.endpoints.product_url)?;
        Ok(product::product_service_client::ProductServiceClient::new(
            channel,
        ))
    }

    /// Stock levels.
    pub fn stock(
        &self,
    ) -> Result<product::stock_service_client::StockServiceClient<ClientChannel>, CliError> {
        let channel = self.channel("product", &self.endpoints.product_url)?;
        Ok(product::stock_service_client::StockServiceClient::new(
            channel,
        ))
    }

    /// Orders.
    pub fn orders(
        &self,
    ) -> Result<order::order_service_client::OrderServiceClient<ClientChannel>, CliError> {
        let channel = self.channel("order", &self.endpoints.order_url)?;
        Ok(order::order_service_client::OrderServiceClient::new(
            channel,
        ))
    }

    /// Coupons and campaigns.
    pub fn coupons(
        &self,
    ) -> Result<order::coupon_service_client::CouponServiceClient<ClientChannel>, CliError> {
        let channel = self.channel("order", &self.endpoints.order_url)?;
        Ok(order::coupon_service_client::CouponServiceClient::new(
            channel,
        ))
    }

    /// Payments.
    pub fn payments(
        &self,
    ) -> Result<payment::payment_service_client::PaymentServiceClient<ClientChannel>, CliError>
    {
        let channel = self.channel("payment", &self.endpoints.payment_url)?;
        Ok(payment::payment_service_client::PaymentServiceClient::new(
            channel,
        ))
    }

    /// Shipments.
    pub fn shipments(
        &self,
    ) -> Result<process::shipment_service_client::ShipmentServiceClient<ClientChannel>, CliError>
    {
        let channel = self.channel("process", &self.endpoints.process_url)?;
        Ok(process::shipment_service_client::ShipmentServiceClient::new(channel))
    }
}
