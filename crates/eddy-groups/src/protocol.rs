//! The group protocol's rules: what a heartbeat, a commit, a reset or a deletion changes.
//!
//! Each rule reads the coordinator's [`Groups`] and returns a [`Plan`]: the records to write and
//! the answer to give once they commit. Nothing changes until the coordinator has written the
//! records and applied them; a plan with no records (most heartbeats) writes nothing.
//!
//! Reconciliation of a member, at every heartbeat (as in Kafka's KIP-848):
//! 1. A member with partitions to give up (`revoking`) confirms by reporting owned partitions
//!    without them; until then it keeps them and gets nothing new.
//! 2. A member assigned partitions its target lacks is asked to give those up (moved from
//!    `assigned` to `revoking`); its epoch stays.
//! 3. Otherwise the member moves to the assignment epoch and gets every partition of its target
//!    that no other member owns; the rest follow at later heartbeats, once their owners let go.
//!
//! So a partition is owned (assigned or revoking) by at most one member at any time.

use std::collections::{BTreeMap, BTreeSet};

use crate::assignor::{AssignmentSpec, assign};
use crate::error::GroupError;
use crate::state::{CommittedOffset, Group, GroupRecord, Groups, Member, apply_to_group};
use crate::{
    GROUP_ID_LEN_MAX, HEARTBEAT_INTERVAL_MS_DEFAULT, REBALANCE_TIMEOUT_MS_DEFAULT, REBALANCE_TIMEOUT_MS_MAX,
    REBALANCE_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_DEFAULT, SESSION_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MIN,
    TopicPartition,
};

/// The member epoch that joins (or rejoins) a group.
pub const JOIN_EPOCH: i64 = 0;
/// The member epoch that leaves a group.
pub const LEAVE_EPOCH: i64 = -1;

/// Records to write, and the answer to give once they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<T> {
    pub records: Vec<GroupRecord>,
    pub answer: T,
}

/// A member's heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    pub group_id: String,
    /// Chosen by the member (a UUID), kept for its lifetime.
    pub member_id: String,
    /// [`JOIN_EPOCH`] to join, [`LEAVE_EPOCH`] to leave, else the epoch it was last given.
    pub member_epoch: i64,
    pub client_id: String,
    /// Subscribed topic names; required to join, `None` when unchanged.
    pub subscriptions: Option<BTreeSet<String>>,
    /// Partitions the member owns now; `None` when unchanged since the last heartbeat. Leaving
    /// out partitions it was asked to give up confirms that it gave them up.
    pub owned: Option<BTreeSet<TopicPartition>>,
    /// 0 for the default.
    pub session_timeout_ms: u64,
    /// How long the member may take to give up partitions; 0 for the default.
    pub rebalance_timeout_ms: u64,
}

/// What a heartbeat answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub member_epoch: i64,
    /// The partitions the member may consume now (its revoking ones excluded).
    pub assignment: BTreeSet<TopicPartition>,
    /// When to heartbeat next.
    pub heartbeat_interval_ms: u64,
}

/// An offset commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub group_id: String,
    /// Empty, with a negative epoch, for a consumer outside the group protocol (manual
    /// assignment): accepted only while the group has no members.
    pub member_id: String,
    pub member_epoch: i64,
    pub offsets: Vec<(TopicPartition, CommittedOffset)>,
}

/// A group's working copy and the records that made it.
struct Change {
    group: Group,
    records: Vec<GroupRecord>,
}

impl Change {
    fn emit(&mut self, record: GroupRecord) {
        apply_to_group(&mut self.group, &record);
        self.records.push(record);
    }

    fn id(&self) -> String {
        self.group.group_id.clone()
    }

    /// Bumps the group epoch and computes the target assignment for it.
    fn bump_and_assign(&mut self, partition_counts: BTreeMap<String, u32>) {
        self.emit(GroupRecord::EpochBumped { group: self.id(), epoch: self.group.epoch + 1, partition_counts });
        let subscriptions: BTreeMap<String, BTreeSet<String>> =
            self.group.members.values().map(|m| (m.member_id.clone(), m.subscriptions.clone())).collect();
        let target = assign(AssignmentSpec {
            subscriptions: &subscriptions,
            partition_counts: &self.group.partition_counts,
            previous: &self.group.target,
        });
        self.emit(GroupRecord::TargetAssigned { group: self.id(), assignment_epoch: self.group.epoch, target });
    }
}

/// Partition counts of the topics the group's members subscribe to (the ones that exist).
fn subscribed_counts(group: &Group, partition_counts: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    let topics: BTreeSet<&String> = group.members.values().flat_map(|m| m.subscriptions.iter()).collect();
    topics.into_iter().filter_map(|t| partition_counts.get(t).map(|n| (t.clone(), *n))).collect()
}

/// Checks a group id: 1 to [`GROUP_ID_LEN_MAX`] bytes, no control characters.
pub fn validate_group_id(group_id: &str) -> Result<(), GroupError> {
    let reason = if group_id.is_empty() {
        "it is empty"
    } else if group_id.len() > GROUP_ID_LEN_MAX {
        "it is longer than 255 bytes"
    } else if group_id.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(GroupError::InvalidGroupId { group_id: group_id.to_string(), reason })
}

fn timeout_ms(value: u64, default: u64, min: u64, max: u64, what: &str) -> Result<u64, GroupError> {
    match value {
        0 => Ok(default),
        v if (min..=max).contains(&v) => Ok(v),
        v => Err(GroupError::InvalidRequest(format!("{what} {v} ms is outside {min}..={max} ms"))),
    }
}

impl Groups {
    /// Plans a heartbeat: join, leave, or stay and move towards the target assignment.
    /// `partition_counts` holds every existing topic's partition count.
    pub fn plan_heartbeat(
        &self,
        heartbeat: &Heartbeat,
        partition_counts: &BTreeMap<String, u32>,
    ) -> Result<Plan<HeartbeatAnswer>, GroupError> {
        validate_group_id(&heartbeat.group_id)?;
        if heartbeat.member_id.is_empty() {
            return Err(GroupError::InvalidRequest("a member id is required (the client picks a UUID)".into()));
        }
        let mut change = Change { group: self.working_copy(&heartbeat.group_id), records: Vec::new() };
        let member_id = heartbeat.member_id.clone();
        let mut bump = false;
        match heartbeat.member_epoch {
            LEAVE_EPOCH => {
                if change.group.members.contains_key(&member_id) {
                    change.emit(GroupRecord::MemberRemoved { group: change.id(), member_id });
                    let counts = subscribed_counts(&change.group, partition_counts);
                    change.bump_and_assign(counts);
                }
                return Ok(Plan {
                    records: change.records,
                    answer: HeartbeatAnswer {
                        member_epoch: LEAVE_EPOCH,
                        assignment: BTreeSet::new(),
                        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
                    },
                });
            }
            JOIN_EPOCH => {
                let Some(subscriptions) = &heartbeat.subscriptions else {
                    return Err(GroupError::InvalidRequest("a joining member must name its subscribed topics".into()));
                };
                // A member rejoining under its id (after it was fenced) starts over: it owns nothing.
                let member = Member {
                    member_id: member_id.clone(),
                    epoch: 0,
                    previous_epoch: 0,
                    client_id: heartbeat.client_id.clone(),
                    subscriptions: subscriptions.clone(),
                    session_timeout_ms: timeout_ms(
                        heartbeat.session_timeout_ms,
                        SESSION_TIMEOUT_MS_DEFAULT,
                        SESSION_TIMEOUT_MS_MIN,
                        SESSION_TIMEOUT_MS_MAX,
                        "session timeout",
                    )?,
                    rebalance_timeout_ms: timeout_ms(
                        heartbeat.rebalance_timeout_ms,
                        REBALANCE_TIMEOUT_MS_DEFAULT,
                        REBALANCE_TIMEOUT_MS_MIN,
                        REBALANCE_TIMEOUT_MS_MAX,
                        "rebalance timeout",
                    )?,
                    assigned: BTreeSet::new(),
                    revoking: BTreeSet::new(),
                };
                change.emit(GroupRecord::MemberUpdated { group: change.id(), member });
                bump = true;
            }
            epoch if epoch > 0 => {
                let Some(member) = change.group.members.get(&member_id) else {
                    return Err(GroupError::UnknownMember { group_id: change.id(), member_id });
                };
                // The previous epoch is accepted (the answer that moved the member on may have
                // been lost), but only while what it claims to own is still assigned to it at
                // the current epoch: otherwise it holds partitions that may be another member's
                // by now (as KIP-848 rules).
                let stale_claim = epoch as u64 != member.epoch
                    && heartbeat.owned.as_ref().is_some_and(|owned| !owned.iter().all(|tp| member.owns(tp)));
                if (epoch as u64 != member.epoch && epoch as u64 != member.previous_epoch) || stale_claim {
                    return Err(GroupError::FencedMemberEpoch {
                        group_id: change.id(),
                        member_id,
                        sent: epoch,
                        current: member.epoch,
                    });
                }
                if let Some(subscriptions) = &heartbeat.subscriptions
                    && *subscriptions != member.subscriptions
                {
                    let member = Member { subscriptions: subscriptions.clone(), ..member.clone() };
                    change.emit(GroupRecord::MemberUpdated { group: change.id(), member });
                    bump = true;
                }
            }
            epoch => return Err(GroupError::InvalidRequest(format!("member epoch {epoch} is not valid"))),
        }
        let counts = subscribed_counts(&change.group, partition_counts);
        if bump || counts != change.group.partition_counts {
            change.bump_and_assign(counts);
        }
        reconcile(&mut change, &member_id, heartbeat.owned.as_ref());
        let member = &change.group.members[&member_id];
        let answer = HeartbeatAnswer {
            member_epoch: member.epoch as i64,
            assignment: member.assigned.clone(),
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT.min(member.session_timeout_ms / 3),
        };
        Ok(Plan { records: change.records, answer })
    }

    /// Plans removing a member whose session expired or who did not give up partitions within
    /// its rebalance timeout. Nothing to write when it is gone already.
    pub fn plan_remove_member(
        &self,
        group_id: &str,
        member_id: &str,
        partition_counts: &BTreeMap<String, u32>,
    ) -> Plan<()> {
        let mut change = Change { group: self.working_copy(group_id), records: Vec::new() };
        if change.group.members.contains_key(member_id) {
            change.emit(GroupRecord::MemberRemoved { group: change.id(), member_id: member_id.to_string() });
            let counts = subscribed_counts(&change.group, partition_counts);
            change.bump_and_assign(counts);
        }
        Plan { records: change.records, answer: () }
    }

    /// Plans an offset commit: the member must be current and own every partition, and no
    /// offset may move back.
    pub fn plan_commit(&self, commit: &Commit) -> Result<Plan<()>, GroupError> {
        validate_group_id(&commit.group_id)?;
        let group_id = &commit.group_id;
        let group = self.group(group_id);
        let members = group.map_or(0, |g| g.members.len());
        let member = if commit.member_epoch < 0 && commit.member_id.is_empty() {
            if members > 0 {
                return Err(GroupError::UnknownMember { group_id: group_id.clone(), member_id: String::new() });
            }
            None
        } else {
            let member = group.and_then(|g| g.members.get(&commit.member_id)).ok_or_else(|| {
                GroupError::UnknownMember { group_id: group_id.clone(), member_id: commit.member_id.clone() }
            })?;
            let (sent, current) = (commit.member_epoch, member.epoch);
            if sent < 0 || sent as u64 > current {
                let member_id = commit.member_id.clone();
                return Err(GroupError::FencedMemberEpoch { group_id: group_id.clone(), member_id, sent, current });
            }
            if (sent as u64) < current {
                let member_id = commit.member_id.clone();
                return Err(GroupError::StaleMemberEpoch { group_id: group_id.clone(), member_id, sent, current });
            }
            Some(member)
        };
        let committed = self.offsets(group_id);
        let mut records = Vec::new();
        for (partition, offset) in &commit.offsets {
            if let Some(member) = member
                && !member.owns(partition)
            {
                return Err(GroupError::NotAssigned {
                    group_id: group_id.clone(),
                    member_id: member.member_id.clone(),
                    partition: partition.clone(),
                });
            }
            let previous = committed.and_then(|c| c.get(partition));
            if let Some(previous) = previous
                && offset.offset < previous.offset
            {
                return Err(GroupError::OffsetRegression {
                    group_id: group_id.clone(),
                    partition: partition.clone(),
                    committed: previous.offset,
                    requested: offset.offset,
                });
            }
            let unchanged = previous.is_some_and(|p| p.offset == offset.offset && p.metadata == offset.metadata);
            if !unchanged {
                records.push(GroupRecord::OffsetCommitted {
                    group: group_id.clone(),
                    partition: partition.clone(),
                    committed: offset.clone(),
                });
            }
        }
        Ok(Plan { records, answer: () })
    }

    /// Plans an operator's offset reset: only while the group has no members; offsets may move
    /// either way.
    pub fn plan_reset_offsets(
        &self,
        group_id: &str,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<Plan<()>, GroupError> {
        validate_group_id(group_id)?;
        self.ensure_empty(group_id)?;
        let records = offsets
            .iter()
            .map(|(partition, committed)| GroupRecord::OffsetCommitted {
                group: group_id.to_string(),
                partition: partition.clone(),
                committed: committed.clone(),
            })
            .collect();
        Ok(Plan { records, answer: () })
    }

    /// Plans deleting a group without members, with its offsets.
    pub fn plan_delete_group(&self, group_id: &str) -> Result<Plan<()>, GroupError> {
        validate_group_id(group_id)?;
        if self.phase(group_id) == crate::GroupPhase::Dead {
            return Err(GroupError::GroupNotFound(group_id.to_string()));
        }
        self.ensure_empty(group_id)?;
        Ok(Plan { records: vec![GroupRecord::GroupDeleted { group: group_id.to_string() }], answer: () })
    }

    fn ensure_empty(&self, group_id: &str) -> Result<(), GroupError> {
        match self.group(group_id).map_or(0, |g| g.members.len()) {
            0 => Ok(()),
            members => Err(GroupError::GroupNotEmpty { group_id: group_id.to_string(), members }),
        }
    }
}

/// Moves one member a step towards its target (see the module docs).
fn reconcile(change: &mut Change, member_id: &str, owned: Option<&BTreeSet<TopicPartition>>) {
    let group = &change.group;
    let before = &group.members[member_id];
    let mut member = before.clone();
    if !member.revoking.is_empty() && owned.is_some_and(|owned| owned.is_disjoint(&member.revoking)) {
        member.revoking.clear();
    }
    if member.revoking.is_empty() {
        let target = group.target.get(member_id).cloned().unwrap_or_default();
        let revoke: BTreeSet<TopicPartition> = member.assigned.difference(&target).cloned().collect();
        if !revoke.is_empty() {
            member.assigned.retain(|tp| target.contains(tp));
            member.revoking = revoke;
        } else {
            for tp in target.difference(&before.assigned) {
                let owned_elsewhere = group.members.values().any(|m| m.member_id != member_id && m.owns(tp));
                if !owned_elsewhere {
                    member.assigned.insert(tp.clone());
                }
            }
            if member.epoch < group.assignment_epoch {
                member.previous_epoch = member.epoch;
                member.epoch = group.assignment_epoch;
            }
        }
    }
    if member != *before {
        change.emit(GroupRecord::MemberUpdated { group: change.id(), member });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GroupPhase;
    use proptest::prelude::*;

    fn tp(topic: &str, partition: u32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|t| t.to_string()).collect()
    }

    /// A coordinator and honest members, each remembering its epoch and what it owns.
    #[derive(Default)]
    struct Harness {
        groups: Groups,
        counts: BTreeMap<String, u32>,
        members: BTreeMap<String, (i64, BTreeSet<TopicPartition>)>,
    }

    impl Harness {
        fn new(counts: &[(&str, u32)]) -> Self {
            Self { counts: counts.iter().map(|(t, n)| (t.to_string(), *n)).collect(), ..Default::default() }
        }

        fn write(&mut self, records: &[GroupRecord]) {
            for record in records {
                self.groups.apply(record);
            }
        }

        fn heartbeat(&mut self, member: &str, subscriptions: Option<&[&str]>) -> Result<HeartbeatAnswer, GroupError> {
            let (epoch, owned) = self.members.get(member).cloned().unwrap_or((JOIN_EPOCH, BTreeSet::new()));
            let heartbeat = Heartbeat {
                group_id: "g".into(),
                member_id: member.into(),
                member_epoch: epoch,
                subscriptions: subscriptions.map(topics),
                owned: Some(owned),
                ..Default::default()
            };
            let plan = self.groups.plan_heartbeat(&heartbeat, &self.counts)?;
            self.write(&plan.records);
            // An honest member consumes exactly what it was given, giving up the rest at once.
            self.members.insert(member.into(), (plan.answer.member_epoch, plan.answer.assignment.clone()));
            Ok(plan.answer)
        }

        fn leave(&mut self, member: &str) {
            let (epoch, _) = self.members.remove(member).expect("a member");
            let heartbeat = Heartbeat {
                group_id: "g".into(),
                member_id: member.into(),
                member_epoch: epoch.max(1),
                ..Default::default()
            };
            let heartbeat = Heartbeat { member_epoch: LEAVE_EPOCH, ..heartbeat };
            let plan = self.groups.plan_heartbeat(&heartbeat, &self.counts).unwrap();
            self.write(&plan.records);
        }

        fn expire(&mut self, member: &str) {
            self.members.remove(member);
            let plan = self.groups.plan_remove_member("g", member, &self.counts);
            self.write(&plan.records);
        }

        fn group(&self) -> &Group {
            self.groups.group("g").expect("the group")
        }

        /// Heartbeats every member until nothing changes.
        fn settle(&mut self) {
            for _ in 0..10 {
                let members: Vec<String> = self.members.keys().cloned().collect();
                for m in members {
                    self.heartbeat(&m, None).unwrap();
                }
            }
        }

        fn check_single_ownership(&self) {
            let Some(group) = self.groups.group("g") else { return };
            let mut seen = BTreeMap::new();
            for member in group.members.values() {
                for tp in member.assigned.iter().chain(&member.revoking) {
                    if let Some(other) = seen.insert(tp.clone(), member.member_id.clone()) {
                        panic!("{tp} is owned by {other} and {}", member.member_id);
                    }
                }
            }
            // What the honest members believe they own agrees.
            let mut believed = BTreeMap::new();
            for (member, (_, owned)) in &self.members {
                for tp in owned {
                    assert!(believed.insert(tp.clone(), member.clone()).is_none(), "{tp} consumed twice");
                }
            }
        }
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_gives_it_up() {
        let mut h = Harness::new(&[("orders", 4)]);
        let a = h.heartbeat("a", Some(&["orders"])).unwrap();
        assert_eq!(a.member_epoch, 1);
        assert_eq!(a.assignment.len(), 4);
        // b joins: the target splits, but b gets nothing while a still owns everything.
        let b = h.heartbeat("b", Some(&["orders"])).unwrap();
        assert_eq!((b.member_epoch, b.assignment.len()), (2, 0));
        assert_eq!(h.group().phase(), GroupPhase::Reconciling);
        // a is asked to give up two (its epoch stays until it confirms) ...
        let a = h.heartbeat("a", None).unwrap();
        assert_eq!((a.member_epoch, a.assignment.len()), (1, 2));
        assert_eq!(h.group().members["a"].revoking.len(), 2);
        let b = h.heartbeat("b", None).unwrap();
        assert!(b.assignment.is_empty(), "still revoking at a");
        // ... confirms by reporting only what it kept, and moves to epoch 2; then b gets them.
        let a = h.heartbeat("a", None).unwrap();
        assert_eq!((a.member_epoch, a.assignment.len()), (2, 2));
        let b = h.heartbeat("b", None).unwrap();
        assert_eq!(b.assignment.len(), 2);
        assert_eq!(h.group().phase(), GroupPhase::Stable);
        h.check_single_ownership();
        // A steady heartbeat writes nothing.
        let heartbeat = Heartbeat {
            group_id: "g".into(),
            member_id: "b".into(),
            member_epoch: 2,
            owned: Some(b.assignment.clone()),
            ..Default::default()
        };
        assert!(h.groups.plan_heartbeat(&heartbeat, &h.counts).unwrap().records.is_empty());
    }

    #[test]
    fn fencing_and_unknown_members() {
        let mut h = Harness::new(&[("orders", 2)]);
        h.heartbeat("a", Some(&["orders"])).unwrap();
        let stale = Heartbeat { group_id: "g".into(), member_id: "a".into(), member_epoch: 7, ..Default::default() };
        assert!(matches!(
            h.groups.plan_heartbeat(&stale, &h.counts),
            Err(GroupError::FencedMemberEpoch { current: 1, .. })
        ));
        let unknown = Heartbeat { member_id: "z".into(), member_epoch: 1, ..stale.clone() };
        assert!(matches!(h.groups.plan_heartbeat(&unknown, &h.counts), Err(GroupError::UnknownMember { .. })));
        h.expire("a");
        let after = Heartbeat { member_epoch: 1, ..stale };
        assert!(matches!(h.groups.plan_heartbeat(&after, &h.counts), Err(GroupError::UnknownMember { .. })));
        assert_eq!(h.group().phase(), GroupPhase::Empty);
    }

    #[test]
    fn commits_are_fenced_owned_and_monotonic() {
        let mut h = Harness::new(&[("orders", 2)]);
        let a = h.heartbeat("a", Some(&["orders"])).unwrap();
        let at = |offset| CommittedOffset { offset, metadata: String::new(), commit_timestamp_ms: 0 };
        let commit = |epoch, partition: TopicPartition, offset| Commit {
            group_id: "g".into(),
            member_id: "a".into(),
            member_epoch: epoch,
            offsets: vec![(partition, at(offset))],
        };
        let plan = h.groups.plan_commit(&commit(a.member_epoch, tp("orders", 0), 10)).unwrap();
        h.write(&plan.records);
        assert_eq!(h.groups.offsets("g").unwrap()[&tp("orders", 0)].offset, 10);
        // Again: nothing to write. Lower: refused.
        assert!(h.groups.plan_commit(&commit(1, tp("orders", 0), 10)).unwrap().records.is_empty());
        assert!(matches!(
            h.groups.plan_commit(&commit(1, tp("orders", 0), 9)),
            Err(GroupError::OffsetRegression { committed: 10, .. })
        ));
        assert!(matches!(h.groups.plan_commit(&commit(1, tp("orders", 5), 1)), Err(GroupError::NotAssigned { .. })));
        assert!(matches!(
            h.groups.plan_commit(&commit(2, tp("orders", 0), 11)),
            Err(GroupError::FencedMemberEpoch { .. })
        ));
        // b joins: a's epoch stays 1 while it revokes, then both are at 2; a commit at 1 is stale.
        h.heartbeat("b", Some(&["orders"])).unwrap();
        h.settle();
        assert!(matches!(
            h.groups.plan_commit(&commit(1, tp("orders", 0), 11)),
            Err(GroupError::StaleMemberEpoch { .. })
        ));
        // Outside the protocol: only while the group is empty.
        let manual = Commit { member_id: String::new(), member_epoch: -1, ..commit(0, tp("orders", 0), 12) };
        assert!(matches!(h.groups.plan_commit(&manual), Err(GroupError::UnknownMember { .. })));
        assert!(matches!(
            h.groups.plan_reset_offsets("g", &[(tp("orders", 0), at(0))]),
            Err(GroupError::GroupNotEmpty { members: 2, .. })
        ));
        assert!(matches!(h.groups.plan_delete_group("g"), Err(GroupError::GroupNotEmpty { .. })));
        h.leave("a");
        h.leave("b");
        assert!(h.groups.plan_commit(&manual).is_ok());
        let plan = h.groups.plan_reset_offsets("g", &[(tp("orders", 0), at(0))]).unwrap();
        h.write(&plan.records);
        assert_eq!(h.groups.offsets("g").unwrap()[&tp("orders", 0)].offset, 0, "an operator may move offsets back");
        let plan = h.groups.plan_delete_group("g").unwrap();
        h.write(&plan.records);
        assert_eq!(h.groups.phase("g"), GroupPhase::Dead);
        assert!(matches!(h.groups.plan_delete_group("g"), Err(GroupError::GroupNotFound(_))));
    }

    #[test]
    fn a_previous_epoch_may_not_claim_what_moved_on() {
        let mut h = Harness::new(&[("orders", 2)]);
        h.heartbeat("a", Some(&["orders"])).unwrap();
        h.settle();
        let (old_epoch, old_owned) = h.members["a"].clone();
        assert_eq!(old_owned.len(), 2);
        // b joins; a gives up one partition and moves to the next epoch, but never hears the
        // answer: it still holds both partitions at its previous epoch.
        h.heartbeat("b", Some(&["orders"])).unwrap();
        h.settle();
        assert_eq!(h.members["b"].1.len(), 1);
        let retry = |owned: BTreeSet<TopicPartition>| Heartbeat {
            group_id: "g".into(),
            member_id: "a".into(),
            member_epoch: old_epoch,
            owned: Some(owned),
            ..Default::default()
        };
        let claim = h.groups.plan_heartbeat(&retry(old_owned.clone()), &h.counts);
        assert!(
            matches!(claim, Err(GroupError::FencedMemberEpoch { .. })),
            "claiming b's partition at the previous epoch is fenced: {claim:?}"
        );
        // The previous epoch is still accepted for what a still owns (a lost answer's retry).
        let kept = h.members["a"].1.clone();
        assert!(h.groups.plan_heartbeat(&retry(kept), &h.counts).is_ok());
    }

    #[test]
    fn new_partitions_and_subscriptions_reassign() {
        let mut h = Harness::new(&[("orders", 2), ("payments", 2)]);
        h.heartbeat("a", Some(&["orders"])).unwrap();
        h.settle();
        assert_eq!(h.members["a"].1.len(), 2);
        h.counts.insert("orders".into(), 4);
        h.settle();
        assert_eq!(h.members["a"].1.len(), 4, "partitions added to a topic are assigned");
        h.heartbeat("a", Some(&["orders", "payments"])).unwrap();
        h.settle();
        assert_eq!(h.members["a"].1.len(), 6);
        assert_eq!(h.group().phase(), GroupPhase::Stable);
    }

    #[test]
    fn bad_input_is_refused() {
        let groups = Groups::default();
        let counts = BTreeMap::new();
        let join = Heartbeat {
            group_id: "g".into(),
            member_id: "a".into(),
            subscriptions: Some(topics(&["t"])),
            ..Default::default()
        };
        assert!(matches!(
            groups.plan_heartbeat(&Heartbeat { group_id: String::new(), ..join.clone() }, &counts),
            Err(GroupError::InvalidGroupId { .. })
        ));
        assert!(matches!(
            groups.plan_heartbeat(&Heartbeat { member_id: String::new(), ..join.clone() }, &counts),
            Err(GroupError::InvalidRequest(_))
        ));
        assert!(matches!(
            groups.plan_heartbeat(&Heartbeat { subscriptions: None, ..join.clone() }, &counts),
            Err(GroupError::InvalidRequest(_))
        ));
        assert!(matches!(
            groups.plan_heartbeat(&Heartbeat { session_timeout_ms: 10, ..join.clone() }, &counts),
            Err(GroupError::InvalidRequest(_))
        ));
        assert!(matches!(
            groups.plan_heartbeat(&Heartbeat { member_epoch: -5, ..join }, &counts),
            Err(GroupError::InvalidRequest(_))
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Join(u8, Vec<u8>),
        Heartbeat(u8),
        Leave(u8),
        Expire(u8),
        Grow(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..5, proptest::collection::vec(0u8..3, 1..3)).prop_map(|(m, ts)| Op::Join(m, ts)),
            (0u8..5).prop_map(Op::Heartbeat),
            (0u8..5).prop_map(Op::Heartbeat),
            (0u8..5).prop_map(Op::Heartbeat),
            (0u8..5).prop_map(Op::Leave),
            (0u8..5).prop_map(Op::Expire),
            (0u8..3).prop_map(Op::Grow),
        ]
    }

    const TOPICS: [&str; 3] = ["t0", "t1", "t2"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever members do, no partition is owned by two members (in the coordinator's state
        /// and in what honest members consume), epochs never go back, and once members keep
        /// heartbeating the group becomes stable with every member at its target.
        #[test]
        fn members_converge_without_two_owners(ops in proptest::collection::vec(op(), 1..60)) {
            let mut h = Harness::new(&[("t0", 3), ("t1", 2), ("t2", 5)]);
            let mut last_epoch = 0;
            for op in ops {
                match op {
                    Op::Join(m, ts) => {
                        let names: Vec<&str> = ts.iter().map(|t| TOPICS[*t as usize]).collect();
                        let member = format!("m{m}");
                        h.members.remove(&member);
                        h.heartbeat(&member, Some(&names)).unwrap();
                    }
                    Op::Heartbeat(m) => {
                        let member = format!("m{m}");
                        if h.members.contains_key(&member) {
                            h.heartbeat(&member, None).unwrap();
                        }
                    }
                    Op::Leave(m) => {
                        if h.members.contains_key(&format!("m{m}")) {
                            h.leave(&format!("m{m}"));
                        }
                    }
                    Op::Expire(m) => h.expire(&format!("m{m}")),
                    Op::Grow(t) => *h.counts.get_mut(TOPICS[t as usize]).unwrap() += 1,
                }
                h.check_single_ownership();
                if let Some(group) = h.groups.group("g") {
                    prop_assert!(group.epoch >= last_epoch);
                    last_epoch = group.epoch;
                }
            }
            h.settle();
            h.check_single_ownership();
            if let Some(group) = h.groups.group("g") && !group.members.is_empty() {
                prop_assert_eq!(group.phase(), GroupPhase::Stable);
                for (member, (epoch, owned)) in &h.members {
                    prop_assert_eq!(*epoch as u64, group.assignment_epoch);
                    prop_assert_eq!(owned, &group.target[member]);
                }
            }
        }
    }
}
