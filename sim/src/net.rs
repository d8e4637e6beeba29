//! gRPC over turmoil's simulated TCP: the connector every node and client uses, and the
//! incoming-connection stream a node's tonic server reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use eddy_client::{ClientConfig, ClientResult};
use eddy_raft::transport::{Connector, TransportError};
use futures::Stream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

/// The port every simulated node serves its client gRPC API on.
pub const PORT: u16 = 9092;
/// The port every simulated node serves the other nodes on (Raft and controller traffic).
pub const INTERNAL_PORT: u16 = 9093;

/// Connects to `host:port` over simulated TCP, lazily (like the production connectors).
#[derive(Debug, Clone, Copy)]
pub struct SimConnector {
    /// False only for `--bug no-keepalive`: the HTTP/2 keep-alive is pushed out to once a day.
    pub keepalive: bool,
}

impl Default for SimConnector {
    fn default() -> Self {
        Self { keepalive: true }
    }
}

impl SimConnector {
    fn channel(&self, endpoint: Endpoint) -> Channel {
        let endpoint = match self.keepalive {
            true => endpoint,
            false => {
                endpoint.http2_keep_alive_interval(std::time::Duration::from_secs(86_400)).keep_alive_while_idle(false)
            }
        };
        channel(endpoint)
    }
}

/// A lazily connecting channel over simulated TCP, configured by `endpoint` exactly as production
/// configures its TCP channels (timeouts, HTTP/2 keep-alive).
fn channel(endpoint: Endpoint) -> Channel {
    let connect = tower::service_fn(|uri: Uri| async move {
        let host = uri.host().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?.to_string();
        let port = uri.port_u16().unwrap_or(PORT);
        let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
        Ok::<_, io::Error>(TokioIo::new(stream))
    });
    endpoint.connect_with_connector_lazy(connect)
}

impl Connector for SimConnector {
    fn connect(&self, address: &str) -> Result<Channel, TransportError> {
        Ok(self.channel(eddy_raft::transport::peer_endpoint(address)?))
    }
}

impl eddy_client::Connect for SimConnector {
    fn connect(&self, address: &str, config: &ClientConfig) -> ClientResult<Channel> {
        Ok(self.channel(eddy_client::endpoint(address, config)?))
    }
}

/// A simulated TCP connection accepted by a node's server.
pub struct SimStream(turmoil::net::TcpStream);

impl Connected for SimStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for SimStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Connections accepted on `listener`, for `Server::serve_with_incoming`.
pub fn incoming(listener: turmoil::net::TcpListener) -> impl Stream<Item = io::Result<SimStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| SimStream(stream));
        Some((accepted, listener))
    })
}
