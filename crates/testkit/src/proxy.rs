//! A TCP proxy a test owns, to simulate a server outage without touching the shared server.
//!
//! Clients connect to [`TcpProxy::addr`] instead of the server. [`TcpProxy::cut`]
//! closes every proxied connection and refuses new ones (accepted then closed
//! at once) until [`TcpProxy::restore`], which is what a client sees when a
//! broker goes down and comes back.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

use crate::Error;

/// A cuttable TCP forwarder from `127.0.0.1:<random port>` to an upstream address.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    accepted: AtomicUsize,
    connections: Mutex<JoinSet<()>>,
}

impl State {
    fn connections(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TcpProxy {
    /// Starts forwarding to `upstream` (`host:port`), listening on `127.0.0.1:0`.
    pub async fn start(upstream: impl Into<String>) -> Result<Self, Error> {
        let upstream = upstream.into();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let accept = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&state)));
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// Where clients should connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every current connection and refuses new ones until [`TcpProxy::restore`].
    /// When this returns, every proxied socket is closed.
    pub async fn cut(&self) {
        // Flag and take under the lock the accept loop holds while it checks
        // the flag and registers a connection, so none slips past the cut.
        let mut connections = {
            let mut guard = self.state.connections();
            self.state.cut.store(true, Ordering::SeqCst);
            std::mem::take(&mut *guard)
        };
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Whether the proxy is currently cut.
    pub fn is_cut(&self) -> bool {
        self.state.cut.load(Ordering::SeqCst)
    }

    /// How many client connections were forwarded so far (refused ones excluded).
    pub fn connections_accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.state.connections().abort_all();
    }
}

async fn accept_loop(listener: TcpListener, upstream: String, state: Arc<State>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        let mut connections = state.connections();
        if state.cut.load(Ordering::SeqCst) {
            // Refuse: the client sees its connection closed immediately.
            drop(inbound);
            continue;
        }
        state.accepted.fetch_add(1, Ordering::SeqCst);
        connections.spawn(forward(inbound, upstream.clone()));
    }
}

async fn forward(mut inbound: TcpStream, upstream: String) {
    let Ok(mut outbound) = TcpStream::connect(upstream.as_str()).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
