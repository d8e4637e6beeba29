//! One seed, run twice, must give the same trace: every random choice comes from the seed. Each
//! run is a process of its own, as `eddy-sim --seeds` runs them. A failure shows the first line
//! where the two runs diverged.

use std::process::Command;

use eddy_sim::Summary;

fn run_seed(seed: u64, extra: &[&str]) -> Summary {
    let output = Command::new(env!("CARGO_BIN_EXE_eddy-sim"))
        .args(["--child", "--trace", "--seed", &seed.to_string(), "--fault-secs", "12", "--heal-secs", "10"])
        .args(extra)
        .output()
        .expect("run eddy-sim");
    Summary::from_child_output(&output).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_seed_replays_exactly_under_faults() {
    // Seed 1's schedule crashes a node, partitions, pauses and delays.
    let first = run_seed(1, &[]);
    let second = run_seed(1, &[]);
    if first.trace_hash != second.trace_hash {
        let at = first.trace.iter().zip(&second.trace).position(|(a, b)| a != b).unwrap_or(first.trace.len());
        panic!(
            "seed 1 is not deterministic: traces {} and {} first differ at line {at}:\n  {}\n  {}",
            first.trace_hash,
            second.trace_hash,
            first.trace.get(at).map_or("<end>", String::as_str),
            second.trace.get(at).map_or("<end>", String::as_str),
        );
    }
    assert!(first.trace.len() > 1_000, "the run did too little to show anything: {} events", first.trace.len());
    assert!(first.schedule.iter().any(|f| f.contains("crash")), "the seed should crash a node: {:?}", first.schedule);
    assert!(!first.failed, "seed 1 failed: {:?} {:?}", first.error, first.anomalies);
}
