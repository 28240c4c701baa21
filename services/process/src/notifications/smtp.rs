//! The SMTP sink: one e-mail per notification through the configured relay (lettre's async
//! transport over rustls), plain text, with a `Message-ID` derived from the notification id so a
//! repeated delivery (a crash between the relay's answer and our commit) carries the same id
//! and the recipient's mail system can drop the copy. A 5xx answer is permanent (the
//! notification fails at once); a 4xx, a refused or dropped connection, a timeout or a TLS
//! failure is transient (retried with backoff).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use secrecy::ExposeSecret as _;

use crate::notifications::store::NotificationRow;
use crate::settings::{SmtpSecurity, SmtpSettings};

/// Why the SMTP sink could not be built at start-up; names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    /// `SMTP_TLS_CA_FILE` cannot be read or holds no usable certificate.
    #[error("MERCATO_PROCESS__SMTP_TLS_CA_FILE {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS parameters for `SMTP_URL`'s host could not be built.
    #[error("MERCATO_PROCESS__SMTP_URL: tls set-up failed: {0}")]
    Tls(String),
}

/// How one SMTP delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpFailure {
    /// Worth another attempt later.
    Transient(String),
    /// The relay refused for good (5xx), or the message cannot be built.
    Permanent(String),
}

/// The relay and the sender, built once at start-up.
#[derive(Clone)]
pub struct SmtpSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
}

impl std::fmt::Debug for SmtpSink {
    // The transport holds the credentials; show only where mail goes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("relay", &self.relay)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// The transport for `settings`; every SMTP command waits at most `timeout`.
    pub fn new(settings: &SmtpSettings, timeout: Duration) -> Result<Self, SmtpSetupError> {
        let url = &settings.url;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host)
            .port(url.port)
            .timeout(Some(timeout));
        if url.security != SmtpSecurity::None {
            let mut tls = TlsParameters::builder(url.host.clone());
            if let Some(path) = &settings.tls_ca_file {
                let shown = path.display().to_string();
                let pem = std::fs::read(path).map_err(|e| SmtpSetupError::CaFile {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                let certificate =
                    Certificate::from_pem(&pem).map_err(|e| SmtpSetupError::CaFile {
                        path: shown,
                        reason: format!("not a PEM certificate: {e}"),
                    })?;
                tls = tls.add_root_certificate(certificate);
            }
            let tls = tls
                .build_rustls()
                .map_err(|e| SmtpSetupError::Tls(e.to_string()))?;
            builder = builder.tls(match url.security {
                SmtpSecurity::StartTls => Tls::Required(tls),
                SmtpSecurity::Tls | SmtpSecurity::None => Tls::Wrapper(tls),
            });
        }
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from.clone(),
            relay: format!("{}://{}:{}", url.security.scheme(), url.host, url.port),
        })
    }

    /// The e-mail of `notification` to `to`.
    pub fn message(&self, notification: &NotificationRow, to: &str) -> Result<Message, String> {
        let to: Address = to
            .parse()
            .map_err(|e| format!("the recipient address is invalid: {e}"))?;
        let message_id = format!(
            "<{}@{}>",
            notification.notification_id,
            self.from.email.domain()
        );
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(notification.subject.clone())
            .message_id(Some(message_id))
            .header(ContentType::TEXT_PLAIN)
            .body(notification.body.clone())
            .map_err(|e| format!("the message cannot be built: {e}"))
    }

    /// Sends `notification` to `to`.
    pub async fn send(&self, notification: &NotificationRow, to: &str) -> Result<(), SmtpFailure> {
        let message = self
            .message(notification, to)
            .map_err(SmtpFailure::Permanent)?;
        match self.transport.send(message).await {
            Ok(response) => {
                tracing::info!(
                    notification.id = %notification.notification_id,
                    notification.kind = %notification.kind,
                    user.id = %notification.user_id,
                    relay = %self.relay,
                    code = %response.code(),
                    "notification e-mailed"
                );
                Ok(())
            }
            Err(error) => Err(classify(&self.relay, &error)),
        }
    }
}

/// A 5xx reply is permanent; everything else is worth retrying.
fn classify(relay: &str, error: &lettre::transport::smtp::Error) -> SmtpFailure {
    let text = format!("smtp relay {relay}: {error}");
    if error.is_permanent() {
        SmtpFailure::Permanent(text)
    } else {
        SmtpFailure::Transient(text)
    }
}
