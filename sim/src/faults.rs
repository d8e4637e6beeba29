//! The fault schedule: which faults a run injects and when, drawn from the run's seed alone.
//!
//! Episodes may overlap (a crash during a network split, two crashes at once); all of them end
//! before the healing phase, so the checker can also ask that the cluster recovers.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One kind of fault.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The nodes in `side` lose every link to the other nodes, both ways.
    NetSplit { side: Vec<u64> },
    /// Messages from `from` to `to` are dropped; the other way still works.
    DropOneWay { from: u64, to: u64 },
    /// Whoever leads partition `partition` when the fault starts is cut off from the other nodes.
    IsolateLeader { partition: u32 },
    /// Whoever leads the controller group when the fault starts is cut off from the other nodes.
    IsolateController,
    /// Whoever coordinates the workload's consumer group when the fault starts (the leader of
    /// its `__consumer_offsets` partition) is cut off from the other nodes.
    IsolateCoordinator,
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
    /// Every fault's name, as the run summary counts them: the one list of names.
    pub const NAMES: [&'static str; 11] = [
        "net_split",
        "drop_one_way",
        "isolate_leader",
        "isolate_controller",
        "delay",
        "loss",
        "crash",
        "power_loss",
        "pause",
        "clock_jump",
        "isolate_coordinator",
    ];

    /// The name used in the run summary's fault counts.
    pub fn name(&self) -> &'static str {
        let index = match self {
            FaultKind::NetSplit { .. } => 0,
            FaultKind::DropOneWay { .. } => 1,
            FaultKind::IsolateLeader { .. } => 2,
            FaultKind::IsolateController => 3,
            FaultKind::Delay { .. } => 4,
            FaultKind::Loss { .. } => 5,
            FaultKind::Crash { .. } => 6,
            FaultKind::PowerLoss => 7,
            FaultKind::Pause { .. } => 8,
            FaultKind::ClockJump { .. } => 9,
            FaultKind::IsolateCoordinator => 10,
        };
        Self::NAMES[index]
    }
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
            FaultKind::NetSplit { side } => {
                let side: Vec<String> = side.iter().map(|n| format!("n{n}")).collect();
                write!(f, "split {{{}}} from the rest of the network", side.join(","))
            }
            FaultKind::DropOneWay { from, to } => write!(f, "drop n{from} -> n{to}"),
            FaultKind::IsolateLeader { partition } => write!(f, "isolate the leader of partition {partition}"),
            FaultKind::IsolateController => write!(f, "isolate the controller leader"),
            FaultKind::IsolateCoordinator => write!(f, "isolate the consumer group's coordinator"),
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
                FaultKind::NetSplit { side }
            }
            3..=4 => {
                let to = (node % nodes) + 1;
                FaultKind::DropOneWay { from: node, to }
            }
            5..=6 => FaultKind::IsolateLeader { partition: rng.random_range(0..partitions) },
            7 => FaultKind::IsolateCoordinator,
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
                if let FaultKind::NetSplit { side } = &fault.kind {
                    assert!(!side.is_empty() && side.len() < 3, "{fault}");
                }
            }
        }
        assert_ne!(schedule(1, 3, 3, 5_000, 35_000), schedule(2, 3, 3, 5_000, 35_000));
    }

    #[test]
    fn every_fault_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> = FaultKind::NAMES.into_iter().collect();
        assert_eq!(names.len(), FaultKind::NAMES.len(), "two faults share a name");
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            seen.extend(schedule(seed, 5, 3, 0, 60_000).iter().map(|f| f.kind.name()));
        }
        assert_eq!(seen, names, "every fault is scheduled by some seed, under its own name");
    }
}
