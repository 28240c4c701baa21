//! A user service stand-in that records whether, and as whom, the BFF called it.

use std::sync::{Arc, Mutex};

use mercato_proto::mercato::user::v1 as user;
use tokio::net::TcpListener;
use tonic::{Request, Response as GrpcResponse, Status};

/// What the fake user service saw of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenCall {
    pub method: &'static str,
    pub user_id: Option<String>,
    pub roles: Option<String>,
    pub caller: Option<String>,
}

/// A stand-in for the user service that records every call (only what the edge tests need:
/// the point is to observe whether, and as whom, the BFF called downstream).
#[derive(Clone, Default)]
pub struct FakeUsers {
    calls: Arc<Mutex<Vec<SeenCall>>>,
    provisioned: Arc<Mutex<Vec<user::ProvisionExternalUserRequest>>>,
}

impl FakeUsers {
    /// Every call seen so far.
    pub fn calls(&self) -> Vec<SeenCall> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// Number of calls seen.
    pub fn call_count(&self) -> usize {
        self.calls.lock().expect("calls lock").len()
    }

    /// Provisioning requests seen.
    pub fn provisioned(&self) -> Vec<user::ProvisionExternalUserRequest> {
        self.provisioned.lock().expect("provisioned lock").clone()
    }

    fn record<T>(&self, method: &'static str, request: &Request<T>) -> SeenCall {
        let get = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let seen = SeenCall {
            method,
            user_id: get("x-mercato-user-id"),
            roles: get("x-mercato-roles"),
            caller: get("x-mercato-caller"),
        };
        self.calls.lock().expect("calls lock").push(seen.clone());
        seen
    }

    /// Serves the fake on 127.0.0.1:0; returns its URL.
    pub async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake users");
        let addr = listener.local_addr().expect("fake users addr");
        let router = tonic::transport::Server::builder()
            .add_service(user::user_service_server::UserServiceServer::new(
                self.clone(),
            ))
            .add_service(user::auth_service_server::AuthServiceServer::new(
                self.clone(),
            ));
        tokio::spawn(async move {
            router
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .expect("fake users serve");
        });
        format!("http://{addr}")
    }
}

fn fake_user(user_id: &str) -> user::User {
    user::User {
        user_id: user_id.to_owned(),
        email: "shopper@example.com".to_owned(),
        display_name: "shopper".to_owned(),
        roles: vec![1],
        ..user::User::default()
    }
}

#[tonic::async_trait]
impl user::user_service_server::UserService for FakeUsers {
    async fn get_current_user(
        &self,
        request: Request<user::GetCurrentUserRequest>,
    ) -> Result<GrpcResponse<user::GetCurrentUserResponse>, Status> {
        let seen = self.record("GetCurrentUser", &request);
        let user_id = seen
            .user_id
            .ok_or_else(|| Status::unauthenticated("no principal"))?;
        Ok(GrpcResponse::new(user::GetCurrentUserResponse {
            user: Some(fake_user(&user_id)),
        }))
    }

    async fn update_current_user(
        &self,
        request: Request<user::UpdateCurrentUserRequest>,
    ) -> Result<GrpcResponse<user::UpdateCurrentUserResponse>, Status> {
        self.record("UpdateCurrentUser", &request);
        Err(Status::internal("database password is hunter2"))
    }

    async fn delete_current_user(
        &self,
        request: Request<user::DeleteCurrentUserRequest>,
    ) -> Result<GrpcResponse<user::DeleteCurrentUserResponse>, Status> {
        self.record("DeleteCurrentUser", &request);
        Err(Status::unimplemented("not needed by these tests"))
    }

    async fn get_shipping_address(
        &self,
        request: Request<user::GetShippingAddressRequest>,
    ) -> Result<GrpcResponse<user::GetShippingAddressResponse>, Status> {
        self.record("GetShippingAddress", &request);
        Err(Status::not_found("no shipping address saved"))
    }

    async fn update_shipping_address(
        &self,
        request: Request<user::UpdateShippingAddressRequest>,
    ) -> Result<GrpcResponse<user::UpdateShippingAddressResponse>, Status> {
        self.record("UpdateShippingAddress", &request);
        Err(Status::unimplemented("not needed by these tests"))
    }

    async fn provision_external_user(
        &self,
        request: Request<user::ProvisionExternalUserRequest>,
    ) -> Result<GrpcResponse<user::ProvisionExternalUserResponse>, Status> {
        self.record("ProvisionExternalUser", &request);
        let request = request.into_inner();
        self.provisioned
            .lock()
            .expect("provisioned lock")
            .push(request.clone());
        let user_id = uuid::Uuid::new_v4();
        Ok(GrpcResponse::new(user::ProvisionExternalUserResponse {
            user: Some(fake_user(&user_id.to_string())),
            created: true,
        }))
    }

    async fn get_user(
        &self,
        request: Request<user::GetUserRequest>,
    ) -> Result<GrpcResponse<user::GetUserResponse>, Status> {
        self.record("GetUser", &request);
        Err(Status::unimplemented("not needed by these tests"))
    }

    async fn list_users(
        &self,
        request: Request<user::ListUsersRequest>,
    ) -> Result<GrpcResponse<user::ListUsersResponse>, Status> {
        self.record("ListUsers", &request);
        Err(Status::unimplemented("not needed by these tests"))
    }

    async fn grant_role(
        &self,
        request: Request<user::GrantRoleRequest>,
    ) -> Result<GrpcResponse<user::GrantRoleResponse>, Status> {
        self.record("GrantRole", &request);
        Err(Status::unimplemented("not needed by these tests"))
    }

    async fn revoke_role(
        &self,
        request: Request<user::RevokeRoleRequest>,
    ) -> Result<GrpcResponse<user::RevokeRoleResponse>, Status> {
        self.record("RevokeRole", &request);
        Err(Status::unimplemented("not needed by these tests"))
    }
}

#[tonic::async_trait]
impl user::auth_service_server::AuthService for FakeUsers {
    async fn register(
        &self,
        request: Request<user::RegisterRequest>,
    ) -> Result<GrpcResponse<user::RegisterResponse>, Status> {
        self.record("Register", &request);
        Err(Status::unimplemented("not needed by these tests"))
    }

    async fn login(
        &self,
        request: Request<user::LoginRequest>,
    ) -> Result<GrpcResponse<user::LoginResponse>, Status> {
        self.record("Login", &request);
        let request = request.into_inner();
        if request.password != "correct horse" {
            return Err(Status::unauthenticated("invalid credentials"));
        }
        Ok(GrpcResponse::new(user::LoginResponse {
            user: Some(fake_user(&uuid::Uuid::new_v4().to_string())),
            tokens: Some(user::TokenPair {
                access_token: "access".to_owned(),
                refresh_token: "refresh".to_owned(),
                token_type: "Bearer".to_owned(),
                ..user::TokenPair::default()
            }),
        }))
    }

    async fn refresh_token(
        &self,
        request: Request<user::RefreshTokenRequest>,
    ) -> Result<GrpcResponse<user::RefreshTokenResponse>, Status> {
        self.record("RefreshToken", &request);
        Err(Status::unimplemented("not needed by these tests"))
    }

    async fn logout(
        &self,
        request: Request<user::LogoutRequest>,
    ) -> Result<GrpcResponse<user::LogoutResponse>, Status> {
        self.record("Logout", &request);
        Ok(GrpcResponse::new(user::LogoutResponse {
            revoked_sessions: 1,
        }))
    }
}
