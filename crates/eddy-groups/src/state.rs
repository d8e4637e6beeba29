//! What a coordinator knows of its groups, and the records that change it.
//!
//! The coordinator's state changes only by [`GroupRecord`]s, applied by [`Groups::apply`]: the
//! leader of an offsets partition writes them to the partition's log and applies them once they
//! commit, and a new leader rebuilds the same state by applying the log from its start. Applying
//! is a pure function of the state and the record.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::TopicPartition;
use crate::assignor::Assignment;

/// One member of a group, as the coordinator last agreed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member_id: String,
    /// The member's epoch: the assignment epoch it has reached. 0 until its first assignment.
    pub epoch: u64,
    /// Its epoch before the last bump: a heartbeat whose answer was lost still carries it.
    pub previous_epoch: u64,
    /// What the client calls itself, for operators.
    pub client_id: String,
    pub subscriptions: BTreeSet<String>,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    /// Partitions the member was given and may consume.
    pub assigned: BTreeSet<TopicPartition>,
    /// Partitions the member was asked to give up and has not yet confirmed giving up. It still
    /// owns them: nobody else gets them until it confirms, or leaves, or is removed.
    pub revoking: BTreeSet<TopicPartition>,
}

impl Member {
    /// Whether the member owns `tp` (it may still be consuming it).
    pub fn owns(&self, tp: &TopicPartition) -> bool {
        self.assigned.contains(tp) || self.revoking.contains(tp)
    }
}

/// A committed offset: the next offset the group will consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: u64,
    /// Free text the committer attached (Kafka's offset metadata).
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A group's membership and assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub group_id: String,
    /// Bumped by every change of members, subscriptions or subscribed topics' partitions.
    pub epoch: u64,
    /// The group epoch the target assignment was computed for.
    pub assignment_epoch: u64,
    pub members: BTreeMap<String, Member>,
    /// Where every member is headed; members move there partition by partition.
    pub target: Assignment,
    /// Partition counts of the subscribed topics when the epoch was last bumped.
    pub partition_counts: BTreeMap<String, u32>,
    /// Target assignments computed so far (a rebalance each).
    pub rebalances: u64,
}

/// The state a group is in, as `eddy group describe` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupPhase {
    /// No members (offsets may remain).
    Empty,
    /// The target assignment is behind the group epoch.
    Assigning,
    /// Members are moving to the target assignment.
    Reconciling,
    /// Every member holds its target.
    Stable,
    /// The group does not exist (deleted, or never had members or offsets).
    Dead,
}

impl GroupPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupPhase::Empty => "empty",
            GroupPhase::Assigning => "assigning",
            GroupPhase::Reconciling => "reconciling",
            GroupPhase::Stable => "stable",
            GroupPhase::Dead => "dead",
        }
    }
}

impl Group {
    pub fn new(group_id: &str) -> Self {
        Self { group_id: group_id.to_string(), ..Default::default() }
    }

    pub fn phase(&self) -> GroupPhase {
        if self.members.is_empty() {
            return GroupPhase::Empty;
        }
        if self.assignment_epoch < self.epoch {
            return GroupPhase::Assigning;
        }
        let settled = self.members.values().all(|m| {
            m.epoch == self.assignment_epoch
                && m.revoking.is_empty()
                && self.target.get(&m.member_id).is_some_and(|t| *t == m.assigned)
        });
        if settled { GroupPhase::Stable } else { GroupPhase::Reconciling }
    }

    /// The member owning `tp`, if any.
    pub fn owner_of(&self, tp: &TopicPartition) -> Option<&Member> {
        self.members.values().find(|m| m.owns(tp))
    }
}

/// A change to a coordinator's state, as kept in its offsets partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupRecord {
    /// A member joined or changed (the whole member).
    MemberUpdated { group: String, member: Member },
    /// A member left or was removed.
    MemberRemoved { group: String, member_id: String },
    /// The group epoch moved, with the subscribed topics' partition counts at that epoch.
    EpochBumped { group: String, epoch: u64, partition_counts: BTreeMap<String, u32> },
    /// A new target assignment for `assignment_epoch`.
    TargetAssigned { group: String, assignment_epoch: u64, target: Assignment },
    /// An offset was committed (or reset by an operator).
    OffsetCommitted { group: String, partition: TopicPartition, committed: CommittedOffset },
    /// An operator removed a committed offset.
    OffsetDeleted { group: String, partition: TopicPartition },
    /// An operator deleted the (empty) group and its offsets.
    GroupDeleted { group: String },
}

impl GroupRecord {
    /// The group the record is about.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::MemberUpdated { group, .. }
            | GroupRecord::MemberRemoved { group, .. }
            | GroupRecord::EpochBumped { group, .. }
            | GroupRecord::TargetAssigned { group, .. }
            | GroupRecord::OffsetCommitted { group, .. }
            | GroupRecord::OffsetDeleted { group, .. }
            | GroupRecord::GroupDeleted { group } => group,
        }
    }
}

/// Every group of one coordinator (one offsets partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    groups: BTreeMap<String, Group>,
    /// Committed offsets by group, apart from the membership so that a heartbeat's working copy
    /// of a group does not copy them.
    offsets: BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>>,
}

impl Groups {
    /// The group's membership, if it has any state.
    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// Every group with members or offsets, by id.
    pub fn ids(&self) -> BTreeSet<&str> {
        self.groups.keys().chain(self.offsets.keys()).map(String::as_str).collect()
    }

    /// The group's phase: dead when it has neither members nor offsets.
    pub fn phase(&self, group_id: &str) -> GroupPhase {
        match self.groups.get(group_id) {
            Some(group) => group.phase(),
            None if self.offsets.contains_key(group_id) => GroupPhase::Empty,
            None => GroupPhase::Dead,
        }
    }

    /// The group's committed offsets.
    pub fn offsets(&self, group_id: &str) -> Option<&BTreeMap<TopicPartition, CommittedOffset>> {
        self.offsets.get(group_id)
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &GroupRecord) {
        match record {
            GroupRecord::MemberUpdated { group, member } => {
                self.entry(group).members.insert(member.member_id.clone(), member.clone());
            }
            GroupRecord::MemberRemoved { group, member_id } => {
                let g = self.entry(group);
                g.members.remove(member_id);
                g.target.remove(member_id);
            }
            GroupRecord::EpochBumped { group, epoch, partition_counts } => {
                let g = self.entry(group);
                debug_assert!(*epoch > g.epoch, "group epochs only grow");
                g.epoch = *epoch;
                g.partition_counts = partition_counts.clone();
            }
            GroupRecord::TargetAssigned { group, assignment_epoch, target } => {
                let g = self.entry(group);
                g.assignment_epoch = *assignment_epoch;
                g.target = target.clone();
                g.rebalances += 1;
            }
            GroupRecord::OffsetCommitted { group, partition, committed } => {
                self.offsets.entry(group.clone()).or_default().insert(partition.clone(), committed.clone());
            }
            GroupRecord::OffsetDeleted { group, partition } => {
                if let Some(offsets) = self.offsets.get_mut(group) {
                    offsets.remove(partition);
                    if offsets.is_empty() {
                        self.offsets.remove(group);
                    }
                }
            }
            GroupRecord::GroupDeleted { group } => {
                self.groups.remove(group);
                self.offsets.remove(group);
            }
        }
        // A group without members keeps its epoch (a member joining later must get a newer
        // one); it is forgotten only by deletion.
    }

    fn entry(&mut self, group_id: &str) -> &mut Group {
        self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id))
    }

    /// A working copy of one group for planning a change (a new group when it has no state).
    pub(crate) fn working_copy(&self, group_id: &str) -> Group {
        self.groups.get(group_id).cloned().unwrap_or_else(|| Group::new(group_id))
    }
}

/// Applies `record` to a working copy of its group, as [`Groups::apply`] does to the state.
pub(crate) fn apply_to_group(group: &mut Group, record: &GroupRecord) {
    let mut groups = Groups::default();
    groups.groups.insert(group.group_id.clone(), std::mem::take(group));
    groups.apply(record);
    *group = groups.groups.remove(record.group()).unwrap_or_else(|| Group::new(record.group()));
}
