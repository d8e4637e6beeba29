//! Node-to-node Raft payloads as the transport's server decodes them (`handle_raft_rpc` and
//! the controller's RPC service): the protobuf envelope, then its bincode payload as the RPC
//! its kind names, for a partition's group and the controller's; and the controller's request
//! envelope. A decoded payload must survive its own encoding.

#![no_main]

use eddy_controller::{ControllerRequest, ControllerTypes};
use eddy_partition::PartitionTypes;
use eddy_proto::internal::{ControllerEnvelope, RaftEnvelope};
use eddy_raft::transport::{RpcKind, decode, encode};
use libfuzzer_sys::fuzz_target;
use openraft::RaftTypeConfig;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    match selector % 4 {
        0 => {
            if let Ok(envelope) = RaftEnvelope::decode(bytes) {
                if let Some(kind) = RpcKind::from_u32(envelope.kind) {
                    group_rpc::<PartitionTypes>(kind, &envelope.payload);
                }
            }
        }
        1 => {
            if let Ok(envelope) = ControllerEnvelope::decode(bytes) {
                round_trip::<ControllerRequest>(&envelope.payload);
            }
        }
        // Payloads without their envelope, so the fuzzer need not learn protobuf first.
        2 => match bytes.split_first() {
            Some((&kind, payload)) if kind & 1 == 0 => {
                if let Some(kind) = RpcKind::from_u32(u32::from(kind >> 1)) {
                    group_rpc::<PartitionTypes>(kind, payload);
                }
            }
            Some((&kind, payload)) => {
                if let Some(kind) = RpcKind::from_u32(u32::from(kind >> 1)) {
                    group_rpc::<ControllerTypes>(kind, payload);
                }
            }
            None => {}
        },
        _ => round_trip::<ControllerRequest>(bytes),
    }
});

/// Decodes `payload` as the server does for an RPC of `kind` to a group of type `C`.
fn group_rpc<C: RaftTypeConfig>(kind: RpcKind, payload: &[u8]) {
    match kind {
        RpcKind::AppendEntries => round_trip::<AppendEntriesRequest<C>>(payload),
        RpcKind::Vote | RpcKind::PreVote => round_trip::<VoteRequest<C>>(payload),
        RpcKind::FullSnapshot => round_trip::<(VoteOf<C>, SnapshotMetaOf<C>, Vec<u8>)>(payload),
        RpcKind::TransferLeader => round_trip::<TransferLeaderRequest<C>>(payload),
        // The answer to a ping: the groups the peer leads.
        RpcKind::NodePing => round_trip::<Vec<u64>>(payload),
        RpcKind::NodeListOffsets => {
            let _ = eddy_proto::v1::ListOffsetsRequest::decode(payload);
        }
    }
}

/// Decodes `payload` as `T` and, when it decodes, its encoding must decode to the same bytes
/// again (bincode's encoding of a value is unique).
fn round_trip<T: Serialize + DeserializeOwned>(payload: &[u8]) {
    let Ok(value) = decode::<T>(payload, "fuzz input") else { return };
    let encoded = encode(&value);
    let again: T = decode(&encoded, "re-encoded fuzz input").expect("a decoded payload re-encodes decodably");
    assert_eq!(encode(&again), encoded, "a decoded payload survives its own encoding");
}
