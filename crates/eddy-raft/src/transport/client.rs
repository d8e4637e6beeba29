//! The sending side: openraft's network for one group, over the node's shared peer channels.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use eddy_proto::internal::RaftEnvelope;
use eddy_proto::internal::raft_transport_client::RaftTransportClient;
use openraft::errors::{NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, OptionalSend, RaftTypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Peers, RAFT_MESSAGE_MAX_BYTES, RpcKind, decode, encode};

/// The shortest time an AppendEntries is given, heartbeats included.
pub const APPEND_ENTRIES_TIMEOUT_MIN_MS: u64 = 1_000;
/// The transfer rate an AppendEntries is always allowed: its timeout grows by 1 ms for every
/// this many bytes of payload.
pub const APPEND_ENTRIES_BYTES_PER_MS: u64 = 1_000;

/// How long one AppendEntries of `payload_bytes` may take.
///
/// openraft offers a time to live derived from the heartbeat interval (150 ms with the default
/// 200 ms): fine for a heartbeat, fatal for a large batch. A request that needs longer than that
/// to transfer, decode and write is cut off every time and sent again, forever, and the partition
/// commits nothing more (one produce of 2 million tiny records wedged a partition that way). The
/// timeout therefore grows with the payload, from a floor unrelated to the heartbeat interval.
pub fn append_entries_timeout(payload_bytes: usize) -> Duration {
    Duration::from_millis(APPEND_ENTRIES_TIMEOUT_MIN_MS + payload_bytes as u64 / APPEND_ENTRIES_BYTES_PER_MS)
}

/// Creates [`GroupNetwork`]s for one group.
#[derive(Debug, Clone)]
pub struct GroupNetworkFactory {
    peers: Arc<Peers>,
    group: u64,
}

impl GroupNetworkFactory {
    pub fn new(peers: Arc<Peers>, group: u64) -> Self {
        Self { peers, group }
    }
}

impl<C> RaftNetworkFactory<C> for GroupNetworkFactory
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
{
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        GroupNetwork { peers: self.peers.clone(), group: self.group, target, address: node.addr.clone() }
    }
}

/// openraft's connection from one group to one peer.
#[derive(Debug)]
pub struct GroupNetwork {
    peers: Arc<Peers>,
    group: u64,
    target: u64,
    address: String,
}

/// Why an RPC did not get an answer.
enum CallError {
    /// The peer could not be reached or does not (yet) host the group: back off.
    Unreachable(String),
    /// A transient failure (timeout, broken connection).
    Network(String),
}

impl CallError {
    fn into_rpc<C: RaftTypeConfig>(self) -> RPCError<C> {
        match self {
            CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            CallError::Network(m) => RPCError::Network(NetworkError::from_string(m)),
        }
    }
}

impl GroupNetwork {
    async fn call(&self, kind: RpcKind, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, CallError> {
        let address = self.peers.address_of(self.target).unwrap_or_else(|| self.address.clone());
        let channel = self.peers.channel(&address).map_err(|e| CallError::Unreachable(e.to_string()))?;
        let mut client = RaftTransportClient::new(channel)
            .max_decoding_message_size(RAFT_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(RAFT_MESSAGE_MAX_BYTES);
        let request = RaftEnvelope { group_id: self.group, kind: kind as u32, payload: payload.into() };
        match tokio::time::timeout(timeout, client.call(request)).await {
            Err(_) => Err(CallError::Network(format!(
                "{kind:?} to node {} for group {} timed out after {timeout:?}",
                self.target, self.group
            ))),
            Ok(Err(status)) => match status.code() {
                tonic::Code::Unavailable | tonic::Code::NotFound | tonic::Code::Unimplemented => Err(
                    CallError::Unreachable(format!("node {} group {}: {}", self.target, self.group, status.message())),
                ),
                _ => Err(CallError::Network(format!("node {} group {}: {status}", self.target, self.group))),
            },
            Ok(Ok(response)) => Ok(response.into_inner().payload.to_vec()),
        }
    }

    async fn request<C, Req, Resp>(&self, kind: RpcKind, rpc: &Req, option: &RPCOption) -> Result<Resp, RPCError<C>>
    where
        C: RaftTypeConfig,
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let payload = encode(rpc);
        let timeout = match kind {
            RpcKind::AppendEntries => append_entries_timeout(payload.len()),
            _ => option.soft_ttl(),
        };
        let bytes = self.call(kind, payload, timeout).await.map_err(CallError::into_rpc)?;
        let result: Result<Resp, RaftError<C>> =
            decode(&bytes, "raft response").map_err(|e| RPCError::Network(NetworkError::from_string(e.to_string())))?;
        // A remote Fatal means the peer's group is shutting down: treat it as unreachable.
        result.map_err(|e| RPCError::Unreachable(Unreachable::from_string(e.to_string())))
    }
}

impl<C> RaftNetworkV2<C> for GroupNetwork
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
{
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        self.request(RpcKind::AppendEntries, &rpc, &option).await
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        self.request(RpcKind::Vote, &rpc, &option).await
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        self.request(RpcKind::PreVote, &rpc, &option).await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        self.request(RpcKind::TransferLeader, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let payload = encode(&(vote, snapshot.meta, snapshot.snapshot.into_inner()));
        let call = self.call(RpcKind::FullSnapshot, payload, option.soft_ttl());
        let bytes = tokio::select! {
            biased;
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = call => result.map_err(|e| StreamingError::from(e.into_rpc::<C>()))?,
        };
        let result: Result<SnapshotResponse<C>, openraft::errors::Fatal<C>> = decode(&bytes, "snapshot response")
            .map_err(|e| StreamingError::Network(NetworkError::from_string(e.to_string())))?;
        result.map_err(|e| StreamingError::Unreachable(Unreachable::from_string(e.to_string())))
    }
}
