//! The receiving side: one tonic service that hands each envelope to its group's Raft.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use eddy_proto::internal::RaftEnvelope;
use eddy_proto::internal::raft_transport_server::RaftTransport;
use openraft::errors::RaftError;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use openraft::vote::{RaftLeaderId, RaftVote};
use openraft::{Raft, RaftTypeConfig};
use tonic::{Request, Response, Status};

use super::{RpcKind, TransportError, decode, encode};

/// Finds the Raft group an envelope is for and lets it handle the RPC.
#[tonic::async_trait]
pub trait RaftRouter: Send + Sync + 'static {
    /// Handles one RPC for `group` from `sender`, the node id the caller's broker certificate
    /// names (`None` without mutual TLS). `Status::not_found` when this node does not host the
    /// group (yet): the sender backs off and retries.
    async fn dispatch(&self, group: u64, kind: RpcKind, payload: Bytes, sender: Option<u64>)
    -> Result<Vec<u8>, Status>;
}

/// Decodes an RPC for `raft`, runs it and encodes the answer.
///
/// With `sender` known (mutual TLS between brokers), an RPC that speaks for a node — a leader's
/// entries, snapshot or hand-over, a candidate's (pre-)vote — is refused unless that node is the
/// sender: one broker's certificate cannot campaign or lead in another's name.
pub async fn handle_raft_rpc<C, SM>(
    raft: &Raft<C, SM>,
    kind: RpcKind,
    payload: &[u8],
    sender: Option<u64>,
) -> Result<Vec<u8>, Status>
where
    C: RaftTypeConfig<NodeId = u64>,
    SM: RaftStateMachine<C, SnapshotData = Cursor<Vec<u8>>>,
{
    let bad = |e: TransportError| Status::invalid_argument(e.to_string());
    let speaks_for = |vote: &VoteOf<C>, what: &str| {
        let claimed = *vote.leader_id().node_id();
        match sender {
            Some(sender) if claimed != sender => {
                tracing::warn!(sender, claimed, rpc = what, "refused a Raft RPC in another node's name");
                Err(Status::permission_denied(format!(
                    "the certificate of broker {sender} cannot send a {what} for node {claimed}"
                )))
            }
            _ => Ok(()),
        }
    };
    Ok(match kind {
        RpcKind::AppendEntries => {
            let rpc: AppendEntriesRequest<C> = decode(payload, "append entries").map_err(bad)?;
            speaks_for(&rpc.vote, "append entries")?;
            encode(&raft.append_entries(rpc).await)
        }
        RpcKind::Vote => {
            let rpc: VoteRequest<C> = decode(payload, "vote").map_err(bad)?;
            speaks_for(&rpc.vote, "vote request")?;
            encode(&raft.vote(rpc).await)
        }
        RpcKind::PreVote => {
            let rpc: VoteRequest<C> = decode(payload, "pre-vote").map_err(bad)?;
            speaks_for(&rpc.vote, "pre-vote request")?;
            encode(&raft.pre_vote(rpc).await)
        }
        RpcKind::FullSnapshot => {
            let (vote, meta, bytes): (VoteOf<C>, SnapshotMetaOf<C>, Vec<u8>) =
                decode(payload, "snapshot").map_err(bad)?;
            speaks_for(&vote, "snapshot")?;
            let snapshot = Snapshot { meta, snapshot: Cursor::new(bytes) };
            encode(&raft.install_full_snapshot(vote, snapshot).await)
        }
        RpcKind::TransferLeader => {
            let rpc: TransferLeaderRequest<C> = decode(payload, "transfer leader").map_err(bad)?;
            speaks_for(rpc.from_leader(), "leadership transfer")?;
            encode(&raft.handle_transfer_leader(rpc).await.map_err(RaftError::<C>::Fatal))
        }
        RpcKind::NodePing | RpcKind::NodeListOffsets => {
            return Err(Status::invalid_argument("a node-to-node query is not addressed to a group"));
        }
    })
}

/// The tonic service serving every group's Raft RPCs.
pub struct RaftTransportService {
    router: Arc<dyn RaftRouter>,
}

impl RaftTransportService {
    pub fn new(router: Arc<dyn RaftRouter>) -> Self {
        Self { router }
    }
}

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    async fn call(&self, request: Request<RaftEnvelope>) -> Result<Response<RaftEnvelope>, Status> {
        // Over mutual TLS only brokers' certificates speak Raft (any CA-signed certificate passes
        // the handshake; a client's must not reach here).
        let sender = eddy_tls::peer_broker(eddy_tls::peer_info(&request)).map_err(Status::permission_denied)?;
        let envelope = request.into_inner();
        let kind = RpcKind::from_u32(envelope.kind)
            .ok_or_else(|| Status::invalid_argument(format!("unknown raft rpc kind {}", envelope.kind)))?;
        let payload = self.router.dispatch(envelope.group_id, kind, envelope.payload, sender).await?;
        Ok(Response::new(RaftEnvelope { group_id: envelope.group_id, kind: envelope.kind, payload: payload.into() }))
    }
}
