//! The public `mercato.bff.v1` handlers: AuthService and AccountService, translated field by
//! field to `mercato.user.v1`. No business logic lives here; validation and rules are the user
//! service's. The caller's identity reaches the user service as the forwarded principal (set by
//! the edge and the principal layer), never from a request field.

use mercato_platform::grpc::ClientChannel;
use mercato_platform::principal;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::user::v1 as user;
use tonic::{Request, Response, Status};
use user::auth_service_client::AuthServiceClient;
use user::user_service_client::UserServiceClient;

use crate::error::{broken_contract, downstream, missing_field};

/// How the browser signs in, as answered by `GetAuthConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Built-in issuer or an external provider.
    pub mode: bff::AuthMode,
    /// The issuer URL browsers see.
    pub issuer: String,
    /// OAuth client id at the external provider (empty for built-in).
    pub client_id: String,
    /// Audience of access tokens.
    pub audience: String,
}

/// `mercato.bff.v1.AuthService`, backed by `mercato.user.v1.AuthService`.
#[derive(Debug, Clone)]
pub struct AuthGrpc {
    config: AuthConfig,
    auth: AuthServiceClient<ClientChannel>,
}

impl AuthGrpc {
    /// The handler over a user-service channel.
    pub fn new(config: AuthConfig, channel: ClientChannel) -> Self {
        Self {
            config,
            auth: AuthServiceClient::new(channel),
        }
    }
}

#[tonic::async_trait]
impl bff::auth_service_server::AuthService for AuthGrpc {
    async fn get_auth_config(
        &self,
        _request: Request<bff::GetAuthConfigRequest>,
    ) -> Result<Response<bff::GetAuthConfigResponse>, Status> {
        let AuthConfig {
            mode,
            issuer,
            client_id,
            audience,
        } = self.config.clone();
        Ok(Response::new(bff::GetAuthConfigResponse {
            mode: mode.into(),
            issuer,
            client_id,
            audience,
        }))
    }

    async fn register(
        &self,
        request: Request<bff::RegisterRequest>,
    ) -> Result<Response<bff::RegisterResponse>, Status> {
        let bff::RegisterRequest {
            email,
            password,
            display_name,
        } = request.into_inner();
        let response = self
            .auth
            .clone()
            .register(user::RegisterRequest {
                email,
                password,
                display_name,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::RegisterResponse {
            account: Some(account(required(response.user, "user")?)),
            tokens: Some(tokens(required(response.tokens, "tokens")?)),
        }))
    }

    async fn login(
        &self,
        request: Request<bff::LoginRequest>,
    ) -> Result<Response<bff::LoginResponse>, Status> {
        let bff::LoginRequest { email, password } = request.into_inner();
        let response = self
            .auth
            .clone()
            .login(user::LoginRequest { email, password })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::LoginResponse {
            account: Some(account(required(response.user, "user")?)),
            tokens: Some(tokens(required(response.tokens, "tokens")?)),
        }))
    }

    async fn refresh_token(
        &self,
        request: Request<bff::RefreshTokenRequest>,
    ) -> Result<Response<bff::RefreshTokenResponse>, Status> {
        let bff::RefreshTokenRequest { refresh_token } = request.into_inner();
        let response = self
            .auth
            .clone()
            .refresh_token(user::RefreshTokenRequest { refresh_token })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::RefreshTokenResponse {
            tokens: Some(tokens(required(response.tokens, "tokens")?)),
        }))
    }

    async fn logout(
        &self,
        request: Request<bff::LogoutRequest>,
    ) -> Result<Response<bff::LogoutResponse>, Status> {
        let bff::LogoutRequest {
            refresh_token,
            all_sessions,
        } = request.into_inner();
        self.auth
            .clone()
            .logout(user::LogoutRequest {
                refresh_token,
                all_sessions,
            })
            .await
            .map_err(downstream)?;
        Ok(Response::new(bff::LogoutResponse {}))
    }
}

/// `mercato.bff.v1.AccountService`, backed by `mercato.user.v1.UserService`.
#[derive(Debug, Clone)]
pub struct AccountGrpc {
    users: UserServiceClient<ClientChannel>,
}

impl AccountGrpc {
    /// The handler over a user-service channel.
    pub fn new(channel: ClientChannel) -> Self {
        Self {
            users: UserServiceClient::new(channel),
        }
    }
}

#[tonic::async_trait]
impl bff::account_service_server::AccountService for AccountGrpc {
    async fn get_account(
        &self,
        request: Request<bff::GetAccountRequest>,
    ) -> Result<Response<bff::GetAccountResponse>, Status> {
        principal::require_user(&request)?;
        let bff::GetAccountRequest {} = request.into_inner();
        let response = self
            .users
            .clone()
            .get_current_user(user::GetCurrentUserRequest {})
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GetAccountResponse {
            account: Some(account(required(response.user, "user")?)),
        }))
    }

    async fn update_account(
        &self,
        request: Request<bff::UpdateAccountRequest>,
    ) -> Result<Response<bff::UpdateAccountResponse>, Status> {
        principal::require_user(&request)?;
        let bff::UpdateAccountRequest {
            display_name,
            description,
            update_mask,
        } = request.into_inner();
        let response = self
            .users
            .clone()
            .update_current_user(user::UpdateCurrentUserRequest {
                user: Some(user::User {
                    display_name,
                    description,
                    ..user::User::default()
                }),
                update_mask,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::UpdateAccountResponse {
            account: Some(account(required(response.user, "user")?)),
        }))
    }

    async fn delete_account(
        &self,
        request: Request<bff::DeleteAccountRequest>,
    ) -> Result<Response<bff::DeleteAccountResponse>, Status> {
        principal::require_user(&request)?;
        let bff::DeleteAccountRequest {} = request.into_inner();
        self.users
            .clone()
            .delete_current_user(user::DeleteCurrentUserRequest {})
            .await
            .map_err(downstream)?;
        Ok(Response::new(bff::DeleteAccountResponse {}))
    }

    async fn get_shipping_address(
        &self,
        request: Request<bff::GetShippingAddressRequest>,
    ) -> Result<Response<bff::GetShippingAddressResponse>, Status> {
        principal::require_user(&request)?;
        let bff::GetShippingAddressRequest {} = request.into_inner();
        let response = self
            .users
            .clone()
            .get_shipping_address(user::GetShippingAddressRequest {})
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GetShippingAddressResponse {
            shipping_address: response.shipping_address,
        }))
    }

    async fn update_shipping_address(
        &self,
        request: Request<bff::UpdateShippingAddressRequest>,
    ) -> Result<Response<bff::UpdateShippingAddressResponse>, Status> {
        principal::require_user(&request)?;
        let bff::UpdateShippingAddressRequest {
            shipping_address,
            update_mask,
        } = request.into_inner();
        let shipping_address = shipping_address.ok_or_else(|| missing_field("shipping_address"))?;
        let response = self
            .users
            .clone()
            .update_shipping_address(user::UpdateShippingAddressRequest {
                shipping_address: Some(shipping_address),
                update_mask,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::UpdateShippingAddressResponse {
            shipping_address: response.shipping_address,
        }))
    }
}

fn required<T>(value: Option<T>, what: &str) -> Result<T, Status> {
    value.ok_or_else(|| broken_contract(what))
}

/// What the browser sees of a user: the issuer, subject and update time stay internal.
pub(crate) fn account(user: user::User) -> bff::Account {
    let user::User {
        user_id,
        email,
        email_verified,
        display_name,
        description,
        roles,
        issuer: _,
        subject: _,
        has_shipping_address,
        create_time,
        update_time: _,
        delete_time,
        last_login_time,
    } = user;
    bff::Account {
        user_id,
        email,
        email_verified,
        display_name,
        description,
        roles,
        has_shipping_address,
        create_time,
        last_login_time,
        delete_time,
    }
}

fn tokens(pair: user::TokenPair) -> bff::TokenPair {
    let user::TokenPair {
        access_token,
        access_token_expire_time,
        refresh_token,
        refresh_token_expire_time,
        token_type,
    } = pair;
    bff::TokenPair {
        access_token,
        access_token_expire_time,
        refresh_token,
        refresh_token_expire_time,
        token_type,
    }
}
