//! Every fixed bound of Eddy in one place, and the relations between them, checked when the
//! workspace compiles.
//!
//! A broker must not run out of memory whatever its clients send, so every request, queue and
//! message it handles has a bound. The ones an operator may tune are fields of `BrokerConfig`,
//! validated against the ceilings here; the rest are fixed. A limit that depends on another
//! (a Raft message must hold the largest batch; a connection's long polls must leave it streams
//! for other requests) says so in a `const` assertion below, so changing one number cannot
//! silently break the others.
//!
//! This crate has no dependencies: storage, Raft, partitions, the broker and the wire contract
//! all read their bounds from here.

// ---------------------------------------------------------------------------------------------
// Produce

/// The highest `batch_size_max_bytes` a broker accepts in its configuration: the counted size of
/// one produce request's records (see `eddy_proto::size`).
pub const BATCH_BYTES_MAX_LIMIT: usize = 64 << 20;

/// The highest `batch_records_max` a broker accepts in its configuration, and the most records a
/// produce request may carry before it is decoded at all. The wire encoding of an empty record is
/// two bytes while its decoded form is about a hundred, so without a count checked on the raw
/// bytes a 16 MiB request of empty records decoded into 8 million records and 1.8 GiB.
pub const BATCH_RECORDS_MAX_LIMIT: usize = 1 << 18;

/// Memory the decoded records of one produce request may take at most (the decoded record's
/// size times [`BATCH_RECORDS_MAX_LIMIT`] is checked against it where the record type is
/// defined, in `eddy_proto`). Values and keys are not counted: they are slices of the request's
/// buffer, bounded by its encoded size.
pub const PRODUCE_DECODED_RECORDS_BYTES_MAX: usize = 32 << 20;

/// Room for protobuf framing and the other fields of a request around its largest batch.
pub const REQUEST_OVERHEAD_BYTES: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Fetch

/// Most records one fetch returns, whatever the request asks.
pub const FETCH_RECORDS_MAX: u32 = 100_000;

/// Most bytes one fetch returns, whatever the request asks.
pub const FETCH_BYTES_MAX: u32 = 64 << 20;

/// Bytes of fetch answers a broker reads and builds at once, over every connection. A fetch
/// reserves its (clamped) `max_bytes` from this budget before it reads; one that cannot get it
/// within [`FETCH_BUDGET_WAIT_MS`] is answered BUSY.
pub const FETCH_BYTES_IN_FLIGHT_MAX: usize = 256 << 20;

/// How long a fetch waits for room in [`FETCH_BYTES_IN_FLIGHT_MAX`] before it is answered BUSY.
pub const FETCH_BUDGET_WAIT_MS: u64 = 2_000;

/// Long polls (fetches waiting for records at the end of a partition) one broker holds at once.
pub const FETCH_WAITS_MAX: usize = 20_000;

/// Long polls one client connection may hold at once.
pub const FETCH_WAITS_PER_CONNECTION_MAX: usize = 2_000;

/// What a client is told to wait before it retries a request refused as BUSY.
pub const BUSY_RETRY_AFTER_MS: u64 = 100;

/// Concurrent requests (HTTP/2 streams) one connection may have open; a client past it waits
/// for one to finish (HTTP/2 flow control), it is not refused.
pub const CONNECTION_STREAMS_MAX: u32 = 4_096;

// ---------------------------------------------------------------------------------------------
// Replication and node-to-node messages

/// Most encoded entry bytes one replication request (AppendEntries) carries; a single larger
/// entry (one large produce batch) still goes, alone.
pub const REPLICATION_BYTES_MAX: usize = 8 << 20;

/// The largest Raft message a node sends or accepts: an AppendEntries carries at most
/// [`REPLICATION_BYTES_MAX`] of entries or one larger entry alone (a produce batch, at most
/// [`BATCH_BYTES_MAX_LIMIT`]); snapshots are a partition's offsets and producer windows, or the
/// cluster metadata. Anything larger is refused before it is decoded.
pub const RAFT_MESSAGE_MAX_BYTES: usize = 80 << 20;

/// Bytes of Raft log entries a node keeps decoded in memory, over all its groups: the entries
/// appended but not yet known committed, which replication sends next. Past it, entries are read
/// back from storage instead.
pub const RAFT_TAIL_CACHE_BYTES_MAX: usize = 128 << 20;

/// The largest controller RPC (a broker's heartbeat and the metadata it is answered with, or a
/// forwarded request) a node sends or accepts.
pub const CONTROLLER_MESSAGE_MAX_BYTES: usize = 64 << 20;

// ---------------------------------------------------------------------------------------------
// Producer state

/// Batches remembered per producer and partition to answer retries (as Kafka's five in-flight):
/// also the most batches an idempotent producer keeps in flight per partition.
pub const PRODUCER_DEDUP_WINDOW_BATCHES: usize = 5;

/// Producers a partition remembers; past this, the one idle longest is forgotten, and its next
/// batch starts afresh.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

// ---------------------------------------------------------------------------------------------
// Consumer groups

/// Records the group coordinator reads per step while it loads a group's state.
pub const GROUP_LOAD_RECORDS_MAX: usize = 4_096;

/// Bytes the group coordinator reads per step while it loads a group's state.
pub const GROUP_LOAD_BYTES_MAX: usize = 8 << 20;

// ---------------------------------------------------------------------------------------------
// Relations

// The largest batch travels alone in one Raft message, with room for its framing.
const _: () = assert!(BATCH_BYTES_MAX_LIMIT + REQUEST_OVERHEAD_BYTES <= RAFT_MESSAGE_MAX_BYTES);
// A regular AppendEntries fits in a Raft message.
const _: () = assert!(REPLICATION_BYTES_MAX + REQUEST_OVERHEAD_BYTES <= RAFT_MESSAGE_MAX_BYTES);
// One fetch of the most bytes fits the broker's fetch budget, several times over.
const _: () = assert!(FETCH_BYTES_MAX as usize * 4 <= FETCH_BYTES_IN_FLIGHT_MAX);
// A fetch answer holds at least the largest batch, so any stored batch can be read back.
const _: () = assert!(FETCH_BYTES_MAX as usize >= BATCH_BYTES_MAX_LIMIT);
// A connection full of long polls still has streams left for other requests.
const _: () = assert!(FETCH_WAITS_PER_CONNECTION_MAX < CONNECTION_STREAMS_MAX as usize);
const _: () = assert!(FETCH_WAITS_PER_CONNECTION_MAX <= FETCH_WAITS_MAX);
// A group load step fits one fetch.
const _: () = assert!(GROUP_LOAD_BYTES_MAX <= FETCH_BYTES_MAX as usize);
const _: () = assert!(GROUP_LOAD_RECORDS_MAX <= FETCH_RECORDS_MAX as usize);
// The record count checked before decoding is below what the counted size already implies for
// the largest batch (each record counts at least 32 bytes), so it is the tighter bound.
const _: () = assert!(BATCH_RECORDS_MAX_LIMIT <= BATCH_BYTES_MAX_LIMIT / 32);
// Every idempotent batch in flight can be answered from the window after a retry.
const _: () = assert!(PRODUCER_DEDUP_WINDOW_BATCHES >= 1);
