//! Leader balancing: a partition's leadership goes back to its preferred replica (the first of
//! its replicas, which placement spreads evenly over the brokers) once that replica is alive and
//! caught up. Each broker looks at the partitions it leads without being their preferred
//! replica and hands them over with Raft's leadership transfer: the preferred replica starts an
//! election at once, with this leader's blessing, instead of waiting for a failure.
//!
//! Without it, the first election is the only one the preferred replica wins: after a broker
//! restarts, the others keep the leadership they took over, and load stays skewed for good.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Inner;

/// Most leaderships one broker hands over per round, so a broker coming back does not see all
/// its partitions elect at once.
const TRANSFERS_PER_ROUND_MAX: usize = 8;

pub(crate) async fn leader_balance_loop(inner: Arc<Inner>) {
    let interval = match inner.config.leader_balance_interval_ms {
        0 => return,
        ms => Duration::from_millis(ms),
    };
    crate::broker::every(inner.stopping.subscribe(), interval, || balance(&inner)).await;
}

/// One round: hands over the leaderships this broker holds that belong to a live, caught-up
/// preferred replica.
async fn balance(inner: &Inner) {
    let view = inner.view.borrow().clone();
    if !view.is_current() {
        return;
    }
    let mut handed = 0;
    for (topic, partition) in view.metadata.partitions_of(inner.node_id) {
        let Some(&preferred) = partition.replicas.first() else { continue };
        if preferred == inner.node_id || !view.alive.contains(&preferred) {
            continue;
        }
        let Some(replica) = inner.replicas.get(partition.group_id) else { continue };
        let leadership = replica.leadership();
        // A transfer under way is not started again: it ends in a new term either way.
        if !(leadership.is_self && leadership.ready && leadership.log_applied && replica.is_caught_up(preferred))
            || replica.transfer_pending().is_some()
        {
            continue;
        }
        tracing::info!(
            topic = %topic.name,
            partition = partition.partition,
            to = preferred,
            term = leadership.term,
            "handing leadership to the preferred replica"
        );
        metrics::counter!("eddy_leader_transfers_total").increment(1);
        // A quiet group ticks again first: the new leader must hear from this one.
        replica.wake(Duration::from_millis(inner.config.raft.election_timeout_min_ms)).await;
        if let Err(e) = replica.transfer_leadership(preferred).await {
            tracing::warn!(group = partition.group_id, error = %e, "leadership transfer failed");
        }
        handed += 1;
        if handed >= TRANSFERS_PER_ROUND_MAX {
            return;
        }
    }
}
