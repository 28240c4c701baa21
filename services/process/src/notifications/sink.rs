//! Where notifications go. The log sink writes one structured line per notification, addressed
//! to the user id, and cannot fail. The SMTP sink looks the buyer's address up in the user
//! service (`recipients`) and e-mails it through the relay (`smtp`).

use std::sync::Arc;

use mercato_platform::grpc::ClientChannel;
use mercato_proto::mercato::user::v1::user_service_client::UserServiceClient;
use uuid::Uuid;

use crate::notifications::recipients;
use crate::notifications::smtp::{SmtpFailure, SmtpSetupError, SmtpSink};
use crate::notifications::store::NotificationRow;
use crate::settings::{NotifierSettings, NotifierSink};

/// The configured delivery channel, built once at start-up.
#[derive(Debug, Clone)]
pub enum Sink {
    /// The service log.
    Log,
    /// E-mail through an SMTP relay (shared: every clone of the context holds it).
    Smtp(Arc<SmtpSink>),
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered to `recipient`.
    Sent {
        /// The address it went to.
        recipient: String,
    },
    /// Failed; another attempt may succeed (subject to the maximum attempts).
    Retry {
        /// Stored as `last_error` (no secrets).
        error: String,
        /// The address, when it was found.
        recipient: Option<String>,
    },
    /// Failed for good: the notification is FAILED after this attempt.
    Fail {
        /// Stored as `last_error` (no secrets).
        error: String,
        /// The address, when it was found.
        recipient: Option<String>,
    },
}

impl Sink {
    /// The sink `NOTIFIER` names.
    pub fn new(settings: &NotifierSettings) -> Result<Self, SmtpSetupError> {
        Ok(match &settings.sink {
            NotifierSink::Log => Self::Log,
            NotifierSink::Smtp(smtp) => {
                Self::Smtp(Arc::new(SmtpSink::new(smtp, settings.send_timeout)?))
            }
        })
    }

    /// The stored channel name of what this sink delivers.
    pub fn channel(&self) -> &'static str {
        match self {
            Self::Log => "LOG",
            Self::Smtp(_) => "EMAIL",
        }
    }

    /// The recipient stored when a notification is queued: the user id (`user:<id>`). The SMTP
    /// sink replaces it with the e-mail address once it has looked the address up.
    pub fn queued_recipient(&self, user_id: Uuid) -> String {
        format!("user:{user_id}")
    }

    /// Delivers one notification.
    pub async fn deliver(
        &self,
        users: &UserServiceClient<ClientChannel>,
        notification: &NotificationRow,
    ) -> Delivery {
        match self {
            Self::Log => {
                tracing::info!(
                    notification.id = %notification.notification_id,
                    notification.kind = %notification.kind,
                    notification.dedupe_key = %notification.dedupe_key,
                    user.id = %notification.user_id,
                    recipient = %notification.recipient,
                    subject = %notification.subject,
                    body = %notification.body,
                    "notification delivered to the log"
                );
                Delivery::Sent {
                    recipient: notification.recipient.clone(),
                }
            }
            Self::Smtp(smtp) => {
                let to = match recipients::email_of(users, notification.user_id).await {
                    Ok(to) => to,
                    Err(error) if error.is_transient() => {
                        return Delivery::Retry {
                            error: error.to_string(),
                            recipient: None,
                        };
                    }
                    Err(error) => {
                        return Delivery::Fail {
                            error: error.to_string(),
                            recipient: None,
                        };
                    }
                };
                match smtp.send(notification, &to).await {
                    Ok(()) => Delivery::Sent { recipient: to },
                    Err(SmtpFailure::Transient(error)) => Delivery::Retry {
                        error,
                        recipient: Some(to),
                    },
                    Err(SmtpFailure::Permanent(error)) => Delivery::Fail {
                        error,
                        recipient: Some(to),
                    },
                }
            }
        }
    }
}
