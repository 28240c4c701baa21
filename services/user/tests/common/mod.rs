//! Helpers shared by the user-service tests: clients over a real channel, forwarded principals,
//! a minimal HTTP GET, and error-detail accessors.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::SocketAddr;

use mercato_platform::principal::{CALLER_HEADER, Principal, Role};
use mercato_proto::mercato::user::v1::auth_service_client::AuthServiceClient;
use mercato_proto::mercato::user::v1::signing_key_service_client::SigningKeyServiceClient;
use mercato_proto::mercato::user::v1::user_service_client::UserServiceClient;
use mercato_proto::mercato::user::v1::{LoginRequest, RegisterRequest, RegisterResponse};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::Channel;
use tonic_types::StatusExt as _;
use uuid::Uuid;

pub(crate) const PASSWORD: &str = "correct horse battery";

pub(crate) fn channel(uri: &str) -> Channel {
    Channel::from_shared(uri.to_owned())
        .expect("valid uri")
        .connect_lazy()
}

pub(crate) fn auth_client(uri: &str) -> AuthServiceClient<Channel> {
    AuthServiceClient::new(channel(uri))
}

pub(crate) fn user_client(uri: &str) -> UserServiceClient<Channel> {
    UserServiceClient::new(channel(uri))
}

pub(crate) fn key_client(uri: &str) -> SigningKeyServiceClient<Channel> {
    SigningKeyServiceClient::new(channel(uri))
}

/// A request acting for `user_id` with `roles`, as the BFF forwards it.
pub(crate) fn as_user<T>(message: T, user_id: Uuid, roles: &[Role]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    Principal::new(user_id, roles.iter().copied()).write_metadata(request.metadata_mut());
    request
}

/// A request from an internal service acting on its own behalf.
pub(crate) fn as_service<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(CALLER_HEADER, "bff".parse().expect("ascii"));
    request
}

pub(crate) fn register_request(email: &str) -> RegisterRequest {
    RegisterRequest {
        email: email.to_owned(),
        password: PASSWORD.to_owned(),
        display_name: String::new(),
    }
}

pub(crate) fn login_request(email: &str, password: &str) -> LoginRequest {
    LoginRequest {
        email: email.to_owned(),
        password: password.to_owned(),
    }
}

pub(crate) async fn register(uri: &str, email: &str) -> RegisterResponse {
    auth_client(uri)
        .register(register_request(email))
        .await
        .expect("registration succeeds")
        .into_inner()
}

pub(crate) fn user_id(response: &RegisterResponse) -> Uuid {
    let user = response.user.as_ref().expect("a user");
    Uuid::parse_str(&user.user_id).expect("a uuid user id")
}

/// The `ErrorInfo.reason` of a status.
pub(crate) fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// The fields named by a status's `BadRequest`.
pub(crate) fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A plain HTTP/1.1 GET: status, lower-cased headers, body.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("http listener accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .await
        .expect("response read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http head and body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A unique e-mail address per call.
pub(crate) fn email() -> String {
    format!("user-{}@example.com", Uuid::new_v4().simple())
}
