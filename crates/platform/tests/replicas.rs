//! The replicas of one backend behind one client channel — a comma-separated list, or one
//! address in front of them as a Kubernetes Service is: calls take turns over a list; a call
//! that provably never reached a server (a stopped replica's closed port, a stream its
//! `GOAWAY` turned away) is sent again, whatever the method, and reaches a replica that serves
//! exactly once; a call cut mid-way is never sent again.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use mercato_platform::grpc::{
    ChannelOptions, ClientChannel, GrpcServer, GrpcServerError, ServerOptions, connect_lazy,
};
use mercato_platform::settings::ServerLimits;
use mercato_platform::testing::ServiceAddress;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use support::gate::limits;
use support::within;

const READ: &str = "/mercato.order.v1.OrderService/GetOrder";
const KEYED_WRITE: &str = "/mercato.order.v1.OrderService/CreateOrder";
const UNKEYED_WRITE: &str = "/mercato.order.v1.OrderService/CancelOrder";

/// A stand-in for the order service that answers every method with an empty message and
/// records the paths it handled (an empty message decodes from any request); while `stalling`,
/// it records a call and never answers it.
#[derive(Clone, Default)]
struct Recorder {
    handled: Arc<Mutex<Vec<String>>>,
    stalling: Arc<AtomicBool>,
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
        if self.recorder.stalling.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        Box::pin(async { Ok(Response::new(())) })
    }
}

struct Replica {
    addr: SocketAddr,
    uri: String,
    recorder: Recorder,
    stop: CancellationToken,
    task: JoinHandle<Result<(), GrpcServerError>>,
}

impl Replica {
    async fn start() -> Self {
        Self::start_with(ServerOptions::internal(limits(64))).await
    }

    /// A replica that goes on serving for `delay` once told to stop (`SHUTDOWN_DELAY`).
    async fn start_with_delay(delay: Duration) -> Self {
        Self::start_with(ServerOptions::internal(limits(64)).with_shutdown_delay(delay)).await
    }

    /// A replica that ends each client connection after `age` (`MAX_CONNECTION_AGE`).
    async fn start_with_connection_age(age: Duration) -> Self {
        Self::start_with(ServerOptions::internal(ServerLimits {
            max_connection_age: Some(age),
            ..limits(64)
        }))
        .await
    }

    async fn start_with(options: ServerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("bound address");
        let recorder = Recorder::default();
        let server = GrpcServer::new(options)
            .expect("server builds")
            .add_service(recorder.clone());
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, stop.clone().cancelled_owned()));
        Self {
            addr,
            uri: format!("http://{addr}"),
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

    /// Begins shutdown, as SIGTERM does: not serving, the delay, then the drain.
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

fn one_channel(uri: &str) -> ClientChannel {
    connect_lazy(uri, &ChannelOptions::new("test-client")).expect("valid endpoints")
}

fn both(a: &Replica, b: &Replica) -> ClientChannel {
    one_channel(&format!("{}, {}", a.uri, b.uri))
}

#[tokio::test]
async fn a_stopped_replica_in_a_list_costs_no_call_of_any_kind() {
    let a = Replica::start().await;
    let b = Replica::start().await;
    let channel = both(&a, &b);
    for _ in 0..4 {
        call(&channel, READ).await.expect("a read while both serve");
    }
    assert_eq!(a.handled().len(), 2, "calls take turns");
    assert_eq!(b.handled().len(), 2, "calls take turns");

    a.stop();
    let a_recorder = a.recorder.clone();
    a.stopped().await;
    for _ in 0..10 {
        for path in [READ, KEYED_WRITE, UNKEYED_WRITE] {
            call(&channel, path)
                .await
                .unwrap_or_else(|status| panic!("{path} with one replica stopped: {status:?}"));
        }
    }
    assert_eq!(
        a_recorder
            .handled
            .lock()
            .map(|h| h.len())
            .unwrap_or_default(),
        2,
        "the stopped replica took nothing more"
    );
    assert_eq!(
        b.handled().len(),
        2 + 30,
        "every call reached the other replica exactly once"
    );
    let exposition = mercato_platform::metrics::render();
    let resent_on_connect: f64 = exposition
        .lines()
        .filter(|line| {
            line.starts_with("grpc_client_resent_total{") && line.contains("reason=\"connect\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        resent_on_connect >= 1.0,
        "the calls the closed port refused are counted as resent on connect:\n{exposition}"
    );

    b.stop();
    b.stopped().await;
}

/// The Kubernetes shape: one Service address, two pods behind it; one pod is told to stop
/// while 64 callers on two threads keep calling (writes without an idempotency key, which only a proof
/// of "never sent" may repeat). Its readiness fails at once; the address drops it after 100 ms
/// (endpoints lag behind readiness); it goes on serving for its 400 ms delay, then its
/// `GOAWAY` turns away whatever the callers had just sent, and those calls go again over a new
/// connection, to the other pod.
/// Enough callers on two threads that some call is always in hyper's hands when the
/// `GOAWAY` arrives: with a single attempt per call, every run of the test below fails.
const CALLERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_one_address_a_stopping_replica_costs_no_call() {
    let a = Replica::start_with_delay(Duration::from_millis(400)).await;
    let b = Replica::start().await;
    let address = ServiceAddress::start([a.addr, b.addr])
        .await
        .expect("a service address");
    let channel = one_channel(&address.uri());
    call(&channel, READ)
        .await
        .expect("the first call opens the connection, to the first pod");
    assert_eq!(a.handled().len(), 1);

    let callers = Callers::start(&channel);
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.stop();
    let handled_at_stop = a.handled().len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    address.remove(a.addr);
    let a_handled = a.recorder.clone();
    a.stopped().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (answered, failures) = callers.stop().await;

    assert!(failures.is_empty(), "failed calls: {failures:?}");
    let a_total = a_handled
        .handled
        .lock()
        .map(|h| h.len())
        .unwrap_or_default();
    assert!(
        a_total > handled_at_stop,
        "the stopping pod went on serving during its delay ({handled_at_stop} then {a_total})"
    );
    assert!(!b.handled().is_empty(), "the other pod took over");
    assert_eq!(
        a_total - 1 + b.handled().len(),
        answered,
        "every answered call was handled exactly once"
    );
    assert_eq!(
        address.turned_away(),
        0,
        "no connection reached a closed port"
    );
    // Whether any call was in hyper's hands when the GOAWAY came is up to the scheduler, so
    // the resent counter is checked where a resend is certain (the list test above).
    b.stop();
    b.stopped().await;
}

/// A Service balances connections, not calls: a caller's one HTTP/2 connection would pin all
/// its calls to the pod it first reached, and a pod added later (an autoscaler scaling out)
/// would get none of them. With `MAX_CONNECTION_AGE` the pods end connections as they age, the
/// caller reconnects, and the calls spread — losing none, doubling none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_one_address_connection_age_brings_calls_to_an_added_pod() {
    let age = Duration::from_millis(150);
    let a = Replica::start_with_connection_age(age).await;
    let address = ServiceAddress::start([a.addr])
        .await
        .expect("a service address");
    let channel = one_channel(&address.uri());
    call(&channel, READ).await.expect("the one pod answers");

    let b = Replica::start_with_connection_age(age).await;
    address.add(b.addr);
    let callers = Callers::start(&channel);
    tokio::time::sleep(age * 8).await;
    let (answered, failures) = callers.stop().await;

    assert!(failures.is_empty(), "failed calls: {failures:?}");
    let (on_a, on_b) = (a.handled().len() - 1, b.handled().len());
    assert!(
        on_b >= answered / 10,
        "the added pod took a share of the caller's calls: {on_b} of {answered} ({on_a} on the first)"
    );
    assert_eq!(on_a + on_b, answered, "every call was handled exactly once");
    a.stop();
    b.stop();
    a.stopped().await;
    b.stopped().await;
}

/// [`CALLERS`] tasks calling an unkeyed write in a loop over one channel until stopped.
struct Callers {
    calling: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Vec<Status>>>,
}

impl Callers {
    fn start(channel: &ClientChannel) -> Self {
        let calling = Arc::new(AtomicBool::new(true));
        let answered = Arc::new(AtomicUsize::new(0));
        let tasks = (0..CALLERS)
            .map(|_| {
                let (channel, calling, answered) =
                    (channel.clone(), Arc::clone(&calling), Arc::clone(&answered));
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    while calling.load(Ordering::SeqCst) {
                        match call(&channel, UNKEYED_WRITE).await {
                            Ok(()) => {
                                answered.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(status) => failures.push(status),
                        }
                    }
                    failures
                })
            })
            .collect();
        Self {
            calling,
            answered,
            tasks,
        }
    }

    /// Stops calling: how many calls were answered, and every failure.
    async fn stop(self) -> (usize, Vec<Status>) {
        self.calling.store(false, Ordering::SeqCst);
        let mut failures = Vec::new();
        for task in self.tasks {
            failures.extend(within("a caller finishing", task).await.expect("no panic"));
        }
        (self.answered.load(Ordering::SeqCst), failures)
    }
}

#[tokio::test]
async fn a_call_cut_mid_way_is_not_sent_again() {
    let a = Replica::start().await;
    let b = Replica::start().await;
    let address = ServiceAddress::start([a.addr, b.addr])
        .await
        .expect("a service address");
    let channel = one_channel(&address.uri());
    a.recorder.stalling.store(true, Ordering::SeqCst);
    let pending = tokio::spawn({
        let channel = channel.clone();
        async move { call(&channel, UNKEYED_WRITE).await }
    });
    within("the call reaching the first pod", async {
        while a.handled().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // The connection is lost while the pod is processing the call: it may have acted on it,
    // so the call fails instead of going to the other pod.
    address.cut_connections();
    within("the cut call failing", pending)
        .await
        .expect("no panic")
        .expect_err("a cut call fails");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.handled(), vec![UNKEYED_WRITE.to_owned()]);
    assert!(b.handled().is_empty(), "the write was not sent again");

    call(&channel, UNKEYED_WRITE)
        .await
        .expect("the next call reconnects, to the other pod");
    assert_eq!(b.handled(), vec![UNKEYED_WRITE.to_owned()]);
    a.stop();
    b.stop();
    a.stopped().await;
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
