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
    /// Node to node, not for a group: are you there, and which groups do you lead? The answer
    /// is the bincode-encoded `Vec<u64>` of the groups whose leader the answering node is. Idle
    /// groups stop their Raft ticks and rely on it (see the broker's `quiesce` module).
    NodePing = 6,
    /// Node to node, not for a group: the log start, high watermark or offset for a time of a
    /// partition this node leads. The payload is a protobuf `eddy.v1.ListOffsetsRequest`, the
    /// answer a `ListOffsetsResponse`. Brokers ask a partition's leader this for lag and topic
    /// descriptions, over the inter-broker listener like the rest of their traffic.
    NodeListOffsets = 7,
}

impl RpcKind {
    pub fn from_u32(n: u32) -> Option<Self> {
        Some(match n {
            1 => RpcKind::AppendEntries,
            2 => RpcKind::Vote,
            3 => RpcKind::PreVote,
            4 => RpcKind::FullSnapshot,
            5 => RpcKind::TransferLeader,
            6 => RpcKind::NodePing,
            7 => RpcKind::NodeListOffsets,
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
    /// A node-to-node payload could not be decoded (a bug, or nodes of incompatible versions).
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
}

/// Makes channels to peer addresses. Production uses TCP; the simulation uses simulated TCP.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, address: &str) -> Result<Channel, TransportError>;
}

pub use eddy_limits::RAFT_MESSAGE_MAX_BYTES;

/// Longest wait for a node-to-node TCP connection to be set up.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// A peer connection that has received nothing for this long is sent an HTTP/2 PING.
pub const PEER_KEEPALIVE_INTERVAL_MS: u64 = 2_000;
/// A PING unanswered for this long closes the connection; the channel then reconnects.
pub const PEER_KEEPALIVE_TIMEOUT_MS: u64 = 2_000;

/// The endpoint every node-to-node channel is built from, in production and in the simulation.
///
/// The keep-alive is what makes a channel recover from a connection that died silently: a peer
/// that lost power (no RST ever comes), a NAT or firewall that forgot the flow, or, in the
/// simulation, a TCP segment dropped by a faulty link (turmoil does not retransmit, so every
/// later byte waits behind the hole). Without it, a tonic channel keeps sending every request
/// into the dead connection and each one times out, for good: the controller never hears the
/// broker again and the Raft groups behind that channel never elect or replicate (simulation
/// seeds 1122, 1288 and 1391). With it, the dead connection is closed within
/// `PEER_KEEPALIVE_INTERVAL_MS + PEER_KEEPALIVE_TIMEOUT_MS` and the next request reconnects.
pub fn peer_endpoint(address: &str) -> Result<Endpoint, TransportError> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| TransportError::BadAddress { address: address.to_string(), reason: e.to_string() })?;
    Ok(endpoint
        .connect_timeout(Duration::from_millis(PEER_CONNECT_TIMEOUT_MS))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_millis(PEER_KEEPALIVE_INTERVAL_MS))
        .keep_alive_timeout(Duration::from_millis(PEER_KEEPALIVE_TIMEOUT_MS))
        .keep_alive_while_idle(true))
}

/// Plain TCP (HTTP/2 without TLS) to `host:port`, connecting lazily.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, address: &str) -> Result<Channel, TransportError> {
        Ok(peer_endpoint(address)?.connect_lazy())
    }
}

/// Mutual TLS to the other brokers' inter-broker listeners, connecting lazily: this broker
/// presents its certificate and trusts the inter-broker CA.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    pub tls: eddy_tls::ClientTls,
}

impl Connector for TlsConnector {
    fn connect(&self, address: &str) -> Result<Channel, TransportError> {
        Ok(self.tls.channel(peer_endpoint(address)?))
    }
}

/// One channel per peer address, shared by every group and every internal client of the node,
/// and the address book of the cluster's nodes.
pub struct Peers {
    connector: Arc<dyn Connector>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Every node's current address, from the controller's metadata. A Raft group's membership
    /// keeps the address a node had when it joined; a node that restarts at another address is
    /// reached at its current one.
    addresses: Mutex<HashMap<u64, String>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

impl Peers {
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        Self { connector, channels: Mutex::new(HashMap::new()), addresses: Mutex::new(HashMap::new()) }
    }

    /// Replaces the address book.
    pub fn set_addresses(&self, addresses: HashMap<u64, String>) {
        *self.addresses.lock().expect("addresses lock") = addresses;
    }

    /// `node`'s current address, if the address book has it.
    pub fn address_of(&self, node: u64) -> Option<String> {
        self.addresses.lock().expect("addresses lock").get(&node).cloned()
    }

    /// Every node in the address book, with its address.
    pub fn known(&self) -> Vec<(u64, String)> {
        self.addresses.lock().expect("addresses lock").iter().map(|(id, a)| (*id, a.clone())).collect()
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
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, TransportError> {
    eddy_storage::codec::decode(bytes, what).map_err(|e| TransportError::Malformed { what, reason: e.to_string() })
}
