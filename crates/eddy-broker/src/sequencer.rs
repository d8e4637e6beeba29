//! Orders a partition leader's proposals and predicts their offsets, for ACKS_LEADER.
//!
//! Offsets are assigned when an entry is applied. A leader can still know the offset a proposal
//! will get, because it is the only proposer of its term and its proposals are applied in the
//! order they were submitted: when every earlier proposal of this leader is known to append (no
//! idempotent batch, whose outcome depends on deduplication, is in flight), the next offset is the
//! applied high watermark plus the records in flight. Proposals are submitted to Raft under the
//! sequencer's lock, so submission order is prediction order. The prediction is checked when the
//! entry is applied; it can be wrong only if leadership is lost before the entry commits, which
//! is the data loss ACKS_LEADER accepts.

use std::time::Duration;

use eddy_raft::PartitionTypes;
use eddy_storage::PartitionCommand;
use openraft::impls::ProgressResponder;
use openraft::raft::ClientWriteResult;
use openraft::type_config::alias::OneshotReceiverOf;
use tokio::sync::{Mutex, Notify};

use crate::replica::Replica;

#[derive(Debug, Default)]
struct State {
    /// The leader term the counters belong to.
    term: u64,
    /// Bumped with every term change, so completions of an earlier term are ignored.
    generation: u64,
    /// Offset the next proposal gets, when it can be known.
    next: Option<u64>,
    /// Proposals of this generation submitted and not yet completed.
    in_flight: u64,
}

/// Per-replica proposal sequencer.
#[derive(Debug, Default)]
pub struct Sequencer {
    state: Mutex<State>,
    settled: Notify,
}

/// Why a proposal was not submitted.
#[derive(Debug)]
pub enum ProposeError {
    /// This replica is not the leader (any more).
    NotLeader,
    /// A prediction was asked for but earlier proposals did not settle in time.
    Unsettled,
    /// The Raft group is stopping.
    Stopped,
}

/// A submitted proposal.
pub struct Proposed {
    /// The offset the batch will get if it commits (only when a prediction was asked for).
    pub predicted: Option<u64>,
    /// Completes when the entry is applied (or errs when it was dropped).
    pub completion: OneshotReceiverOf<PartitionTypes, ClientWriteResult<PartitionTypes>>,
    generation: u64,
}

impl Sequencer {
    /// Submits `command` (appending `record_count` records, or possibly none when `idempotent`)
    /// to the replica's Raft. With `predict`, waits up to `settle_timeout` until the offset can
    /// be known and returns it.
    pub async fn propose(
        &self,
        replica: &Replica,
        command: PartitionCommand,
        record_count: u64,
        idempotent: bool,
        predict: bool,
        settle_timeout: Duration,
    ) -> Result<Proposed, ProposeError> {
        let deadline = tokio::time::Instant::now() + settle_timeout;
        loop {
            let settled = self.settled.notified();
            let mut state = self.state.lock().await;
            let leadership = replica.leadership();
            if !leadership.is_self {
                return Err(ProposeError::NotLeader);
            }
            if state.term != leadership.term {
                *state = State { term: leadership.term, generation: state.generation + 1, next: None, in_flight: 0 };
            }
            if state.in_flight == 0 && leadership.ready {
                state.next = Some(replica.view.borrow().high_watermark);
            }
            if predict && state.next.is_none() {
                drop(state);
                if tokio::time::timeout_at(deadline, settled).await.is_err() {
                    return Err(ProposeError::Unsettled);
                }
                continue;
            }
            let predicted = match (idempotent, state.next) {
                (false, Some(next)) => {
                    state.next = Some(next + record_count);
                    Some(next)
                }
                _ => {
                    state.next = None;
                    None
                }
            };
            let (responder, completion) =
                ProgressResponder::<PartitionTypes, ClientWriteResult<PartitionTypes>>::complete_only();
            replica.raft.client_write_ff(command, Some(responder)).await.map_err(|_| ProposeError::Stopped)?;
            state.in_flight += 1;
            return Ok(Proposed {
                predicted: if predict { predicted } else { None },
                completion,
                generation: state.generation,
            });
        }
    }

    /// Records that a proposal completed (applied, or dropped with the leadership).
    pub async fn complete(&self, proposed_generation: u64) {
        let mut state = self.state.lock().await;
        if state.generation == proposed_generation {
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                self.settled.notify_waiters();
            }
        }
    }
}

impl Proposed {
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
