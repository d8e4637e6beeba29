//! Consumer groups: what the group's members were given and what they committed, held against
//! the final log.
//!
//! - `group_two_owners`: one partition delivered to two members at the same member epoch. A
//!   member reaches an epoch only holding partitions of that epoch's target assignment, which
//!   names one owner per partition; a zombie (removed, still reading) has an older epoch.
//! - `group_skipped`: a member's deliveries of a partition do not follow each other (a gap or a
//!   step back without a new start), or a record below the group's final committed offset was
//!   never delivered to any member (at-least-once).
//! - `group_commit_beyond_delivered`: a member committed an offset it had not reached (neither
//!   where it started the partition nor just past a record it was delivered).
//! - `group_commit_lost`: an acknowledged commit is above the group's final committed offset,
//!   or an acknowledged commit moved the offset below one acknowledged before it was sent.
//! - `group_behind` (liveness): after healing, the members had not committed the whole log.

use std::collections::{BTreeMap, BTreeSet};

use super::{Anomaly, Model, Property};
use crate::history::{Entry, Event};

#[derive(Debug, Default)]
struct Groups {
    /// (partition, epoch) -> members delivered records of it at that epoch.
    owners: BTreeMap<(u32, i64), BTreeSet<String>>,
    /// (member, partition) -> starts and deliveries, in order: (start offset) or (first, last).
    reads: BTreeMap<(String, u32), Vec<Step>>,
    /// Every (partition, offset) delivered to any member.
    delivered: BTreeSet<(u32, u64)>,
    /// Acknowledged commits, in completion order.
    commits: Vec<Commit>,
    finals: Option<BTreeMap<u32, u64>>,
}

#[derive(Debug)]
struct Commit {
    member: String,
    invoked_ms: u64,
    completed_ms: u64,
    offsets: Vec<(u32, u64)>,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Start(u64),
    Delivered { first: u64, last: u64 },
}

impl Groups {
    fn new(entries: &[Entry]) -> Self {
        let mut groups = Groups::default();
        for entry in entries {
            match &entry.event {
                Event::GroupDelivered { member, epoch, partition, records } => {
                    if *epoch > 0 {
                        groups.owners.entry((*partition, *epoch)).or_default().insert(member.clone());
                    }
                    if let (Some(first), Some(last)) = (records.first(), records.last()) {
                        let step = Step::Delivered { first: first.offset, last: last.offset };
                        groups.reads.entry((member.clone(), *partition)).or_default().push(step);
                    }
                    groups.delivered.extend(records.iter().map(|r| (*partition, r.offset)));
                }
                Event::GroupStarted { member, partition, offset } => {
                    groups.reads.entry((member.clone(), *partition)).or_default().push(Step::Start(*offset));
                }
                Event::GroupCommit { member, invoked_ms, offsets, error: None } => {
                    groups.commits.push(Commit {
                        member: member.clone(),
                        invoked_ms: *invoked_ms,
                        completed_ms: entry.at_ms,
                        offsets: offsets.clone(),
                    });
                }
                Event::GroupFinal { offsets } => groups.finals = Some(offsets.iter().copied().collect()),
                _ => {}
            }
        }
        groups
    }
}

pub fn check(entries: &[Entry], model: &Model, anomalies: &mut Vec<Anomaly>) {
    let groups = Groups::new(entries);
    if groups.reads.is_empty() && groups.commits.is_empty() && groups.finals.is_none() {
        return; // No group in this history.
    }
    let mut report = |property, detail| anomalies.push(Anomaly { property, detail });

    for ((partition, epoch), members) in &groups.owners {
        if members.len() > 1 {
            report(
                Property::GroupTwoOwners,
                format!("partition {partition} was delivered at epoch {epoch} to {members:?}"),
            );
        }
    }

    // Each member's reads of a partition follow one another from where it started.
    let mut reached: BTreeMap<(String, u32), BTreeSet<u64>> = BTreeMap::new();
    for ((member, partition), steps) in &groups.reads {
        let mut next: Option<u64> = None;
        let reachable = reached.entry((member.clone(), *partition)).or_default();
        for step in steps {
            match *step {
                Step::Start(offset) => {
                    next = Some(offset);
                    reachable.insert(offset);
                }
                Step::Delivered { first, last } => {
                    if next != Some(first) {
                        report(
                            Property::GroupSkipped,
                            format!("{member} was delivered {partition}@{first} when its position was {next:?}"),
                        );
                    }
                    next = Some(last + 1);
                    reachable.insert(last + 1);
                }
            }
        }
    }
    // A member commits only offsets it reached. (Positions between the start and the end of one
    // delivered batch are reached too, but the member commits only after whole polls.)
    for Commit { member, offsets, .. } in &groups.commits {
        for (partition, offset) in offsets {
            let ok = reached.get(&(member.clone(), *partition)).is_some_and(|r| r.contains(offset));
            if !ok {
                report(
                    Property::GroupCommitBeyondDelivered,
                    format!("{member} committed {partition}@{offset}, which it had not reached"),
                );
            }
        }
    }
    // An acknowledged commit is never undone by one sent after it was acknowledged.
    let mut by_partition: BTreeMap<u32, Vec<(u64, u64, u64, &str)>> = BTreeMap::new();
    for commit in &groups.commits {
        for (partition, offset) in &commit.offsets {
            let entry = (commit.invoked_ms, commit.completed_ms, *offset, commit.member.as_str());
            by_partition.entry(*partition).or_default().push(entry);
        }
    }
    for (partition, commits) in &by_partition {
        for earlier in commits {
            for later in commits.iter().filter(|c| c.0 > earlier.1 && c.2 < earlier.2) {
                report(
                    Property::GroupCommitLost,
                    format!(
                        "partition {partition}: {} committed {} at {} ms, then {} committed {} (sent at {} ms) and was acknowledged",
                        earlier.3, earlier.2, earlier.1, later.3, later.2, later.0
                    ),
                );
            }
        }
    }

    let Some(finals) = &groups.finals else {
        report(Property::GroupBehind, "the group's committed offsets could not be read at the end".into());
        return;
    };
    for (partition, commits) in &by_partition {
        let final_offset = finals.get(partition).copied().unwrap_or(0);
        if let Some(max) = commits.iter().map(|c| c.2).max()
            && max > final_offset
        {
            report(
                Property::GroupCommitLost,
                format!(
                    "partition {partition}: a commit of {max} was acknowledged, but the group ends at {final_offset}"
                ),
            );
        }
    }
    for partition in 0..model.partitions {
        let committed = finals.get(&partition).copied().unwrap_or(0);
        let undelivered: Vec<u64> = (0..committed).filter(|o| !groups.delivered.contains(&(partition, *o))).collect();
        if let Some(first) = undelivered.first() {
            report(
                Property::GroupSkipped,
                format!(
                    "partition {partition}: {} records below the committed offset {committed} were never delivered, from {first}",
                    undelivered.len()
                ),
            );
        }
        if let Some((_, high_watermark)) = model.finals.get(&partition)
            && committed < *high_watermark
        {
            report(
                Property::GroupBehind,
                format!("partition {partition}: the group committed {committed} of {high_watermark} records"),
            );
        }
    }
}
