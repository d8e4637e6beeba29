//! Raft RPCs for every group of a node over one tonic service.
//!
//! A request is a [`RaftEnvelope`](eddy_proto::internal::RaftEnvelope): the group id, the kind of
//! RPC, and the bincode-encoded openraft request. Each peer node gets one HTTP/2 channel
//! ([`Peers`]) that every group's replication shares. Connections are made through a
//! [`Connector`], which the deterministic simulation replaces with simulated TCP.

mod client;
mod server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

pub use client::{GroupNetwork, GroupNetworkFactory};
pub use server::{RaftRouter, RaftTransportService, handle_raft_rpc};

/// Which openraft RPC an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RpcKind {
    AppendEntries = 1,
    Vote = 2,
    PreVote = 3,
    FullSnapshot = 4,
    TransferLeader = 5,
}

impl RpcKind {
    pub fn from_u32(n: u32) -> Option<Self> {
        Some(match n {
            1 => RpcKind::AppendEntries,
            2 => RpcKind::Vote,
            3 => RpcKind::PreVote,
            4 => RpcKind::FullSnapshot,
            5 => RpcKind::TransferLeader,
            _ => return None,
        })
    }
}

/// Transport errors.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid peer address {address:?}: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("connecting to {address} failed: {reason}")]
    Connect { address: String, reason: String },
}

/// Makes channels to peer addresses. Production uses TCP; the simulation uses simulated TCP.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, address: &str) -> Result<Channel, TransportError>;
}

/// Plain TCP (HTTP/2 without TLS) to `host:port`, connecting lazily.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    pub connect_timeout: Duration,
}

impl Default for TcpConnector {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(1) }
    }
}

impl Connector for TcpConnector {
    fn connect(&self, address: &str) -> Result<Channel, TransportError> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| TransportError::BadAddress { address: address.to_string(), reason: e.to_string() })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        Ok(endpoint.connect_lazy())
    }
}

/// One channel per peer address, shared by every group and every internal client of the node.
pub struct Peers {
    connector: Arc<dyn Connector>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

impl Peers {
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        Self { connector, channels: Mutex::new(HashMap::new()) }
    }

    /// The channel to `address`, made on first use. tonic channels reconnect by themselves.
    pub fn channel(&self, address: &str) -> Result<Channel, TransportError> {
        let mut channels = self.channels.lock().expect("peers lock");
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = self.connector.connect(address)?;
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Encodes an RPC payload.
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    eddy_storage::codec::encode(value)
}

/// Decodes an RPC payload.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    eddy_storage::codec::decode(bytes, what).map_err(|e| e.to_string())
}
