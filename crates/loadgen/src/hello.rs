//! The baseline server: tonic with nothing but the health service, no Mercato stack. What it
//! answers per second on this machine is the ceiling any Mercato RPC is compared with.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// Serves a bare tonic health service on `addr` until Ctrl-C, printing the bound address first
/// (so a script can bind port 0 and read where it landed).
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    // The line scripts wait for.
    #[allow(clippy::print_stdout)]
    {
        println!("hello-server listening on {local}");
    }
    serve_on(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// Serves the bare health service on `listener` until `shutdown` completes (for a baseline
/// started in-process, e.g. by a test that bound port 0 itself).
pub async fn serve_on(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
