//! Quiescing idle partitions: a group with nothing to do stops its Raft ticker on every replica,
//! so a thousand idle partitions cost no heartbeats, no election timers and no wake-ups.
//!
//! Each Raft group ticks on its own: a leader heartbeats each follower every
//! `raft.heartbeat_interval_ms` and every replica runs an election timer, so idle cost grows with
//! the number of partitions (1,000 idle partitions at RF 3 took 1.8 cores of a 2-core machine).
//! As CockroachDB and Redpanda do, liveness is instead tracked once per pair of brokers, and a
//! group's own ticks run only while it is busy or its leader may be gone:
//!
//! - Every broker pings every other broker each [`PING_INTERVAL`] (a `NodePing` on the Raft
//!   transport); the answer lists the groups the answering broker leads. A broker is *live* to
//!   this one while its last answer is younger than [`LIVENESS_WINDOW`].
//! - A **leader** stops ticking once its group is settled for `quiesce_after_ms`: no new entry
//!   and no new term for that long, every entry committed and held by every replica, and every
//!   other voter's broker live. Anything else (an entry proposed, a follower behind or gone, a
//!   membership change) starts it again at the next round. Entries still replicate and commit
//!   while it is stopped: replication is driven by appends, not ticks.
//! - A **follower** stops ticking while its leader's broker is live and says it leads the group.
//!   When the leader's broker stops answering, or answers that it no longer leads the group, the
//!   follower ticks again, and its election timer (which has been running since it last heard
//!   from the leader) starts an election at once: failover takes about [`LIVENESS_WINDOW`] more
//!   than the election itself.
//!
//! A leader whose leadership transfer (leader balancing) has not completed within twice the
//! longest election timeout stops saying it leads the group: it sends no heartbeats while
//! transferring, and when the target never takes over, only the followers' election timers end
//! the transfer.
//!
//! A leader keeps ticking while any other voter's broker is not live, so a leader cut off from
//! its followers (which elect another) heartbeats into the partition and learns the new term as
//! soon as it heals, instead of staying a quiet, stale leader.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use eddy_partition::Replica;
use eddy_proto::internal::RaftEnvelope;
use eddy_proto::internal::raft_transport_client::RaftTransportClient;
use eddy_raft::transport::RpcKind;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::time::Instant;

use crate::broker::Inner;

/// How often a broker pings the others and reviews its groups.
pub const PING_INTERVAL: Duration = Duration::from_millis(250);
/// How long a ping may take.
const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// A broker is live while its last ping answer is younger than this.
pub const LIVENESS_WINDOW: Duration = Duration::from_millis(1_000);

/// What this broker last heard from another.
struct Peer {
    answered: Instant,
    leads: HashSet<u64>,
}

/// A group as this broker last saw it: its term and last log index, and since when they have
/// not changed.
struct Seen {
    term: u64,
    last_log_index: Option<u64>,
    since: Instant,
}

/// Pings the other brokers and starts or stops each local group's ticker, until the broker
/// stops. Does nothing when `quiesce_after_ms` is 0.
pub(crate) async fn quiesce_loop(inner: Arc<Inner>) {
    let quiesce_after = Duration::from_millis(inner.config.quiesce_after_ms);
    let transfer_stuck_after = Duration::from_millis(2 * inner.config.raft.election_timeout_max_ms);
    if quiesce_after.is_zero() {
        return;
    }
    let mut stopping = inner.stopping.subscribe();
    let mut peers: HashMap<u64, Peer> = HashMap::new();
    let mut seen: HashMap<u64, Seen> = HashMap::new();
    loop {
        tokio::select! {
            biased;
            _ = stopping.changed() => break,
            _ = tokio::time::sleep(PING_INTERVAL) => {}
        }
        ping_all(&inner, &mut peers).await;
        let now = Instant::now();
        let live = |node: u64| peers.get(&node).is_some_and(|p| now - p.answered <= LIVENESS_WINDOW);
        let replicas = inner.replicas.all();
        // A partition being moved keeps ticking: openraft refuses membership changes from a
        // leader whose quorum has not acknowledged it lately, and the move's learners need the
        // leader's retries.
        let moving: HashSet<u64> = {
            let view = inner.view.borrow().clone();
            view.metadata
                .hosted_by(inner.config.node_id)
                .filter(|(_, p)| p.target.is_some())
                .map(|(_, p)| p.group_id)
                .collect()
        };
        seen.retain(|group, _| replicas.iter().any(|r| r.group == *group));
        let mut quiet = 0usize;
        let mut leading = Vec::new();
        for replica in &replicas {
            let (tick, leads_group) = should_tick(replica, &mut seen, now, quiesce_after, &live, &|node, group| {
                peers.get(&node).is_some_and(|p| p.leads.contains(&group))
            });
            // A leader whose leadership transfer has not completed in time is not a working
            // leader (it neither heartbeats nor takes writes while transferring): its followers
            // must tick, so that their election timers end the transfer.
            let stuck =
                leads_group && replica.transfer_pending().is_some_and(|pending| pending >= transfer_stuck_after);
            let ticking = tick || stuck || moving.contains(&replica.group);
            if leads_group && !stuck {
                leading.push(replica.group);
            }
            if replica.set_ticking(ticking) {
                let metrics = replica.raft.metrics();
                let m = metrics.borrow_watched();
                tracing::debug!(
                    node = inner.config.node_id,
                    group = replica.group,
                    ticking,
                    state = ?m.state,
                    term = m.current_term,
                    leader = ?m.current_leader,
                    "raft ticker of a partition group"
                );
            }
            quiet += usize::from(!ticking);
        }
        metrics::gauge!("eddy_raft_groups_quiesced").set(quiet as f64);
        *inner.ping_answer.lock().expect("ping answer lock") = eddy_raft::transport::encode(&leading).into();
    }
    // Stopped: leave every group ticking, as a group that is not managed must.
    for replica in inner.replicas.all() {
        replica.set_ticking(true);
    }
}

/// Whether `replica`'s ticker should run, and whether this node leads its group.
fn should_tick(
    replica: &Replica,
    seen: &mut HashMap<u64, Seen>,
    now: Instant,
    quiesce_after: Duration,
    live: &dyn Fn(u64) -> bool,
    leads: &dyn Fn(u64, u64) -> bool,
) -> (bool, bool) {
    let metrics = replica.raft.metrics();
    let m = metrics.borrow_watched();
    let entry = seen.entry(replica.group).or_insert(Seen {
        term: m.current_term,
        last_log_index: m.last_log_index,
        since: now,
    });
    if entry.term != m.current_term || entry.last_log_index != m.last_log_index {
        *entry = Seen { term: m.current_term, last_log_index: m.last_log_index, since: now };
    }
    let ticking = match m.state {
        ServerState::Leader => {
            let membership = m.membership_config.membership();
            let settled = m.cluster_committed.as_ref().map(|c| c.index) == m.last_log_index
                && membership.get_joint_config().len() == 1
                && m.replication.as_ref().is_some_and(|targets| {
                    targets.values().all(|matched| matched.as_ref().map(|id| id.index) == m.last_log_index)
                })
                && membership.voter_ids().filter(|id| *id != m.id).all(live);
            !(settled && now - entry.since >= quiesce_after)
        }
        ServerState::Follower | ServerState::Learner => match m.current_leader {
            Some(leader) if leader != m.id => !(live(leader) && leads(leader, replica.group)),
            _ => true,
        },
        ServerState::Candidate | ServerState::Shutdown => true,
    };
    (ticking, m.state == ServerState::Leader && m.current_leader == Some(m.id))
}

/// Pings every other broker in the metadata at once, recording the answers.
async fn ping_all(inner: &Arc<Inner>, peers: &mut HashMap<u64, Peer>) {
    let me = inner.config.node_id;
    let targets: Vec<(u64, String)> = inner.peers.known().into_iter().filter(|(id, _)| *id != me).collect();
    let pings = targets.into_iter().map(|(node, address)| {
        let inner = inner.clone();
        async move { (node, ping(&inner, &address).await) }
    });
    let now = Instant::now();
    for (node, answer) in futures::future::join_all(pings).await {
        if let Some(leads) = answer {
            peers.insert(node, Peer { answered: now, leads });
        }
    }
}

/// One ping: the groups `address` leads, or `None` when it did not answer in time.
async fn ping(inner: &Inner, address: &str) -> Option<HashSet<u64>> {
    let channel = inner.peers.channel(address).ok()?;
    let mut client = RaftTransportClient::new(channel);
    let request = RaftEnvelope { group_id: 0, kind: RpcKind::NodePing as u32, payload: Default::default() };
    let answer = tokio::time::timeout(PING_TIMEOUT, client.call(request)).await.ok()?.ok()?;
    let leads: Vec<u64> = eddy_raft::transport::decode(&answer.into_inner().payload, "node ping answer").ok()?;
    Some(leads.into_iter().collect())
}
