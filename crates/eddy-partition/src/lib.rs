//! An Eddy partition: everything that makes one partition's Raft group a partition log.
//!
//! Start here, in this order:
//! - [`records`]: what a partition stores ([`Record`], [`RecordBatch`]) and the command its group
//!   replicates ([`PartitionCommand`]) with its outcome ([`PartitionResponse`]).
//! - [`state_machine`]: applies committed commands. It assigns offsets (`base_offset =
//!   next_offset`), decides idempotent batches by the rules in [`dedup`], and writes only index
//!   entries and state through [`store`]: the records stay in their Raft entries, so the Raft log
//!   is the partition log.
//! - [`reader`]: reads records by offset and by time through the index and the Raft log.
//! - [`replica`]: one partition replica on a node: its Raft group, reader, published
//!   [`PartitionView`], and [`replica::Replica::propose`], which the leader's [`sequencer`] orders
//!   so that ACKS_LEADER can answer the offset a batch will get before it commits.
//!
//! Architecture invariant: below this crate, storage (`eddy-storage`) holds bytes under keys and
//! Raft log entries; above it, the broker (`eddy-broker`) speaks gRPC and knows the cluster. A
//! rule about offsets, producers or a partition's index lives here and nowhere else.

pub mod dedup;
pub mod reader;
pub mod records;
pub mod replica;
pub mod sequencer;
pub mod state_machine;
pub mod store;
mod stored;

pub use dedup::PRODUCER_IDLE_EXPIRY_MS_DEFAULT;
pub use reader::{PartitionReader, ReadLimits, Retention, open_partition};
pub use records::{
    HEADER_OVERHEAD_BYTES, PartitionCommand, PartitionResponse, ProducerBatch, RECORD_OVERHEAD_BYTES, Record,
    RecordBatch,
};
pub use replica::{LocalLeadership, OpenError, Replica, ReplicaPlacement};
pub use sequencer::{Outcome, Proposal, ProposeError, Proposed};
pub use state_machine::{PartitionStateMachine, PartitionView};
pub use store::{destroy, has_data};
pub use stored::stored_records;

openraft::declare_raft_types!(
    /// Types of a partition's Raft group.
    pub PartitionTypes:
        D = PartitionCommand,
        R = PartitionResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = eddy_raft::RaftRuntime,
        // Standard Raft: at most one leader per term (the simulation checks it).
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

/// A partition's Raft handle.
pub type PartitionRaft = openraft::Raft<PartitionTypes, PartitionStateMachine>;
