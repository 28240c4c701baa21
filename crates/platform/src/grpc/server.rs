//! The one gRPC server every Mercato service runs: health, reflection and the shared tower stack
//! around the service's own tonic services, served on a pre-bound listener until a shutdown
//! future resolves.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::Router;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthReporter;
use tower::Layer;
use tower::layer::util::{Identity, Stack};
use tower::util::Either;

use super::health::DrainAwareHealth;
use super::limits::{ConcurrencyLimitLayer, ConcurrencyLimitService, TimeoutLayer, TimeoutService};
use super::trace::{ServerTraceLayer, ServerTraceService};
use crate::metrics::{RpcMetricsLayer, RpcMetricsService};
use crate::principal::{PrincipalLayer, PrincipalService};
use crate::settings::ServerLimits;

/// Per-server options.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Request timeout and concurrency limit.
    pub limits: ServerLimits,
    /// Accept HTTP/1.1 and translate gRPC-Web (only the BFF, which browsers call).
    pub grpc_web: bool,
    /// How long the server goes on accepting and serving once shutdown has begun (and health
    /// says `NOT_SERVING`), before it closes the listener and drains (`SHUTDOWN_DELAY`).
    pub shutdown_delay: Duration,
}

impl ServerOptions {
    /// Options for an internal service: the given limits, HTTP/2 gRPC only, no shutdown delay.
    pub fn internal(limits: ServerLimits) -> Self {
        Self {
            limits,
            grpc_web: false,
            shutdown_delay: Duration::ZERO,
        }
    }

    /// The same options with `delay` between the start of shutdown and the drain.
    #[must_use]
    pub fn with_shutdown_delay(self, delay: Duration) -> Self {
        Self {
            shutdown_delay: delay,
            ..self
        }
    }
}

/// Errors building or running the server.
#[derive(Debug, thiserror::Error)]
pub enum GrpcServerError {
    /// The reflection descriptor sets did not decode.
    #[error("failed to build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("grpc server failed")]
    Transport(#[from] tonic::transport::Error),
    /// The serving task panicked or was cancelled.
    #[error("grpc server task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// The end of a service's `run`: after `drain` (which reported `drained`), the outcome of the
/// task serving gRPC. A server still busy when the grace period ran out is aborted rather than
/// waited for, which is a clean stop, not an error.
pub async fn finish_serving(
    task: tokio::task::JoinHandle<Result<(), GrpcServerError>>,
    drained: crate::shutdown::Drained,
) -> Result<(), GrpcServerError> {
    if !task.is_finished() {
        tracing::warn!(?drained, "grpc server did not drain in time");
        task.abort();
        return Ok(());
    }
    task.await?
}

/// The shared tower stack, outermost first. The order is deliberate:
///
/// 1. **gRPC-Web** (BFF only) translates browser requests into plain gRPC first, so every layer
///    below sees one protocol.
/// 2. **Trace** opens the `grpc.server` span with the caller's remote parent, so everything
///    below, rejections included, is recorded inside the caller's trace.
/// 3. **Metrics** count every call and time it to the end of its response (see
///    [`crate::metrics`]): outside the limits, so shed and timed-out calls are counted too.
/// 4. **Timeout** starts the clock before the call waits for anything.
/// 5. **Concurrency limit** sheds excess calls with `UNAVAILABLE` at once instead of queueing.
/// 6. **Principal** parses the forwarded user last, only for calls that will actually run.
#[derive(Debug, Clone)]
pub struct ServerStack {
    grpc_web: bool,
    timeout: TimeoutLayer,
    limit: ConcurrencyLimitLayer,
}

/// The layers below gRPC-Web, innermost last.
type Core<S> = ServerTraceService<
    RpcMetricsService<TimeoutService<ConcurrencyLimitService<PrincipalService<S>>>>,
>;

impl<S> Layer<S> for ServerStack {
    type Service = Either<tonic_web::GrpcWebService<Core<S>>, Core<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        let core = ServerTraceLayer.layer(
            RpcMetricsLayer.layer(
                self.timeout
                    .layer(self.limit.layer(PrincipalLayer.layer(inner))),
            ),
        );
        if self.grpc_web {
            Either::Left(tonic_web::GrpcWebLayer::new().layer(core))
        } else {
            Either::Right(core)
        }
    }
}

/// A gRPC server with health, reflection and the shared stack, ready for the service's own
/// tonic services.
///
/// ```no_run
/// # async fn run(listener: tokio::net::TcpListener) -> Result<(), Box<dyn std::error::Error>> {
/// use mercato_platform::grpc::{GrpcServer, ServerOptions};
/// use mercato_platform::settings::ServerLimits;
///
/// let server = GrpcServer::new(ServerOptions::internal(ServerLimits::default()))?;
/// let health = server.health_reporter(); // flip statuses at run time
/// server
///     // .add_service(OrderServiceServer::new(order_service))
///     .serve(listener, async { let _ = tokio::signal::ctrl_c().await; })
///     .await?;
/// # Ok(()) }
/// ```
pub struct GrpcServer {
    router: Router<Stack<ServerStack, Identity>>,
    health: HealthReporter,
    services: Vec<&'static str>,
    draining: CancellationToken,
    shutdown_delay: Duration,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// A server with `grpc.health.v1` and `grpc.reflection.v1` (every Mercato proto, plus the
    /// health and reflection protos themselves) already registered.
    pub fn new(options: ServerOptions) -> Result<Self, GrpcServerError> {
        let stack = ServerStack {
            grpc_web: options.grpc_web,
            timeout: TimeoutLayer::new(options.limits.request_timeout),
            limit: ConcurrencyLimitLayer::new(options.limits.concurrency_limit.get()),
        };
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mercato_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let health = HealthReporter::new();
        let draining = CancellationToken::new();
        let health_service =
            HealthServer::new(DrainAwareHealth::new(health.clone(), draining.clone()));

        let mut builder = tonic::transport::Server::builder()
            // gRPC-Web arrives over HTTP/1.1 from browsers; internal services speak HTTP/2 only.
            .accept_http1(options.grpc_web)
            .tcp_nodelay(true);
        if let Some(age) = options.limits.max_connection_age {
            builder = builder.max_connection_age(age);
        }
        let router = builder
            .layer(stack)
            .add_service(health_service)
            .add_service(reflection);
        Ok(Self {
            router,
            health,
            services: Vec::new(),
            draining,
            shutdown_delay: options.shutdown_delay,
        })
    }

    /// Adds one of the service's tonic services; its health status becomes `SERVING` when
    /// [`serve`](Self::serve) starts and `NOT_SERVING` when draining begins.
    #[must_use]
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.services.push(S::NAME);
        self.router = self.router.add_service(service);
        self
    }

    /// The reporter behind `grpc.health.v1`, for flipping statuses at run time (e.g.
    /// `NOT_SERVING` while a hard dependency is down).
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Serves on `listener` until `shutdown` resolves, then drains: every status flips to
    /// `NOT_SERVING`, the server goes on serving for the shutdown delay (if any), the listener
    /// closes, and the call returns once in-flight calls have finished.
    ///
    /// Draining has no deadline of its own; the caller bounds it with the grace period (see
    /// [`crate::shutdown`]).
    pub async fn serve<F>(self, listener: TcpListener, shutdown: F) -> Result<(), GrpcServerError>
    where
        F: Future<Output = ()> + Send,
    {
        let Self {
            router,
            health,
            services,
            draining,
            shutdown_delay,
        } = self;
        set_all(&health, &services, ServingStatus::Serving).await;
        match listener.local_addr() {
            Ok(addr) => tracing::info!(%addr, ?services, "grpc server listening"),
            Err(_) => tracing::info!(?services, "grpc server listening"),
        }

        let signal = async move {
            shutdown.await;
            // NOT_SERVING first, while the listener still accepts, so health checkers see the
            // change; then release the Watch streams so they cannot hold the drain open.
            set_all(&health, &services, ServingStatus::NotServing).await;
            if !shutdown_delay.is_zero() {
                // Whoever routes to us (a Kubernetes Service, a load balancer) learns of the
                // failed readiness with a lag: new connections still arrive meanwhile, and are
                // served rather than refused.
                tracing::info!(delay = ?shutdown_delay, "grpc server not ready, still serving");
                tokio::time::sleep(shutdown_delay).await;
            }
            draining.cancel();
            tracing::info!("grpc server draining");
        };
        let (incoming, lingerers) = super::linger::incoming(listener);
        router
            .serve_with_incoming_shutdown(incoming, signal)
            .await?;
        lingerers.finished().await;
        tracing::info!("grpc server stopped");
        Ok(())
    }
}

/// Sets the overall status (`""`) and every service's status.
async fn set_all(health: &HealthReporter, services: &[&'static str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for service in services {
        health.set_service_status(service, status).await;
    }
}
