//! The TCP proxy: forwards, cuts every connection, refuses while cut, recovers on restore.

use mercato_testkit::TcpProxy;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

/// An echo server on a random port.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(payload).await?;
    let mut buf = vec![0u8; payload.len()];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// True when the peer has closed the connection (EOF or reset).
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf).await, Ok(0) | Err(_))
}

#[tokio::test]
async fn a_cut_closes_connections_and_refuses_new_ones_until_restored() {
    let proxy = TcpProxy::start(echo_server().await).await.expect("proxy");
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert_eq!(
        round_trip(&mut client, b"hello").await.expect("echo"),
        b"hello"
    );

    proxy.cut().await;
    assert!(proxy.is_cut());
    assert!(
        closed_by_peer(&mut client).await,
        "the open connection was cut"
    );
    let mut refused = TcpStream::connect(proxy.addr())
        .await
        .expect("tcp accept still happens");
    assert!(
        closed_by_peer(&mut refused).await,
        "a new connection is closed at once while cut"
    );

    proxy.restore();
    let mut again = TcpStream::connect(proxy.addr())
        .await
        .expect("connect after restore");
    assert_eq!(
        round_trip(&mut again, b"back").await.expect("echo"),
        b"back"
    );
    assert_eq!(
        proxy.connections_accepted(),
        2,
        "refused connections are not counted"
    );
}
