//! `eddy-sim`: runs seeds of the deterministic simulation and checks each run's history.
//!
//! ```text
//! eddy-sim --seeds 1..200          # seeds 1 to 200, one JSON summary line at the end
//! eddy-sim --seed 17 --trace       # replay one seed and print its full trace
//! ```
//!
//! A range runs each seed in a child process of its own: tokio numbers tasks from one
//! process-wide counter, and the order in which a crashed host's tasks are dropped follows those
//! numbers, so two runs sharing a process could disturb each other.

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::sync::Mutex;

use clap::Parser;
use eddy_sim::checker::Property;
use eddy_sim::{Bug, Options, Summary, run};

eddy_sim::virtual_clock!();

/// The run shape a flag leaves unset: the library's.
const DEFAULTS: Options = Options::DEFAULT;

/// Runs Eddy's real node code on a simulated network under seeded faults and checks every
/// history for lost, duplicated, reordered or phantom records.
#[derive(Debug, Clone, Parser)]
#[command(name = "eddy-sim", version)]
struct Args {
    /// One seed to run (replays it exactly).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, both ends included: `1..200`.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// Print the full trace of each seed run.
    #[arg(long)]
    trace: bool,
    /// Simulated seconds of faults (and of sending).
    #[arg(long, default_value_t = DEFAULTS.fault_secs, value_parser = clap::value_parser!(u64).range(1..=3600))]
    fault_secs: u64,
    /// Simulated seconds of healing before the final read.
    #[arg(long, default_value_t = DEFAULTS.heal_secs, value_parser = clap::value_parser!(u64).range(1..=3600))]
    heal_secs: u64,
    /// Nodes in the cluster (all controller voters; partitions are replicated 3 times). Without
    /// it, the seed draws 3 to 5.
    #[arg(long, value_parser = clap::value_parser!(u64).range(3..=9))]
    nodes: Option<u64>,
    /// Run the standard shape (3 nodes, production Raft timing, 500 ms broker heartbeat, 3 s
    /// client timeout) instead of the one the seed draws: replays seeds found before shapes were
    /// drawn.
    #[arg(long)]
    standard_shape: bool,
    /// Leave out the client that sends with ACKS_LEADER (it runs by default; its answers are
    /// checked against the log): replays seeds found before it ran.
    #[arg(long)]
    no_leader_acks: bool,
    /// Partitions of the workload's topic.
    #[arg(long, default_value_t = DEFAULTS.partitions, value_parser = clap::value_parser!(u32).range(1..=64))]
    partitions: u32,
    /// Inject no fault at all.
    #[arg(long)]
    no_faults: bool,
    /// Deliberately break the system (to see the checker catch it): `skip-fsync`, `no-keepalive`.
    #[arg(long)]
    bug: Option<Bug>,
    /// Seeds run at once, each in its own process (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run one seed and print its summary as one JSON line (what a range runs per seed).
    #[arg(long, hide = true)]
    child: bool,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .ok_or_else(|| format!("{text:?} is not a range like 1..200"))?;
    let a: u64 = a.trim().parse().map_err(|e| format!("bad range start {a:?}: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("bad range end {b:?}: {e}"))?;
    if a > b {
        return Err(format!("the range {text:?} is empty"));
    }
    Ok((a, b))
}

/// The flags that shape a run (everything but the seed selection).
fn run_flags(args: &Args) -> Vec<String> {
    let mut flags = Vec::new();
    if args.fault_secs != DEFAULTS.fault_secs {
        flags.extend(["--fault-secs".to_string(), args.fault_secs.to_string()]);
    }
    if args.heal_secs != DEFAULTS.heal_secs {
        flags.extend(["--heal-secs".to_string(), args.heal_secs.to_string()]);
    }
    if let Some(nodes) = args.nodes {
        flags.extend(["--nodes".to_string(), nodes.to_string()]);
    }
    if args.standard_shape {
        flags.push("--standard-shape".into());
    }
    if args.no_leader_acks {
        flags.push("--no-leader-acks".into());
    }
    if args.partitions != DEFAULTS.partitions {
        flags.extend(["--partitions".to_string(), args.partitions.to_string()]);
    }
    if args.no_faults {
        flags.push("--no-faults".into());
    }
    if let Some(bug) = args.bug {
        flags.extend(["--bug".to_string(), bug.name().to_string()]);
    }
    flags
}

fn reproduce_command(args: &Args, seed: u64) -> String {
    let mut command = format!("cargo run -p eddy-sim --release -- --seed {seed}");
    for flag in run_flags(args) {
        command.push(' ');
        command.push_str(&flag);
    }
    command
}

fn run_here(args: &Args, seed: u64) -> Summary {
    let options = Options {
        seed,
        nodes: args.nodes,
        standard_shape: args.standard_shape,
        leader_acks: !args.no_leader_acks,
        partitions: args.partitions,
        fault_secs: args.fault_secs,
        heal_secs: args.heal_secs,
        no_faults: args.no_faults,
        bug: args.bug,
    };
    run(&options).summary(args.trace)
}

/// Runs one seed in a child process.
fn run_child(args: &Args, seed: u64) -> Summary {
    let failed = |error: String| Summary {
        seed,
        failed: true,
        error: Some(error),
        anomalies: Vec::new(),
        schedule: Vec::new(),
        faults: BTreeMap::new(),
        records_checked: 0,
        trace_hash: String::new(),
        trace: Vec::new(),
        shape: String::new(),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return failed(format!("cannot find this executable to run seeds: {e}")),
    };
    let mut command = Command::new(exe);
    command.args(["--child", "--seed", &seed.to_string()]).args(run_flags(args));
    if args.trace {
        command.arg("--trace");
    }
    match command.output() {
        Ok(output) => Summary::from_child_output(&output).unwrap_or_else(failed),
        Err(e) => failed(format!("cannot start a process for the seed: {e}")),
    }
}

/// Prints one seed's result in one piece (seeds finish on several threads).
fn print_report(args: &Args, report: &Summary) {
    use std::fmt::Write as _;
    let mut out = String::new();
    for line in &report.trace {
        let _ = writeln!(out, "{line}");
    }
    if report.failed {
        let _ = writeln!(out, "seed {} FAILED", report.seed);
        if !report.shape.is_empty() {
            let _ = writeln!(out, "  shape: {}", report.shape);
        }
        if let Some(error) = &report.error {
            let _ = writeln!(out, "  simulation error: {error}");
        }
        let by_property = by_property(std::slice::from_ref(report));
        if !by_property.is_empty() {
            let counts: Vec<String> = by_property.iter().map(|(p, n)| format!("{p} {n}")).collect();
            let _ = writeln!(out, "  anomalies by property: {}", counts.join(", "));
        }
        for anomaly in report.anomalies.iter().take(30) {
            let _ = writeln!(out, "  {anomaly}");
        }
        if report.anomalies.len() > 30 {
            let _ = writeln!(out, "  ... and {} more anomalies", report.anomalies.len() - 30);
        }
        let _ = writeln!(out, "  fault schedule:");
        for fault in &report.schedule {
            let _ = writeln!(out, "    {fault}");
        }
        let _ = writeln!(out, "  reproduce with: {}", reproduce_command(args, report.seed));
        let _ = writeln!(out, "  (add --trace to print the full trace)");
    } else {
        let _ = writeln!(
            out,
            "seed {} ok: {} records checked, {} faults, trace {}",
            report.seed,
            report.records_checked,
            report.schedule.len(),
            report.trace_hash
        );
    }
    print!("{out}");
}

/// Anomaly counts by the property they break.
fn by_property(reports: &[Summary]) -> BTreeMap<Property, usize> {
    let mut counts = BTreeMap::new();
    for anomaly in reports.iter().flat_map(|r| &r.anomalies) {
        *counts.entry(anomaly.property).or_default() += 1;
    }
    counts
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()))
        .with_writer(std::io::stderr)
        .init();
    if args.child {
        let summary = run_here(&args, args.seed.unwrap_or(1));
        println!("{}", serde_json::to_string(&summary).expect("a summary serializes"));
        return if summary.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }
    let (first, last) = match (args.seed, args.seeds) {
        (Some(seed), _) => (seed, seed),
        (None, Some(range)) => range,
        (None, None) => (1, 1),
    };
    let reports: BTreeMap<u64, Summary> = if first == last {
        // One seed is the only simulation in this process: run it here.
        let summary = run_here(&args, first);
        print_report(&args, &summary);
        BTreeMap::from([(first, summary)])
    } else {
        let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
        let queue = Mutex::new(first..=last);
        let reports = Mutex::new(BTreeMap::new());
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    loop {
                        let Some(seed) = queue.lock().expect("queue lock").next() else { break };
                        let summary = run_child(&args, seed);
                        print_report(&args, &summary);
                        reports.lock().expect("reports lock").insert(seed, summary);
                    }
                });
            }
        });
        reports.into_inner().expect("reports lock")
    };
    let failed: Vec<u64> = reports.values().filter(|r| r.failed).map(|r| r.seed).collect();
    let mut faults: BTreeMap<String, u64> =
        eddy_sim::faults::FaultKind::NAMES.iter().map(|name| (name.to_string(), 0)).collect();
    for report in reports.values() {
        for (name, count) in &report.faults {
            *faults.entry(name.clone()).or_default() += count;
        }
    }
    let summary = serde_json::json!({
        "seeds": reports.len(),
        "failed_seeds": failed,
        "faults": faults,
        "records_checked": reports.values().map(|r| r.records_checked).sum::<u64>(),
        "anomalies": reports.values().map(|r| r.anomalies.len()).sum::<usize>(),
        "anomalies_by_property": by_property(&reports.values().cloned().collect::<Vec<_>>()),
    });
    println!("{summary}");
    if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
