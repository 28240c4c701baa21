//! The gRPC surface: `AuthService`, `UserService` and `SigningKeyService`. The only module that
//! knows protobuf; it reads the caller from the forwarded principal, converts messages field by
//! field and hands plain values to the use cases in `app.rs`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use mercato_platform::principal::{self, Principal, Role};
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::user::v1 as pb;
use pb::auth_service_server::AuthService;
use pb::signing_key_service_server::SigningKeyService;
use pb::user_service_server::UserService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::{TokenPair, UserApp, UserFilter};
use crate::domain::{self, PostalAddress};
use crate::error::UserError;
use crate::keys::{KeyState, KeyView};
use crate::store::UserRow;

/// Implements the three gRPC services over one [`UserApp`].
#[derive(Debug, Clone)]
pub struct UserGrpc {
    app: UserApp,
}

impl UserGrpc {
    /// The services over `app`.
    pub fn new(app: UserApp) -> Self {
        Self { app }
    }
}

type GrpcResult<T> = Result<Response<T>, Status>;

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn role_to_proto(name: &str) -> Option<common::Role> {
    match name.parse::<Role>().ok()? {
        Role::Buyer => Some(common::Role::Buyer),
        Role::Seller => Some(common::Role::Seller),
        Role::Admin => Some(common::Role::Admin),
    }
}

/// A role field of a request; unspecified or unknown values are a violation of `field`.
fn role_from_proto(value: i32, field: &str) -> Result<Role, UserError> {
    match common::Role::try_from(value) {
        Ok(common::Role::Buyer) => Ok(Role::Buyer),
        Ok(common::Role::Seller) => Ok(Role::Seller),
        Ok(common::Role::Admin) => Ok(Role::Admin),
        Ok(common::Role::Unspecified) | Err(_) => Err(UserError::field(field, "is required")),
    }
}

fn user_to_proto(user: UserRow) -> pb::User {
    let mut roles: Vec<common::Role> = user.roles.iter().filter_map(|r| role_to_proto(r)).collect();
    roles.sort_by_key(|role| *role as i32);
    roles.dedup();
    pb::User {
        user_id: user.user_id.to_string(),
        email: user.email,
        email_verified: user.email_verified,
        display_name: user.display_name,
        description: user.description,
        roles: roles.into_iter().map(|role| role as i32).collect(),
        issuer: user.issuer,
        subject: user.subject,
        has_shipping_address: user.has_shipping_address,
        create_time: Some(timestamp(user.created_at)),
        update_time: Some(timestamp(user.updated_at)),
        delete_time: user.deleted_at.map(timestamp),
        last_login_time: user.last_login_at.map(timestamp),
    }
}

fn tokens_to_proto(tokens: TokenPair) -> pb::TokenPair {
    pb::TokenPair {
        access_token: tokens.access_token,
        access_token_expire_time: Some(timestamp(tokens.access_token_expire_time)),
        refresh_token: tokens.refresh_token,
        refresh_token_expire_time: Some(timestamp(tokens.refresh_token_expire_time)),
        token_type: "Bearer".to_owned(),
    }
}

fn key_to_proto(view: KeyView) -> pb::SigningKey {
    let state = match view.state {
        KeyState::Next => pb::SigningKeyState::Next,
        KeyState::Active => pb::SigningKeyState::Active,
        KeyState::Retired => pb::SigningKeyState::Retired,
        KeyState::Revoked => pb::SigningKeyState::Revoked,
    };
    pb::SigningKey {
        kid: view.key.kid,
        algorithm: view.key.algorithm,
        state: state as i32,
        public_jwk: view.key.public_jwk.to_string(),
        create_time: Some(timestamp(view.key.created_at)),
        activate_time: Some(timestamp(view.key.activate_at)),
        retire_time: view.retire_time.map(timestamp),
        unpublish_time: view.unpublish_time.map(timestamp),
    }
}

/// The forwarded user, or `TOKEN_MISSING`.
fn caller<T>(request: &Request<T>) -> Result<&Principal, UserError> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or(UserError::TokenMissing)
}

/// The forwarded user if an admin.
fn admin<T>(request: &Request<T>) -> Result<&Principal, UserError> {
    let principal = caller(request)?;
    if principal.is_admin() {
        Ok(principal)
    } else {
        Err(UserError::RoleRequired("ROLE_ADMIN"))
    }
}

/// Whether the call comes from an internal service acting on its own behalf.
fn internal_service<T>(request: &Request<T>) -> bool {
    principal::caller(request).is_some() && request.extensions().get::<Principal>().is_none()
}

fn parse_user_id(raw: &str) -> Result<Uuid, UserError> {
    Uuid::parse_str(raw).map_err(|_| UserError::field("user_id", "must be a uuid"))
}

/// `page_size` per the paging convention: 0 → 20, above 100 → 100, negative refused.
fn page_size(raw: i32) -> Result<usize, UserError> {
    match raw {
        0 => Ok(20),
        n if n < 0 => Err(UserError::field("page_size", "must not be negative")),
        n => Ok(usize::try_from(n).unwrap_or(100).min(100)),
    }
}

#[tonic::async_trait]
impl AuthService for UserGrpc {
    #[tracing::instrument(name = "user.register", skip_all)]
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> GrpcResult<pb::RegisterResponse> {
        let pb::RegisterRequest {
            email,
            password,
            display_name,
        } = request.into_inner();
        let (user, tokens) = self.app.register(&email, password, &display_name).await?;
        Ok(Response::new(pb::RegisterResponse {
            user: Some(user_to_proto(user)),
            tokens: Some(tokens_to_proto(tokens)),
        }))
    }

    #[tracing::instrument(name = "user.login", skip_all)]
    async fn login(&self, request: Request<pb::LoginRequest>) -> GrpcResult<pb::LoginResponse> {
        let pb::LoginRequest { email, password } = request.into_inner();
        let (user, tokens) = self.app.login(&email, password).await?;
        Ok(Response::new(pb::LoginResponse {
            user: Some(user_to_proto(user)),
            tokens: Some(tokens_to_proto(tokens)),
        }))
    }

    #[tracing::instrument(name = "user.refresh_token", skip_all)]
    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> GrpcResult<pb::RefreshTokenResponse> {
        let pb::RefreshTokenRequest { refresh_token } = request.into_inner();
        let tokens = self.app.refresh(&refresh_token).await?;
        Ok(Response::new(pb::RefreshTokenResponse {
            tokens: Some(tokens_to_proto(tokens)),
        }))
    }

    #[tracing::instrument(name = "user.logout", skip_all)]
    async fn logout(&self, request: Request<pb::LogoutRequest>) -> GrpcResult<pb::LogoutResponse> {
        let pb::LogoutRequest {
            refresh_token,
            all_sessions,
        } = request.into_inner();
        let revoked_sessions = self.app.logout(&refresh_token, all_sessions).await?;
        Ok(Response::new(pb::LogoutResponse { revoked_sessions }))
    }
}

#[tonic::async_trait]
impl UserService for UserGrpc {
    #[tracing::instrument(name = "user.get_current_user", skip_all)]
    async fn get_current_user(
        &self,
        request: Request<pb::GetCurrentUserRequest>,
    ) -> GrpcResult<pb::GetCurrentUserResponse> {
        let user_id = caller(&request)?.user_id;
        let user = self.app.current_user(user_id).await?;
        Ok(Response::new(pb::GetCurrentUserResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "user.update_current_user", skip_all)]
    async fn update_current_user(
        &self,
        request: Request<pb::UpdateCurrentUserRequest>,
    ) -> GrpcResult<pb::UpdateCurrentUserResponse> {
        let user_id = caller(&request)?.user_id;
        let pb::UpdateCurrentUserRequest { user, update_mask } = request.into_inner();
        let user = user.unwrap_or_default();
        let paths = update_mask.map(|mask| mask.paths).unwrap_or_default();
        let (mut set_name, mut set_description) = if paths.is_empty() {
            (!user.display_name.is_empty(), !user.description.is_empty())
        } else {
            (false, false)
        };
        let mut violations = Vec::new();
        for path in &paths {
            match path.as_str() {
                "display_name" => set_name = true,
                "description" => set_description = true,
                other => violations.push(domain::Violation::new(
                    "update_mask",
                    format!("{other} is not an updatable field"),
                )),
            }
        }
        let display_name = if set_name {
            domain::profile_display_name(&user.display_name)
                .map_err(|d| violations.push(domain::Violation::new("user.display_name", d)))
                .ok()
        } else {
            None
        };
        let description = if set_description {
            domain::description(&user.description)
                .map_err(|d| violations.push(domain::Violation::new("user.description", d)))
                .ok()
        } else {
            None
        };
        if !violations.is_empty() {
            return Err(UserError::Validation(violations).into());
        }
        let user = self
            .app
            .update_current_user(user_id, display_name, description)
            .await?;
        Ok(Response::new(pb::UpdateCurrentUserResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "user.delete_current_user", skip_all)]
    async fn delete_current_user(
        &self,
        request: Request<pb::DeleteCurrentUserRequest>,
    ) -> GrpcResult<pb::DeleteCurrentUserResponse> {
        let user_id = caller(&request)?.user_id;
        let deleted_at = self.app.delete_current_user(user_id).await?;
        Ok(Response::new(pb::DeleteCurrentUserResponse {
            delete_time: Some(timestamp(deleted_at)),
        }))
    }

    #[tracing::instrument(name = "user.get_shipping_address", skip_all)]
    async fn get_shipping_address(
        &self,
        request: Request<pb::GetShippingAddressRequest>,
    ) -> GrpcResult<pb::GetShippingAddressResponse> {
        let user_id = caller(&request)?.user_id;
        let (address, updated_at) = self.app.shipping_address(user_id).await?;
        Ok(Response::new(pb::GetShippingAddressResponse {
            shipping_address: Some(common::PostalAddress::from(address)),
            update_time: Some(timestamp(updated_at)),
        }))
    }

    #[tracing::instrument(name = "user.update_shipping_address", skip_all)]
    async fn update_shipping_address(
        &self,
        request: Request<pb::UpdateShippingAddressRequest>,
    ) -> GrpcResult<pb::UpdateShippingAddressResponse> {
        let user_id = caller(&request)?.user_id;
        let pb::UpdateShippingAddressRequest {
            shipping_address,
            update_mask,
        } = request.into_inner();
        let Some(address) = shipping_address else {
            return Err(UserError::field("shipping_address", "is required").into());
        };
        let fields = update_mask
            .map(|mask| mask.paths)
            .filter(|paths| !paths.is_empty())
            .map(|paths| {
                paths
                    .into_iter()
                    .map(|p| p.trim_start_matches("shipping_address.").to_owned())
                    .collect()
            });
        let (address, updated_at) = self
            .app
            .update_shipping_address(user_id, PostalAddress::from(address), fields)
            .await?;
        Ok(Response::new(pb::UpdateShippingAddressResponse {
            shipping_address: Some(common::PostalAddress::from(address)),
            update_time: Some(timestamp(updated_at)),
        }))
    }

    #[tracing::instrument(name = "user.provision_external_user", skip_all)]
    async fn provision_external_user(
        &self,
        request: Request<pb::ProvisionExternalUserRequest>,
    ) -> GrpcResult<pb::ProvisionExternalUserResponse> {
        if principal::caller(&request).is_none() {
            return Err(UserError::RoleRequired("internal service").into());
        }
        let pb::ProvisionExternalUserRequest {
            issuer,
            subject,
            email,
            email_verified,
            display_name,
        } = request.into_inner();
        let (user, created) = self
            .app
            .provision_external_user(&issuer, &subject, &email, email_verified, &display_name)
            .await?;
        Ok(Response::new(pb::ProvisionExternalUserResponse {
            user: Some(user_to_proto(user)),
            created,
        }))
    }

    #[tracing::instrument(name = "user.get_user", skip_all)]
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> GrpcResult<pb::GetUserResponse> {
        if !internal_service(&request) {
            admin(&request)?;
        }
        let pb::GetUserRequest {
            user_id,
            show_deleted,
        } = request.into_inner();
        let user = self
            .app
            .user(parse_user_id(&user_id)?, show_deleted)
            .await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "user.list_users", skip_all)]
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> GrpcResult<pb::ListUsersResponse> {
        admin(&request)?;
        let pb::ListUsersRequest {
            page_size: size,
            page_token,
            query,
            role,
            show_deleted,
        } = request.into_inner();
        let size = page_size(size)?;
        if query.chars().count() > domain::MAX_EMAIL_CHARS {
            return Err(UserError::field("query", "must be at most 254 characters").into());
        }
        let role = match common::Role::try_from(role) {
            Ok(common::Role::Unspecified) => None,
            Ok(_) | Err(_) => Some(role_from_proto(role, "role")?),
        };
        let query = query.trim();
        let filter = UserFilter {
            query: (!query.is_empty()).then(|| query.to_owned()),
            role,
            show_deleted,
        };
        let page = self.app.list_users(&filter, size, &page_token).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: page.users.into_iter().map(user_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "user.grant_role", skip_all)]
    async fn grant_role(
        &self,
        request: Request<pb::GrantRoleRequest>,
    ) -> GrpcResult<pb::GrantRoleResponse> {
        admin(&request)?;
        let pb::GrantRoleRequest { user_id, role } = request.into_inner();
        let user_id = parse_user_id(&user_id)?;
        let role = role_from_proto(role, "role")?;
        let user = self.app.grant_role(user_id, role).await?;
        Ok(Response::new(pb::GrantRoleResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "user.revoke_role", skip_all)]
    async fn revoke_role(
        &self,
        request: Request<pb::RevokeRoleRequest>,
    ) -> GrpcResult<pb::RevokeRoleResponse> {
        let actor = admin(&request)?.user_id;
        let pb::RevokeRoleRequest { user_id, role } = request.into_inner();
        let user_id = parse_user_id(&user_id)?;
        let role = role_from_proto(role, "role")?;
        let user = self.app.revoke_role(actor, user_id, role).await?;
        Ok(Response::new(pb::RevokeRoleResponse {
            user: Some(user_to_proto(user)),
        }))
    }
}

#[tonic::async_trait]
impl SigningKeyService for UserGrpc {
    #[tracing::instrument(name = "user.list_signing_keys", skip_all)]
    async fn list_signing_keys(
        &self,
        request: Request<pb::ListSigningKeysRequest>,
    ) -> GrpcResult<pb::ListSigningKeysResponse> {
        admin(&request)?;
        if self.app.auth().external_mode() {
            return Err(UserError::LocalAuthDisabled.into());
        }
        let pb::ListSigningKeysRequest {
            page_size: size,
            page_token,
        } = request.into_inner();
        let size = page_size(size)?;
        let keys = self.app.signing_keys().await?;
        // Keys are few and sorted newest first; the cursor is the kid of the last key served.
        let start = if page_token.is_empty() {
            0
        } else {
            let kid = URL_SAFE_NO_PAD
                .decode(&page_token)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or(UserError::InvalidPageToken)?;
            keys.iter()
                .position(|view| view.key.kid == kid)
                .map(|index| index + 1)
                .ok_or(UserError::InvalidPageToken)?
        };
        let page: Vec<KeyView> = keys.iter().skip(start).take(size).cloned().collect();
        let next_page_token = if start + page.len() < keys.len() {
            page.last()
                .map(|view| URL_SAFE_NO_PAD.encode(&view.key.kid))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListSigningKeysResponse {
            signing_keys: page.into_iter().map(key_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "user.rotate_signing_key", skip_all)]
    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> GrpcResult<pb::RotateSigningKeyResponse> {
        let actor = admin(&request)?.user_id;
        if self.app.auth().external_mode() {
            return Err(UserError::LocalAuthDisabled.into());
        }
        let pb::RotateSigningKeyRequest {
            idempotency_key,
            algorithm,
            activation_delay,
        } = request.into_inner();
        let mut violations = Vec::new();
        let key_ok = (1..=128).contains(&idempotency_key.len())
            && idempotency_key.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok {
            violations.push(domain::Violation::new(
                "idempotency_key",
                "must be 1-128 printable ascii characters",
            ));
        }
        // Empty means the configured default.
        let algorithm = (!algorithm.is_empty())
            .then(|| algorithm.parse::<crate::keys::SigningAlgorithm>())
            .transpose()
            .unwrap_or_else(|_| {
                violations.push(domain::Violation::new(
                    "algorithm",
                    "must be EdDSA or RS256",
                ));
                None
            });
        let delay = match activation_delay {
            None => None,
            Some(prost_types::Duration { seconds, nanos }) => {
                let max = 7 * 24 * 3600;
                if seconds < 0 || nanos < 0 || seconds > max || (seconds == max && nanos > 0) {
                    violations.push(domain::Violation::new(
                        "activation_delay",
                        "must be between 0 seconds and 7 days",
                    ));
                    None
                } else {
                    Some(
                        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
                            + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)),
                    )
                }
            }
        };
        if !violations.is_empty() {
            return Err(UserError::Validation(violations).into());
        }
        let view = self
            .app
            .rotate_signing_key(actor, &idempotency_key, algorithm, delay)
            .await?;
        Ok(Response::new(pb::RotateSigningKeyResponse {
            signing_key: Some(key_to_proto(view)),
        }))
    }

    #[tracing::instrument(name = "user.revoke_signing_key", skip_all)]
    async fn revoke_signing_key(
        &self,
        request: Request<pb::RevokeSigningKeyRequest>,
    ) -> GrpcResult<pb::RevokeSigningKeyResponse> {
        admin(&request)?;
        let pb::RevokeSigningKeyRequest { kid } = request.into_inner();
        if kid.is_empty() {
            return Err(UserError::field("kid", "is required").into());
        }
        let view = self.app.revoke_signing_key(&kid).await?;
        Ok(Response::new(pb::RevokeSigningKeyResponse {
            signing_key: Some(key_to_proto(view)),
        }))
    }
}
