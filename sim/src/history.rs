//! The history of one run: every workload operation with its outcome, every read, every fault
//! and every Raft leadership seen, in simulated-time order. The checker reads it; its text form
//! is the run's trace, whose hash the determinism check compares.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// A record as a read returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    pub offset: u64,
    pub value: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A producer started sending `value` to `partition`.
    SendInvoke { process: String, value: String, partition: u32 },
    /// The send was acknowledged at `offset`.
    SendOk { value: String, partition: u32, offset: u64 },
    /// An ACKS_LEADER send was acknowledged at `offset` before it committed: it may be lost with
    /// the leadership, but if it is in the log, it is at `offset`.
    SendLeaderOk { value: String, partition: u32, offset: u64 },
    /// The broker said the send did not happen.
    SendFail { value: String, partition: u32, reason: String },
    /// The send may or may not have happened (timeout, lost connection, leadership change).
    SendUnknown { value: String, partition: u32, reason: String },
    /// A consumer's fetch from `position` returned `records`.
    Poll { consumer: String, partition: u32, position: u64, records: Vec<ReadRecord> },
    /// After healing, the whole partition read from its leader.
    FinalRead { partition: u32, records: Vec<ReadRecord>, high_watermark: u64 },
    /// After healing, a partition could not be read in full: a liveness failure.
    FinalReadFailed { partition: u32, reason: String },
    /// After healing, one replica's committed records, read from that replica.
    ReplicaRead { node: u64, partition: u32, records: Vec<ReadRecord> },
    /// A consumer-group member's poll returned `records` of `partition`; `epoch` is its member
    /// epoch after the poll.
    GroupDelivered { member: String, epoch: i64, partition: u32, records: Vec<ReadRecord> },
    /// A member started reading `partition` at `offset` (the group's committed offset, or the
    /// earliest offset when none was committed).
    GroupStarted { member: String, partition: u32, offset: u64 },
    /// A member's commit of its positions, invoked at `invoked_ms`; `error` is its failure.
    GroupCommit { member: String, invoked_ms: u64, offsets: Vec<(u32, u64)>, error: Option<String> },
    /// After the members stopped: the group's committed offsets.
    GroupFinal { offsets: Vec<(u32, u64)> },
    /// A send to the retained topic was acknowledged at `offset`.
    RetainedAck { value: String, offset: u64 },
    /// After healing, the retained topic read from its log start on its leader.
    RetainedFinal { log_start: u64, records: Vec<ReadRecord> },
    /// After healing, the retained topic could not be read.
    RetainedFinalFailed { reason: String },
    /// After healing, one replica of the retained topic read from the leader's log start;
    /// `error` when the replica no longer held that offset.
    RetainedReplica { node: u64, records: Vec<ReadRecord>, error: Option<String> },
    /// The schema registry acknowledged `schema` under `subject` as `version` with `id`.
    SchemaAck { process: String, subject: String, schema: String, id: u32, version: u32 },
    /// The registry refused `schema` under `subject` as incompatible.
    SchemaRefused { process: String, subject: String, schema: String },
    /// After healing: every subject's versions (version, id), and the schema of every id listed.
    SchemaFinal { subjects: Vec<(String, Vec<(u32, u32)>)>, schemas: Vec<(u32, String)> },
    /// After healing, the registry could not be read.
    SchemaFinalFailed { reason: String },
    /// A change to users or ACLs: after it, `target` (`acl:<name>` or `user:<name>`) is
    /// `effect` (`present`, `iterations=N`) or absent (`None`). `acked`: the cluster said it is
    /// done (or, for a deletion, that there was nothing to delete); otherwise its outcome is
    /// unknown.
    SecurityChange { process: String, target: String, effect: Option<String>, acked: bool },
    /// After healing, the users and ACLs broker `node` enforces: (target, effect).
    SecurityFinal { node: u64, state: Vec<(String, String)> },
    /// After healing, broker `node`'s users and ACLs could not be read.
    SecurityFinalFailed { node: u64, reason: String },
    /// A fault started or ended.
    Fault { description: String },
    /// `node` is the leader of `group` in `term` (sampled from the node's Raft metrics).
    Leader { group: u64, term: u64, node: u64 },
    /// Free-form progress notes (phase changes).
    Note { text: String },
}

/// One entry: when (simulated milliseconds since start) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at_ms: u64,
    pub event: Event,
}

/// The shared recorder. Cheap to clone; every simulated process records into it.
#[derive(Debug, Clone, Default)]
pub struct History {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `event` at the current simulated time.
    pub fn record(&self, event: Event) {
        let at_ms = turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64);
        self.record_at(at_ms, event);
    }

    /// Records `event` at `at_ms` (for the driver, which runs outside any simulated host).
    pub fn record_at(&self, at_ms: u64, event: Event) {
        self.entries.lock().expect("history lock").push(Entry { at_ms, event });
    }

    /// Every entry so far, in recording order.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().expect("history lock").clone()
    }
}

/// One line of trace text per entry.
pub fn trace_lines(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let mut line = format!("{:>8} ", e.at_ms);
            match &e.event {
                Event::SendInvoke { process, value, partition } => {
                    let _ = write!(line, "invoke  {process} send {value} -> p{partition}");
                }
                Event::SendOk { value, partition, offset } => {
                    let _ = write!(line, "ok      {value} at p{partition}@{offset}");
                }
                Event::SendLeaderOk { value, partition, offset } => {
                    let _ = write!(line, "ok(ldr) {value} at p{partition}@{offset}");
                }
                Event::SendFail { value, partition, reason } => {
                    let _ = write!(line, "fail    {value} -> p{partition}: {reason}");
                }
                Event::SendUnknown { value, partition, reason } => {
                    let _ = write!(line, "unknown {value} -> p{partition}: {reason}");
                }
                Event::Poll { consumer, partition, position, records } => {
                    let _ = write!(line, "poll    {consumer} p{partition}@{position}: {}", render(records));
                }
                Event::FinalRead { partition, records, high_watermark } => {
                    let _ = write!(line, "final   p{partition} hw={high_watermark}: {}", render(records));
                }
                Event::FinalReadFailed { partition, reason } => {
                    let _ = write!(line, "final   p{partition} FAILED: {reason}");
                }
                Event::ReplicaRead { node, partition, records } => {
                    let _ = write!(line, "replica n{node} p{partition}: {}", render(records));
                }
                Event::GroupDelivered { member, epoch, partition, records } => {
                    let _ = write!(line, "group   {member}@{epoch} p{partition}: {}", render(records));
                }
                Event::GroupStarted { member, partition, offset } => {
                    let _ = write!(line, "group   {member} starts p{partition}@{offset}");
                }
                Event::GroupCommit { member, invoked_ms, offsets, error } => {
                    let outcome = error.as_deref().unwrap_or("ok");
                    let _ = write!(line, "commit  {member} (from {invoked_ms}) {offsets:?}: {outcome}");
                }
                Event::GroupFinal { offsets } => {
                    let _ = write!(line, "group   final committed {offsets:?}");
                }
                Event::RetainedAck { value, offset } => {
                    let _ = write!(line, "ok      {value} at retained@{offset}");
                }
                Event::RetainedFinal { log_start, records } => {
                    let _ = write!(line, "final   retained from {log_start}: {}", render(records));
                }
                Event::RetainedFinalFailed { reason } => {
                    let _ = write!(line, "final   retained FAILED: {reason}");
                }
                Event::RetainedReplica { node, records, error } => match error {
                    Some(error) => {
                        let _ = write!(line, "replica n{node} retained FAILED: {error}");
                    }
                    None => {
                        let _ = write!(line, "replica n{node} retained: {}", render(records));
                    }
                },
                Event::SchemaAck { process, subject, schema, id, version } => {
                    let _ = write!(line, "schema  {process} {subject} v{version} = id {id}: {schema}");
                }
                Event::SchemaRefused { process, subject, schema } => {
                    let _ = write!(line, "schema  {process} {subject} refused: {schema}");
                }
                Event::SchemaFinal { subjects, schemas } => {
                    let _ = write!(line, "schema  final {subjects:?}, {} schemas", schemas.len());
                }
                Event::SchemaFinalFailed { reason } => {
                    let _ = write!(line, "schema  final FAILED: {reason}");
                }
                Event::SecurityChange { process, target, effect, acked } => {
                    let outcome = if *acked { "ok" } else { "unknown" };
                    let _ = write!(line, "secure  {process} {target} -> {effect:?}: {outcome}");
                }
                Event::SecurityFinal { node, state } => {
                    let _ = write!(line, "secure  final n{node}: {state:?}");
                }
                Event::SecurityFinalFailed { node, reason } => {
                    let _ = write!(line, "secure  final n{node} FAILED: {reason}");
                }
                Event::Fault { description } => {
                    let _ = write!(line, "fault   {description}");
                }
                Event::Leader { group, term, node } => {
                    let _ = write!(line, "leader  group {group} term {term}: n{node}");
                }
                Event::Note { text } => {
                    let _ = write!(line, "note    {text}");
                }
            }
            line
        })
        .collect()
}

fn render(records: &[ReadRecord]) -> String {
    let values: Vec<String> = records.iter().map(|r| format!("{}={}", r.offset, r.value)).collect();
    format!("[{}]", values.join(" "))
}

/// FNV-1a over the trace text: stable across processes, platforms and Rust versions.
pub fn trace_hash(lines: &[String]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for line in lines {
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}
