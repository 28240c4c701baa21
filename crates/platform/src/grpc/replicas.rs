//! The transport under every client channel: the replicas of one backend — one URL (a
//! Kubernetes Service, say) or a comma-separated list — with calls taking turns and a narrow
//! retry for calls that provably never reached a server.
//!
//! Why not tonic's `Channel::balance_list`: its endpoints are lazy reconnecting connections
//! whose readiness never fails (a refused connect is stashed and returned by the next call), so
//! power-of-two-choices keeps choosing a replica that has stopped, and half the calls of a
//! rolling restart would fail. Here a replica whose call failed in transport is set aside for
//! [`SET_ASIDE`], and a call the failure proves was never sent goes again — to another replica
//! when there is one, else on the same channel, which reconnects (behind one Service address
//! the new connection reaches a replica that still serves).
//!
//! "Never sent" ([`never_sent`]) is a failed connect (refused, or the handshake cut), a stream
//! the server refused (`REFUSED_STREAM`), a stream above the last one a graceful `GOAWAY`
//! (`NO_ERROR`) let through — HTTP/2 guarantees the server did not process it — or a request
//! hyper dropped before handing it to the connection. Such a call is safe to send again
//! whatever the method, a write without an idempotency key included. A reset, a timeout, a
//! connection lost mid-call or a `GOAWAY` carrying an error is ambiguous (the server may have
//! processed the call) and is never retried.
//!
//! Why up to [`ATTEMPTS`] and not one retry: a client that has not yet read the `GOAWAY` hands
//! the retry to the same dying connection, which refuses it as well, before the channel
//! reconnects.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt as _;
use prometheus::IntCounterVec;
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::{Service, ServiceExt as _};

/// How long a replica whose call failed in transport is passed over (unless every replica is).
pub const SET_ASIDE: Duration = Duration::from_secs(1);

/// How many times one call may be sent while each failure proves it was never sent.
pub const ATTEMPTS: usize = 3;

type BoxError = Box<dyn StdError + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One backend: its replicas, one channel each (see the module docs).
#[derive(Debug, Clone)]
pub struct Backend {
    set: Arc<ReplicaSet>,
}

#[derive(Debug)]
struct ReplicaSet {
    replicas: Vec<Replica>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Replica {
    channel: Channel,
    set_aside_until: Mutex<Option<Instant>>,
}

impl Backend {
    /// The backend behind `channels`, one per replica URL (at least one).
    pub(crate) fn new(channels: Vec<Channel>) -> Self {
        let replicas = channels
            .into_iter()
            .map(|channel| Replica {
                channel,
                set_aside_until: Mutex::new(None),
            })
            .collect();
        Self {
            set: Arc::new(ReplicaSet {
                replicas,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// How many replicas the calls are spread over.
    pub fn replicas(&self) -> usize {
        self.set.replicas.len()
    }
}

impl Service<http::Request<Body>> for Backend {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call waits for the replica it picks, inside its own future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(Arc::clone(&self.set).call(request))
    }
}

impl ReplicaSet {
    async fn call(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        // Unary and server-streaming requests are one message (no Mercato method streams its
        // requests): buffer it so it can be sent again.
        let (parts, body) = request.into_parts();
        let body = body.collect().await?.to_bytes();
        let copy = || {
            let mut request =
                http::Request::new(Body::new(http_body_util::Full::new(body.clone())));
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = parts.uri.clone();
            *request.version_mut() = parts.version;
            *request.headers_mut() = parts.headers.clone();
            *request.extensions_mut() = parts.extensions.clone();
            request
        };
        let mut index = self.pick(None);
        let mut attempt = 1;
        loop {
            let answer = self.send(index, copy()).await;
            match answer.as_ref().err().and_then(|error| never_sent(&**error)) {
                Some(reason) => {
                    self.set_aside(index);
                    if attempt == ATTEMPTS {
                        return answer;
                    }
                    let next = self.pick(Some(index));
                    let path = parts.uri.path();
                    let (service, method) = super::trace::split_path(path);
                    RESENT.with_label_values(&[service, method, reason]).inc();
                    tracing::debug!(
                        path,
                        reason,
                        attempt,
                        replica = index,
                        next,
                        "the call never reached a server; sending it again"
                    );
                    index = next;
                    attempt += 1;
                }
                None => return answer,
            }
        }
    }

    async fn send(
        &self,
        index: usize,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        let mut channel = self.replicas[index].channel.clone();
        channel.ready().await?;
        Ok(channel.call(request).await?)
    }

    /// The next replica in turn that is not set aside and not `except`; if every other one is
    /// set aside, the next in turn other than `except`; with a single replica, that one.
    fn pick(&self, except: Option<usize>) -> usize {
        let count = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let candidates = (0..count)
            .map(|offset| (start + offset) % count)
            .filter(|index| Some(*index) != except);
        let mut fallback = None;
        for index in candidates {
            fallback.get_or_insert(index);
            let set_aside = self.replicas[index]
                .set_aside_until
                .lock()
                .map(|until| until.is_some_and(|until| until > now))
                .unwrap_or(false);
            if !set_aside {
                return index;
            }
        }
        fallback.unwrap_or(start % count)
    }

    fn set_aside(&self, index: usize) {
        if let Ok(mut until) = self.replicas[index].set_aside_until.lock() {
            *until = Some(Instant::now() + SET_ASIDE);
        }
    }
}

/// Calls sent again because the failure proved they never reached a server, by reason.
static RESENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "grpc_client_resent_total",
        "gRPC calls sent again because their failure proved no server had received them, by \
         service, method and reason (connect, refused_stream, goaway, unsent)",
        &["grpc_service", "grpc_method", "reason"],
    )
});

/// Why `error` proves the call never reached a server, if it does (see the module docs):
/// `connect`, `refused_stream`, `goaway` or `unsent`.
pub fn never_sent(error: &(dyn StdError + 'static)) -> Option<&'static str> {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return Some("connect");
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            // h2 gives a remote GOAWAY's error only to the streams above its last stream id
            // (and to streams opened after it), unless the connection then fails with the
            // GOAWAY's error code — which is why only NO_ERROR counts.
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return Some("refused_stream");
            }
            let graceful = h2.reason() == Some(h2::Reason::NO_ERROR);
            return (h2.is_go_away() && h2.is_remote() && graceful).then_some("goaway");
        }
        if let Some(hyper) = error.downcast_ref::<hyper::Error>()
            && hyper.is_canceled()
        {
            return Some("unsent");
        }
        source = error.source();
    }
    None
}
