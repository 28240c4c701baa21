//! The BFF application: builds the edge stack around the public services and serves gRPC and
//! gRPC-Web on one pre-bound listener (so tests and the dev runner can use port 0).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use mercato_platform::grpc::{
    ChannelError, ChannelOptions, ConcurrencyLimitLayer, ServerTraceLayer, TimeoutLayer,
    connect_lazy,
};
use mercato_platform::metrics::RpcMetricsLayer;
use mercato_platform::principal::{self, PrincipalLayer};
use mercato_proto::mercato::bff::v1::account_service_server::AccountServiceServer;
use mercato_proto::mercato::bff::v1::admin_service_server::AdminServiceServer;
use mercato_proto::mercato::bff::v1::auth_service_server::AuthServiceServer;
use mercato_proto::mercato::bff::v1::cart_service_server::CartServiceServer;
use mercato_proto::mercato::bff::v1::catalog_service_server::CatalogServiceServer;
use mercato_proto::mercato::bff::v1::coupon_service_server::CouponServiceServer;
use mercato_proto::mercato::bff::v1::order_service_server::OrderServiceServer;
use mercato_proto::mercato::bff::v1::seller_service_server::SellerServiceServer;
use mercato_proto::mercato::bff::v1::wallet_service_server::WalletServiceServer;
use mercato_proto::mercato::user::v1::user_service_client::UserServiceClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::admin::{AdminChannels, AdminGrpc};
use crate::assets::AssetsLayer;
use crate::cart::CartGrpc;
use crate::catalog::CatalogGrpc;
use crate::coupon::CouponGrpc;
use crate::edge::{EdgeLayer, EdgeState, REQUEST_ID_HEADER, TRACE_ID_HEADER};
use crate::grpc::{AccountGrpc, AuthGrpc};
use crate::jwt::Verifier;
use crate::order::{OrderGrpc, WatchPolicy};
use crate::payment::OrderPayments;
use crate::rate_limit::RateLimiter;
use crate::seller::SellerGrpc;
use crate::settings::BffSettings;
use crate::wallet::WalletGrpc;

/// Errors building or running the BFF.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A service channel could not be built (an invalid endpoint URL).
    #[error("invalid user service endpoint")]
    Channel(#[from] ChannelError),
    /// The JWKS HTTP client could not be built.
    #[error("failed to build the jwks http client")]
    Http(#[from] reqwest::Error),
    /// The reflection descriptor sets did not decode.
    #[error("failed to build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A CORS origin is not a valid header value.
    #[error("invalid cors origin {0:?}")]
    CorsOrigin(String),
    /// The listener has no local address.
    #[error("listener has no local address")]
    Listener(#[source] std::io::Error),
    /// The transport failed while serving.
    #[error("grpc server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// Headers browsers may send (the gRPC-Web ones, the token, and our request id).
const ALLOWED_HEADERS: [&str; 8] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
    REQUEST_ID_HEADER,
    "traceparent",
    "tracestate",
];

/// Response headers scripts may read: the gRPC status (trailers-only errors arrive as
/// headers) and the ids an operator needs.
const EXPOSED_HEADERS: [&str; 5] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    REQUEST_ID_HEADER,
    TRACE_ID_HEADER,
];

/// The CORS policy: exact origins from the allow-list only.
pub fn cors(origins: &[String]) -> Result<CorsLayer, AppError> {
    let origins = origins
        .iter()
        .map(|origin| {
            HeaderValue::from_str(origin).map_err(|_| AppError::CorsOrigin(origin.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(600)))
}

/// Makes ring the process's rustls provider unless one is installed already. reqwest is built
/// without a provider of its own (that would pull in aws-lc), so every client needs this first;
/// [`Application::build`] calls it, and so may tests that build HTTP clients.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A built BFF, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: BffSettings,
    http: reqwest::Client,
}

impl Application {
    /// Prepares the BFF on a pre-bound `listener`. Nothing is contacted yet: the user service,
    /// the JWKS endpoints and Redis are reached on first use, so start-up order does not matter.
    pub fn build(settings: BffSettings, listener: TcpListener) -> Result<Self, AppError> {
        let local_addr = listener.local_addr().map_err(AppError::Listener)?;
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent("mercato-bff")
            .build()?;
        Ok(Self {
            listener,
            local_addr,
            settings,
            http,
        })
    }

    /// Where the BFF listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains in-flight calls.
    pub async fn run_until<F>(self, shutdown: F) -> Result<(), AppError>
    where
        F: Future<Output = ()> + Send,
    {
        let Self {
            listener,
            local_addr,
            settings,
            http,
        } = self;

        let channel = connect_lazy(
            &settings.user_service_url,
            &ChannelOptions::new(principal::EDGE_CALLER),
        )?;
        let product_channel = connect_lazy(
            &settings.product_service_url,
            &ChannelOptions::new(principal::EDGE_CALLER),
        )?;
        let order_channel = connect_lazy(
            &settings.order_service_url,
            &ChannelOptions::new(principal::EDGE_CALLER),
        )?;
        let payment_channel = connect_lazy(
            &settings.payment_service_url,
            &ChannelOptions::new(principal::EDGE_CALLER),
        )?;
        let process_channel = connect_lazy(
            &settings.process_service_url,
            &ChannelOptions::new(principal::EDGE_CALLER),
        )?;
        crate::metrics::register();
        let verifier = Verifier::new(settings.issuers.clone(), settings.jwks, http);
        let limiter = RateLimiter::new(settings.redis.clone(), settings.rate_limits);
        let edge = Arc::new(EdgeState::new(
            verifier,
            limiter,
            UserServiceClient::new(channel.clone()),
            settings.client_ip_header.clone(),
        ));

        // Cancelled as the drain starts: open order watches end then instead of holding the
        // drain until the grace period runs out.
        let watches_stopping = CancellationToken::new();
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mercato_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let services = [
            <AuthServiceServer<AuthGrpc> as NamedService>::NAME,
            <AccountServiceServer<AccountGrpc> as NamedService>::NAME,
            <CatalogServiceServer<CatalogGrpc> as NamedService>::NAME,
            <CartServiceServer<CartGrpc> as NamedService>::NAME,
            <OrderServiceServer<OrderGrpc> as NamedService>::NAME,
            <CouponServiceServer<CouponGrpc> as NamedService>::NAME,
            <SellerServiceServer<SellerGrpc> as NamedService>::NAME,
            <WalletServiceServer<WalletGrpc> as NamedService>::NAME,
            <AdminServiceServer<AdminGrpc> as NamedService>::NAME,
        ];

        // Outermost first; the order is deliberate:
        // 0. A page or file load (GET, not gRPC) is answered from the storefront's files.
        // 1. CORS answers preflights before anything else (gRPC-Web would refuse an OPTIONS).
        // 2. gRPC-Web turns browser requests into plain gRPC, so everything below sees one
        //    protocol.
        // 3. Trace opens the server span; rejections below are recorded in it and the edge
        //    reads its trace id for `x-trace-id`.
        // 3b. Metrics count and time every call, shed and timed-out ones included.
        // 4. Timeout, then the concurrency limit, bound everything including JWKS and Redis, up
        //    to the response headers: a server stream (WatchOrder) that has started is bounded
        //    by its own WatchPolicy instead, never cut by the unary deadline.
        // 5. The edge strips internal headers, authenticates and rate limits.
        // 6. The platform's principal layer turns the edge's verified headers into the request
        //    extension and task-local that outgoing calls forward.
        let stack = ServiceBuilder::new()
            .layer(AssetsLayer::new(settings.web_root.as_deref()))
            .layer(cors(&settings.cors_origins)?)
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(ServerTraceLayer)
            .layer(RpcMetricsLayer)
            .layer(TimeoutLayer::new(settings.common.limits.request_timeout))
            .layer(ConcurrencyLimitLayer::new(
                settings.common.limits.concurrency_limit.get(),
            ))
            .layer(EdgeLayer::new(edge))
            .layer(PrincipalLayer)
            .into_inner();

        let mut builder = tonic::transport::Server::builder()
            .accept_http1(true)
            .tcp_nodelay(true);
        if let Some(age) = settings.common.limits.max_connection_age {
            builder = builder.max_connection_age(age);
        }
        let router = builder
            .layer(stack)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(AuthServiceServer::new(AuthGrpc::new(
                settings.auth.clone(),
                channel.clone(),
            )))
            .add_service(AccountServiceServer::new(AccountGrpc::new(channel.clone())))
            .add_service(AdminServiceServer::new(AdminGrpc::new(AdminChannels {
                user: channel.clone(),
                product: product_channel.clone(),
                order: order_channel.clone(),
                payment: payment_channel.clone(),
                process: process_channel,
            })))
            .add_service(CatalogServiceServer::new(CatalogGrpc::new(
                product_channel.clone(),
            )))
            .add_service(SellerServiceServer::new(SellerGrpc::new(
                product_channel,
                payment_channel.clone(),
            )))
            .add_service(CartServiceServer::new(CartGrpc::new(order_channel.clone())))
            .add_service(CouponServiceServer::new(CouponGrpc::new(
                order_channel.clone(),
            )))
            .add_service(WalletServiceServer::new(WalletGrpc::new(
                payment_channel.clone(),
            )))
            .add_service(OrderServiceServer::new(OrderGrpc::new(
                order_channel,
                channel,
                OrderPayments::new(
                    payment_channel,
                    settings.stripe_publishable_key.clone(),
                    settings.stripe_js_url.clone(),
                ),
                WatchPolicy {
                    max_duration: settings.watch_max_duration,
                    stopping: watches_stopping.clone(),
                },
            )));

        health.set_service_status("", ServingStatus::Serving).await;
        for service in services {
            health
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        tracing::info!(addr = %local_addr, "bff listening");
        let shutdown_delay = settings.common.shutdown_delay;
        let signal = async move {
            shutdown.await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            for service in services {
                health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
            if !shutdown_delay.is_zero() {
                // The ingress or load balancer in front learns of the failed readiness with a
                // lag; what it still sends meanwhile is served, and order watches go on.
                tracing::info!(delay = ?shutdown_delay, "bff not ready, still serving");
                tokio::time::sleep(shutdown_delay).await;
            }
            watches_stopping.cancel();
            tracing::info!("bff draining");
        };
        let (incoming, lingerers) = mercato_platform::grpc::incoming(listener);
        router
            .serve_with_incoming_shutdown(incoming, signal)
            .await?;
        lingerers.finished().await;
        tracing::info!("bff stopped");
        Ok(())
    }
}
