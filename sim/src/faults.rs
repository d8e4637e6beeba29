//! The fault schedule: which faults a run injects and when, drawn from the run's seed alone.
//!
//! Episodes may overlap (a crash during a partition, two crashes at once); all of them end
//! before the healing phase, so the checker can also ask that the cluster recovers.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One kind of fault.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The nodes in `side` lose every link to the other nodes, both ways.
    Partition { side: Vec<u64> },
    /// Messages from `from` to `to` are dropped; the other way still works.
    PartitionOneway { from: u64, to: u64 },
    /// Whoever leads partition `partition` when the fault starts is cut off from the other nodes.
    IsolateLeader { partition: u32 },
    /// Whoever leads the controller group when the fault starts is cut off from the other nodes.
    IsolateController,
    /// Every message takes up to `max_ms` (drawn per message), which also reorders messages
    /// across connections.
    Delay { max_ms: u64 },
    /// Links between nodes fail at random with probability `per_mille`/1000 per message; a failed
    /// link drops everything (breaking its TCP connections) until it is repaired at random.
    Loss { per_mille: u32 },
    /// The node's process dies and its disk loses every unsynced write; it restarts at the end.
    Crash { node: u64 },
    /// Every node crashes at once (a power cut); all restart at the end.
    PowerLoss,
    /// The node stops answering: everything to and from it is held, then delivered at the end
    /// in one burst, as after a long GC or VM pause.
    Pause { node: u64 },
    /// The node's wall clock (record timestamps) jumps by `by_ms`, and back at the end.
    ClockJump { node: u64, by_ms: i64 },
}

impl FaultKind {
    /// The name used in the run summary's fault counts.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Partition { .. } => "partition",
            FaultKind::PartitionOneway { .. } => "partition_oneway",
            FaultKind::IsolateLeader { .. } => "isolate_leader",
            FaultKind::IsolateController => "isolate_controller",
            FaultKind::Delay { .. } => "delay",
            FaultKind::Loss { .. } => "loss",
            FaultKind::Crash { .. } => "crash",
            FaultKind::PowerLoss => "power_loss",
            FaultKind::Pause { .. } => "pause",
            FaultKind::ClockJump { .. } => "clock_jump",
        }
    }

    /// Every fault name, for summaries that list zero counts too.
    pub const NAMES: [&'static str; 10] = [
        "partition",
        "partition_oneway",
        "isolate_leader",
        "isolate_controller",
        "delay",
        "loss",
        "crash",
        "power_loss",
        "pause",
        "clock_jump",
    ];
}

/// One fault episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub start_ms: u64,
    pub end_ms: u64,
    pub kind: FaultKind,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>6}..{:<6} ms  ", self.start_ms, self.end_ms)?;
        match &self.kind {
            FaultKind::Partition { side } => {
                let side: Vec<String> = side.iter().map(|n| format!("n{n}")).collect();
                write!(f, "partition {{{}}} from the rest", side.join(","))
            }
            FaultKind::PartitionOneway { from, to } => write!(f, "drop n{from} -> n{to}"),
            FaultKind::IsolateLeader { partition } => write!(f, "isolate the leader of partition {partition}"),
            FaultKind::IsolateController => write!(f, "isolate the controller leader"),
            FaultKind::Delay { max_ms } => write!(f, "delay messages up to {max_ms} ms"),
            FaultKind::Loss { per_mille } => write!(f, "lose links between nodes at {per_mille}/1000 per message"),
            FaultKind::Crash { node } => write!(f, "crash n{node} (unsynced writes lost), restart at end"),
            FaultKind::PowerLoss => write!(f, "power loss: crash every node, restart at end"),
            FaultKind::Pause { node } => write!(f, "pause n{node}"),
            FaultKind::ClockJump { node, by_ms } => write!(f, "n{node} clock jumps {by_ms:+} ms"),
        }
    }
}

/// The schedule of a run: faults that start within `[from_ms, until_ms)` and end by `until_ms`.
pub fn schedule(seed: u64, nodes: u64, partitions: u32, from_ms: u64, until_ms: u64) -> Vec<Fault> {
    // A stream of its own, so changing the workload never changes the faults of a seed.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6661_756c_7473);
    let mut faults = Vec::new();
    let mut at = from_ms + rng.random_range(0..2_000);
    while at + 500 < until_ms {
        let duration = rng.random_range(500..6_000u64);
        let end_ms = (at + duration).min(until_ms);
        let node = rng.random_range(1..=nodes);
        let kind = match rng.random_range(0..24u32) {
            0..=2 => {
                let size = rng.random_range(1..=(nodes - 1) / 2 + 1).min(nodes - 1);
                let mut all: Vec<u64> = (1..=nodes).collect();
                let mut side = Vec::new();
                for _ in 0..size {
                    side.push(all.swap_remove(rng.random_range(0..all.len())));
                }
                side.sort_unstable();
                FaultKind::Partition { side }
            }
            3..=4 => {
                let to = (node % nodes) + 1;
                FaultKind::PartitionOneway { from: node, to }
            }
            5..=7 => FaultKind::IsolateLeader { partition: rng.random_range(0..partitions) },
            8..=9 => FaultKind::IsolateController,
            10..=11 => FaultKind::Delay { max_ms: rng.random_range(20..400) },
            12..=13 => FaultKind::Loss { per_mille: rng.random_range(5..60) },
            14..=17 => FaultKind::Crash { node },
            18 => FaultKind::PowerLoss,
            19..=21 => FaultKind::Pause { node },
            _ => FaultKind::ClockJump { node, by_ms: rng.random_range(-60_000..60_000) },
        };
        faults.push(Fault { start_ms: at, end_ms, kind });
        at += rng.random_range(200..4_000);
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_schedule_and_faults_end_in_the_window() {
        for seed in 0..50 {
            let a = schedule(seed, 3, 3, 5_000, 35_000);
            assert_eq!(a, schedule(seed, 3, 3, 5_000, 35_000));
            assert!(!a.is_empty());
            for fault in &a {
                assert!(fault.start_ms >= 5_000 && fault.start_ms < fault.end_ms && fault.end_ms <= 35_000, "{fault}");
                if let FaultKind::Partition { side } = &fault.kind {
                    assert!(!side.is_empty() && side.len() < 3, "{fault}");
                }
            }
        }
        assert_ne!(schedule(1, 3, 3, 5_000, 35_000), schedule(2, 3, 3, 5_000, 35_000));
    }
}
