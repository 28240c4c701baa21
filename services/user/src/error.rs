//! The user service's error enum and its one exhaustive mapping to gRPC codes, reasons and rich
//! details (`mercato.common.v1.ErrorReason` names).

use std::collections::HashMap;
use std::time::Duration;

use mercato_platform::error::{DOMAIN, ErrorCode, ServiceError, into_status};
use tonic_types::{ErrorDetails, FieldViolation};

use crate::domain::Violation;
use crate::key_encryption::KeyEncryptionError;
use crate::keys::KeyError;

/// Everything a user-service RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", summary(.0))]
    Validation(Vec<Violation>),
    /// A page token did not decode or belongs to other filters.
    #[error("invalid page token")]
    InvalidPageToken,
    /// The e-mail address belongs to a live account.
    #[error("the e-mail address is already registered")]
    EmailTaken,
    /// Unknown e-mail or wrong password (deliberately indistinguishable).
    #[error("invalid e-mail or password")]
    InvalidCredentials,
    /// Too many failed logins for this e-mail address.
    #[error("too many failed logins, retry later")]
    LoginThrottled {
        /// When the window ends.
        retry_after: Duration,
    },
    /// The refresh token is unknown, expired or revoked.
    #[error("invalid refresh token")]
    RefreshTokenInvalid,
    /// An already rotated refresh token was presented; its family is now revoked.
    #[error("refresh token reused, the session was revoked")]
    RefreshTokenReused,
    /// Local sign-in is off because an external identity provider is configured.
    #[error("local sign-in is disabled, sign in with the identity provider")]
    LocalAuthDisabled,
    /// An external token's e-mail is missing or unverified.
    #[error("the identity provider did not verify the e-mail address")]
    EmailNotVerified,
    /// No forwarded user.
    #[error("authentication required")]
    TokenMissing,
    /// The caller lacks a role (or is not an internal service, for internal RPCs).
    #[error("requires the {0} role")]
    RoleRequired(&'static str),
    /// The named resource does not exist (or is deleted).
    #[error("{resource_type} {resource_id} not found")]
    NotFound {
        /// `user`, `shipping_address`, `signing_key`.
        resource_type: &'static str,
        /// Its id.
        resource_id: String,
    },
    /// A signing key cannot change state yet.
    #[error("{0}")]
    SigningKeyNotReady(&'static str),
    /// The idempotency key was used with a different request.
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    /// PostgreSQL failed.
    #[error("database failure")]
    Database(#[from] sqlx::Error),
    /// Redis failed.
    #[error("redis failure")]
    Redis(#[from] redis::RedisError),
    /// Key material is broken.
    #[error("signing key failure")]
    Key(#[from] KeyError),
    /// A stored private key cannot be decrypted (or encrypted) with the configured
    /// key-encryption key; the message names the setting.
    #[error(transparent)]
    KeyEncryption(#[from] KeyEncryptionError),
    /// A blocking task (RSA key generation) died.
    #[error("background task failed: {0}")]
    Task(String),
    /// Writing an event failed.
    #[error("outbox failure")]
    Outbox(#[from] mercato_messaging::Error),
    /// Password hashing failed or its task died.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

fn summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{} {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl UserError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Validation(vec![Violation::new(field, description)])
    }
}

/// Database errors that mean "PostgreSQL is unreachable" rather than a bug.
fn database_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
    )
}

impl ServiceError for UserError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) | Self::InvalidPageToken => ErrorCode::InvalidArgument,
            Self::EmailTaken => ErrorCode::AlreadyExists,
            Self::InvalidCredentials
            | Self::RefreshTokenInvalid
            | Self::RefreshTokenReused
            | Self::TokenMissing => ErrorCode::Unauthenticated,
            Self::LoginThrottled { .. } => ErrorCode::ResourceExhausted,
            Self::LocalAuthDisabled | Self::SigningKeyNotReady(_) | Self::IdempotencyKeyReused => {
                ErrorCode::FailedPrecondition
            }
            Self::EmailNotVerified | Self::RoleRequired(_) => ErrorCode::PermissionDenied,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::Database(err) if database_unavailable(err) => ErrorCode::Unavailable,
            Self::Redis(_) => ErrorCode::Unavailable,
            Self::Database(_)
            | Self::Key(_)
            | Self::KeyEncryption(_)
            | Self::Task(_)
            | Self::Outbox(_)
            | Self::Hashing(_) => ErrorCode::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::EmailTaken => "EMAIL_ALREADY_REGISTERED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::LoginThrottled { .. } => "LOGIN_THROTTLED",
            Self::RefreshTokenInvalid => "REFRESH_TOKEN_INVALID",
            Self::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Self::LocalAuthDisabled => "LOCAL_AUTH_DISABLED",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::TokenMissing => "TOKEN_MISSING",
            Self::RoleRequired(_) => "ROLE_REQUIRED",
            Self::NotFound { .. } => "RESOURCE_NOT_FOUND",
            Self::SigningKeyNotReady(_) => "SIGNING_KEY_NOT_READY",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::Database(err) if database_unavailable(err) => "UNAVAILABLE",
            Self::Redis(_) => "UNAVAILABLE",
            Self::Database(_)
            | Self::Key(_)
            | Self::KeyEncryption(_)
            | Self::Task(_)
            | Self::Outbox(_)
            | Self::Hashing(_) => "INTERNAL",
        }
    }

    fn details(&self) -> ErrorDetails {
        match self {
            Self::Validation(violations) => ErrorDetails::with_bad_request(
                violations
                    .iter()
                    .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                    .collect::<Vec<_>>(),
            ),
            Self::LoginThrottled { retry_after } => {
                let mut details = ErrorDetails::with_quota_failure_violation(
                    "email",
                    "at most 5 failed logins per e-mail address within 15 minutes",
                );
                details.set_retry_info(Some(*retry_after));
                details
            }
            Self::RoleRequired(role) => {
                let mut details = ErrorDetails::new();
                details.set_error_info(
                    self.reason(),
                    DOMAIN,
                    HashMap::from([("required_role".to_owned(), (*role).to_owned())]),
                );
                details
            }
            Self::NotFound {
                resource_type,
                resource_id,
            } => {
                let mut details = ErrorDetails::with_resource_info(
                    *resource_type,
                    resource_id.clone(),
                    "",
                    "not found",
                );
                details.set_error_info(
                    self.reason(),
                    DOMAIN,
                    HashMap::from([
                        ("resource_type".to_owned(), (*resource_type).to_owned()),
                        ("resource_id".to_owned(), resource_id.clone()),
                    ]),
                );
                details
            }
            Self::InvalidPageToken
            | Self::EmailTaken
            | Self::InvalidCredentials
            | Self::RefreshTokenInvalid
            | Self::RefreshTokenReused
            | Self::LocalAuthDisabled
            | Self::EmailNotVerified
            | Self::TokenMissing
            | Self::SigningKeyNotReady(_)
            | Self::IdempotencyKeyReused
            | Self::Database(_)
            | Self::Redis(_)
            | Self::Key(_)
            | Self::KeyEncryption(_)
            | Self::Task(_)
            | Self::Outbox(_)
            | Self::Hashing(_) => ErrorDetails::new(),
        }
    }
}

impl From<UserError> for tonic::Status {
    fn from(err: UserError) -> Self {
        into_status(err)
    }
}
