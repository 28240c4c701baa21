//! The accepted connections of every gRPC server, closed the way HTTP/2 servers must close them:
//! by lingering.
//!
//! When a server ends a connection — its drain after SIGTERM, or `MAX_CONNECTION_AGE` — hyper
//! sends `GOAWAY`, finishes the streams it accepted and drops the socket. The client does not
//! know yet and may still be sending (new streams the `GOAWAY` will turn away, window updates).
//! A socket closed with unread bytes in its receive buffer, or receiving bytes after it closed,
//! answers with a TCP reset, and a reset makes the peer's kernel discard what it had received
//! but not yet read: the responses of calls the server did process, the `GOAWAY` itself. The
//! client then sees a broken pipe on calls that succeeded, which it cannot safely repeat.
//!
//! [`Lingering`] closes instead in two steps: when hyper drops the connection, it sends FIN
//! (everything written is delivered first) and keeps reading and discarding what the client
//! still sends until the client closes too, for at most [`LINGER`] — so no reset is sent while
//! the client may still be reading.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// The longest a closed connection waits for its client to close its side.
pub const LINGER: Duration = Duration::from_secs(2);

/// The connections `listener` accepts (`TCP_NODELAY` set), each closed by lingering, and the
/// handle to wait for the lingering ones once the server has stopped.
pub fn incoming(
    listener: TcpListener,
) -> (impl Stream<Item = io::Result<Lingering>> + Send, Lingerers) {
    let lingerers = TaskTracker::new();
    let tracker = lingerers.clone();
    let connections = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(move |accepted| {
            accepted.map(|stream| Lingering {
                stream: Some(stream),
                lingerers: tracker.clone(),
            })
        });
    (connections, Lingerers(lingerers))
}

/// The connections of one server that are still lingering.
#[derive(Debug)]
pub struct Lingerers(TaskTracker);

impl Lingerers {
    /// Waits until every closed connection has finished lingering (at most [`LINGER`]), so the
    /// process does not exit — and reset them — first.
    pub async fn finished(self) {
        self.0.close();
        let _ = tokio::time::timeout(LINGER, self.0.wait()).await;
    }
}

/// An accepted connection that lingers when dropped (see the module docs).
#[derive(Debug)]
pub struct Lingering {
    stream: Option<TcpStream>,
    lingerers: TaskTracker,
}

impl Lingering {
    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        // Outside a runtime (it is shutting down) the socket simply closes.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.lingerers.spawn(linger(stream));
        }
    }
}

async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut discard = [0_u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(read) = stream.read(&mut discard).await
            && read > 0
        {}
    })
    .await;
}

impl Connected for Lingering {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match &self.stream {
            Some(stream) => stream.connect_info(),
            None => TcpConnectInfo {
                local_addr: None,
                remote_addr: None,
            },
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}
