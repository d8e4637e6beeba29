//! The `eddy-bench` command line: `run` (one workload against one system, one JSON line out)
//! and `compare` (medians, ranges and ratios over many runs).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use crate::cpu::ServerPid;
use crate::driver::{StreamSpec, System};
use crate::eddy::{EddyDriver, EddyOptions};
use crate::engine::Progress;
use crate::error::{BenchError, BenchResult};
use crate::nats::{NatsDriver, NatsOptions};
use crate::workload::{self, RunReport, RunSpec, Workload};

/// Side-by-side benchmarks of Eddy and NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "eddy-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What `eddy-bench` does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one workload against one system; print its report as one JSON line.
    Run(Args),
    /// Summarize runs (JSON lines of {case, rep, system, report|error}): medians, ranges and
    /// Eddy/NATS ratios, as a table on stdout and optionally as JSON.
    Compare(CompareArgs),
}

/// Flags of `eddy-bench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The runs, one JSON object a line.
    #[arg(long)]
    pub runs: PathBuf,
    /// Also write {"summary": ..., "runs": [...]} to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// Flags of `eddy-bench run`: one workload against Eddy or NATS JetStream. Unset flags take
/// the workload's defaults (see docs/benchmarks.md); a flag given twice takes its last value, so
/// a script can append overrides to a case's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(args_override_self = true)]
pub struct Args {
    /// The system under test.
    #[arg(long, value_enum)]
    pub system: System,
    /// Its servers (HOST:PORT,...): Eddy brokers or NATS client URLs.
    #[arg(long, required = true, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// The workload.
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Stream (Eddy topic) name; default: bench-<workload>-<unix ms>, new each run.
    #[arg(long)]
    pub stream: Option<String>,
    /// Partitions (NATS: streams) of a stream the run creates.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replicas of a stream the run creates.
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Records to publish (W1, W2) or to preload and read back (W4).
    #[arg(long)]
    pub records: Option<u64>,
    /// Payload bytes of each record.
    #[arg(long)]
    pub record_size: Option<usize>,
    /// Records published and not yet acknowledged, at most.
    #[arg(long)]
    pub in_flight: Option<usize>,
    /// Records per second (W3, W5).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of publishing at the rate (W3, W5).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Seconds into W5 at which the leader of partition 0 is SIGKILLed.
    #[arg(long)]
    pub kill_after_s: Option<f64>,
    /// Most records one read asks for.
    #[arg(long)]
    pub fetch_records: Option<u32>,
    /// Eddy: most records in one produce request.
    #[arg(long, default_value_t = 500)]
    pub eddy_batch_records: usize,
    /// A server process, NAME=PID (NAME: the Eddy node id or the NATS server name): its CPU is
    /// counted as the servers', and W5 kills it when it leads. Repeat for each server.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<ServerPid>,
    /// CPU (in cores) other processes may use during a run before it is flagged as contended.
    #[arg(long, default_value_t = 0.1)]
    pub contention_cores: f64,
}

impl Args {
    /// The run these flags describe, with the workload's defaults for what is not given.
    pub fn run_spec(&self) -> BenchResult<RunSpec> {
        let defaults = self.workload.defaults();
        let parameters = workload::Parameters {
            records: self.records.unwrap_or(defaults.records),
            record_size_bytes: self.record_size.unwrap_or(defaults.record_size_bytes),
            partitions: self.partitions.unwrap_or(defaults.partitions),
            replicas: self.replicas.unwrap_or(defaults.replicas),
            in_flight_max: self.in_flight.unwrap_or(defaults.in_flight_max),
            rate: self.rate.or(defaults.rate),
            duration_s: self.duration_s.or(defaults.duration_s),
            kill_after_s: self.kill_after_s.or(defaults.kill_after_s),
            fetch_records: self.fetch_records.unwrap_or(defaults.fetch_records),
        };
        if parameters.in_flight_max == 0 || parameters.fetch_records == 0 {
            return Err(BenchError::Usage("--in-flight and --fetch-records must be at least 1".into()));
        }
        if self.workload == Workload::W5 && self.server_pids.is_empty() {
            return Err(BenchError::Usage("w5 kills a leader: give every server as --server-pid NAME=PID".into()));
        }
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
        let stream = StreamSpec {
            name: self.stream.clone().unwrap_or_else(|| format!("bench-{}-{millis}", self.workload.name())),
            partitions: parameters.partitions,
            replicas: parameters.replicas,
        };
        Ok(RunSpec {
            workload: self.workload,
            stream,
            parameters,
            servers: self.server_pids.clone(),
            contention_cores: self.contention_cores,
        })
    }
}

/// Runs what `args` asks for and returns its report.
pub async fn run(args: &Args) -> BenchResult<RunReport> {
    let spec = args.run_spec()?;
    let progress = Progress::default();
    match args.system {
        System::Eddy => {
            let options = EddyOptions { batch_records_max: args.eddy_batch_records, ..Default::default() };
            let driver = EddyDriver::connect(args.servers.clone(), options)?;
            workload::run(&driver, &spec, progress).await
        }
        System::Nats => {
            // W5 measures recovery: NATS publishes then retry with message ids, as Eddy's
            // idempotent producer retries (see the nats module).
            let options = NatsOptions { idempotent_retries: args.workload == Workload::W5 };
            let driver = NatsDriver::connect(&args.servers, options).await?;
            workload::run(&driver, &spec, progress).await
        }
    }
}

/// Runs `eddy-bench compare`: returns the table to print.
pub fn compare(args: &CompareArgs) -> BenchResult<String> {
    let io = |e: std::io::Error, path: &PathBuf| BenchError::Usage(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(&args.runs).map_err(|e| io(e, &args.runs))?;
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let run: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| BenchError::Usage(format!("{} line {}: {e}", args.runs.display(), i + 1)))?;
        runs.push(run);
    }
    let comparison = crate::compare::compare(&runs);
    if let Some(path) = &args.json_out {
        let all = serde_json::json!({"summary": comparison, "runs": runs});
        std::fs::write(path, format!("{all:#}\n")).map_err(|e| io(e, path))?;
    }
    Ok(crate::compare::table(&comparison))
}
