//! The boundary between the workload engine and a system under test.
//!
//! The engine only ever talks to a [`Driver`]: it creates a stream of N partitions, publishes
//! records to a partition and waits for each acknowledgement, reads a partition from its start
//! or from its end, and asks who leads a partition (so a workload can kill that server). What a
//! "partition" is in each system, and what an acknowledgement promises, is the driver's to
//! state in its module documentation.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::BenchResult;

/// Which system a driver talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// Eddy, through `eddy-client`.
    Eddy,
    /// NATS JetStream, through `async-nats`.
    Nats,
}

impl System {
    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            System::Eddy => "eddy",
            System::Nats => "nats",
        }
    }
}

/// A stream (Eddy: a topic) the run writes and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Letters, digits, `_` and `-` only, so the name is valid in both systems.
    pub name: String,
    /// Independent ordered logs, each with its own leader.
    pub partitions: u32,
    /// Copies of every record (3 for every figure the project publishes).
    pub replicas: u32,
}

impl StreamSpec {
    /// Checks the name is valid in every system the harness drives.
    pub fn validate(&self) -> BenchResult<()> {
        let valid = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(crate::BenchError::Usage(format!(
                "--stream {:?}: use 1 to 64 letters, digits, '_' and '-'",
                self.name
            )));
        }
        if self.partitions == 0 || self.replicas == 0 {
            return Err(crate::BenchError::Usage("--partitions and --replicas must be at least 1".into()));
        }
        Ok(())
    }
}

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The oldest record stored.
    Start,
    /// After the last record stored when the reader is made: only records published later.
    End,
}

/// Resolves when one published record is acknowledged (`Ok`) or definitely not (`Err`, with
/// the reason as text: the engine counts it and goes on).
pub type AckFuture = BoxFuture<'static, Result<(), String>>;

/// One system under test.
///
/// Every method may be called from any task; the engine shares the driver across the tasks of
/// a run.
pub trait Driver: Send + Sync + 'static {
    /// Publishes to one stream.
    type Publisher: Publisher;
    /// Reads one partition.
    type Reader: Reader;

    /// The system this driver talks to.
    fn system(&self) -> System;

    /// Creates the stream when it does not exist and returns once every partition has a
    /// leader, so leader election is never measured as latency. Returns the partition count of
    /// the stream as it is (an existing stream keeps its own).
    fn ensure_stream(&self, stream: &StreamSpec) -> impl Future<Output = BenchResult<u32>> + Send;

    /// A publisher for `stream` that keeps at most `in_flight_max` records unacknowledged.
    fn publisher(
        &self,
        stream: &StreamSpec,
        in_flight_max: usize,
    ) -> impl Future<Output = BenchResult<Self::Publisher>> + Send;

    /// A reader of one partition from `from`, asking for at most `batch_records_max` records
    /// at a time.
    fn reader(
        &self,
        stream: &StreamSpec,
        partition: u32,
        from: Position,
        batch_records_max: u32,
    ) -> impl Future<Output = BenchResult<Self::Reader>> + Send;

    /// How many records a partition stores now (what a reader from the start reads to catch up).
    fn stored_records(&self, stream: &StreamSpec, partition: u32) -> impl Future<Output = BenchResult<u64>> + Send;

    /// The name of the server leading `partition` now, as `--server-pid NAME=PID` names it:
    /// the node id for Eddy, the server name for NATS.
    fn leader(&self, stream: &StreamSpec, partition: u32) -> impl Future<Output = BenchResult<String>> + Send;
}

/// Publishes records with acknowledgement.
pub trait Publisher: Send + Sync + 'static {
    /// Hands one record to the system for `partition` and returns its acknowledgement to await.
    /// Returns once the record is on its way: it may wait while the client's own buffer is
    /// full, which the engine's in-flight bound keeps from happening.
    fn publish(&self, partition: u32, payload: Bytes) -> impl Future<Output = BenchResult<AckFuture>> + Send;

    /// Sends what is buffered and waits for the outstanding acknowledgements.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Reads one partition in order.
pub trait Reader: Send + 'static {
    /// The next records' payloads, in order; waits up to `wait` for the first one and returns
    /// an empty batch when none came.
    fn next_batch(&mut self, wait: Duration) -> impl Future<Output = BenchResult<Vec<Bytes>>> + Send;
}
