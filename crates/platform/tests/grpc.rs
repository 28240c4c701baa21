//! The gRPC server builder and client channel, end to end on 127.0.0.1:0: health, reflection,
//! the concurrency limit, deadlines, graceful shutdown, gRPC-Web and the forwarded principal.

mod support;

use std::time::Duration;

use mercato_platform::grpc::ServerOptions;
use mercato_platform::principal::{self, Caller, Principal, Role};
use mercato_platform::settings::ServerLimits;
use support::gate::{TestServer, call_gate, health_status, limits};
use support::within;
use tokio::net::TcpListener;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt as _;
use uuid::Uuid;

#[tokio::test]
async fn health_answers_serving_for_the_server_and_each_service() {
    let server = TestServer::start(limits(8)).await;
    let channel = server.channel();
    for service in ["", "mercato.test.v1.Gate"] {
        let status = within("a health check", health_status(channel.clone(), service))
            .await
            .expect("health check succeeds");
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health_status(channel, "no.such.Service").await;
    assert_eq!(unknown.map_err(|s| s.code()), Err(Code::NotFound));
    server.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_registered_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start(limits(8)).await;
    let mut client = ServerReflectionClient::new(server.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = within(
        "the reflection stream opening",
        client.server_reflection_info(tokio_stream::once(request)),
    )
    .await
    .expect("reflection answers")
    .into_inner();
    let response = within("a reflection response", responses.message())
        .await
        .expect("stream healthy")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!(
            "expected a service list, got {:?}",
            response.message_response
        );
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    assert!(
        names.contains(&"grpc.reflection.v1.ServerReflection"),
        "{names:?}"
    );
    drop(responses);
    server.stop().await;
}

#[tokio::test]
async fn the_concurrency_limit_sheds_with_unavailable_instead_of_hanging() {
    let mut server = TestServer::start(limits(1)).await;
    let channel = server.channel();
    let in_flight = tokio::spawn(call_gate(channel.clone(), Request::new(())));
    server.next_arrival().await;

    let shed = within(
        "the shed answer",
        call_gate(channel.clone(), Request::new(())),
    )
    .await
    .expect_err("the second call exceeds the limit");
    assert_eq!(shed.code(), Code::Unavailable);
    let details = shed.check_error_details().expect("details decode");
    assert_eq!(
        details.error_info().map(|info| info.reason.as_str()),
        Some("SERVER_OVERLOADED")
    );
    assert!(
        details.retry_info().is_some(),
        "shed calls tell clients when to retry"
    );

    let health = within("a health check under load", health_status(channel, ""))
        .await
        .expect("health checks bypass the limit");
    assert_eq!(health, ServingStatus::Serving as i32);

    server.open_gate(1);
    within("the admitted call", in_flight)
        .await
        .expect("task not panicked")
        .expect("the admitted call completes");
    server.stop().await;
}

#[tokio::test]
async fn a_call_past_the_server_deadline_gets_deadline_exceeded() {
    let server = TestServer::start(ServerLimits {
        request_timeout: Duration::from_millis(50),
        ..limits(8)
    })
    .await;
    // The gate never opens: only the server's deadline can end this call.
    let status = within(
        "the deadline",
        call_gate(server.channel(), Request::new(())),
    )
    .await
    .expect_err("the handler outlives the deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_calls_and_ends_health_watches() {
    let mut server = TestServer::start(limits(8)).await;
    let channel = server.channel();
    let mut watch = within(
        "a health watch",
        HealthClient::new(channel.clone()).watch(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .expect("watch opens")
    .into_inner();
    let first = within("the first watch update", watch.message())
        .await
        .expect("watch healthy")
        .expect("an update");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let in_flight = tokio::spawn(call_gate(channel, Request::new(())));
    server.next_arrival().await;
    server.stop.cancel();

    let update = within("the draining update", watch.message())
        .await
        .expect("watch healthy")
        .expect("an update");
    assert_eq!(update.status, ServingStatus::NotServing as i32);
    let end = within("the watch ending", watch.message()).await;
    assert!(
        matches!(end, Ok(None)),
        "the watch ends during drain, got {end:?}"
    );

    server.open_gate(1);
    within("the in-flight call", in_flight)
        .await
        .expect("task not panicked")
        .expect("the in-flight call completes during drain");
    within("the server stopping", server.task)
        .await
        .expect("server task not panicked")
        .expect("server stopped cleanly");
    let refused = TcpListener::bind(server.addr).await;
    assert!(refused.is_ok(), "the listener was released");
}

#[tokio::test]
async fn during_the_shutdown_delay_the_server_is_not_serving_yet_accepts_and_answers() {
    let delay = Duration::from_millis(500);
    let mut server =
        TestServer::start_with(ServerOptions::internal(limits(8)).with_shutdown_delay(delay)).await;
    let begun = tokio::time::Instant::now();
    server.stop.cancel();
    let channel = server.channel();
    within("health saying NOT_SERVING", async {
        while health_status(channel.clone(), "").await.ok()
            != Some(ServingStatus::NotServing as i32)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // A caller that connects now (its router has not heard yet) is still served.
    let late = server.channel();
    let call = tokio::spawn(call_gate(late, Request::new(())));
    server.next_arrival().await;
    server.open_gate(1);
    within("the late call", call)
        .await
        .expect("task not panicked")
        .expect("a call during the delay is answered");
    assert!(
        begun.elapsed() < delay,
        "the late call was served inside the delay"
    );

    within("the server stopping", server.task)
        .await
        .expect("server task not panicked")
        .expect("server stopped cleanly");
    assert!(
        begun.elapsed() >= delay,
        "the drain began only after the delay"
    );
}

#[tokio::test]
async fn the_principal_is_extracted_and_forwarded_from_the_scope() {
    let mut server = TestServer::start(limits(8)).await;
    server.open_gate(2);
    let channel = server.channel();
    let user = Principal::new(Uuid::new_v4(), [Role::Buyer, Role::Seller]);

    within(
        "a call inside the principal scope",
        principal::scope(
            Some(user.clone()),
            call_gate(channel.clone(), Request::new(())),
        ),
    )
    .await
    .expect("call succeeds");
    let arrival = server.next_arrival().await;
    assert_eq!(arrival.principal, Some(user.clone()));
    assert_eq!(arrival.caller, Some(Caller("test-client".into())));
    assert_eq!(
        arrival.scoped,
        Some(user),
        "the handler's own outgoing calls forward it"
    );

    let admin = Principal::new(Uuid::new_v4(), [Role::Admin]);
    let mut request = Request::new(());
    admin.write_metadata(request.metadata_mut());
    within(
        "a call with explicit metadata",
        call_gate(channel.clone(), request),
    )
    .await
    .expect("call succeeds");
    assert_eq!(server.next_arrival().await.principal, Some(admin));

    let mut forged = Request::new(());
    forged.metadata_mut().insert(
        principal::USER_ID_HEADER,
        "not-a-uuid".parse().expect("ascii"),
    );
    let rejected = within("a malformed principal", call_gate(channel, forged))
        .await
        .expect_err("malformed principal headers are rejected");
    assert_eq!(rejected.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn anonymous_calls_carry_no_principal() {
    let mut server = TestServer::start(limits(8)).await;
    server.open_gate(1);
    within(
        "an anonymous call",
        call_gate(server.channel(), Request::new(())),
    )
    .await
    .expect("call succeeds");
    let arrival = server.next_arrival().await;
    assert_eq!(arrival.principal, None);
    assert_eq!(arrival.scoped, None);
    server.stop().await;
}

#[tokio::test]
async fn a_grpc_web_server_answers_browsers_over_http1() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = TestServer::start_with(ServerOptions {
        grpc_web: true,
        ..ServerOptions::internal(limits(8))
    })
    .await;
    let mut stream = within("connecting", tokio::net::TcpStream::connect(server.addr))
        .await
        .expect("connects");
    // A grpc-web unary call: one uncompressed frame holding an empty HealthCheckRequest.
    let request = b"POST /grpc.health.v1.Health/Check HTTP/1.1\r\n\
        Host: test\r\n\
        Content-Type: application/grpc-web+proto\r\n\
        X-Grpc-Web: 1\r\n\
        Content-Length: 5\r\n\
        Connection: close\r\n\r\n\0\0\0\0\0";
    stream.write_all(request).await.expect("request written");
    let mut response = Vec::new();
    within("the grpc-web response", stream.read_to_end(&mut response))
        .await
        .expect("response read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/grpc-web+proto"),
        "{text}"
    );
    // The trailers travel in the body for grpc-web.
    assert!(text.contains("grpc-status:0"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn an_internal_server_refuses_http1() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = TestServer::start(limits(8)).await;
    let mut stream = within("connecting", tokio::net::TcpStream::connect(server.addr))
        .await
        .expect("connects");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("request written");
    let mut response = Vec::new();
    // HTTP/2-only servers answer an HTTP/1.1 request with a GOAWAY frame or just close.
    let _ = within("the connection closing", stream.read_to_end(&mut response)).await;
    assert!(
        !String::from_utf8_lossy(&response).starts_with("HTTP/1.1"),
        "an internal server must not speak HTTP/1.1"
    );
    server.stop().await;
}
