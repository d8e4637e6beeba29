//! A listener's accepted connections, plain or TLS, each with what is known of its peer.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::{HANDSHAKE_TIMEOUT_MS, HANDSHAKES_IN_FLIGHT_MAX, ServerTls};

/// What a server knows of the peer of a connection; tonic puts it in every request's
/// extensions (read it with [`peer_info`]).
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The peer's certificate chain (leaf first), when it presented one that verified.
    pub certificates: Option<Arc<[CertificateDer<'static>]>>,
}

/// The [`PeerInfo`] of the connection `request` came on, when it came through [`incoming`].
pub fn peer_info<T>(request: &tonic::Request<T>) -> Option<&PeerInfo> {
    request.extensions().get::<PeerInfo>()
}

/// An accepted connection.
pub enum Conn {
    Plain(TcpStream, PeerInfo),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, PeerInfo),
}

impl Conn {
    pub fn peer(&self) -> &PeerInfo {
        match self {
            Conn::Plain(_, peer) | Conn::Tls(_, peer) => peer,
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer().clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s, _) => s.is_write_vectored(),
            Conn::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Connections ready for the server, waiting to be taken: a bound, so a server that stops
/// taking them stops the accepting.
const READY_CONNECTIONS_MAX: usize = 64;

/// The connections `listener` accepts, with TCP_NODELAY set (the server builder's own
/// `tcp_nodelay` applies only to listeners it binds itself; without it, Nagle's algorithm held
/// the last small write of an answer until the peer's delayed ACK: tens of milliseconds on every
/// Raft round trip and produce answer), handshaken with `tls` when given
/// (a connection whose handshake fails or takes longer than [`HANDSHAKE_TIMEOUT_MS`] is
/// dropped: a plaintext client on a TLS listener gets nothing). The listener closes when the
/// stream is dropped.
pub fn incoming(listener: TcpListener, tls: Option<ServerTls>) -> impl Stream<Item = io::Result<Conn>> {
    let (ready, taken) = mpsc::channel(READY_CONNECTIONS_MAX);
    tokio::spawn(accept_loop(listener, tls, ready));
    ReceiverStream::new(taken)
}

async fn accept_loop(listener: TcpListener, tls: Option<ServerTls>, ready: mpsc::Sender<io::Result<Conn>>) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = ready.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: give the server the error, slow down.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "TCP_NODELAY could not be set on an accepted connection");
        }
        let peer = PeerInfo { remote: Some(remote), tls: false, certificates: None };
        let Some(tls) = &tls else {
            if ready.send(Ok(Conn::Plain(stream, peer))).await.is_err() {
                return;
            }
            continue;
        };
        let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
        let (config, ready) = (tls.current(), ready.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
            match tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), handshake).await {
                Ok(Ok(stream)) => {
                    let certificates = stream.get_ref().1.peer_certificates().map(|c| Arc::from(c.to_vec()));
                    let peer = PeerInfo { tls: true, certificates, ..peer };
                    let _ = ready.send(Ok(Conn::Tls(Box::new(stream), peer))).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt as _;

    #[tokio::test]
    async fn accepted_connections_do_not_delay_small_writes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut incoming = Box::pin(super::incoming(listener, None));
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        let super::Conn::Plain(stream, peer) = accepted else { panic!("a plain connection") };
        assert!(stream.nodelay().unwrap(), "TCP_NODELAY is set on accepted connections");
        assert!(!peer.tls && peer.remote.is_some());
    }
}
