//! Where notifications go. The log sink writes one structured line per notification and cannot
//! fail; an SMTP sink would implement the same `deliver` (see the README: not built yet).

use crate::notifications::store::NotificationRow;
use crate::settings::NotifierSink;

/// The configured delivery channel.
#[derive(Debug, Clone, Copy)]
pub struct Sink(NotifierSink);

impl Sink {
    /// The sink `NOTIFIER` names.
    pub fn new(kind: NotifierSink) -> Self {
        Self(kind)
    }

    /// The stored channel name of what this sink delivers.
    pub fn channel(self) -> &'static str {
        match self.0 {
            NotifierSink::Log => "LOG",
        }
    }

    /// The recipient address of `user_id` on this channel.
    pub fn recipient(self, user_id: uuid::Uuid) -> String {
        match self.0 {
            NotifierSink::Log => format!("user:{user_id}"),
        }
    }

    /// Delivers one notification; the error text is stored as `last_error` (no secrets).
    pub async fn deliver(self, notification: &NotificationRow) -> Result<(), String> {
        match self.0 {
            NotifierSink::Log => {
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
                Ok(())
            }
        }
    }
}
