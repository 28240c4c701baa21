//! `WatchOrder` over gRPC and gRPC-Web: its timeouts, its end, the BFF's shutdown, the order
//! service going away and the browser leaving.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::support::{Services, reason, seed_sku, sign_up};
use futures::Stream;
use mercato_platform::principal::PrincipalLayer;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::order::v1 as order;
use prost::Message as _;
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt as _;

use crate::buyer::{Orders, PATIENCE, cancel, next, place, status_of, watch};

/// The BFF's `REQUEST_TIMEOUT` is set to 1 s here: the stream must live on past it, since the
/// unary deadline bounds only the time to the response headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_streams_the_order_then_its_cancellation_then_ends_ok_and_outlives_the_request_timeout()
 {
    let services = Services::start().await;
    let bff = services.bff(&[("REQUEST_TIMEOUT", "1s")]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    let first = next(&mut stream)
        .await
        .expect("first message")
        .expect("an order");
    assert_eq!(first, placed, "the watch starts with the current order");
    // The one sleep here is the point of the test: time must pass beyond the request deadline.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let cancelled = cancel(&mut orders, &buyer, &placed.order_id).await;
    let change = next(&mut stream)
        .await
        .expect("the stream outlived the request timeout")
        .expect("the change");
    assert_eq!(change, cancelled);
    assert_eq!(status_of(&change), common::OrderStatus::Cancelled);
    assert_eq!(
        next(&mut stream).await.expect("ends with OK"),
        None,
        "a terminal state ends the stream"
    );

    drop(bff);
    services.stop().await;
}

/// One gRPC-Web data frame around `message`.
fn frame(message: &impl prost::Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&payload);
    framed
}

/// The first complete gRPC-Web frame at the start of `buffer`: (flag, payload, length used).
fn first_frame(buffer: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buffer.len() < 5 {
        return None;
    }
    let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    (buffer.len() >= 5 + length).then(|| (buffer[0], buffer[5..5 + length].to_vec(), 5 + length))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_streams_over_grpc_web_message_by_message() {
    let services = Services::start().await;
    let bff = services.bff(&[("REQUEST_TIMEOUT", "1s")]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    mercato_bff::app::install_crypto_provider();
    let http1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("http client");
    let mut response = http1
        .post(format!(
            "{}/mercato.bff.v1.OrderService/WatchOrder",
            bff.url()
        ))
        .header("origin", "https://shop.example")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {buyer}"))
        .body(frame(&bff::WatchOrderRequest {
            order_id: placed.order_id.clone(),
        }))
        .send()
        .await
        .expect("grpc-web watch");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert!(response.status().is_success());

    // Read frames as they arrive: the first one must come while the stream is still open.
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    let mut read_frame = async || loop {
        if let Some((flag, payload, used)) = first_frame(&buffer) {
            buffer.drain(..used);
            return Some((flag, payload));
        }
        let chunk = tokio::time::timeout(PATIENCE, response.chunk())
            .await
            .expect("the body moves in time")
            .expect("body chunk");
        match chunk {
            Some(bytes) => buffer.extend_from_slice(&bytes),
            None => return None,
        }
    };
    let (flag, payload) = read_frame().await.expect("a first frame");
    assert_eq!(flag, 0, "a data frame first");
    let first = bff::WatchOrderResponse::decode(payload.as_slice()).expect("message decodes");
    assert_eq!(first.order.as_ref(), Some(&placed));

    // Past the 1 s request timeout, the cancellation still arrives on the same response.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let cancelled = cancel(&mut orders, &buyer, &placed.order_id).await;
    while let Some(frame) = read_frame().await {
        frames.push(frame);
    }
    let (data, trailers): (Vec<_>, Vec<_>) = frames.into_iter().partition(|(flag, _)| *flag == 0);
    let changes: Vec<bff::Order> = data
        .iter()
        .map(|(_, payload)| {
            bff::WatchOrderResponse::decode(payload.as_slice())
                .expect("message decodes")
                .order
                .expect("order")
        })
        .collect();
    assert_eq!(changes, vec![cancelled]);
    let trailers: String = trailers
        .iter()
        .map(|(_, payload)| String::from_utf8_lossy(payload).into_owned())
        .collect();
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_unavailable_at_its_maximum_duration_and_a_new_watch_starts_from_the_latest_state()
 {
    let services = Services::start().await;
    let bff = services.bff(&[("WATCH_MAX_DURATION", "1s")]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(
        next(&mut stream).await.expect("first"),
        Some(placed.clone())
    );
    let ended = next(&mut stream).await.expect_err("the watch is bounded");
    assert_eq!(ended.code(), Code::Unavailable);
    assert_eq!(reason(&ended), "UNAVAILABLE");
    assert!(
        ended.message().contains("maximum duration"),
        "{}",
        ended.message()
    );
    assert_eq!(
        ended
            .get_error_details()
            .retry_info()
            .map(|retry| retry.retry_delay),
        Some(Some(Duration::ZERO)),
        "watch again at once"
    );

    let cancelled = cancel(&mut orders, &buyer, &placed.order_id).await;
    let mut again = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(next(&mut again).await.expect("first"), Some(cancelled));
    assert_eq!(next(&mut again).await.expect("ends with OK"), None);

    drop(bff);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_unavailable_as_soon_as_the_bff_shuts_down() {
    let services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(next(&mut stream).await.expect("first"), Some(placed));
    // Without the shutdown ending it, this stream would hold the drain until the order is
    // terminal (up to its 30-minute payment deadline); `next` waits only PATIENCE.
    drop(bff);
    let ended = next(&mut stream)
        .await
        .expect_err("the shutdown ends the watch");
    assert_eq!(ended.code(), Code::Unavailable);
    assert!(
        ended.message().contains("shutting down"),
        "{}",
        ended.message()
    );

    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_the_order_service_ends_before_a_terminal_state_ends_unavailable_not_ok() {
    let mut services = Services::start().await;
    let bff = services.bff(&[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(next(&mut stream).await.expect("first"), Some(placed));
    services
        .orders
        .take()
        .expect("the order service runs")
        .stop()
        .await
        .expect("order service stops cleanly");
    let ended = next(&mut stream)
        .await
        .expect_err("a PENDING order's watch does not end with OK");
    assert_eq!(ended.code(), Code::Unavailable);
    // The order service ends its streams with OK when it stops; the BFF knows PENDING is not
    // the end the contract promises.
    assert!(
        ended.message().contains("order service ended the watch"),
        "{}",
        ended.message()
    );

    drop(bff);
    services.stop().await;
}

/// A stream that counts itself open until it is dropped.
struct Counted<S> {
    inner: S,
    open: Arc<AtomicUsize>,
}

impl<S: Stream + Unpin> Stream for Counted<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The real order service's handlers, served by the test so it can count open watch streams.
#[derive(Clone)]
struct Observed {
    inner: mercato_order::order::grpc::OrderGrpc,
    open_watches: Arc<AtomicUsize>,
}

type GrpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl order::order_service_server::OrderService for Observed {
    type WatchOrderStream =
        Pin<Box<dyn Stream<Item = Result<order::WatchOrderResponse, Status>> + Send + 'static>>;

    async fn create_order(
        &self,
        request: Request<order::CreateOrderRequest>,
    ) -> GrpcResult<order::CreateOrderResponse> {
        self.inner.create_order(request).await
    }

    async fn get_order(
        &self,
        request: Request<order::GetOrderRequest>,
    ) -> GrpcResult<order::GetOrderResponse> {
        self.inner.get_order(request).await
    }

    async fn list_orders(
        &self,
        request: Request<order::ListOrdersRequest>,
    ) -> GrpcResult<order::ListOrdersResponse> {
        self.inner.list_orders(request).await
    }

    async fn cancel_order(
        &self,
        request: Request<order::CancelOrderRequest>,
    ) -> GrpcResult<order::CancelOrderResponse> {
        self.inner.cancel_order(request).await
    }

    async fn watch_order(
        &self,
        request: Request<order::WatchOrderRequest>,
    ) -> GrpcResult<Self::WatchOrderStream> {
        let stream = self.inner.watch_order(request).await?.into_inner();
        self.open_watches.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(Box::pin(Counted {
            inner: stream,
            open: Arc::clone(&self.open_watches),
        })))
    }

    async fn lookup_order(
        &self,
        request: Request<order::LookupOrderRequest>,
    ) -> GrpcResult<order::LookupOrderResponse> {
        self.inner.lookup_order(request).await
    }

    async fn search_orders(
        &self,
        request: Request<order::SearchOrdersRequest>,
    ) -> GrpcResult<order::SearchOrdersResponse> {
        self.inner.search_orders(request).await
    }

    async fn attach_payment(
        &self,
        request: Request<order::AttachPaymentRequest>,
    ) -> GrpcResult<order::AttachPaymentResponse> {
        self.inner.attach_payment(request).await
    }

    async fn mark_order_shipped(
        &self,
        request: Request<order::MarkOrderShippedRequest>,
    ) -> GrpcResult<order::MarkOrderShippedResponse> {
        self.inner.mark_order_shipped(request).await
    }

    async fn mark_order_finished(
        &self,
        request: Request<order::MarkOrderFinishedRequest>,
    ) -> GrpcResult<order::MarkOrderFinishedResponse> {
        self.inner.mark_order_finished(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_leaving_a_watch_ends_the_order_services_stream() {
    let services = Services::start().await;
    let context = services
        .orders
        .as_ref()
        .expect("the order service runs")
        .context
        .clone();
    let open_watches = Arc::new(AtomicUsize::new(0));
    let observed = Observed {
        inner: mercato_order::order::grpc::OrderGrpc::new(context),
        open_watches: Arc::clone(&open_watches),
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind observed orders");
    let observed_uri = format!("http://{}", listener.local_addr().expect("observed addr"));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(PrincipalLayer)
            .add_service(order::order_service_server::OrderServiceServer::new(
                observed,
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let bff = services.bff_with_order_service(&observed_uri, &[]).await;
    let channel = bff.channel().await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let mut orders = Orders::new(channel);
    let sku = seed_sku(&services.products.grpc_uri(), 10).await;
    let buyer = sign_up(&mut auth).await;
    let placed = place(&mut orders, &buyer, &sku).await;

    let mut stream = watch(&mut orders, &buyer, &placed.order_id).await;
    assert_eq!(next(&mut stream).await.expect("first"), Some(placed));
    assert_eq!(open_watches.load(Ordering::SeqCst), 1);
    drop(stream);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while open_watches.load(Ordering::SeqCst) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order service's stream outlived the browser's"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    drop(bff);
    server.abort();
    services.stop().await;
}
