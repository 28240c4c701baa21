//! The built `mercato-order` binary under a real SIGTERM: with calls in flight it turns
//! not-ready, lets every in-flight call finish successfully, and exits 0 within its grace
//! period. The calls are held in flight by a stand-in product service that answers the cart's
//! `BatchGetSkus` only when the test opens its gate.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mercato_order::testing::TestEnv;
use mercato_platform::grpc::{GrpcServer, ServerOptions};
use mercato_platform::principal::{Principal, Role};
use mercato_platform::settings::ServerLimits;
use mercato_proto::mercato::common::v1::{Money, ProductStatus};
use mercato_proto::mercato::order::v1 as pb;
use mercato_proto::mercato::product::v1 as product;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use uuid::Uuid;

/// Upper bound for anything the test waits for; reaching it means a hang.
const PATIENCE: Duration = Duration::from_secs(30);

/// The binary's `SHUTDOWN_GRACE_PERIOD`.
const GRACE: Duration = Duration::from_secs(10);

/// Calls held in flight when SIGTERM lands.
const IN_FLIGHT: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_not_ready_finishes_in_flight_calls_and_exits_0_within_the_grace_period() {
    let mut products = GatedProducts::start().await;
    let env = TestEnv::new(products.uri())
        .await
        .expect("order test resources");
    let resources = env.resources().service;
    let grace = format!("{}s", GRACE.as_secs());
    let settings = [
        ("DATABASE_URL", resources.database_url.as_str()),
        ("REDIS_URL", resources.redis_url.as_str()),
        ("REDIS_KEY_PREFIX", resources.redis_prefix.as_str()),
        ("AMQP_URL", resources.amqp_url.as_str()),
        ("BUS_NAMESPACE", resources.broker_namespace.as_str()),
        ("PRODUCT_SERVICE_URL", products.uri_str()),
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("HTTP_ADDR", "127.0.0.1:0"),
        ("SHUTDOWN_GRACE_PERIOD", grace.as_str()),
        ("LOG_FORMAT", "json"),
        ("LOG_FILTER", "info"),
    ];
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mercato-order"));
    // Only the settings above: nothing of the environment the tests run in.
    for (key, _) in std::env::vars() {
        if key.starts_with("MERCATO_") && !key.starts_with("MERCATO_TEST_") {
            command.env_remove(key);
        }
    }
    let mut child = Running(
        command
            .envs(
                settings
                    .iter()
                    .map(|(key, value)| (format!("MERCATO_ORDER__{key}"), *value)),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the order binary starts"),
    );
    let pid = child.0.id();

    // Both listeners are on port 0: the log says where they are. A thread reads stdout to the
    // end, so the binary never blocks on a full pipe.
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logs = Vec::new();
    let (mut grpc_addr, mut http_addr) = (None, None);
    tokio::time::timeout(PATIENCE, async {
        while grpc_addr.is_none() || http_addr.is_none() {
            let line = lines
                .recv()
                .await
                .expect("the binary logs where it listens before its output ends");
            if line.contains("grpc server listening") {
                grpc_addr = logged_addr(&line);
            } else if line.contains("http server listening") {
                http_addr = logged_addr(&line);
            }
            logs.push(line);
        }
    })
    .await
    .expect("the binary says where it listens");
    let (grpc_addr, http_addr) = (
        grpc_addr.expect("the grpc address"),
        http_addr.expect("the http address"),
    );

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while readyz(http_addr).await != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the binary never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
        .expect("an address")
        .connect()
        .await
        .expect("the binary accepts gRPC connections");
    let user = Principal::new(Uuid::new_v4(), [Role::Buyer]);
    let calls: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let mut carts = pb::cart_service_client::CartServiceClient::new(channel.clone());
            let mut request = Request::new(pb::AddCartItemRequest {
                sku_id: Uuid::new_v4().to_string(),
                quantity: 1,
                idempotency_key: Uuid::new_v4().to_string(),
            });
            user.write_metadata(request.metadata_mut());
            tokio::spawn(async move { carts.add_cart_item(request).await })
        })
        .collect();
    products.wait_for_arrivals(IN_FLIGHT).await;

    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM delivered");

    // Not ready any more (or no longer listening) while the calls are still held.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while readyz(http_addr).await == Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still answers 200 after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        child
            .0
            .try_wait()
            .expect("the child can be polled")
            .is_none(),
        "the binary waits for its in-flight calls"
    );

    products.open_gate();
    for call in calls {
        let answer = tokio::time::timeout(PATIENCE, call)
            .await
            .expect("an in-flight call ends")
            .expect("the call's task did not panic");
        answer.expect("an in-flight call succeeds through the drain");
    }
    let deadline = tokio::time::Instant::now() + GRACE;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("the child can be polled") {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the binary did not exit within its grace period"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "a clean exit after SIGTERM");
    reader.join().expect("the log reader ends with the binary");
    while let Ok(line) = lines.try_recv() {
        logs.push(line);
    }
    assert!(
        logs.iter()
            .any(|line| line.contains("shutdown signal received")),
        "the binary logged the signal: {logs:#?}"
    );
    assert!(
        TcpStream::connect(grpc_addr).await.is_err(),
        "the gRPC listener is closed"
    );
    products.stop().await;
}

/// The binary's process, killed if the test fails before it exited.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The `addr` field of a JSON log line.
fn logged_addr(line: &str) -> Option<SocketAddr> {
    line.split("\"addr\":\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()
}

/// `GET /readyz` over a fresh connection: the status, or `None` when nothing listens.
async fn readyz(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// A stand-in product service: `BatchGetSkus` reports each arrival and, once the test opens the
/// gate, answers that every SKU asked for is purchasable.
#[derive(Clone)]
struct Gated {
    arrivals: mpsc::UnboundedSender<()>,
    permits: Arc<Semaphore>,
}

impl NamedService for Gated {
    const NAME: &'static str = "mercato.product.v1.ProductService";
}

impl tower::Service<http::Request<Body>> for Gated {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let gated = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<
                product::BatchGetSkusResponse,
                product::BatchGetSkusRequest,
            >::default());
            Ok(grpc.unary(gated, request).await)
        })
    }
}

impl tonic::server::UnaryService<product::BatchGetSkusRequest> for Gated {
    type Response = product::BatchGetSkusResponse;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: Request<product::BatchGetSkusRequest>) -> Self::Future {
        let gated = self.clone();
        let skus = request
            .into_inner()
            .sku_ids
            .into_iter()
            .map(|sku_id| product::PurchasableSku {
                sku: Some(product::Sku {
                    sku_id,
                    price: Some(Money {
                        currency_code: "JPY".to_owned(),
                        amount_minor: 100,
                    }),
                    available_quantity: 10,
                    active: true,
                    ..product::Sku::default()
                }),
                product_name: "Stand-in".to_owned(),
                product_status: ProductStatus::Published.into(),
                purchasable: true,
                ..product::PurchasableSku::default()
            })
            .collect();
        Box::pin(async move {
            let _ = gated.arrivals.send(());
            gated
                .permits
                .acquire()
                .await
                .map_err(|_| Status::internal("gate closed"))?
                .forget();
            Ok(Response::new(product::BatchGetSkusResponse {
                skus,
                missing_sku_ids: Vec::new(),
            }))
        })
    }
}

struct GatedProducts {
    uri: String,
    arrivals: mpsc::UnboundedReceiver<()>,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), mercato_platform::grpc::GrpcServerError>>,
}

impl GatedProducts {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let uri = format!("http://{}", listener.local_addr().expect("bound address"));
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(0));
        let server = GrpcServer::new(ServerOptions::internal(ServerLimits::default()))
            .expect("server builds")
            .add_service(Gated {
                arrivals: arrivals_tx,
                permits: Arc::clone(&permits),
            });
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, stop.clone().cancelled_owned()));
        Self {
            uri,
            arrivals,
            permits,
            stop,
            task,
        }
    }

    fn uri(&self) -> String {
        self.uri.clone()
    }

    fn uri_str(&self) -> &str {
        &self.uri
    }

    async fn wait_for_arrivals(&mut self, count: usize) {
        for _ in 0..count {
            tokio::time::timeout(PATIENCE, self.arrivals.recv())
                .await
                .expect("a cart call reaches the product service")
                .expect("the stand-in is alive");
        }
    }

    /// Lets every call through, now and later (a cart call asks twice: to check the SKU, then
    /// to show the cart).
    fn open_gate(&self) {
        self.permits.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("the stand-in did not panic")
            .expect("the stand-in stops cleanly");
    }
}
