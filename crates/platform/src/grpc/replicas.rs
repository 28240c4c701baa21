//! The transport under every client channel: one backend URL as a plain lazy tonic channel, or
//! several replicas of one backend with round-robin picking and one narrow retry for calls a
//! stopping replica never took.
//!
//! Why not tonic's `Channel::balance_list`: its endpoints are lazy reconnecting connections
//! whose readiness never fails (a refused connect is stashed and returned by the next call), so
//! power-of-two-choices keeps choosing a replica that has stopped, and half the calls of a
//! rolling restart would fail. Here a replica whose call failed in transport is set aside for
//! [`SET_ASIDE`] and the call goes once more, to another replica — if, and only if, the failure
//! proves the call was never processed *and* the method is safe to send twice.
//!
//! "Never processed" is a refused connect, a stream the server refused (`REFUSED_STREAM`), a
//! stream cut by the server's `GOAWAY` (graceful shutdown refuses streams above the last one it
//! accepted), or a request hyper dropped before writing it. A reset, a timeout or a connection
//! lost mid-call is ambiguous and is never retried. "Safe to send twice" is a read (`Get*`,
//! `List*`, `BatchGet*`, `Search*`, `Lookup*`, `Watch*`), a method whose request carries an
//! `idempotency_key` (read from the descriptor set of the Mercato protos), or one of the internal
//! commands their protos document as idempotent per the id they name ([`IDEMPOTENT_BY_ID`]:
//! stock reservations per order, order transitions): even if a `GOAWAY`
//! ever cut a call the server had started (a drain that outlived its grace period), its second
//! delivery would be answered from the first.

use std::collections::HashSet;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt as _;
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::{Service, ServiceExt as _};

/// How long a replica whose call failed in transport is passed over (unless every replica is).
pub const SET_ASIDE: Duration = Duration::from_secs(1);

type BoxError = Box<dyn StdError + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One backend: a single URL (a channel exactly as tonic makes it) or several replicas.
#[derive(Debug, Clone)]
pub struct Backend {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Single(Channel),
    Replicas(Arc<ReplicaSet>),
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
    pub(crate) fn new(mut channels: Vec<Channel>) -> Self {
        let inner = match (channels.pop(), channels.is_empty()) {
            (Some(only), true) => Inner::Single(only),
            (last, _) => {
                channels.extend(last);
                Inner::Replicas(Arc::new(ReplicaSet {
                    replicas: channels
                        .into_iter()
                        .map(|channel| Replica {
                            channel,
                            set_aside_until: Mutex::new(None),
                        })
                        .collect(),
                    next: AtomicUsize::new(0),
                }))
            }
        };
        Self { inner }
    }

    /// How many replicas the calls are spread over.
    pub fn replicas(&self) -> usize {
        match &self.inner {
            Inner::Single(_) => 1,
            Inner::Replicas(set) => set.replicas.len(),
        }
    }
}

impl Service<http::Request<Body>> for Backend {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.inner {
            Inner::Single(channel) => channel.poll_ready(cx).map_err(Into::into),
            // Each call waits for the replica it picks, inside its own future.
            Inner::Replicas(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match &mut self.inner {
            Inner::Single(channel) => {
                let future = channel.call(request);
                Box::pin(async move { future.await.map_err(Into::into) })
            }
            Inner::Replicas(set) => Box::pin(Arc::clone(set).call(request)),
        }
    }
}

impl ReplicaSet {
    async fn call(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        let first = self.pick(None);
        if !retryable(request.uri().path()) {
            let answer = self.send(first, request).await;
            if let Err(error) = &answer
                && never_processed(&**error)
            {
                self.set_aside(first);
            }
            return answer;
        }
        // Unary and server-streaming requests are one message: buffer it so it can be sent
        // again.
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
        match self.send(first, copy()).await {
            Err(error) if never_processed(&*error) => {
                self.set_aside(first);
                let second = self.pick(Some(first));
                tracing::debug!(
                    error = %error,
                    path = parts.uri.path(),
                    first,
                    second,
                    "a replica refused the call before processing it; sending it once more"
                );
                self.send(second, copy()).await
            }
            answer => answer,
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
    /// set aside, the next in turn other than `except`.
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

/// Whether `error` proves the server never processed the call (see the module docs).
pub fn never_processed(error: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote());
        }
        if let Some(hyper) = error.downcast_ref::<hyper::Error>()
            && hyper.is_canceled()
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// Whether the method at `path` (`/package.Service/Method`) may be sent twice: a read, or a
/// method whose request has an `idempotency_key`.
pub fn retryable(path: &str) -> bool {
    IDEMPOTENT_BY_ID.contains(&path) || RETRYABLE.contains(path)
}

const READ_PREFIXES: [&str; 6] = ["Get", "List", "BatchGet", "Search", "Lookup", "Watch"];

/// Internal commands without an `idempotency_key` whose protos promise that a replay is
/// answered from the first call (per `order_id`, or "a transition already obeyed is a no-op").
pub const IDEMPOTENT_BY_ID: [&str; 6] = [
    "/mercato.product.v1.StockService/ReserveStock",
    "/mercato.product.v1.StockService/CommitReservation",
    "/mercato.product.v1.StockService/ReleaseReservation",
    "/mercato.order.v1.OrderService/AttachPayment",
    "/mercato.order.v1.OrderService/MarkOrderShipped",
    "/mercato.order.v1.OrderService/MarkOrderFinished",
];

/// Paths of the reads and keyed writes. The descriptor set is compiled in, so it always
/// decodes; were it ever empty, nothing would be retried (the unit test below would fail).
static RETRYABLE: LazyLock<HashSet<String>> = LazyLock::new(|| {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(mercato_proto::FILE_DESCRIPTOR_SET) else {
        return HashSet::new();
    };
    let mut keyed = HashSet::new();
    for file in &set.file {
        for message in &file.message_type {
            if message
                .field
                .iter()
                .any(|field| field.name() == "idempotency_key")
            {
                keyed.insert(format!(".{}.{}", file.package(), message.name()));
            }
        }
    }
    let mut retryable = HashSet::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                let read = READ_PREFIXES
                    .iter()
                    .any(|prefix| method.name().starts_with(prefix));
                if read || keyed.contains(method.input_type()) {
                    retryable.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    retryable
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_keyed_writes_are_retryable_and_other_writes_are_not() {
        assert!(retryable("/mercato.order.v1.OrderService/GetOrder"));
        assert!(retryable("/mercato.product.v1.ProductService/BatchGetSkus"));
        assert!(retryable("/mercato.order.v1.OrderService/WatchOrder"));
        assert!(retryable("/mercato.order.v1.OrderService/CreateOrder"));
        assert!(retryable("/mercato.product.v1.StockService/ReserveStock"));
        assert!(!retryable("/mercato.user.v1.AuthService/Register"));
        assert!(!retryable("/mercato.user.v1.AuthService/Login"));
        assert!(!retryable("/grpc.health.v1.Health/Check"));
    }
}
