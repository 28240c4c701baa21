//! Who an e-mail goes to: the buyer's address from the user service (`UserService.GetUser`),
//! asked as the process service itself — no forwarded user, the channel names the caller — so
//! the user service treats the call as internal. Asked at send time, not when the request is
//! queued: accepting a request never waits for the user service, and an account deleted while
//! its notification waits is not written to.

use mercato_platform::grpc::ClientChannel;
use mercato_platform::principal;
use mercato_proto::mercato::user::v1::GetUserRequest;
use mercato_proto::mercato::user::v1::user_service_client::UserServiceClient;
use uuid::Uuid;

/// Why no address was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The user has no account (deleted, or never existed): asking again will not help.
    #[error("user {0} has no account (deleted or never registered): nobody to e-mail")]
    NoAccount(Uuid),
    /// The account has no usable address: asking again will not help either.
    #[error("user {0} has no e-mail address")]
    NoAddress(Uuid),
    /// The user service could not answer (down, overloaded, refused the caller); retried.
    #[error("the user service could not give user {user}'s e-mail address: {message}")]
    Unavailable {
        /// The user.
        user: Uuid,
        /// The status code and message.
        message: String,
    },
}

impl LookupError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The e-mail address of `user_id`, asked as the service itself.
pub async fn email_of(
    users: &UserServiceClient<ClientChannel>,
    user_id: Uuid,
) -> Result<String, LookupError> {
    let request = GetUserRequest {
        user_id: user_id.to_string(),
        show_deleted: false,
    };
    // No principal, even if a caller's were current: the lookup is the service's own.
    let answer = principal::scope(None, users.clone().get_user(request)).await;
    match answer {
        Ok(response) => {
            let email = response
                .into_inner()
                .user
                .map(|user| user.email)
                .unwrap_or_default();
            if email.trim().is_empty() {
                Err(LookupError::NoAddress(user_id))
            } else {
                Ok(email)
            }
        }
        Err(status) if status.code() == tonic::Code::NotFound => {
            Err(LookupError::NoAccount(user_id))
        }
        // Anything else (UNAVAILABLE, a deadline, PERMISSION_DENIED from a misconfigured caller)
        // is retried with backoff and ends FAILED after the maximum attempts, where an operator
        // sees it and RetryNotification queues it again once the cause is fixed.
        Err(status) => Err(LookupError::Unavailable {
            user: user_id,
            message: format!("{:?}: {}", status.code(), status.message()),
        }),
    }
}
