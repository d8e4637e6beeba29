//! The Jepsen-style checker: one module per property, each reading the whole [`History`] of a
//! run and reporting anomalies.
//!
//! Outcomes of sends are `ok` (acknowledged, with an offset), `fail` (the broker said nothing
//! was written) or `unknown`. A record "is read" when any consumer poll, final read or replica
//! read returned it.
//!
//! [`History`]: crate::history::History

mod acknowledged;
mod consumers;
mod dense;
mod duplicates;
mod failed_sends;
mod groups;
mod liveness;
mod raft;
mod retention;
mod schemas;
mod security;
mod single_value;

use std::collections::BTreeMap;

use crate::history::{Entry, Event, ReadRecord};

/// The rules a history is held to; each anomaly names the one it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Property {
    /// An acknowledged send is missing from the final read (`acknowledged.rs`).
    AcknowledgedLost,
    /// An acknowledged send is in the final read, but not at its acknowledged offset.
    AcknowledgedMoved,
    /// A send of unknown outcome that some read returned (so it committed) is not in the final read.
    CommittedLost,
    /// A consumer went backwards or skipped an offset (`consumers.rs`).
    ConsumerOrder,
    /// Offsets are not dense from 0 to the high watermark (`dense.rs`).
    OffsetsNotDense,
    /// A value appears twice in the log (`duplicates.rs`).
    Duplicate,
    /// A read returned a failed send, a value never sent, or a value in another partition
    /// (`failed_sends.rs`).
    PhantomRead,
    /// After healing, a partition could not be read in full (`liveness.rs`).
    Unavailable,
    /// Two nodes led one group in one term (`raft.rs`).
    TwoLeadersInTerm,
    /// A replica's committed log is not a prefix of the final log (`raft.rs`).
    ReplicaLogDiverged,
    /// One (partition, offset) held two values across reads (`single_value.rs`).
    OffsetTwoValues,
    /// An ACKS_LEADER acknowledged value is in the final log, but not at the offset it was
    /// acknowledged with (`acknowledged.rs`). Its loss with the leadership is allowed.
    LeaderAckMoved,
    /// One partition delivered to two group members at one member epoch (`groups.rs`).
    GroupTwoOwners,
    /// A member's deliveries skipped or went back, or a record below the committed offset was
    /// never delivered to the group.
    GroupSkipped,
    /// A member committed an offset it had not reached.
    GroupCommitBeyondDelivered,
    /// An acknowledged commit was lost or undone.
    GroupCommitLost,
    /// After healing, the group had not committed the whole log (or its offsets could not be read).
    GroupBehind,
    /// Records of the retained topic vanished other than through retention: an acknowledged
    /// record at or above the log start is missing or moved, the log start passed what
    /// `retention.bytes` allows, or a replica lost records the leader retains (`retention.rs`).
    RetentionLost,
    /// A schema id named two schemas, one schema got two ids, or an acknowledged id no longer
    /// names its schema after healing (`schemas.rs`).
    SchemaIdChanged,
    /// An acknowledged version of a subject is missing or names another id after healing.
    SchemaVersionLost,
    /// The registry acknowledged a schema its compatibility level forbids.
    SchemaIncompatibleAccepted,
    /// After healing, no broker holds a user or ACL as its last acknowledged change left it, or
    /// one enforces a user or ACL no one asked for (`security.rs`).
    SecurityChangeLost,
    /// After healing, brokers still enforce different users or ACLs: one did not catch up.
    SecurityDiverged,
}

impl Property {
    /// Every property.
    pub const ALL: [Property; 23] = [
        Property::AcknowledgedLost,
        Property::AcknowledgedMoved,
        Property::CommittedLost,
        Property::ConsumerOrder,
        Property::OffsetsNotDense,
        Property::Duplicate,
        Property::PhantomRead,
        Property::Unavailable,
        Property::TwoLeadersInTerm,
        Property::ReplicaLogDiverged,
        Property::OffsetTwoValues,
        Property::LeaderAckMoved,
        Property::GroupTwoOwners,
        Property::GroupSkipped,
        Property::GroupCommitBeyondDelivered,
        Property::GroupCommitLost,
        Property::GroupBehind,
        Property::RetentionLost,
        Property::SchemaIdChanged,
        Property::SchemaVersionLost,
        Property::SchemaIncompatibleAccepted,
        Property::SecurityChangeLost,
        Property::SecurityDiverged,
    ];

    /// Whether a violation means data was lost, rewritten or invented (not merely unavailable).
    pub fn is_safety(self) -> bool {
        !matches!(self, Property::Unavailable | Property::GroupBehind | Property::SecurityDiverged)
    }

    /// The name printed in reports and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Property::AcknowledgedLost => "acknowledged_lost",
            Property::AcknowledgedMoved => "acknowledged_moved",
            Property::CommittedLost => "committed_lost",
            Property::ConsumerOrder => "consumer_order",
            Property::OffsetsNotDense => "offsets_not_dense",
            Property::Duplicate => "duplicate",
            Property::PhantomRead => "phantom_read",
            Property::Unavailable => "unavailable",
            Property::TwoLeadersInTerm => "two_leaders_in_term",
            Property::ReplicaLogDiverged => "replica_log_diverged",
            Property::OffsetTwoValues => "offset_two_values",
            Property::LeaderAckMoved => "leader_ack_moved",
            Property::GroupTwoOwners => "group_two_owners",
            Property::GroupSkipped => "group_skipped",
            Property::GroupCommitBeyondDelivered => "group_commit_beyond_delivered",
            Property::GroupCommitLost => "group_commit_lost",
            Property::GroupBehind => "group_behind",
            Property::RetentionLost => "retention_lost",
            Property::SchemaIdChanged => "schema_id_changed",
            Property::SchemaVersionLost => "schema_version_lost",
            Property::SchemaIncompatibleAccepted => "schema_incompatible_accepted",
            Property::SecurityChangeLost => "security_change_lost",
            Property::SecurityDiverged => "security_diverged",
        }
    }
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A violated property.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anomaly {
    pub property: Property,
    pub detail: String,
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.property, self.detail)
    }
}

/// What the checker found.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub anomalies: Vec<Anomaly>,
    /// Records in the final reads, each checked against every send and read.
    pub records_checked: u64,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Ok {
        offset: u64,
    },
    /// Acknowledged by the leader alone (ACKS_LEADER) at `offset`.
    LeaderOk {
        offset: u64,
    },
    Fail,
    Unknown,
}

/// One send of a unique value.
#[derive(Debug, Clone)]
pub struct Send {
    pub partition: u32,
    pub outcome: Outcome,
}

/// Where a read came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Poll { consumer: String, position: u64 },
    Final,
    Replica { node: u64 },
}

/// One read of one partition.
#[derive(Debug, Clone)]
pub struct Read {
    pub at_ms: u64,
    pub source: Source,
    pub partition: u32,
    pub records: Vec<ReadRecord>,
}

/// The history, indexed for the properties.
#[derive(Debug, Default)]
pub struct Model {
    /// Every value sent, by value.
    pub sends: BTreeMap<String, Send>,
    /// Every read, in history order.
    pub reads: Vec<Read>,
    /// The final read of each partition and its high watermark.
    pub finals: BTreeMap<u32, (Vec<ReadRecord>, u64)>,
    /// Partitions whose final read failed, with the reason.
    pub final_failures: BTreeMap<u32, String>,
    /// Leadership observations: (group, term) -> nodes seen leading it.
    pub leaders: BTreeMap<(u64, u64), Vec<u64>>,
    pub partitions: u32,
}

impl Model {
    pub fn new(entries: &[Entry], partitions: u32) -> Self {
        let mut model = Model { partitions, ..Model::default() };
        for entry in entries {
            match &entry.event {
                Event::SendInvoke { value, partition, .. } => {
                    model.sends.insert(value.clone(), Send { partition: *partition, outcome: Outcome::Pending });
                }
                Event::SendOk { value, offset, .. } => model.set_outcome(value, Outcome::Ok { offset: *offset }),
                Event::SendLeaderOk { value, offset, .. } => {
                    model.set_outcome(value, Outcome::LeaderOk { offset: *offset })
                }
                Event::SendFail { value, .. } => model.set_outcome(value, Outcome::Fail),
                Event::SendUnknown { value, .. } => model.set_outcome(value, Outcome::Unknown),
                Event::Poll { consumer, partition, position, records } => model.reads.push(Read {
                    at_ms: entry.at_ms,
                    source: Source::Poll { consumer: consumer.clone(), position: *position },
                    partition: *partition,
                    records: records.clone(),
                }),
                Event::FinalRead { partition, records, high_watermark } => {
                    model.finals.insert(*partition, (records.clone(), *high_watermark));
                    model.reads.push(Read {
                        at_ms: entry.at_ms,
                        source: Source::Final,
                        partition: *partition,
                        records: records.clone(),
                    });
                }
                Event::FinalReadFailed { partition, reason } => {
                    model.final_failures.insert(*partition, reason.clone());
                }
                Event::ReplicaRead { node, partition, records } => model.reads.push(Read {
                    at_ms: entry.at_ms,
                    source: Source::Replica { node: *node },
                    partition: *partition,
                    records: records.clone(),
                }),
                Event::Leader { group, term, node } => {
                    let nodes = model.leaders.entry((*group, *term)).or_default();
                    if !nodes.contains(node) {
                        nodes.push(*node);
                    }
                }
                Event::GroupDelivered { .. }
                | Event::RetainedAck { .. }
                | Event::RetainedFinal { .. }
                | Event::RetainedFinalFailed { .. }
                | Event::RetainedReplica { .. }
                | Event::GroupStarted { .. }
                | Event::GroupCommit { .. }
                | Event::GroupFinal { .. }
                | Event::SchemaAck { .. }
                | Event::SchemaRefused { .. }
                | Event::SchemaFinal { .. }
                | Event::SchemaFinalFailed { .. }
                | Event::SecurityChange { .. }
                | Event::SecurityFinal { .. }
                | Event::SecurityFinalFailed { .. }
                | Event::Fault { .. }
                | Event::Note { .. } => {}
            }
        }
        model
    }

    fn set_outcome(&mut self, value: &str, outcome: Outcome) {
        if let Some(send) = self.sends.get_mut(value) {
            send.outcome = outcome;
        }
    }
}

/// Checks every property against the history of a run over `partitions` partitions.
pub fn check(entries: &[Entry], partitions: u32) -> Verdict {
    let model = Model::new(entries, partitions);
    let mut anomalies = Vec::new();
    liveness::check(&model, &mut anomalies);
    acknowledged::check(&model, &mut anomalies);
    single_value::check(&model, &mut anomalies);
    duplicates::check(&model, &mut anomalies);
    dense::check(&model, &mut anomalies);
    consumers::check(&model, &mut anomalies);
    failed_sends::check(&model, &mut anomalies);
    raft::check(&model, &mut anomalies);
    groups::check(entries, &model, &mut anomalies);
    retention::check(entries, &mut anomalies);
    schemas::check(entries, &mut anomalies);
    security::check(entries, &mut anomalies);
    let records_checked = model.finals.values().map(|(records, _)| records.len() as u64).sum();
    Verdict { anomalies, records_checked }
}

#[cfg(test)]
mod tests;
