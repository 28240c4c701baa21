//! A hand-written gRPC service and a server harness for the gRPC tests: no test-only proto.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use mercato_platform::grpc::{
    ChannelOptions, ClientChannel, GrpcServer, GrpcServerError, ServerOptions, connect_lazy,
};
use mercato_platform::principal::{self, Caller, Principal};
use mercato_platform::settings::ServerLimits;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_prost::ProstCodec;

use super::within;

/// What the gate handler saw of one call.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) principal: Option<Principal>,
    pub(crate) caller: Option<Caller>,
    /// The task's current principal, which outgoing calls from the handler would forward.
    pub(crate) scoped: Option<Principal>,
}

/// A hand-written unary service, `mercato.test.v1.Gate/Wait` (empty request and response), so the
/// tests need no test-only proto: each call reports its arrival, then waits for a permit the
/// test hands out, which lets a test hold calls in flight for as long as it needs.
#[derive(Clone)]
pub(crate) struct Gate {
    arrivals: mpsc::UnboundedSender<Arrival>,
    permits: Arc<Semaphore>,
}

pub(crate) const GATE_PATH: &str = "/mercato.test.v1.Gate/Wait";

impl NamedService for Gate {
    const NAME: &'static str = "mercato.test.v1.Gate";
}

impl tower::Service<http::Request<Body>> for Gate {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let gate = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<(), ()>::default());
            Ok(grpc.unary(WaitMethod(gate), request).await)
        })
    }
}

struct WaitMethod(Gate);

impl tonic::server::UnaryService<()> for WaitMethod {
    type Response = ();
    type Future = Pin<Box<dyn Future<Output = Result<Response<()>, Status>> + Send>>;

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let gate = self.0.clone();
        Box::pin(async move {
            tracing::info!("gate reached");
            let _ = gate.arrivals.send(Arrival {
                principal: request.extensions().get::<Principal>().cloned(),
                caller: principal::caller(&request).cloned(),
                scoped: principal::current(),
            });
            let permit = gate.permits.acquire().await;
            permit
                .map_err(|_| Status::internal("gate closed"))?
                .forget();
            Ok(Response::new(()))
        })
    }
}

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) stop: CancellationToken,
    pub(crate) task: JoinHandle<Result<(), GrpcServerError>>,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    permits: Arc<Semaphore>,
}

impl TestServer {
    pub(crate) async fn start(limits: ServerLimits) -> Self {
        Self::start_with(ServerOptions::internal(limits)).await
    }

    pub(crate) async fn start_with(options: ServerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("bound address");
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(0));
        let gate = Gate {
            arrivals: arrivals_tx,
            permits: Arc::clone(&permits),
        };
        let server = GrpcServer::new(options)
            .expect("server builds")
            .add_service(gate);
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, stop.clone().cancelled_owned()));
        Self {
            addr,
            stop,
            task,
            arrivals,
            permits,
        }
    }

    pub(crate) fn channel(&self) -> ClientChannel {
        connect_lazy(
            &format!("http://{}", self.addr),
            &ChannelOptions::new("test-client"),
        )
        .expect("valid endpoint")
    }

    pub(crate) async fn next_arrival(&mut self) -> Arrival {
        within("a call reaching the handler", self.arrivals.recv())
            .await
            .expect("the gate service is alive")
    }

    pub(crate) fn open_gate(&self, calls: usize) {
        self.permits.add_permits(calls);
    }

    pub(crate) async fn stop(self) {
        self.stop.cancel();
        // Let any call still waiting at the gate through, so draining can finish.
        self.permits.add_permits(Semaphore::MAX_PERMITS / 2);
        within("the server stopping", self.task)
            .await
            .expect("server task not panicked")
            .expect("server stopped cleanly");
    }
}

pub(crate) fn limits(concurrency: usize) -> ServerLimits {
    ServerLimits {
        request_timeout: Duration::from_secs(30),
        concurrency_limit: NonZeroUsize::new(concurrency).expect("positive limit"),
        max_connection_age: None,
    }
}

pub(crate) async fn call_gate(
    channel: ClientChannel,
    request: Request<()>,
) -> Result<Response<()>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| Status::unavailable(err.to_string()))?;
    grpc.unary(
        request,
        http::uri::PathAndQuery::from_static(GATE_PATH),
        ProstCodec::<(), ()>::default(),
    )
    .await
}

pub(crate) async fn health_status(channel: ClientChannel, service: &str) -> Result<i32, Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status)
}

/// A `MakeWriter` that keeps everything written, for asserting on log lines.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("log buffer lock")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    pub(crate) fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("log buffer lock").clone();
        String::from_utf8(bytes)
            .expect("logs are utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("each log line is one json object"))
            .collect()
    }
}
