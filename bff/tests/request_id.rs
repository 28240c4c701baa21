//! The request id leaves the BFF with every call to an internal service: a browser request with
//! `x-request-id: abc-123` reaches the user service (here a tiny recording server behind the real
//! BFF stack) with that id, and a request without one carries the id the BFF generated and
//! answered with.

mod support;

use std::sync::{Arc, Mutex};

use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::user::v1 as user;
use support::{JwksServer, RedisPrefix, TestBff, TestKey, settings};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// A user service's `AuthService` that records the `x-request-id` of every `Register` and
/// answers with a made-up account.
#[derive(Clone, Default)]
struct RecordingAuth {
    request_ids: Arc<Mutex<Vec<Option<String>>>>,
}

impl RecordingAuth {
    fn seen(&self) -> Vec<Option<String>> {
        self.request_ids.lock().expect("lock").clone()
    }

    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recording auth");
        let addr = listener.local_addr().expect("addr");
        let router = tonic::transport::Server::builder().add_service(
            user::auth_service_server::AuthServiceServer::new(self.clone()),
        );
        tokio::spawn(async move {
            router
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .expect("recording auth serves");
        });
        format!("http://{addr}")
    }
}

#[tonic::async_trait]
impl user::auth_service_server::AuthService for RecordingAuth {
    async fn register(
        &self,
        request: Request<user::RegisterRequest>,
    ) -> Result<Response<user::RegisterResponse>, Status> {
        let id = request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.request_ids.lock().expect("lock").push(id);
        let email = request.into_inner().email;
        Ok(Response::new(user::RegisterResponse {
            user: Some(user::User {
                user_id: uuid::Uuid::new_v4().to_string(),
                email,
                ..user::User::default()
            }),
            tokens: Some(user::TokenPair {
                access_token: "access".to_owned(),
                refresh_token: "refresh".to_owned(),
                token_type: "Bearer".to_owned(),
                ..user::TokenPair::default()
            }),
        }))
    }

    async fn login(
        &self,
        _request: Request<user::LoginRequest>,
    ) -> Result<Response<user::LoginResponse>, Status> {
        Err(Status::unimplemented("not needed by this test"))
    }

    async fn refresh_token(
        &self,
        _request: Request<user::RefreshTokenRequest>,
    ) -> Result<Response<user::RefreshTokenResponse>, Status> {
        Err(Status::unimplemented("not needed by this test"))
    }

    async fn logout(
        &self,
        _request: Request<user::LogoutRequest>,
    ) -> Result<Response<user::LogoutResponse>, Status> {
        Err(Status::unimplemented("not needed by this test"))
    }
}

fn register_request() -> bff::RegisterRequest {
    bff::RegisterRequest {
        email: format!("rid-{}@example.com", uuid::Uuid::new_v4().simple()),
        password: "correct horse battery".to_owned(),
        display_name: String::new(),
    }
}

#[tokio::test]
async fn the_request_id_reaches_the_user_service() {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let users = RecordingAuth::default();
    let users_url = users.start().await;
    let prefix = RedisPrefix::new();
    let bff = TestBff::start(settings(&jwks, &users_url, &prefix, &[])).await;
    let mut auth = bff::auth_service_client::AuthServiceClient::new(bff.channel().await);

    let mut request = Request::new(register_request());
    request
        .metadata_mut()
        .insert("x-request-id", "abc-123".parse().expect("ascii"));
    let response = auth.register(request).await.expect("register");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );
    assert_eq!(users.seen(), [Some("abc-123".to_owned())]);

    // Without one, the id the BFF generates (and answers with) is the one forwarded.
    let response = auth
        .register(Request::new(register_request()))
        .await
        .expect("register");
    let generated = response
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("the bff answers with a request id");
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    assert_eq!(users.seen()[1], Some(generated));

    // A malformed id from the browser is replaced, never forwarded.
    let mut request = Request::new(register_request());
    request
        .metadata_mut()
        .insert("x-request-id", "bad id!".parse().expect("ascii"));
    auth.register(request).await.expect("register");
    let forwarded = users.seen()[2].clone().expect("an id is forwarded");
    assert_ne!(forwarded, "bad id!");
    assert!(uuid::Uuid::parse_str(&forwarded).is_ok(), "{forwarded}");
}
