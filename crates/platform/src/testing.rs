//! Support for the crates' integration tests: [`ServiceAddress`], one address in front of the
//! replicas of a backend, as a Kubernetes Service puts one cluster IP in front of its pods.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// A TCP forwarder on a loopback port: each connection it accepts goes to the next of its
/// endpoints in turn (kube-proxy balances connections, never calls), and the endpoint list
/// changes only when the test says so ([`remove`](Self::remove), [`add`](Self::add)), as
/// endpoints follow readiness with a lag. Dropping it closes the port and every forwarded
/// connection.
#[derive(Debug)]
pub struct ServiceAddress {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Shared {
    endpoints: Mutex<Vec<SocketAddr>>,
    next: AtomicUsize,
    connections: Mutex<Vec<AbortHandle>>,
    /// Connections accepted with no endpoint to take them, or whose endpoint refused.
    turned_away: AtomicUsize,
}

impl ServiceAddress {
    /// Listens on a free loopback port and forwards to `endpoints`.
    pub async fn start(endpoints: impl IntoIterator<Item = SocketAddr>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            endpoints: Mutex::new(endpoints.into_iter().collect()),
            ..Shared::default()
        });
        let accepting = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            accepting,
        })
    }

    /// `http://<address>`, for a `*_SERVICE_URL`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes `endpoint` out of the rotation (its pod went not-ready); its open connections stay.
    pub fn remove(&self, endpoint: SocketAddr) {
        self.endpoints().retain(|each| *each != endpoint);
    }

    /// Puts `endpoint` (back) into the rotation.
    pub fn add(&self, endpoint: SocketAddr) {
        let mut endpoints = self.endpoints();
        if !endpoints.contains(&endpoint) {
            endpoints.push(endpoint);
        }
    }

    /// Closes every forwarded connection at once, mid-call or not (a node lost).
    pub fn cut_connections(&self) {
        let cut = std::mem::take(
            &mut *self
                .shared
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for connection in cut {
            connection.abort();
        }
    }

    /// How many connections found no endpoint, or an endpoint that refused them.
    pub fn turned_away(&self) -> usize {
        self.shared.turned_away.load(Ordering::Relaxed)
    }

    fn endpoints(&self) -> std::sync::MutexGuard<'_, Vec<SocketAddr>> {
        self.shared
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ServiceAddress {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut_connections();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((mut client, _)) = listener.accept().await {
        let endpoint = {
            let endpoints = shared
                .endpoints
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let turn = shared.next.fetch_add(1, Ordering::Relaxed);
            (!endpoints.is_empty()).then(|| endpoints[turn % endpoints.len()])
        };
        let Some(endpoint) = endpoint else {
            shared.turned_away.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let counted = Arc::clone(&shared);
        let forwarding = tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(endpoint).await else {
                counted.turned_away.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        let mut connections = shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connections.retain(|connection| !connection.is_finished());
        connections.push(forwarding.abort_handle());
    }
}
