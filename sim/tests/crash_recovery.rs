//! A node restarted after a crash recovers from what its disk synced: seed 9 (in the standard
//! shape: 3 nodes, production timing) cuts the power of
//! every node twice (every unsynced write on every disk is lost) and crashes n3 twice more, and
//! still every acknowledged record must be in the final log at its offset, and every replica's
//! log must be a prefix of it.

use std::process::Command;

use eddy_sim::Summary;

#[test]
fn power_losses_keep_every_acknowledged_record() {
    let output = Command::new(env!("CARGO_BIN_EXE_eddy-sim"))
        .args(["--child", "--standard-shape", "--seed", "9"])
        .output()
        .expect("run eddy-sim");
    let summary: Summary = Summary::from_child_output(&output).unwrap_or_else(|e| panic!("{e}"));
    assert!(summary.faults.get("power_loss").copied().unwrap_or(0) >= 2, "{:?}", summary.schedule);
    assert!(summary.faults.get("crash").copied().unwrap_or(0) >= 1, "{:?}", summary.schedule);
    assert!(summary.records_checked > 1_000, "too little was written to show anything: {}", summary.records_checked);
    assert!(!summary.failed, "{:?} {:#?}", summary.error, summary.anomalies);
}
