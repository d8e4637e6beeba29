//! Orders a partition leader's proposals and predicts their offsets, for ACKS_LEADER.
//!
//! Offsets are assigned when an entry is applied. A leader can still know the offset a proposal
//! will get, because it is the only proposer of its term and its proposals are applied in the
//! order they were submitted: when every earlier proposal of this leader is known to append (no
//! idempotent batch, whose outcome depends on deduplication, is in flight), the next offset is the
//! applied high watermark plus the records in flight. Proposals are submitted to Raft under the
//! sequencer's submission lock, so submission order is prediction order.
//!
//! A prediction assumes that every earlier proposal is appended, and Raft may refuse one without
//! losing the leadership: openraft refuses writes while the leader's lease has expired (it has
//! not heard a quorum lately) and accepts them again in the same term once it has (simulation
//! seed 71 with `--leader-acks`: thirteen refused batches, then one accepted thirteen offsets
//! below its answer). So a predicted batch carries its offset
//! ([`crate::RecordBatch::expected_base_offset`]) and the state machine appends it there or not
//! at all: an ACKS_LEADER answer is never contradicted by the log; at worst its batch is lost,
//! which ACKS_LEADER accepts. A proposal that did not append stops predictions until the
//! proposals in flight settle, so the loss ends there.
//!
//! The count of proposals in flight is what keeps predictions right, so a proposal leaves it only
//! when its entry's fate is sealed: applied, or dropped with the leadership. Not when the request
//! that made it stops waiting: an ACKS_ALL request that times out (a huge batch that replicates
//! slowly) or whose client went away leaves its entry in the log, where it may still commit ahead
//! of later proposals. Releasing it then made the next prediction start from a high watermark
//! that did not count it, and ACKS_LEADER answered offsets that the stalled batch took later.
//! [`Proposed`] enforces the rule: it releases its place itself, when its outcome arrives, even
//! if whoever waited for it gave up.
//!
//! The sequencer also keeps an idempotent producer's batches in sequence order. A producer keeps
//! several batches in flight per partition, and requests on one connection may reach the leader
//! out of order (each is its own HTTP/2 stream, handled by its own task); the state machine
//! refuses a batch that does not continue its producer's sequence (OUT_OF_ORDER_SEQUENCE), which
//! would cost the producer a round of resends. So a batch whose first sequence is past the end of
//! the last batch this leader submitted for its producer (same epoch) waits, up to
//! [`REORDER_WAIT`], for the batches before it. The order is only a hint for speed: correctness
//! rests on the state machine's check, and after the wait the batch is submitted anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::impls::ProgressResponder;
use openraft::raft::ClientWriteResult;
use openraft::type_config::alias::{OneshotReceiverErrorOf, OneshotReceiverOf};
use tokio::sync::Notify;

use crate::PartitionTypes;
use crate::records::{PartitionCommand, PartitionResponse};
use crate::replica::Replica;

#[derive(Debug, Default)]
struct State {
    /// The leader term the counters belong to.
    term: u64,
    /// Bumped with every term change, so completions of an earlier term are ignored.
    generation: u64,
    /// Offset the next proposal gets, when it can be known.
    next: Option<u64>,
    /// Proposals of this generation submitted and not yet applied or dropped.
    in_flight: u64,
    /// Per idempotent producer, the epoch and the sequence after the last batch submitted in
    /// this term (see the module's documentation). Cleared with every term, and whenever it
    /// outgrows [`eddy_limits::PRODUCERS_PER_PARTITION_MAX`].
    producer_ends: HashMap<u64, (u32, u64)>,
}

/// How long an idempotent batch that arrives ahead of its producer's earlier batches waits for
/// them before it is submitted anyway.
pub const REORDER_WAIT: Duration = Duration::from_millis(500);

/// Per-replica proposal sequencer.
#[derive(Debug, Default)]
pub struct Sequencer {
    /// Held while a proposal is predicted and submitted, so submission order is prediction order.
    submission: tokio::sync::Mutex<()>,
    /// The counters; held only briefly and never across an await, so a completion can update
    /// them from anywhere, `Drop` included.
    state: Mutex<State>,
    settled: Notify,
    /// Notified after every submission (batches waiting for their predecessors look again).
    submitted: Notify,
}

/// What a proposal does next.
enum Step {
    /// Go, with the offset predicted for it (if asked for and known) and the generation it
    /// counts in.
    Submit { predicted: Option<u64>, generation: u64 },
    /// Its producer's earlier batches have not been submitted yet: wait for them.
    AwaitPredecessors,
    /// A prediction was asked for and cannot be made yet: wait for earlier proposals to settle.
    AwaitSettled,
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

type Completion = OneshotReceiverOf<PartitionTypes, ClientWriteResult<PartitionTypes>>;

/// The outcome of a proposal: its write result, or an error when Raft dropped the responder
/// (the group stopped).
pub type Outcome = Result<ClientWriteResult<PartitionTypes>, OneshotReceiverErrorOf<PartitionTypes>>;

/// A submitted proposal. It holds its place among the sequencer's proposals in flight until its
/// entry is applied or dropped, whether or not anyone awaits [`Proposed::outcome`].
pub struct Proposed {
    /// The offset the batch will get if it commits (only when a prediction was asked for).
    pub predicted: Option<u64>,
    /// `None` once the outcome has arrived.
    completion: Option<Completion>,
    generation: u64,
    sequencer: Arc<Sequencer>,
}

/// A command to propose, with what the sequencer needs to know of it.
#[derive(Debug)]
pub struct Proposal {
    pub command: PartitionCommand,
    /// Records the command appends if it is applied (an idempotent batch may append none).
    pub record_count: u64,
    /// The command carries an idempotent producer's batch: whether it appends depends on
    /// deduplication, so no offset can be predicted past it until it settles.
    pub idempotent: bool,
    /// Predict the offset the batch will get (for ACKS_LEADER).
    pub predict: bool,
    /// How long to wait for earlier proposals to settle when a prediction is asked for.
    pub settle_timeout: Duration,
}

impl Sequencer {
    /// Submits the proposal's command to the replica's Raft. With `predict`, waits up to
    /// `settle_timeout` until the offset can be known and returns it.
    pub(crate) async fn propose(
        self: &Arc<Self>,
        replica: &Replica,
        proposal: Proposal,
    ) -> Result<Proposed, ProposeError> {
        let Proposal { mut command, record_count, idempotent, predict, settle_timeout } = proposal;
        let deadline = tokio::time::Instant::now() + settle_timeout;
        let producer = match &command {
            PartitionCommand::Append(batch) => batch.producer,
            _ => None,
        };
        let reorder_deadline = tokio::time::Instant::now() + REORDER_WAIT;
        loop {
            let settled = self.settled.notified();
            let submitted = self.submitted.notified();
            let submission = self.submission.lock().await;
            let leadership = replica.leadership();
            if !leadership.is_self {
                return Err(ProposeError::NotLeader);
            }
            let step = {
                let mut state = self.state.lock().expect("sequencer state lock");
                if state.term != leadership.term {
                    *state = State {
                        term: leadership.term,
                        generation: state.generation + 1,
                        next: None,
                        in_flight: 0,
                        producer_ends: HashMap::new(),
                    };
                }
                // With nothing of ours in flight, the next offset is the high watermark, once every
                // entry in the log is applied: entries of this term from before a restart of this
                // leader are in the log but were counted by no proposal of this sequencer (seed 9
                // of the ACKS_LEADER workload).
                if state.in_flight == 0 && leadership.ready && leadership.log_applied {
                    state.next = Some(replica.view.borrow().high_watermark);
                }
                let ahead = producer.is_some_and(|p| {
                    state
                        .producer_ends
                        .get(&p.producer_id)
                        .is_some_and(|&(epoch, end)| epoch == p.epoch && p.first_sequence > end)
                });
                if ahead && tokio::time::Instant::now() < reorder_deadline {
                    Step::AwaitPredecessors
                } else if predict && state.next.is_none() {
                    Step::AwaitSettled
                } else {
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
                    // Counted before it is submitted: from here on the entry may commit.
                    state.in_flight += 1;
                    if let Some(p) = producer {
                        if state.producer_ends.len() >= eddy_limits::PRODUCERS_PER_PARTITION_MAX {
                            state.producer_ends.clear();
                        }
                        let end = p.first_sequence.saturating_add(record_count);
                        let slot = state.producer_ends.entry(p.producer_id).or_insert((p.epoch, end));
                        *slot = match *slot {
                            (epoch, known) if epoch == p.epoch => (epoch, known.max(end)),
                            _ => (p.epoch, end),
                        };
                    }
                    tracing::debug!(
                        group = replica.group,
                        term = state.term,
                        generation = state.generation,
                        in_flight = state.in_flight,
                        ?predicted,
                        idempotent,
                        record_count,
                        hw = replica.view.borrow().high_watermark,
                        ready = leadership.ready,
                        "proposal counted"
                    );
                    Step::Submit { predicted, generation: state.generation }
                }
            };
            let (predicted, generation) = match step {
                Step::Submit { predicted, generation } => (predicted, generation),
                Step::AwaitPredecessors => {
                    drop(submission);
                    let _ = tokio::time::timeout_at(reorder_deadline, submitted).await;
                    continue;
                }
                Step::AwaitSettled => {
                    drop(submission);
                    if tokio::time::timeout_at(deadline, settled).await.is_err() {
                        return Err(ProposeError::Unsettled);
                    }
                    continue;
                }
            };
            if predict {
                // The batch is appended at the predicted offset or not at all.
                if let PartitionCommand::Append(batch) = &mut command {
                    batch.expected_base_offset = predicted;
                }
            }
            // Until Raft has the entry, a failure or a cancellation of this future (the client
            // went away while Raft's queue was full) means it was never submitted: `unsent`
            // then takes back its count and the offsets predicted past it.
            let mut unsent = Unsent { sequencer: self, generation, armed: true };
            let (responder, completion) =
                ProgressResponder::<PartitionTypes, ClientWriteResult<PartitionTypes>>::complete_only();
            if replica.raft.client_write_ff(command, Some(responder)).await.is_err() {
                return Err(ProposeError::Stopped);
            }
            unsent.armed = false;
            drop(submission);
            self.submitted.notify_waiters();
            return Ok(Proposed {
                predicted: if predict { predicted } else { None },
                completion: Some(completion),
                generation,
                sequencer: self.clone(),
            });
        }
    }

    /// Records that a proposal of `generation` was applied or dropped. One that did not append
    /// what it was counted for (refused by Raft, dropped with the leadership, or not appended
    /// at apply) leaves the offsets predicted after it too high: predictions stop until the
    /// proposals in flight settle and restart from the high watermark. (The proposals already
    /// predicted past it carry their predicted offsets and are not appended elsewhere.)
    fn complete(&self, generation: u64, appended_as_counted: bool) {
        let mut state = self.state.lock().expect("sequencer state lock");
        if !appended_as_counted && state.generation == generation {
            state.next = None;
        }
        tracing::debug!(generation, current = state.generation, in_flight = state.in_flight, "proposal completed");
        if state.generation == generation {
            assert!(state.in_flight > 0, "a proposal completed that was never counted");
            state.in_flight -= 1;
            if state.in_flight == 0 {
                self.settled.notify_waiters();
            }
        }
    }

    /// Takes back a proposal that was counted but never reached Raft. The offsets predicted
    /// after it would be off by its records, so predictions stop until the proposals in flight
    /// settle and the next one restarts from the high watermark.
    fn unsent(&self, generation: u64) {
        self.complete(generation, false);
    }
}

/// A counted proposal not yet handed to Raft (see [`Sequencer::unsent`]).
struct Unsent<'a> {
    sequencer: &'a Sequencer,
    generation: u64,
    armed: bool,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.sequencer.unsent(self.generation);
        }
    }
}

impl Proposed {
    /// Waits for the entry to be applied (or dropped with the leadership). Cancel-safe: when the
    /// caller stops waiting (a timeout), the proposal stays counted until its outcome arrives.
    pub async fn outcome(&mut self) -> Outcome {
        let completion = self.completion.as_mut().expect("a proposal's outcome is awaited once");
        let outcome = completion.await;
        self.completion = None;
        self.sequencer.complete(self.generation, appended_as_counted(&outcome));
        outcome
    }
}

/// Whether the proposal's entry was applied and appended records (as counted when it was
/// proposed; an idempotent batch answered as a duplicate ends the predictions anyway). A trim
/// appends none and was counted as none.
fn appended_as_counted(outcome: &Outcome) -> bool {
    matches!(outcome, Ok(Ok(response))
        if matches!(response.data, PartitionResponse::Appended { .. } | PartitionResponse::Trimmed { .. }))
}

impl Drop for Proposed {
    fn drop(&mut self) {
        // Nobody waits any more, but the entry may still commit: keep it counted until it does.
        if let Some(completion) = self.completion.take() {
            let sequencer = self.sequencer.clone();
            let generation = self.generation;
            tokio::spawn(async move {
                let outcome = completion.await;
                sequencer.complete(generation, appended_as_counted(&outcome));
            });
        }
    }
}
