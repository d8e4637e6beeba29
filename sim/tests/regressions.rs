//! Seeds that once failed, replayed with the defaults they failed with. Each comment says what
//! the seed found and what fixed it.

use std::process::Command;

use eddy_sim::Summary;

fn assert_seed_passes(seed: u64) {
    let output = Command::new(env!("CARGO_BIN_EXE_eddy-sim"))
        .args(["--child", "--seed", &seed.to_string()])
        .output()
        .expect("run eddy-sim");
    let summary: Summary = Summary::from_child_output(&output).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !summary.failed,
        "seed {seed} fails again: {:?} {:#?}\nreproduce with: cargo run -p eddy-sim --release -- --seed {seed}",
        summary.error, summary.anomalies
    );
}

/// Two nodes led the controller group in term 1: openraft's default leader ids allow one leader
/// per (term, node). Fixed by standard Raft leader ids (one leader per term) in every group.
#[test]
fn seed_5_one_leader_per_term() {
    assert_seed_passes(5);
}
