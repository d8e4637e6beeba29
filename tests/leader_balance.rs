//! Leader balancing with real processes: after a broker is killed and restarted, the partitions
//! it was the preferred replica of come back to it (Raft leadership transfer), so leaders are
//! spread evenly again without anyone acting. Meanwhile `cluster describe` shows the broker
//! fenced and its partitions under-replicated; and the data of a topic deleted while it was down
//! is deleted from it when it is back.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::{Cluster, wait_for};

const PARTITIONS: usize = 6;

/// Leaders per broker of `topic`, when every partition has one.
fn leaders(cluster: &Cluster, topic: &str) -> Option<BTreeMap<u64, usize>> {
    let out = cluster.eddy(&["topic", "describe", topic, "--format", "json"]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut counts = BTreeMap::new();
    for p in v["partitions"].as_array()? {
        *counts.entry(p["leader"].as_u64()?).or_default() += 1;
    }
    Some(counts)
}

#[test]
fn leadership_returns_to_preferred_replicas() {
    let mut cluster = Cluster::start_with_env(3, &[("EDDY_LEADER_BALANCE_INTERVAL_MS", "1000")]);
    cluster.eddy_json(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        &PARTITIONS.to_string(),
        "--replication-factor",
        "3",
    ]);
    cluster.wait_leaders("orders");
    let even = |counts: &BTreeMap<u64, usize>| counts.len() == 3 && counts.values().all(|n| *n == PARTITIONS / 3);
    wait_for(Duration::from_secs(60), "two leaders per broker after creation", || {
        leaders(&cluster, "orders").filter(even)
    });

    // A topic deleted while broker 1 is down: its data there goes when broker 1 is back.
    cluster.eddy_json(&["topic", "create", "gone", "--partitions", "2", "--replication-factor", "3"]);
    cluster.wait_leaders("gone");
    let mut producer = support::ProduceSession::start(&cluster.brokers(), "gone", &[]);
    producer.send("doomed");
    assert!(producer.finish().0, "producing to the doomed topic");

    let log = cluster.node(1).log.clone();
    let lines_with = |needles: &[&str]| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|line| needles.iter().all(|n| line.contains(n))).count()
    };
    wait_for(Duration::from_secs(30), "broker 1 to hold both replicas of the doomed topic", || {
        (lines_with(&["opened partition replica", "topic=gone"]) == 2).then_some(())
    });

    cluster.kill_node(1);
    cluster.eddy_json(&["topic", "delete", "gone"]);
    wait_for(Duration::from_secs(60), "every partition led by brokers 2 and 3", || {
        leaders(&cluster, "orders").filter(|c| c.values().sum::<usize>() == PARTITIONS && !c.contains_key(&1))
    });
    // The cluster reports broker 1 fenced and every partition (each has a replica on it)
    // under-replicated; both clear once it is back.
    let describe = |cluster: &Cluster| cluster.eddy_json(&["cluster", "describe"]);
    wait_for(Duration::from_secs(60), "broker 1 fenced, 6 partitions under-replicated", || {
        let v = describe(&cluster);
        let fenced = v["brokers"].as_array()?.iter().any(|b| b["id"] == 1 && b["state"] == "fenced");
        (fenced && v["under_replicated_partitions"].as_u64()? >= PARTITIONS as u64).then_some(())
    });
    cluster.start_node(1);
    cluster.wait_healthy();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lines_with(&["deleting the data of a replica deleted or moved away while this broker was away"]) != 2 {
        if std::time::Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let relevant: Vec<&str> =
                text.lines().filter(|l| l.contains("gone") || l.contains("delet") || l.contains("started")).collect();
            panic!("broker 1 did not delete the deleted topic's data:\n{}", relevant.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(Duration::from_secs(60), "no under-replicated partition", || {
        let v = describe(&cluster);
        let all_alive = v["brokers"].as_array()?.iter().all(|b| b["state"] == "alive");
        (all_alive && v["under_replicated_partitions"] == 0).then_some(())
    });
    let settled = wait_for(Duration::from_secs(90), "broker 1 to lead its preferred partitions again", || {
        leaders(&cluster, "orders").filter(even)
    });
    assert_eq!(settled, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
}
