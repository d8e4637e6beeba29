//! A partition replica hosted on this node: its Raft group, reader, published view and the
//! sequencer of its proposals.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_raft::transport::{GroupNetworkFactory, Peers};
use eddy_raft::{Compaction, RaftTiming};
use eddy_storage::{KvStore, StorageError};
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ServerState};
use tokio::sync::watch;

use crate::PartitionRaft;
use crate::reader::{PartitionReader, open_partition};
use crate::sequencer::{Proposal, ProposeError, Proposed, Sequencer};
use crate::state_machine::PartitionView;

/// One local replica.
pub struct Replica {
    pub topic: String,
    pub partition: u32,
    pub group: u64,
    pub raft: PartitionRaft,
    pub reader: PartitionReader,
    pub view: watch::Receiver<PartitionView>,
    /// Orders this replica's proposals while it leads (see [`crate::sequencer`]).
    sequencer: Arc<Sequencer>,
    /// Whether the group's Raft ticker runs (it is stopped while the group is quiesced).
    ticking: std::sync::atomic::AtomicBool,
    /// The term in which this replica, leading, started handing its leadership over, and when.
    transfer: std::sync::Mutex<Option<(u64, tokio::time::Instant)>>,
}

/// Why a replica could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("reading the partition's state failed: {0}")]
    Storage(#[from] StorageError),
    #[error("the Raft timing is invalid: {0}")]
    Config(#[from] openraft::ConfigError),
    #[error("the partition's Raft group stopped while starting: {0}")]
    Raft(#[from] openraft::error::Fatal<crate::PartitionTypes>),
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("topic", &self.topic).field("partition", &self.partition).finish()
    }
}

/// The leader of a replica's group as its Raft sees it, with the term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLeadership {
    pub leader: Option<u64>,
    pub term: u64,
    /// This replica is the leader.
    pub is_self: bool,
    /// This replica is the leader and has applied an entry of its own term, so its high
    /// watermark covers everything committed before it: it may answer reads.
    pub ready: bool,
    /// Every entry in this replica's log is applied. A leader that resumed its term after a
    /// restart (openraft keeps a committed vote for itself) may hold entries of its own term
    /// from before the restart that are neither applied nor counted by any proposal in flight.
    pub log_applied: bool,
}

/// Where a replica belongs, from the controller's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaPlacement {
    pub topic: String,
    pub partition: u32,
    pub group: u64,
    /// The group's voters with their addresses.
    pub members: BTreeMap<u64, BasicNode>,
    /// The first replica of the placement.
    pub preferred_leader: u64,
    /// The replica joins an existing group (a partition moving onto this broker): the group's
    /// leader adds it as a learner, so it never initializes a membership of its own.
    pub join: bool,
}

impl Replica {
    /// Opens (or creates) the replica of `placement.group` and starts its Raft; a new group is
    /// initialized with `placement.members`.
    pub async fn open(
        node_id: u64,
        node_seed: u64,
        kv: Arc<dyn KvStore>,
        peers: Arc<Peers>,
        timing: &RaftTiming,
        placement: ReplicaPlacement,
    ) -> Result<Self, OpenError> {
        let ReplicaPlacement { topic, partition, group, members, preferred_leader, join } = placement;
        let (log, sm, reader, view) = open_partition(kv, group)?;
        let config = timing.openraft_config(&format!("{topic}-{partition}"), Compaction::Retention)?;
        let mut snapshots = sm.snapshot_index();
        let created = PartitionRaft::new(node_id, config, GroupNetworkFactory::new(peers, group), log, sm);
        let raft = eddy_raft::seeded(eddy_raft::group_seed(node_seed, group), created).await?;
        // Retention made a snapshot (see `crate::state_machine`): openraft builds it and purges
        // the log up to it. Ends with the group (its state machine drops the sender).
        let purging = raft.clone();
        tokio::spawn(async move {
            while snapshots.changed().await.is_ok() {
                if purging.trigger().snapshot().await.is_err() {
                    return;
                }
            }
        });
        if !join && !raft.is_initialized().await? {
            // The preferred leader (first replica) initializes at once and so wins the first
            // election, which spreads leaders as placement spread preferred leaders. The others
            // initialize too, with the same membership (which openraft allows), but only after a
            // few election timeouts, so the group forms even if the preferred leader died.
            let delay = if preferred_leader == node_id {
                Duration::ZERO
            } else {
                Duration::from_millis(timing.election_timeout_max_ms * 3)
            };
            let raft = raft.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(false) = raft.is_initialized().await
                    && let Err(e) = raft.initialize(members).await
                {
                    // NotAllowed: another replica's log reached us first.
                    tracing::debug!(group, error = %e, "partition group initialize skipped");
                }
            });
        }
        Ok(Self {
            topic,
            partition,
            group,
            raft,
            reader,
            view,
            sequencer: Default::default(),
            ticking: std::sync::atomic::AtomicBool::new(true),
            transfer: std::sync::Mutex::new(None),
        })
    }

    /// Proposes a command to this replica's group, which it must lead (see
    /// [`crate::sequencer`]). The returned [`Proposed`] keeps its place among the proposals in
    /// flight until its entry is applied or dropped, even if it is dropped unawaited.
    pub async fn propose(&self, proposal: Proposal) -> Result<Proposed, ProposeError> {
        self.sequencer.propose(self, proposal).await
    }

    /// While this replica leads: how many voters of its group (itself included) acknowledged it
    /// within `max_lag`, the replicas an ACKS_ALL batch can count on. `None` when it does not
    /// lead.
    pub fn in_sync_replicas(&self, max_lag: Duration) -> Option<usize> {
        self.in_sync_replica_ids(max_lag).map(|ids| ids.len())
    }

    /// While this replica leads: the voters of its group (itself included) that acknowledged it
    /// within `max_lag`. `None` when it does not lead.
    pub fn in_sync_replica_ids(&self, max_lag: Duration) -> Option<Vec<u64>> {
        use openraft::type_config::TypeConfigExt;
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        if metrics.state != ServerState::Leader {
            return None;
        }
        let membership = metrics.membership_config.membership();
        if !self.is_ticking() {
            // A leader is quiet only while every voter holds its whole log and every voter's
            // broker answers pings (the broker's `quiesce` loop restarts the ticker within a
            // round when that stops holding): its voters are in sync, though their last
            // acknowledgements are as old as the quiet spell.
            return Some(membership.voter_ids().collect());
        }
        let heartbeats = metrics.heartbeat.as_ref()?;
        let now = crate::PartitionTypes::now();
        let ids = membership
            .voter_ids()
            .filter(|id| {
                *id == metrics.id
                    || heartbeats.get(id).and_then(|acked| acked.as_ref()).is_some_and(|acked| now - **acked <= max_lag)
            })
            .collect();
        Some(ids)
    }

    /// Starts or stops the group's Raft ticker on this node: stopped, the replica sends no
    /// heartbeats and starts no election, and costs nothing while idle (see the broker's
    /// `quiesce` module for when that is safe). Entries still replicate and commit when
    /// proposed. Returns whether it changed.
    pub fn set_ticking(&self, ticking: bool) -> bool {
        let changed = self.ticking.swap(ticking, std::sync::atomic::Ordering::Relaxed) != ticking;
        if changed {
            self.raft.runtime_config().tick(ticking);
        }
        changed
    }

    /// Hands this replica's leadership to `to` (Raft's leadership transfer: the leader stops
    /// heartbeating and accepting writes, and the target starts an election at once).
    pub async fn transfer_leadership(&self, to: u64) -> Result<(), openraft::errors::Fatal<crate::PartitionTypes>> {
        *self.transfer.lock().expect("transfer lock") = Some((self.leadership().term, tokio::time::Instant::now()));
        self.raft.trigger().transfer_leader(to).await
    }

    /// How long this replica has been handing its leadership over, while it still leads in the
    /// term it started to; `None` when it is not. Until the transfer completes it refuses writes
    /// and sends no heartbeats: should the target never take over (its message was lost, its
    /// vote differs), only the other replicas' election timers end the transfer, with a new term.
    pub fn transfer_pending(&self) -> Option<std::time::Duration> {
        let leadership = self.leadership();
        let mut transfer = self.transfer.lock().expect("transfer lock");
        match *transfer {
            Some((term, since)) if leadership.is_self && term == leadership.term => Some(since.elapsed()),
            _ => {
                *transfer = None;
                None
            }
        }
    }

    /// Whether the group's Raft ticker runs on this node.
    pub fn is_ticking(&self) -> bool {
        self.ticking.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Restarts the ticker of a quiesced leader and waits, at most `timeout`, until every voter
    /// has acknowledged a heartbeat sent now: the acknowledgement times [`Self::in_sync_replicas`]
    /// counts are then fresh, not as old as the quiet spell.
    pub async fn wake(&self, timeout: Duration) {
        use openraft::type_config::TypeConfigExt;
        // Every produce passes here: a group already ticking costs one load, no write.
        if self.is_ticking() || !self.set_ticking(true) {
            return;
        }
        let since = crate::PartitionTypes::now();
        if self.raft.trigger().heartbeat().await.is_err() {
            return;
        }
        let acked =
            move |m: &openraft::RaftMetrics<crate::PartitionTypes>| {
                let Some(heartbeats) = m.heartbeat.as_ref() else { return true };
                m.membership_config.membership().voter_ids().filter(|id| *id != m.id).all(|id| {
                    heartbeats.get(&id).and_then(|acked| acked.as_ref()).is_some_and(|acked| **acked >= since)
                })
            };
        // Timing out leaves the acknowledgements as they are: the caller counts what it finds.
        let _ = self.raft.wait(Some(timeout)).metrics(acked, "every voter acknowledged a heartbeat").await;
    }

    /// While this replica leads: whether `node`'s replica holds every entry of this leader's
    /// log (so handing it the leadership loses no time catching up).
    pub fn is_caught_up(&self, node: u64) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let matched = metrics.replication.as_ref().and_then(|r| r.get(&node).cloned().flatten()).map(|id| id.index);
        metrics.state == ServerState::Leader && matched.is_some() && matched == metrics.last_log_index
    }

    pub fn leadership(&self) -> LocalLeadership {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let is_self = metrics.state == ServerState::Leader && metrics.current_leader == Some(metrics.id);
        let applied_term = metrics.last_applied.as_ref().map(|id| id.leader_id.term);
        LocalLeadership {
            leader: metrics.current_leader,
            term: metrics.current_term,
            is_self,
            ready: is_self && applied_term == Some(metrics.current_term),
            log_applied: metrics.last_applied.as_ref().map(|id| id.index) == metrics.last_log_index,
        }
    }
}
