//! A real SMTP server for tests: aiosmtpd (PyPI, pinned in the Makefile) in a git-ignored
//! virtualenv under `.cache/tools/aiosmtpd`; `make aiosmtpd` installs it (`make test` does so
//! first). A test that cannot start it fails with that instruction: nothing is skipped.
//!
//! The server listens on a free loopback port (bound by Python itself, so there is no port race)
//! and reports every message it accepts, parsed by Python's `email` package, on its stdout,
//! which the harness collects. The test chooses the answer to `DATA` (accept, or any 4xx/5xx),
//! can stop the server (connections are then refused) and start it again on the same port, and
//! can ask for STARTTLS or implicit TLS (a throw-away certificate for 127.0.0.1 made with the
//! `openssl` command, whose file is the CA the client trusts) and for AUTH with a user name and
//! password.
//!
//! ```no_run
//! # async fn demo() {
//! use mercato_process::testing::SmtpServer;
//! let smtp = SmtpServer::start().await;
//! // settings: NOTIFIER=smtp, SMTP_URL=smtp.url()
//! let mails = smtp.wait_for_mail(1).await;
//! # let _ = mails;
//! # }
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Notify, mpsc};

use crate::settings::SmtpSecurity;

/// Overrides the virtualenv's python (with aiosmtpd installed) the harness runs.
pub const PYTHON_ENV: &str = "MERCATO_TEST_AIOSMTPD_PYTHON";

/// How long aiosmtpd may take to start, and a test to see the mail it waits for.
const PATIENCE: Duration = Duration::from_secs(60);

/// The server: `python -c LAUNCHER <port> <security> [cert key] [user password]`. It binds
/// 127.0.0.1:<port> (0 = any free port), prints `{"kind": "port"}`, then one JSON line per
/// message accepted or refused. Lines on its stdin set the reply to DATA (`reply 250 OK`,
/// `reply 550 ...`), each acknowledged with `{"kind": "ack"}`; it exits when stdin closes, so a
/// killed test process leaves no server behind.
const LAUNCHER: &str = r#"
import asyncio, email, json, os, socket, ssl, sys, threading
from email import policy
from aiosmtpd.smtp import SMTP, AuthResult

port, security = int(sys.argv[1]), sys.argv[2]
cert = sys.argv[3] if security != "none" else None
key = sys.argv[4] if security != "none" else None
rest = sys.argv[5:] if security != "none" else sys.argv[3:]
user, password = (rest[0].encode(), rest[1].encode()) if rest else (None, None)
lock = threading.Lock()
state = {"reply": "250 OK"}

def emit(record):
    with lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

def control():
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "reply":
            state["reply"] = argument
            emit({"kind": "ack"})
    os._exit(0)

threading.Thread(target=control, daemon=True).start()

class Handler:
    async def handle_DATA(self, server, session, envelope):
        reply = state["reply"]
        if not reply.startswith("250"):
            emit({"kind": "refused", "reply": reply, "rcpt_tos": envelope.rcpt_tos})
            return reply
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        part = message.get_body(preferencelist=("plain",))
        emit({
            "kind": "mail",
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["from"]),
            "to": str(message["to"]),
            "subject": str(message["subject"]),
            "message_id": str(message["message-id"]),
            "content_type": message.get_content_type(),
            "body": part.get_content() if part is not None else "",
            # STARTTLS records itself in the session; implicit TLS only shows on the transport.
            "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
        })
        return reply

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == user and auth_data.password == password
    return AuthResult(success=ok)

context = None
if security != "none":
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

def factory():
    options = dict(hostname="mercato-test-smtp", auth_required=user is not None)
    if user is not None:
        options["authenticator"] = authenticator
    if security == "starttls":
        options.update(tls_context=context, require_starttls=True)
    if security == "tls":
        options["auth_require_tls"] = False
    return SMTP(Handler(), **options)

async def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, sock=sock, ssl=context if security == "tls" else None)
    emit({"kind": "port", "port": sock.getsockname()[1]})
    async with server:
        await server.serve_forever()

asyncio.run(main())
"#;

/// What `DATA` is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpReply {
    /// `250 OK`: the message is accepted (and reported).
    Accept,
    /// Any other reply line, e.g. `451 4.3.0 try again later` or `550 5.1.1 no such user`.
    Line(String),
}

/// How a test server is secured.
#[derive(Debug, Clone, Default)]
pub struct SmtpServerOptions {
    /// None (`smtp://`), STARTTLS required (`smtp+starttls://`) or implicit TLS (`smtps://`).
    pub security: Option<SmtpSecurity>,
    /// AUTH required with this user name and password.
    pub credentials: Option<(String, String)>,
}

/// One message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// The decoded `Subject`.
    pub subject: String,
    /// The `Message-ID` header.
    pub message_id: String,
    /// The content type (`text/plain`).
    pub content_type: String,
    /// The decoded text body.
    pub body: String,
    /// Whether it arrived over TLS.
    pub tls: bool,
    /// Whether the client had authenticated.
    pub authenticated: bool,
}

#[derive(Debug, Default)]
struct Seen {
    mail: Vec<ReceivedMail>,
    refused: usize,
}

#[derive(Debug)]
struct Running {
    // Held open: the server exits when it closes.
    stdin: ChildStdin,
    acks: mpsc::UnboundedReceiver<()>,
    _child: Child,
}

/// A throw-away certificate for 127.0.0.1 and its key, deleted with the server.
#[derive(Debug)]
struct Certificate {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An aiosmtpd process on a loopback port and what it received. Dropping it stops the server.
#[derive(Debug)]
pub struct SmtpServer {
    port: u16,
    options: SmtpServerOptions,
    certificate: Option<Certificate>,
    reply: SmtpReply,
    seen: Arc<Mutex<Seen>>,
    arrived: Arc<Notify>,
    running: Option<Running>,
}

impl SmtpServer {
    /// A plain-text server without AUTH on a free loopback port, accepting every message.
    ///
    /// # Panics
    /// When aiosmtpd is not installed (with the command that installs it) or does not start.
    pub async fn start() -> Self {
        Self::start_with(SmtpServerOptions::default()).await
    }

    /// A server secured as `options` say.
    ///
    /// # Panics
    /// As [`Self::start`]; also when a certificate cannot be made (`openssl` is missing).
    pub async fn start_with(options: SmtpServerOptions) -> Self {
        let certificate = match options.security {
            None | Some(SmtpSecurity::None) => None,
            Some(_) => Some(make_certificate().await),
        };
        let mut server = Self {
            port: 0,
            options,
            certificate,
            reply: SmtpReply::Accept,
            seen: Arc::default(),
            arrived: Arc::default(),
            running: None,
        };
        server.launch().await;
        server
    }

    /// `SMTP_URL` for this server.
    pub fn url(&self) -> String {
        let scheme = self.options.security.unwrap_or(SmtpSecurity::None).scheme();
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across [`Self::stop`] and [`Self::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `SMTP_TLS_CA_FILE` for a TLS server: its self-signed certificate.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.certificate.as_ref().map(|c| c.cert.clone())
    }

    /// Answers `DATA` with `reply` from now on (and after a restart).
    pub async fn reply_with(&mut self, reply: SmtpReply) {
        self.reply = reply;
        self.send_reply().await;
    }

    /// Stops the server: connections to its port are refused until [`Self::restart`]. What it
    /// received stays readable.
    pub async fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running._child.kill().await;
        }
    }

    /// Starts the server again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "the SMTP server is running");
        self.launch().await;
        if self.reply != SmtpReply::Accept {
            self.send_reply().await;
        }
    }

    /// Every message accepted so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.lock().mail.clone()
    }

    /// How many messages were answered with something other than 250.
    pub fn refused(&self) -> usize {
        self.lock().refused
    }

    /// Waits until at least `count` messages arrived; all of them.
    ///
    /// # Panics
    /// When fewer arrive within a minute.
    pub async fn wait_for_mail(&self, count: usize) -> Vec<ReceivedMail> {
        self.wait_until(|seen| seen.mail.len() >= count)
            .await
            .unwrap_or_else(|mail| panic!("expected {count} messages, got {mail:?}"))
    }

    /// Waits until at least `count` messages were refused; the messages accepted so far.
    ///
    /// # Panics
    /// When fewer are refused within a minute.
    pub async fn wait_for_refusals(&self, count: usize) -> Vec<ReceivedMail> {
        self.wait_until(|seen| seen.refused >= count)
            .await
            .unwrap_or_else(|_| panic!("expected {count} refusals, saw {}", self.refused()))
    }

    async fn wait_until(
        &self,
        done: impl Fn(&Seen) -> bool,
    ) -> Result<Vec<ReceivedMail>, Vec<ReceivedMail>> {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                // Registered before looking, so an arrival in between is not missed.
                let arrived = self.arrived.notified();
                if done(&self.lock()) {
                    return;
                }
                arrived.await;
            }
        })
        .await;
        let mail = self.received();
        waited.map(|()| mail.clone()).map_err(|_| mail)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn send_reply(&mut self) {
        let line = match &self.reply {
            SmtpReply::Accept => "reply 250 OK\n".to_owned(),
            SmtpReply::Line(line) => format!("reply {line}\n"),
        };
        let Some(running) = self.running.as_mut() else {
            return;
        };
        running
            .stdin
            .write_all(line.as_bytes())
            .await
            .expect("the SMTP server reads its commands");
        running.stdin.flush().await.expect("command flushed");
        tokio::time::timeout(PATIENCE, running.acks.recv())
            .await
            .ok()
            .flatten()
            .expect("the SMTP server acknowledges the reply change");
    }

    async fn launch(&mut self) {
        let python = python();
        if !python.exists() {
            panic!(
                "{}",
                not_installed(&format!("{} does not exist", python.display()))
            );
        }
        let security = match self.options.security {
            None | Some(SmtpSecurity::None) => "none",
            Some(SmtpSecurity::StartTls) => "starttls",
            Some(SmtpSecurity::Tls) => "tls",
        };
        let mut command = Command::new(&python);
        command
            .arg("-c")
            .arg(LAUNCHER)
            .arg(self.port.to_string())
            .arg(security);
        if let Some(certificate) = &self.certificate {
            command.arg(&certificate.cert).arg(&certificate.key);
        }
        if let Some((user, password)) = &self.options.credentials {
            command.arg(user).arg(password);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("{}", not_installed(&format!("{}: {err}", python.display())))
            });
        let stdin = child.stdin.take().expect("the server's stdin is piped");
        let stdout = child.stdout.take().expect("the server's stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line()).await;
        let port = match first {
            Ok(Ok(Some(line))) => serde_json::from_str::<Value>(&line)
                .ok()
                .filter(|v| v["kind"] == "port")
                .and_then(|v| v["port"].as_u64())
                .and_then(|port| u16::try_from(port).ok())
                .unwrap_or_else(|| panic!("aiosmtpd printed {line:?} instead of its port")),
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                panic!(
                    "{}",
                    not_installed(&format!(
                        "{} exited ({status}) before listening; its error is above",
                        python.display()
                    ))
                );
            }
            Err(_) => panic!("aiosmtpd did not start within {PATIENCE:?}"),
        };
        self.port = port;
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let seen = Arc::clone(&self.seen);
        let arrived = Arc::clone(&self.arrived);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(record) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                match record["kind"].as_str() {
                    Some("ack") => {
                        let _ = ack_tx.send(());
                    }
                    Some("mail") => {
                        seen.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .mail
                            .push(mail(&record));
                        arrived.notify_waiters();
                    }
                    Some("refused") => {
                        seen.lock().unwrap_or_else(PoisonError::into_inner).refused += 1;
                        arrived.notify_waiters();
                    }
                    _ => {}
                }
            }
        });
        self.running = Some(Running {
            stdin,
            acks,
            _child: child,
        });
    }
}

fn mail(record: &Value) -> ReceivedMail {
    let text = |key: &str| record[key].as_str().unwrap_or_default().to_owned();
    ReceivedMail {
        mail_from: text("mail_from"),
        rcpt_tos: record["rcpt_tos"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        from: text("from"),
        to: text("to"),
        subject: text("subject"),
        message_id: text("message_id"),
        content_type: text("content_type"),
        body: text("body"),
        tls: record["tls"].as_bool().unwrap_or(false),
        authenticated: record["authenticated"].as_bool().unwrap_or(false),
    }
}

/// A self-signed certificate for 127.0.0.1 (its own CA), from the `openssl` command.
async fn make_certificate() -> Certificate {
    let dir = std::env::temp_dir().join(format!("mercato-smtp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a directory for the test certificate");
    let certificate = Certificate {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        dir,
    };
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&certificate.key)
        .arg("-out")
        .arg(&certificate.cert)
        .output()
        .await
        .unwrap_or_else(|err| {
            panic!("the `openssl` command makes the test certificate and is missing: {err}")
        });
    assert!(
        output.status.success(),
        "openssl could not make a certificate: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    certificate
}

fn python() -> PathBuf {
    match std::env::var_os(PYTHON_ENV) {
        Some(path) => PathBuf::from(path),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/tools/aiosmtpd/bin/python")
        }
    }
}

fn not_installed(detail: &str) -> String {
    format!(
        "aiosmtpd is not installed ({detail}): run `make aiosmtpd` in the repository root (it \
         installs the pinned aiosmtpd into .cache/tools/aiosmtpd; `make test` does it too), or \
         point {PYTHON_ENV} at a python that has aiosmtpd"
    )
}
