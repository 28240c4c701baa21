//! The request id across two hops: a call carrying `x-request-id` reaches a first server, whose
//! handler calls a second server through `ClientChannel`; the second sees the same id in its
//! metadata and as its current id, and its handler's log line carries it as `request_id`. A call
//! without one forwards none.
//!
//! Alone in its binary on purpose (like `grpc_trace.rs`): it installs a thread-local subscriber.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mercato_platform::grpc::{
    ChannelOptions, ClientChannel, GrpcServer, GrpcServerError, ServerOptions, connect_lazy,
};
use mercato_platform::request_id::{self, REQUEST_ID_HEADER};
use mercato_platform::settings::{LogFormat, TelemetrySettings};
use mercato_platform::telemetry;
use opentelemetry_sdk::trace::SdkTracerProvider;
use support::gate::{Captured, limits};
use support::within;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

const RECORD_PATH: &str = "/mercato.test.v1.Recorder/Record";
const FORWARD_PATH: &str = "/mercato.test.v1.Relay/Forward";

/// What the second server saw of one call.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// The `x-request-id` metadata.
    metadata: Option<String>,
    /// The handler task's current request id.
    current: Option<String>,
}

/// `mercato.test.v1.Recorder/Record`: reports what it saw, logs a line, answers empty.
#[derive(Clone)]
struct Recorder {
    seen: mpsc::UnboundedSender<Seen>,
}

impl NamedService for Recorder {
    const NAME: &'static str = "mercato.test.v1.Recorder";
}

/// `mercato.test.v1.Relay/Forward`: calls the recorder through the platform's client channel,
/// setting nothing by hand.
#[derive(Clone)]
struct Relay {
    downstream: ClientChannel,
}

impl NamedService for Relay {
    const NAME: &'static str = "mercato.test.v1.Relay";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct RecordMethod(Recorder);

impl tonic::server::UnaryService<()> for RecordMethod {
    type Response = ();
    type Future = BoxFuture<Result<Response<()>, Status>>;

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let seen = self.0.seen.clone();
        Box::pin(async move {
            tracing::info!("recorder reached");
            let _ = seen.send(Seen {
                metadata: request
                    .metadata()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                current: request_id::current().map(|id| id.to_string()),
            });
            Ok(Response::new(()))
        })
    }
}

struct ForwardMethod(Relay);

impl tonic::server::UnaryService<()> for ForwardMethod {
    type Response = ();
    type Future = BoxFuture<Result<Response<()>, Status>>;

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        let downstream = self.0.downstream.clone();
        Box::pin(async move { unary(downstream, RECORD_PATH, Request::new(())).await })
    }
}

impl tower::Service<http::Request<Body>> for Recorder {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = RecordMethod(self.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<(), ()>::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

impl tower::Service<http::Request<Body>> for Relay {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = ForwardMethod(self.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<(), ()>::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

async fn unary(
    channel: ClientChannel,
    path: &'static str,
    request: Request<()>,
) -> Result<Response<()>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| Status::unavailable(err.to_string()))?;
    grpc.unary(
        request,
        http::uri::PathAndQuery::from_static(path),
        ProstCodec::<(), ()>::default(),
    )
    .await
}

struct Running {
    url: String,
    stop: CancellationToken,
    task: JoinHandle<Result<(), GrpcServerError>>,
}

impl Running {
    async fn start<S>(service: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Error = Infallible, Response = http::Response<Body>>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let server = GrpcServer::new(ServerOptions::internal(limits(8)))
            .expect("server builds")
            .add_service(service);
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, stop.clone().cancelled_owned()));
        Self { url, stop, task }
    }

    fn channel(&self, caller: &str) -> ClientChannel {
        connect_lazy(&self.url, &ChannelOptions::new(caller)).expect("valid endpoint")
    }

    async fn stop(self) {
        self.stop.cancel();
        within("the server stopping", self.task)
            .await
            .expect("server task not panicked")
            .expect("server stopped cleanly");
    }
}

// Current-thread runtime: both servers and the client run on this thread, so the thread-local
// subscriber sees every span and log line.
#[tokio::test(flavor = "current_thread")]
async fn the_request_id_travels_through_a_second_hop_and_into_its_logs() {
    let logs = Captured::default();
    let settings = TelemetrySettings {
        log_format: LogFormat::Json,
        ..TelemetrySettings::local("mercato-test")
    };
    let provider = SdkTracerProvider::builder().build();
    let subscriber =
        telemetry::subscriber(&settings, &provider, logs.clone()).expect("subscriber builds");
    let _default = tracing::subscriber::set_default(subscriber);

    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let recorder = Running::start(Recorder { seen: seen_tx }).await;
    let relay = Running::start(Relay {
        downstream: recorder.channel("relay"),
    })
    .await;

    let mut request = Request::new(());
    request
        .metadata_mut()
        .insert(REQUEST_ID_HEADER, "abc-123".parse().expect("ascii"));
    within(
        "the relayed call",
        unary(relay.channel("test-client"), FORWARD_PATH, request),
    )
    .await
    .expect("relayed call succeeds");
    let first = within("the recorder seeing the call", seen.recv())
        .await
        .expect("recorder alive");
    assert_eq!(
        first,
        Seen {
            metadata: Some("abc-123".to_owned()),
            current: Some("abc-123".to_owned()),
        },
        "the second server sees the caller's request id"
    );

    // Without an id, none is invented or leaked from an earlier call.
    within(
        "the relayed call without an id",
        unary(relay.channel("test-client"), FORWARD_PATH, Request::new(())),
    )
    .await
    .expect("relayed call succeeds");
    let second = within("the recorder seeing the call", seen.recv())
        .await
        .expect("recorder alive");
    assert_eq!(
        second,
        Seen {
            metadata: None,
            current: None
        }
    );

    // A malformed id is not forwarded.
    let mut request = Request::new(());
    request
        .metadata_mut()
        .insert(REQUEST_ID_HEADER, "not ok".parse().expect("ascii"));
    within(
        "the relayed call with a malformed id",
        unary(relay.channel("test-client"), FORWARD_PATH, request),
    )
    .await
    .expect("relayed call succeeds");
    let third = within("the recorder seeing the call", seen.recv())
        .await
        .expect("recorder alive");
    assert_eq!(third.current, None);
    assert_eq!(third.metadata, None);

    relay.stop().await;
    recorder.stop().await;

    let lines = logs.lines();
    let reached: Vec<_> = lines
        .iter()
        .filter(|line| line["message"] == "recorder reached")
        .collect();
    assert_eq!(reached.len(), 3, "one handler line per call: {lines:?}");
    assert_eq!(
        reached[0]["request_id"], "abc-123",
        "the server span's request_id is on the handler's log line"
    );
    assert!(reached[1].get("request_id").is_none_or(|v| v.is_null()));
}
