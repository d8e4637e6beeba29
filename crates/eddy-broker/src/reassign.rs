//! Partition moves, carried out by each partition's leader.
//!
//! The controller decides a move by giving a partition a `target` replica list (a dead broker's
//! replica replaced, a drained broker's moved, a rebalance). The brokers the target adds open a
//! replica that joins the group (see `reconcile`); this loop, on the partition's leader, drives
//! the group's Raft membership to the target one step at a time:
//!
//! 1. every broker the target adds becomes a learner and catches up (a snapshot and then the
//!    entries after it, when the leader's log was purged);
//! 2. once each is within [`CAUGHT_UP_ENTRIES`] of the leader, one joint-consensus change makes
//!    the target the voters, dropping the brokers it removes (openraft allows one change at a
//!    time, and a joint configuration commits only with a majority of the old voters and of the
//!    new);
//! 3. the leader reports the move done to the controller, which makes the target the replicas
//!    and tombstones the dropped replicas, whose brokers then delete their data.
//!
//! Produce and fetch go on throughout: a membership change is one more entry in the log. A
//! leader that loses its leadership mid-way leaves the rest to the next one, which finds the
//! group's membership wherever it got to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use eddy_controller::{ControllerReply, ControllerRequest};
use eddy_partition::Replica;
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers};

use crate::broker::Inner;

/// How often the leaders look at the moves under way.
const INTERVAL: Duration = Duration::from_millis(500);
/// A learner this close to the leader's last log entry is promoted.
const CAUGHT_UP_ENTRIES: u64 = 64;

pub(crate) async fn reassign_loop(inner: Arc<Inner>) {
    crate::broker::every(inner.stopping.subscribe(), INTERVAL, || round(&inner)).await;
}

/// One look at the moves under way, on the partitions this broker leads.
async fn round(inner: &Inner) {
    let view = inner.view.borrow().clone();
    // A broker the move adds may lead by now: it is in the target, not yet in the replicas.
    for (topic, partition) in view.metadata.hosted_by(inner.node_id) {
        let Some(target) = &partition.target else { continue };
        let Some(replica) = inner.replicas.get(partition.group_id) else { continue };
        let leadership = replica.leadership();
        if !(leadership.is_self && leadership.ready) {
            continue;
        }
        let addresses: BTreeMap<u64, String> = target
            .iter()
            .filter_map(|id| view.metadata.brokers.get(id).map(|b| (*id, b.internal_address.clone())))
            .collect();
        if let Err(e) = step(inner, &replica, target, &addresses).await {
            tracing::debug!(topic = %topic.name, partition = partition.partition, error = %e, "partition move step failed");
        }
    }
}

/// One step of `replica`'s group toward `target` voters.
async fn step(
    inner: &Inner,
    replica: &Replica,
    target: &[u64],
    addresses: &BTreeMap<u64, String>,
) -> Result<(), String> {
    let wanted: BTreeSet<u64> = target.iter().copied().collect();
    let (voters, learners, joint, last_index, matched) = {
        let metrics = replica.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        let joint = membership.get_joint_config().len() > 1;
        let matched: BTreeMap<u64, u64> = metrics
            .replication
            .as_ref()
            .map(|r| r.iter().filter_map(|(id, m)| m.as_ref().map(|m| (*id, m.index))).collect())
            .unwrap_or_default();
        (voters, learners, joint, metrics.last_log_index.unwrap_or(0), matched)
    };
    if joint {
        return Ok(()); // openraft finishes the change it started
    }
    if voters == wanted {
        let strays: BTreeSet<u64> = learners.difference(&wanted).copied().collect();
        if !strays.is_empty() {
            replica
                .raft
                .change_membership(ChangeMembers::RemoveNodes(strays), false)
                .await
                .map_err(|e| e.to_string())?;
        }
        let request = ControllerRequest::CompleteReassignment { group: replica.group, replicas: target.to_vec() };
        return match inner.controller_client.call(&request).await {
            Ok(ControllerReply::Done) => {
                tracing::info!(topic = %replica.topic, partition = replica.partition, replicas = ?target, "partition move done");
                Ok(())
            }
            Ok(other) => Err(format!("unexpected controller reply {other:?}")),
            Err(e) => Err(e.to_string()),
        };
    }
    let joining: Vec<u64> = wanted.difference(&voters).copied().collect();
    for id in joining.iter().filter(|id| !learners.contains(id)) {
        let addr = addresses.get(id).ok_or_else(|| format!("broker {id} is not registered"))?;
        tracing::info!(topic = %replica.topic, partition = replica.partition, learner = id, "adding a learner");
        replica.raft.add_learner(*id, BasicNode { addr: addr.clone() }, false).await.map_err(|e| e.to_string())?;
    }
    let caught_up = joining.iter().all(|id| {
        learners.contains(id) && matched.get(id).is_some_and(|m| last_index.saturating_sub(*m) <= CAUGHT_UP_ENTRIES)
    });
    if caught_up {
        tracing::info!(topic = %replica.topic, partition = replica.partition, from = ?voters, to = ?wanted, "changing the voters");
        replica
            .raft
            .change_membership(ChangeMembers::ReplaceAllVoters(wanted), false)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
