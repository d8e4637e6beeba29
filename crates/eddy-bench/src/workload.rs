//! The workloads of issue 11, run against any [`Driver`] and reported as one [`RunReport`].
//!
//! | workload | what | measured |
//! |---|---|---|
//! | W1 | one record in flight | latency, scheduled send → ack |
//! | W2 | a bounded window in flight | records/s, latency scheduled send → ack |
//! | W3 | a fixed rate, with live consumers | latency scheduled send → consumer receipt |
//! | W4 | preload, then read everything from the start | records/s of the read |
//! | W5 | a fixed rate; the partition's leader is SIGKILLed | longest window without acks; lost |

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cpu::{CpuMeter, CpuReport, ServerPid};
use crate::driver::{Driver, Publisher, StreamSpec};
use crate::engine::{
    self, ConsumeOutcome, Epoch, Pace, ProduceOutcome, ProduceSpec, Progress, Stop, Verification, verify,
};
use crate::error::{BenchError, BenchResult};
use crate::latency::LatencySummary;

/// How long live consumers may keep waiting for records once publishing ended.
const LIVE_DRAIN_MAX: Duration = Duration::from_secs(30);

/// One of the workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Latency: one record in flight.
    W1,
    /// Throughput: a bounded window in flight.
    W2,
    /// End to end at a fixed rate.
    W3,
    /// Catch-up read of preloaded records.
    W4,
    /// Failover: the leader is killed during a fixed-rate run.
    W5,
}

impl Workload {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::W4 => "w4",
            Workload::W5 => "w5",
        }
    }

    /// The defaults for this workload.
    pub fn defaults(self) -> Parameters {
        let base = Parameters {
            records: 0,
            record_size_bytes: 1024,
            partitions: 1,
            replicas: 3,
            in_flight_max: 1000,
            rate: None,
            duration_s: None,
            kill_after_s: None,
            fetch_records: 5000,
        };
        match self {
            Workload::W1 => Parameters { records: 20_000, in_flight_max: 1, ..base },
            Workload::W2 => Parameters { records: 300_000, ..base },
            Workload::W3 => Parameters { rate: Some(2000.0), duration_s: Some(10.0), in_flight_max: 10_000, ..base },
            Workload::W4 => Parameters { records: 600_000, ..base },
            Workload::W5 => Parameters {
                rate: Some(2000.0),
                duration_s: Some(20.0),
                kill_after_s: Some(5.0),
                in_flight_max: 10_000,
                ..base
            },
        }
    }
}

/// The parameters of a run, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parameters {
    /// Records to publish (W1, W2) or to preload and read (W4); W3 and W5 publish
    /// rate × duration.
    pub records: u64,
    pub record_size_bytes: usize,
    pub partitions: u32,
    pub replicas: u32,
    /// Records published and not yet acknowledged, at most (W4: while preloading).
    pub in_flight_max: usize,
    /// Records per second (W3, W5).
    pub rate: Option<f64>,
    /// Seconds of publishing (W3, W5).
    pub duration_s: Option<f64>,
    /// Seconds into the run the partition leader is killed (W5).
    pub kill_after_s: Option<f64>,
    /// Most records one read asks for.
    pub fetch_records: u32,
}

/// What killing the leader did (W5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failover {
    /// The killed server's name and pid.
    pub killed: String,
    pub pid: i32,
    /// Seconds after the first send.
    pub killed_at_s: f64,
    /// The longest time no record was acknowledged.
    pub no_ack_window_ms: f64,
}

/// A phase that is not the measured one (W4's preload), summarized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PhaseSummary {
    pub records: u64,
    pub errors: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
}

/// One run, as one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub system: &'static str,
    pub workload: &'static str,
    pub stream: String,
    pub parameters: Parameters,
    /// Records of the measured phase: acknowledged (W1, W2, W5) or received (W3, W4).
    pub records: u64,
    /// Records that failed, were lost or never arrived.
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub records_per_sec: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// What `latency_ms` measures.
    pub latency_of: &'static str,
    pub latency_ms: LatencySummary,
    /// W3: scheduled send → acknowledgement, beside the end-to-end latency.
    pub ack_latency_ms: Option<LatencySummary>,
    pub cpu: CpuReport,
    pub preload: Option<PhaseSummary>,
    /// W3 and W5: what was read back against what was acknowledged.
    pub verification: Option<Verification>,
    pub failover: Option<Failover>,
}

/// Everything a run needs besides the driver.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub workload: Workload,
    pub stream: StreamSpec,
    pub parameters: Parameters,
    /// Server processes to account CPU to (and to kill in W5).
    pub servers: Vec<ServerPid>,
    /// Other processes' CPU, in cores, above which the run is flagged as contended.
    pub contention_cores: f64,
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64().max(f64::EPSILON)
}

impl RunSpec {
    fn closed_loop(&self, records: u64, stamped: bool) -> ProduceSpec {
        ProduceSpec {
            stop: Stop::Records(records),
            record_size_bytes: self.parameters.record_size_bytes,
            in_flight_max: self.parameters.in_flight_max,
            pace: Pace::ClosedLoop,
            stamped,
            track_acks: false,
        }
    }

    fn at_rate(&self) -> BenchResult<ProduceSpec> {
        let (Some(rate), Some(duration_s)) = (self.parameters.rate, self.parameters.duration_s) else {
            return Err(BenchError::Usage(format!("{} needs --rate and --duration-s", self.workload.name())));
        };
        if !(rate > 0.0 && duration_s > 0.0) {
            return Err(BenchError::Usage("--rate and --duration-s must be positive".into()));
        }
        Ok(ProduceSpec {
            stop: Stop::After(Duration::from_secs_f64(duration_s)),
            record_size_bytes: self.parameters.record_size_bytes,
            in_flight_max: self.parameters.in_flight_max,
            pace: Pace::Rate(rate),
            stamped: true,
            track_acks: true,
        })
    }

    fn report(&self, system: &'static str, records: u64, bytes: u64, elapsed: Duration, cpu: CpuReport) -> RunReport {
        RunReport {
            system,
            workload: self.workload.name(),
            stream: self.stream.name.clone(),
            parameters: self.parameters.clone(),
            records,
            errors: 0,
            first_error: None,
            seconds: seconds(elapsed),
            records_per_sec: records as f64 / seconds(elapsed),
            mb_per_sec: bytes as f64 / seconds(elapsed) / 1e6,
            latency_of: "",
            latency_ms: crate::latency::Latency::new().summary(),
            ack_latency_ms: None,
            cpu,
            preload: None,
            verification: None,
            failover: None,
        }
    }

    fn produce_report(&self, system: &'static str, outcome: &ProduceOutcome, cpu: CpuReport) -> RunReport {
        RunReport {
            errors: outcome.errors,
            first_error: outcome.first_error.clone(),
            latency_of: "scheduled send to acknowledgement",
            latency_ms: outcome.latency.summary(),
            ..self.report(system, outcome.acknowledged, outcome.bytes_acknowledged, outcome.elapsed, cpu)
        }
    }
}

/// Runs one workload against `driver` and reports it.
pub async fn run<D: Driver>(driver: &D, spec: &RunSpec, progress: Progress) -> BenchResult<RunReport> {
    spec.stream.validate()?;
    if spec.parameters.record_size_bytes < crate::payload::STAMP_BYTES
        && matches!(spec.workload, Workload::W3 | Workload::W5)
    {
        return Err(BenchError::Usage(format!(
            "--record-size must be at least {} bytes for {}",
            crate::payload::STAMP_BYTES,
            spec.workload.name()
        )));
    }
    let partitions = driver.ensure_stream(&spec.stream).await?;
    let run = Run { driver, spec, partitions, epoch: Epoch(Instant::now()), progress };
    match spec.workload {
        Workload::W1 | Workload::W2 => run.closed_loop().await,
        Workload::W3 => run.end_to_end().await,
        Workload::W4 => run.catch_up().await,
        Workload::W5 => run.failover().await,
    }
}

/// One run under way: what every workload needs.
struct Run<'a, D> {
    driver: &'a D,
    spec: &'a RunSpec,
    /// Of the stream as it is.
    partitions: u32,
    epoch: Epoch,
    progress: Progress,
}

impl<D: Driver> Run<'_, D> {
    fn system(&self) -> &'static str {
        self.driver.system().name()
    }

    async fn publisher(&self) -> BenchResult<D::Publisher> {
        self.driver.publisher(&self.spec.stream, self.spec.parameters.in_flight_max).await
    }

    async fn produce(&self, publisher: &D::Publisher, spec: &ProduceSpec) -> BenchResult<ProduceOutcome> {
        engine::produce(publisher, self.partitions, spec, self.epoch, self.progress.clone()).await
    }

    /// Reads every partition from its start (with the stamped sequences when `sequences`).
    async fn read_back(&self, sequences: bool) -> BenchResult<ConsumeOutcome> {
        let fetch_records = self.spec.parameters.fetch_records;
        let progress = self.progress.clone();
        engine::consume_from_start(
            self.driver,
            &self.spec.stream,
            self.partitions,
            None,
            fetch_records,
            sequences,
            progress,
        )
        .await
    }

    /// W1, W2.
    async fn closed_loop(&self) -> BenchResult<RunReport> {
        let spec = self.spec;
        let publisher = self.publisher().await?;
        let cpu = CpuMeter::start(&spec.servers)?;
        let outcome = self.produce(&publisher, &spec.closed_loop(spec.parameters.records, false)).await?;
        let cpu = cpu.finish(outcome.acknowledged, spec.contention_cores)?;
        publisher.close().await;
        Ok(spec.produce_report(self.system(), &outcome, cpu))
    }

    /// W3.
    async fn end_to_end(&self) -> BenchResult<RunReport> {
        let spec = self.spec;
        let produce_spec = spec.at_rate()?;
        let publisher = self.publisher().await?;
        let fetch_records = spec.parameters.fetch_records;
        let live =
            engine::LiveConsumers::start(self.driver, &spec.stream, self.partitions, fetch_records, self.epoch).await?;
        let cpu = CpuMeter::start(&spec.servers)?;
        let produced = self.produce(&publisher, &produce_spec).await?;
        let read = live.finish(produced.acknowledged, LIVE_DRAIN_MAX).await?;
        let cpu = cpu.finish(read.records, spec.contention_cores)?;
        publisher.close().await;
        let verification = verified(&produced, &read);
        Ok(RunReport {
            errors: produced.errors + verification.lost,
            first_error: produced.first_error.clone(),
            latency_of: "scheduled send to consumer receipt",
            latency_ms: read.latency.summary(),
            ack_latency_ms: Some(produced.latency.summary()),
            verification: Some(verification),
            ..spec.report(self.system(), read.records, read.bytes, read.elapsed, cpu)
        })
    }

    /// W4.
    async fn catch_up(&self) -> BenchResult<RunReport> {
        let spec = self.spec;
        let publisher = self.publisher().await?;
        let preloaded = self.produce(&publisher, &spec.closed_loop(spec.parameters.records, false)).await?;
        publisher.close().await;
        let cpu = CpuMeter::start(&spec.servers)?;
        let read = self.read_back(false).await?;
        let cpu = cpu.finish(read.records, spec.contention_cores)?;
        Ok(RunReport {
            errors: preloaded.acknowledged.saturating_sub(read.records),
            first_error: preloaded.first_error.clone(),
            latency_of: "one read call (Eddy: one fetch; NATS: one batch of the pull consumer)",
            latency_ms: read.latency.summary(),
            preload: Some(PhaseSummary {
                records: preloaded.acknowledged,
                errors: preloaded.errors,
                seconds: seconds(preloaded.elapsed),
                records_per_sec: preloaded.acknowledged as f64 / seconds(preloaded.elapsed),
            }),
            ..spec.report(self.system(), read.records, read.bytes, read.elapsed, cpu)
        })
    }

    /// Waits `after`, then SIGKILLs the server leading partition 0 (reading the servers' CPU
    /// times first); returns its name, its pid and when it was killed.
    async fn kill_leader(&self, after: Duration, cpu: &mut CpuMeter) -> BenchResult<(String, i32, Instant)> {
        tokio::time::sleep(after).await;
        let servers = &self.spec.servers;
        let name = self.driver.leader(&self.spec.stream, 0).await?;
        let server = servers.iter().find(|s| s.name == name).ok_or_else(|| BenchError::UnknownServer {
            name: name.clone(),
            known: servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        cpu.refresh();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid), nix::sys::signal::Signal::SIGKILL)
            .map_err(|e| BenchError::Kill { name: name.clone(), pid: server.pid, reason: e.to_string() })?;
        tracing::info!(server = %name, pid = server.pid, "killed the leader of partition 0");
        Ok((name, server.pid, Instant::now()))
    }

    /// W5.
    async fn failover(&self) -> BenchResult<RunReport> {
        let spec = self.spec;
        let produce_spec = spec.at_rate()?;
        let kill_after = Duration::from_secs_f64(spec.parameters.kill_after_s.unwrap_or(0.0).max(0.0));
        let publisher = self.publisher().await?;
        let mut cpu = CpuMeter::start(&spec.servers)?;
        let started = Instant::now();
        let killer = self.kill_leader(kill_after, &mut cpu);
        let (produced, killed) = tokio::join!(self.produce(&publisher, &produce_spec), killer);
        let (produced, (name, pid, killed_at)) = (produced?, killed?);
        let cpu = cpu.finish(produced.acknowledged, spec.contention_cores)?;
        publisher.close().await;
        let read = self.read_back(true).await?;
        let verification = verified(&produced, &read);
        Ok(RunReport {
            verification: Some(verification),
            failover: Some(Failover {
                killed: name,
                pid,
                killed_at_s: killed_at.saturating_duration_since(started).as_secs_f64(),
                no_ack_window_ms: produced.ack_gap_max.as_secs_f64() * 1000.0,
            }),
            errors: produced.errors + verification.lost,
            ..spec.produce_report(self.system(), &produced, cpu)
        })
    }
}

fn verified(produced: &ProduceOutcome, read: &ConsumeOutcome) -> Verification {
    let acknowledged = produced.acknowledged_sequences.as_deref().unwrap_or_default();
    verify(acknowledged, read.sequences.as_deref().unwrap_or_default())
}
