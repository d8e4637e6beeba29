//! The workload engine: publishing at a pace with a bounded window, and reading back, against
//! any [`Driver`].
//!
//! **No coordinated omission.** Every record has a due time and its latency is measured from
//! it, not from when the engine got round to sending it:
//! - open loop ([`Pace::Rate`]): record `i` is due at `start + i / rate`, whether or not the
//!   system kept up; a full window delays the send but not the due time;
//! - closed loop ([`Pace::ClosedLoop`]): a record is due when a slot of the in-flight window
//!   freed (the previous acknowledgement arrived), so time spent by the engine or the client
//!   library before the send counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, watch};

use crate::driver::{AckFuture, Driver, Position, Publisher, Reader, StreamSpec};
use crate::error::{BenchError, BenchResult};
use crate::latency::Latency;
use crate::payload::{Payloads, Stamp};

/// How long a reader may receive nothing while records are still expected.
const READ_STALL_MAX: Duration = Duration::from_secs(60);
/// How long one read call waits for records before the reader checks whether it is done.
const READ_WAIT: Duration = Duration::from_millis(100);

/// Counts records as they complete, for a progress display.
pub type Progress = Arc<AtomicU64>;

/// How records are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Send whenever a slot of the in-flight window is free.
    ClosedLoop,
    /// Send at a fixed rate (records per second), open loop.
    Rate(f64),
}

/// When to stop sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many records.
    Records(u64),
    /// After this long (closed loop: as many as fit; at a rate: rate × duration records).
    After(Duration),
}

/// What to publish and how.
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    pub stop: Stop,
    pub record_size_bytes: usize,
    /// Records sent and not yet acknowledged, at most.
    pub in_flight_max: usize,
    pub pace: Pace,
    /// Stamp each payload with its sequence number and due time (for consumers).
    pub stamped: bool,
    /// Remember which records were acknowledged (to check none is lost).
    pub track_acks: bool,
}

impl ProduceSpec {
    /// The number of records to send, when known in advance.
    fn records(&self) -> Option<u64> {
        match (self.stop, self.pace) {
            (Stop::Records(n), _) => Some(n),
            (Stop::After(d), Pace::Rate(rate)) => Some((rate * d.as_secs_f64()).round() as u64),
            (Stop::After(_), Pace::ClosedLoop) => None,
        }
    }
}

/// The shared time origin of a run: due times in payloads count from it.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(pub Instant);

/// What publishing achieved.
#[derive(Debug, Clone)]
pub struct ProduceOutcome {
    pub sent: u64,
    pub acknowledged: u64,
    /// Records that failed (publish or acknowledgement).
    pub errors: u64,
    pub first_error: Option<String>,
    pub bytes_acknowledged: u64,
    /// From the first due time to the last answer.
    pub elapsed: Duration,
    /// From each record's due time to its acknowledgement.
    pub latency: Latency,
    /// The longest time with no acknowledgement, from the start to the last answer.
    pub ack_gap_max: Duration,
    /// Per sequence number, whether it was acknowledged (with `track_acks`).
    pub acknowledged_sequences: Option<Vec<bool>>,
}

struct InFlight {
    sequence: u64,
    due: Instant,
    ack: AckFuture,
}

/// What the acknowledgement collector saw.
struct Collected {
    acknowledged: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Latency,
    ack_gap_max: Duration,
    last_answer: Instant,
    acknowledged_sequences: Option<Vec<bool>>,
}

/// Awaits acknowledgements as they come, records their latency and frees their window slots.
async fn collect(
    mut in_flight: mpsc::UnboundedReceiver<InFlight>,
    slots: mpsc::UnboundedSender<Instant>,
    started: Instant,
    track_acks: bool,
    progress: Progress,
) -> Collected {
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    let mut out = Collected {
        acknowledged: 0,
        errors: 0,
        first_error: None,
        latency: Latency::new(),
        ack_gap_max: Duration::ZERO,
        last_answer: started,
        acknowledged_sequences: track_acks.then(Vec::new),
    };
    let mut last_ack = started;
    loop {
        tokio::select! {
            biased;
            Some((sequence, due, result, at)) = pending.next(), if !pending.is_empty() => {
                // The window slot is free from the moment the answer arrived.
                let _ = slots.send(at);
                out.last_answer = out.last_answer.max(at);
                progress.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(()) => {
                        out.acknowledged += 1;
                        out.latency.record(at.saturating_duration_since(due));
                        if at > last_ack {
                            out.ack_gap_max = out.ack_gap_max.max(at - last_ack);
                            last_ack = at;
                        }
                        if let Some(acked) = out.acknowledged_sequences.as_mut() {
                            let i = sequence as usize;
                            if acked.len() <= i {
                                acked.resize(i + 1, false);
                            }
                            acked[i] = true;
                        }
                    }
                    Err(error) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(error);
                    }
                }
            }
            message = in_flight.recv(), if open => match message {
                Some(InFlight { sequence, due, ack }) => pending.push(async move {
                    let result = ack.await;
                    (sequence, due, result, Instant::now())
                }),
                None => open = false,
            },
            else => break,
        }
    }
    // A silence at the end (records that only failed) counts as a window without acks too.
    out.ack_gap_max = out.ack_gap_max.max(out.last_answer.saturating_duration_since(last_ack));
    out
}

/// Publishes records to `partitions` partitions round-robin (record `i` to partition
/// `i % partitions`) as `spec` says, and waits for every answer.
pub async fn produce<P: Publisher>(
    publisher: &P,
    partitions: u32,
    spec: &ProduceSpec,
    epoch: Epoch,
    progress: Progress,
) -> BenchResult<ProduceOutcome> {
    if spec.in_flight_max == 0 || partitions == 0 {
        return Err(BenchError::Usage("the in-flight bound and the partition count must be at least 1".into()));
    }
    let payloads = Payloads::new(spec.record_size_bytes, spec.stamped);
    let (slots_tx, mut slots_rx) = mpsc::unbounded_channel::<Instant>();
    let (in_flight_tx, in_flight_rx) = mpsc::unbounded_channel::<InFlight>();
    let started = Instant::now();
    for _ in 0..spec.in_flight_max {
        let _ = slots_tx.send(started);
    }
    let collector = tokio::spawn(collect(in_flight_rx, slots_tx.clone(), started, spec.track_acks, progress.clone()));
    let records = spec.records();
    let deadline = match spec.stop {
        Stop::After(d) => Some(started + d),
        Stop::Records(_) => None,
    };
    let mut sent = 0u64;
    let mut send_errors = 0u64;
    let mut first_send_error = None;
    loop {
        let more = match (records, deadline) {
            (Some(n), _) => sent < n,
            (None, Some(d)) => Instant::now() < d,
            (None, None) => false,
        };
        if !more {
            break;
        }
        let freed = slots_rx.recv().await.expect("the engine holds a slot sender");
        let due = match spec.pace {
            Pace::ClosedLoop => freed,
            Pace::Rate(rate) => {
                let due = started + Duration::from_secs_f64(sent as f64 / rate);
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                due
            }
        };
        let payload = payloads.make(sent, due.saturating_duration_since(epoch.0));
        let partition = (sent % u64::from(partitions)) as u32;
        match publisher.publish(partition, payload).await {
            Ok(ack) => {
                let _ = in_flight_tx.send(InFlight { sequence: sent, due, ack });
            }
            Err(e) => {
                send_errors += 1;
                first_send_error.get_or_insert_with(|| e.to_string());
                progress.fetch_add(1, Ordering::Relaxed);
                let _ = slots_tx.send(Instant::now());
            }
        }
        sent += 1;
    }
    drop(in_flight_tx);
    let collected = collector.await?;
    let mut acknowledged_sequences = collected.acknowledged_sequences;
    if let Some(acked) = acknowledged_sequences.as_mut() {
        acked.resize(sent as usize, false);
    }
    assert_eq!(collected.acknowledged + collected.errors + send_errors, sent, "every record sent is answered once");
    Ok(ProduceOutcome {
        sent,
        acknowledged: collected.acknowledged,
        errors: collected.errors + send_errors,
        first_error: first_send_error.or(collected.first_error),
        bytes_acknowledged: collected.acknowledged * spec.record_size_bytes as u64,
        elapsed: collected.last_answer.saturating_duration_since(started),
        latency: collected.latency,
        ack_gap_max: collected.ack_gap_max,
        acknowledged_sequences,
    })
}

/// What reading achieved.
#[derive(Debug, Clone)]
pub struct ConsumeOutcome {
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Catch-up: the duration of each read call. Live: from each record's due time to its
    /// receipt.
    pub latency: Latency,
    /// Sequence numbers read (when asked for: stamped payloads only).
    pub sequences: Option<Vec<u64>>,
}

/// What one partition's reader returns.
struct PartitionRead {
    records: u64,
    bytes: u64,
    latency: Latency,
    sequences: Option<Vec<u64>>,
}

/// Reads every record stored in each partition of `stream` from its start, all partitions at
/// once, up to `limit` records in all. With `sequences`, returns the stamped sequence numbers.
pub async fn consume_from_start<D: Driver>(
    driver: &D,
    stream: &StreamSpec,
    partitions: u32,
    limit: Option<u64>,
    batch_records_max: u32,
    sequences: bool,
    progress: Progress,
) -> BenchResult<ConsumeOutcome> {
    let mut readers = Vec::new();
    let mut available = 0;
    for p in 0..partitions {
        let stored = driver.stored_records(stream, p).await?;
        available += stored;
        readers.push((p, stored, driver.reader(stream, p, Position::Start, batch_records_max).await?));
    }
    let target = limit.unwrap_or(available).min(available);
    let total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (partition, stored, mut reader) in readers {
        let (total, progress) = (total.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut read =
                PartitionRead { records: 0, bytes: 0, latency: Latency::new(), sequences: sequences.then(Vec::new) };
            let mut last_record = Instant::now();
            while read.records < stored && total.load(Ordering::Relaxed) < target {
                let at = Instant::now();
                let batch = reader.next_batch(READ_WAIT).await?;
                if batch.is_empty() {
                    if last_record.elapsed() > READ_STALL_MAX {
                        return Err(BenchError::Stalled {
                            partition,
                            seconds: READ_STALL_MAX.as_secs(),
                            missing: stored - read.records,
                        });
                    }
                    continue;
                }
                read.latency.record(at.elapsed());
                last_record = Instant::now();
                for payload in &batch {
                    read.bytes += payload.len() as u64;
                    if let Some(seqs) = read.sequences.as_mut()
                        && let Some(sequence) = Stamp::sequence_of(payload)
                    {
                        seqs.push(sequence);
                    }
                }
                let n = batch.len() as u64;
                read.records += n;
                total.fetch_add(n, Ordering::Relaxed);
                progress.fetch_add(n, Ordering::Relaxed);
            }
            Ok::<_, BenchError>(read)
        }));
    }
    let mut out = ConsumeOutcome {
        records: 0,
        bytes: 0,
        elapsed: Duration::ZERO,
        latency: Latency::new(),
        sequences: sequences.then(Vec::new),
    };
    for task in tasks {
        merge(&mut out, task.await??);
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

fn merge(out: &mut ConsumeOutcome, read: PartitionRead) {
    out.records += read.records;
    out.bytes += read.bytes;
    out.latency.merge(&read.latency);
    if let (Some(all), Some(mine)) = (out.sequences.as_mut(), read.sequences) {
        all.extend(mine);
    }
}

/// Readers of every partition from its end, receiving stamped records as they are published;
/// start them before publishing, then [`LiveConsumers::finish`].
pub struct LiveConsumers {
    tasks: Vec<tokio::task::JoinHandle<BenchResult<PartitionRead>>>,
    /// The number of records to wait for, once the producer knows it.
    target: watch::Sender<Option<u64>>,
    started: Instant,
}

impl LiveConsumers {
    /// Makes a reader at the end of every partition and starts reading.
    pub async fn start<D: Driver>(
        driver: &D,
        stream: &StreamSpec,
        partitions: u32,
        batch_records_max: u32,
        epoch: Epoch,
    ) -> BenchResult<LiveConsumers> {
        let mut readers = Vec::new();
        for p in 0..partitions {
            readers.push((p, driver.reader(stream, p, Position::End, batch_records_max).await?));
        }
        let (target, target_rx) = watch::channel(None);
        let total = Arc::new(AtomicU64::new(0));
        let tasks = readers
            .into_iter()
            .map(|(partition, reader)| {
                tokio::spawn(read_live(partition, reader, epoch, target_rx.clone(), total.clone()))
            })
            .collect();
        Ok(LiveConsumers { tasks, target, started: Instant::now() })
    }

    /// Waits until `expected` records arrived in all (or the readers gave up after
    /// `drain_max`) and returns what they read, with end-to-end latency.
    pub async fn finish(self, expected: u64, drain_max: Duration) -> BenchResult<ConsumeOutcome> {
        let _ = self.target.send(Some(expected));
        let mut out = ConsumeOutcome {
            records: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            latency: Latency::new(),
            sequences: Some(Vec::new()),
        };
        let give_up = tokio::time::Instant::now() + drain_max;
        for task in self.tasks {
            match tokio::time::timeout_at(give_up, task).await {
                Ok(read) => merge(&mut out, read??),
                // A reader still waiting has missed records: the caller counts them.
                Err(_) => tracing::warn!("a live reader did not finish within {drain_max:?}"),
            }
        }
        out.elapsed = self.started.elapsed();
        Ok(out)
    }
}

async fn read_live<R: Reader>(
    partition: u32,
    mut reader: R,
    epoch: Epoch,
    target: watch::Receiver<Option<u64>>,
    total: Arc<AtomicU64>,
) -> BenchResult<PartitionRead> {
    let mut read = PartitionRead { records: 0, bytes: 0, latency: Latency::new(), sequences: Some(Vec::new()) };
    loop {
        if let Some(expected) = *target.borrow()
            && total.load(Ordering::Relaxed) >= expected
        {
            return Ok(read);
        }
        let batch = reader.next_batch(READ_WAIT).await?;
        let received = Instant::now();
        for payload in &batch {
            read.bytes += payload.len() as u64;
            if let Some(stamp) = Stamp::read(payload, epoch.0) {
                read.latency.record(received.saturating_duration_since(stamp.due));
                read.sequences.get_or_insert_with(Vec::new).push(stamp.sequence);
            }
        }
        read.records += batch.len() as u64;
        total.fetch_add(batch.len() as u64, Ordering::Relaxed);
        tracing::trace!(partition, records = batch.len(), "live batch");
    }
}

/// What reading back says about what was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// Records acknowledged to the producer.
    pub acknowledged: u64,
    /// Distinct records read back.
    pub read: u64,
    /// Acknowledged records not read back: must be 0.
    pub lost: u64,
    /// Records read more than once.
    pub duplicates: u64,
}

/// Compares what was acknowledged with the sequence numbers read back.
pub fn verify(acknowledged: &[bool], read: &[u64]) -> Verification {
    let mut seen = vec![0u32; acknowledged.len()];
    let mut beyond = 0u64;
    for &sequence in read {
        match seen.get_mut(sequence as usize) {
            Some(count) => *count += 1,
            None => beyond += 1,
        }
    }
    let lost = acknowledged.iter().zip(&seen).filter(|(acked, seen)| **acked && **seen == 0).count() as u64;
    Verification {
        acknowledged: acknowledged.iter().filter(|a| **a).count() as u64,
        read: seen.iter().filter(|c| **c > 0).count() as u64 + beyond,
        lost,
        duplicates: seen.iter().map(|c| u64::from(c.saturating_sub(1))).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_counts_lost_and_duplicated_records() {
        let acked = [true, true, false, true];
        let v = verify(&acked, &[0, 1, 1, 2]);
        assert_eq!(v, Verification { acknowledged: 3, read: 3, lost: 1, duplicates: 1 });
        let v = verify(&acked, &[3, 2, 1, 0]);
        assert_eq!(v.lost, 0);
    }
}
