//! Several replicas behind one client channel (`connect_lazy` with a comma-separated list):
//! calls are spread over them; once a replica has stopped, reads and keyed writes that reach
//! its closed port go once more, to the other replica, and succeed; a write without a key is
//! never sent twice — it fails, and the replica is passed over afterwards.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use mercato_platform::grpc::{
    ChannelOptions, ClientChannel, GrpcServer, GrpcServerError, ServerOptions, connect_lazy,
    retryable,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

use support::gate::limits;
use support::within;

const READ: &str = "/mercato.order.v1.OrderService/GetOrder";
const KEYED_WRITE: &str = "/mercato.order.v1.OrderService/CreateOrder";
const UNKEYED_WRITE: &str = "/mercato.order.v1.OrderService/CancelOrder";

/// A stand-in for the order service that answers every method with an empty message and
/// records the paths it handled (an empty message decodes from any request).
#[derive(Clone, Default)]
struct Recorder {
    handled: Arc<Mutex<Vec<String>>>,
}

impl NamedService for Recorder {
    const NAME: &'static str = "mercato.order.v1.OrderService";
}

impl tower::Service<http::Request<Body>> for Recorder {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let recorder = self.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<(), ()>::default());
            Ok(grpc.unary(Answer { recorder, path }, request).await)
        })
    }
}

struct Answer {
    recorder: Recorder,
    path: String,
}

impl tonic::server::UnaryService<()> for Answer {
    type Response = ();
    type Future = Pin<Box<dyn Future<Output = Result<Response<()>, Status>> + Send>>;

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        if let Ok(mut handled) = self.recorder.handled.lock() {
            handled.push(self.path.clone());
        }
        Box::pin(async { Ok(Response::new(())) })
    }
}

struct Replica {
    uri: String,
    recorder: Recorder,
    stop: CancellationToken,
    task: JoinHandle<Result<(), GrpcServerError>>,
}

impl Replica {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let uri = format!("http://{}", listener.local_addr().expect("bound address"));
        let recorder = Recorder::default();
        let server = GrpcServer::new(ServerOptions::internal(limits(16)))
            .expect("server builds")
            .add_service(recorder.clone());
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, stop.clone().cancelled_owned()));
        Self {
            uri,
            recorder,
            stop,
            task,
        }
    }

    fn handled(&self) -> Vec<String> {
        self.recorder
            .handled
            .lock()
            .map(|handled| handled.clone())
            .unwrap_or_default()
    }

    /// Drains and closes the listener, as SIGTERM does.
    fn stop(&self) {
        self.stop.cancel();
    }

    async fn stopped(self) {
        within("the replica stopping", self.task)
            .await
            .expect("server task not panicked")
            .expect("server stopped cleanly");
    }
}

async fn call(channel: &ClientChannel, path: &'static str) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    grpc.unary(
        Request::new(()),
        http::uri::PathAndQuery::from_static(path),
        ProstCodec::<(), ()>::default(),
    )
    .await
    .map(|_| ())
}

fn both(a: &Replica, b: &Replica) -> ClientChannel {
    connect_lazy(
        &format!("{}, {}", a.uri, b.uri),
        &ChannelOptions::new("test-client"),
    )
    .expect("a list of valid endpoints")
}

#[test]
fn the_paths_used_here_are_classified_as_the_tests_assume() {
    assert!(retryable(READ));
    assert!(retryable(KEYED_WRITE));
    assert!(!retryable(UNKEYED_WRITE));
}

#[tokio::test]
async fn a_stopped_replica_costs_no_read_and_no_keyed_write() {
    let a = Replica::start().await;
    let b = Replica::start().await;
    let channel = both(&a, &b);
    for _ in 0..4 {
        call(&channel, READ).await.expect("a read while both serve");
    }
    assert_eq!(a.handled().len(), 2, "calls take turns");
    assert_eq!(b.handled().len(), 2, "calls take turns");

    a.stop();
    let a_handled = a.handled().len();
    a.stopped().await;
    for _ in 0..10 {
        call(&channel, READ)
            .await
            .expect("a read with one replica stopped");
        call(&channel, KEYED_WRITE)
            .await
            .expect("a keyed write with one replica stopped");
    }
    assert_eq!(a_handled, 2, "the stopped replica took nothing more");
    assert_eq!(
        b.handled().len(),
        2 + 20,
        "every call reached the other replica once"
    );

    b.stop();
    b.stopped().await;
}

#[tokio::test]
async fn a_write_without_a_key_is_never_sent_twice() {
    let a = Replica::start().await;
    let b = Replica::start().await;
    let channel = both(&a, &b);
    a.stop();
    a.stopped().await;

    // The first call goes to the first replica in the list, which has stopped.
    let refused = call(&channel, UNKEYED_WRITE)
        .await
        .expect_err("the stopped replica cannot answer");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(b.handled().is_empty(), "the write was not sent again");

    // The stopped replica is passed over for the next calls.
    call(&channel, UNKEYED_WRITE)
        .await
        .expect("the next write goes to the replica that serves");
    assert_eq!(b.handled(), vec![UNKEYED_WRITE.to_owned()]);

    b.stop();
    b.stopped().await;
}

#[tokio::test]
async fn a_list_of_nothing_is_refused() {
    for setting in ["", ",", " , "] {
        assert!(
            connect_lazy(setting, &ChannelOptions::new("test-client")).is_err(),
            "{setting:?} is refused"
        );
    }
}
