//! The reconciler: makes the partition replicas a broker hosts match the controller's metadata.
//!
//! It opens the replicas placed on this broker (a partition's replicas, or the target of a move
//! onto it) and deletes the data of replicas whose partition was deleted or moved away. The rule
//! that keeps data safe: **absence is not deletion**. A replica is deleted only when the metadata
//! carries a tombstone for it (its group in `deleted_groups`, written when its topic was deleted,
//! or this broker in `removed_replicas` of its group, written when a move that dropped it
//! completed), never because its partition is missing from the metadata this broker holds, which
//! may be empty (just started), stale (cut off from the controller) or rolled back (the
//! controller lost its state). A replica the metadata says nothing about keeps running untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use eddy_controller::ClusterMetadata;
use openraft::BasicNode;

use crate::broker::Inner;
use crate::cluster_view::ClusterView;
use eddy_partition::{Replica, ReplicaPlacement};

/// How long a failed pass waits before it is tried again.
const RETRY_INTERVAL_MS: u64 = 2_000;

/// What one pass does.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Replicas to open: placed here and not open yet.
    pub open: Vec<ReplicaPlacement>,
    /// Open replicas with a tombstone (partition deleted, or moved off this broker): closed and
    /// their data deleted.
    pub delete: Vec<u64>,
    /// Groups placed here whose replica brokers are not all registered yet (retried).
    pub waiting: Vec<u64>,
    /// Open replicas the metadata neither places here nor tombstones: left alone.
    pub unexplained: Vec<u64>,
}

/// Decides a pass from the metadata alone (a pure function, so the rule above is tested).
pub(crate) fn plan(metadata: &ClusterMetadata, node_id: u64, open: &BTreeSet<u64>) -> Plan {
    let mut plan = Plan::default();
    let mut placed = BTreeSet::new();
    for (topic, partition) in metadata.hosted_by(node_id) {
        placed.insert(partition.group_id);
        if open.contains(&partition.group_id) {
            continue;
        }
        let members: BTreeMap<u64, BasicNode> = partition
            .replicas
            .iter()
            .filter_map(|id| metadata.brokers.get(id).map(|b| (*id, BasicNode { addr: b.internal_address.clone() })))
            .collect();
        if members.len() != partition.replicas.len() {
            plan.waiting.push(partition.group_id);
            continue;
        }
        plan.open.push(ReplicaPlacement {
            topic: topic.name.clone(),
            partition: partition.partition,
            group: partition.group_id,
            members,
            preferred_leader: partition.replicas[0],
            join: !partition.replicas.contains(&node_id),
        });
    }
    for group in open.difference(&placed) {
        if is_tombstoned(metadata, *group, node_id) {
            plan.delete.push(*group);
        } else {
            plan.unexplained.push(*group);
        }
    }
    plan
}

/// Whether the metadata says this broker's replica of `group` is to be deleted.
fn is_tombstoned(metadata: &ClusterMetadata, group: u64, node_id: u64) -> bool {
    metadata.deleted_groups.contains(&group)
        || metadata.removed_replicas.get(&group).is_some_and(|brokers| brokers.contains(&node_id))
}

pub(crate) async fn reconcile_loop(inner: Arc<Inner>) {
    let mut views = inner.view.subscribe();
    let mut stopping = inner.stopping.subscribe();
    // The view changes with every heartbeat; the replicas need work only when the metadata did,
    // or to retry what failed last time.
    let mut done = None;
    loop {
        let view = views.borrow_and_update().clone();
        let version = (view.metadata_term, view.metadata.version);
        if done != Some(version) && reconcile(&inner, &view).await {
            done = Some(version);
        }
        tokio::select! {
            biased;
            _ = stopping.changed() => return,
            changed = views.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(RETRY_INTERVAL_MS)) => {}
        }
    }
}

/// Runs one pass. Returns false when something failed and must be retried.
async fn reconcile(inner: &Arc<Inner>, view: &ClusterView) -> bool {
    // Metadata not heard from the controller in this boot says nothing about what exists.
    if view.synced_at.is_none() {
        return false;
    }
    let open: BTreeSet<u64> = inner.replicas.groups().into_iter().collect();
    let plan = plan(&view.metadata, inner.node_id, &open);
    let mut complete = plan.waiting.is_empty();
    for group in &plan.waiting {
        tracing::warn!(group, "a replica's broker is not registered yet; will retry");
    }
    for group in &plan.unexplained {
        tracing::debug!(group, version = view.metadata.version, "keeping a replica the metadata does not mention");
    }
    for placement in plan.open {
        let (topic, partition, group) = (placement.topic.clone(), placement.partition, placement.group);
        let opened = Replica::open(
            inner.node_id,
            inner.seed,
            inner.kv.clone(),
            inner.peers.clone(),
            &inner.config.raft,
            placement,
        )
        .await;
        match opened {
            Ok(replica) => {
                tracing::info!(topic = %topic, partition, group, "opened partition replica");
                inner.replicas.insert(Arc::new(replica));
            }
            Err(e) => {
                tracing::error!(topic = %topic, partition, group, error = %e, "opening partition replica failed");
                complete = false;
            }
        }
    }
    // Data of deleted partitions this broker did not have open: it was down when their topic was
    // deleted (or stopped before it finished deleting). Looked for once per tombstone and boot.
    let unseen: Vec<u64> = {
        let mut swept = inner.swept_tombstones.lock().expect("swept lock");
        let removed_here = view
            .metadata
            .removed_replicas
            .iter()
            .filter(|(_, brokers)| brokers.contains(&inner.node_id))
            .map(|(group, _)| *group);
        view.metadata
            .deleted_groups
            .iter()
            .copied()
            .chain(removed_here)
            .filter(|g| !open.contains(g) && swept.insert(*g))
            .collect()
    };
    for group in unseen {
        match eddy_partition::has_data(inner.kv.as_ref(), group) {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(
                    group,
                    "deleting the data of a replica deleted or moved away while this broker was away"
                );
                if let Err(e) = eddy_partition::destroy(inner.kv.as_ref(), group) {
                    tracing::error!(group, error = %e, "deleting partition data failed");
                    inner.swept_tombstones.lock().expect("swept lock").remove(&group);
                    complete = false;
                }
            }
            Err(e) => {
                tracing::error!(group, error = %e, "looking for a deleted partition's data failed");
                inner.swept_tombstones.lock().expect("swept lock").remove(&group);
                complete = false;
            }
        }
    }
    for group in plan.delete {
        let Some(replica) = inner.replicas.remove(group) else { continue };
        tracing::info!(topic = %replica.topic, partition = replica.partition, group, "deleting partition replica");
        if let Err(e) = replica.raft.shutdown().await {
            tracing::warn!(group, error = %e, "partition raft shutdown failed");
        }
        crate::metrics::forget_partition(&replica.topic, replica.partition);
        if let Err(e) = eddy_partition::destroy(inner.kv.as_ref(), group) {
            tracing::error!(group, error = %e, "deleting partition data failed");
        }
    }
    complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_controller::BrokerInfo;
    use eddy_controller::metadata::ControllerCommand;

    fn metadata_with_topic() -> ClusterMetadata {
        let mut metadata = ClusterMetadata::default();
        for id in 1..=3 {
            metadata.apply(
                id,
                &ControllerCommand::RegisterBroker(BrokerInfo::new(id, format!("n{id}:9092"), format!("n{id}:9093"))),
            );
        }
        metadata.apply(
            4,
            &ControllerCommand::CreateTopic {
                name: "t".into(),
                replication_factor: 3,
                assignments: vec![vec![1, 2, 3], vec![2, 3, 1]],
                configs: BTreeMap::new(),
            },
        );
        metadata
    }

    #[test]
    fn placed_replicas_are_opened() {
        let metadata = metadata_with_topic();
        let plan = plan(&metadata, 1, &BTreeSet::from([1]));
        assert_eq!(plan.open.iter().map(|p| p.group).collect::<Vec<_>>(), vec![2]);
        assert_eq!(plan.open[0].preferred_leader, 2);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn empty_or_stale_metadata_deletes_nothing() {
        let open = BTreeSet::from([1, 2]);
        // A broker that holds no metadata yet.
        let empty = plan(&ClusterMetadata::default(), 1, &open);
        assert!(empty.delete.is_empty() && empty.open.is_empty());
        assert_eq!(empty.unexplained, vec![1, 2]);
        // Metadata from before the topic existed (stale, or a controller that rolled back).
        let mut stale = metadata_with_topic();
        stale.topics.clear();
        let plan = plan(&stale, 1, &open);
        assert!(plan.delete.is_empty(), "absence is not deletion: {plan:?}");
        assert_eq!(plan.unexplained, vec![1, 2]);
    }

    #[test]
    fn a_tombstone_deletes_exactly_its_groups() {
        let mut metadata = metadata_with_topic();
        metadata.apply(5, &ControllerCommand::DeleteTopic { name: "t".into() });
        let plan = plan(&metadata, 1, &BTreeSet::from([1, 2, 9]));
        assert_eq!(plan.delete, vec![1, 2]);
        assert_eq!(plan.unexplained, vec![9]);
    }

    #[test]
    fn unregistered_replica_brokers_wait() {
        let mut metadata = metadata_with_topic();
        metadata.brokers.remove(&3);
        let plan = plan(&metadata, 1, &BTreeSet::new());
        assert!(plan.open.is_empty());
        assert_eq!(plan.waiting, vec![1, 2]);
    }

    #[test]
    fn a_move_opens_the_joining_replica_and_deletes_the_dropped_one_once_done() {
        let mut metadata = metadata_with_topic();
        metadata.apply(5, &ControllerCommand::RegisterBroker(BrokerInfo::new(4, "n4:9092", "n4:9093")));
        metadata.apply(6, &ControllerCommand::Reassign { group: 1, target: vec![1, 2, 4] });
        let joining = plan(&metadata, 4, &BTreeSet::new());
        assert_eq!(joining.open.iter().map(|p| (p.group, p.join)).collect::<Vec<_>>(), vec![(1, true)]);
        // While the move is under way, the broker it drops keeps its replica.
        let leaving = plan(&metadata, 3, &BTreeSet::from([1, 2]));
        assert!(leaving.delete.is_empty(), "{leaving:?}");
        assert_eq!(leaving.unexplained, Vec::<u64>::new());
        metadata.apply(7, &ControllerCommand::CompleteReassignment { group: 1, replicas: vec![1, 2, 4] });
        let leaving = plan(&metadata, 3, &BTreeSet::from([1, 2]));
        assert_eq!(leaving.delete, vec![1]);
        let joined = plan(&metadata, 4, &BTreeSet::from([1]));
        assert!(joined.delete.is_empty() && joined.open.is_empty());
    }
}
