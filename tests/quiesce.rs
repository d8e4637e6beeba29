//! Idle partitions go quiet (no Raft ticks on any replica) and still behave: a write to a quiet
//! partition is acknowledged (with `min.insync.replicas` 3 and 1), `min.insync.replicas` still
//! counts its replicas, and killing the broker that leads quiet partitions still elects new
//! leaders. Against a real 3-node cluster with the default configuration.

mod support;

use std::time::Duration;

use support::{Cluster, metric_value, scrape_metrics, wait_for};

const TOPIC: &str = "quiet";

/// Waits until every running node reports all its partition replicas quiesced.
fn wait_all_quiet(cluster: &Cluster, running: &[u64]) {
    wait_for(Duration::from_secs(60), "every partition replica quiesced", || {
        running
            .iter()
            .all(|id| {
                let body = scrape_metrics(&cluster.node(*id).metrics);
                let replicas = metric_value(&body, "eddy_partition_replicas", "");
                let quiet = metric_value(&body, "eddy_raft_groups_quiesced", "");
                replicas.is_some_and(|r| r > 0.0) && replicas == quiet
            })
            .then_some(())
    });
}

/// Produces one record with `eddy produce`; whether it was acknowledged, and the error if not.
fn try_produce(cluster: &Cluster, partition: u32, value: &str) -> Result<(), String> {
    let mut producer =
        support::ProduceSession::start(&cluster.brokers(), TOPIC, &["--partition", &partition.to_string()]);
    producer.send(value);
    let (ok, err, acks) = producer.finish();
    if ok && acks.len() == 1 { Ok(()) } else { Err(err) }
}

fn produce_one(cluster: &Cluster, partition: u32, value: &str) {
    if let Err(e) = try_produce(cluster, partition, value) {
        panic!("produce to {TOPIC}/{partition}: {e}");
    }
}

#[test]
fn idle_partitions_go_quiet_and_still_serve_and_fail_over() {
    // Quiescing is on by default (`quiesce_after_ms` 2 s).
    let mut cluster = Cluster::start(3);
    cluster.eddy_json(&[
        "topic",
        "create",
        TOPIC,
        "--partitions",
        "3",
        "--replication-factor",
        "3",
        "--config",
        "min.insync.replicas=3",
    ]);
    cluster.wait_leaders(TOPIC);
    for partition in 0..3 {
        produce_one(&cluster, partition, "before");
    }
    wait_all_quiet(&cluster, &[1, 2, 3]);

    // A quiet leader wakes for a write; min.insync.replicas=3 needs fresh acknowledgements from
    // both followers, which it asks for before counting them.
    produce_one(&cluster, 0, "while-quiet");

    // The broker leading partition 1 dies while its groups are quiet: the followers notice from
    // the failed pings, tick again and elect.
    wait_all_quiet(&cluster, &[1, 2, 3]);
    let described = cluster.eddy_json(&["topic", "describe", TOPIC]);
    let victim = described["partitions"][1]["leader"].as_u64().expect("a leader");
    cluster.kill_node(victim);
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != victim).collect();
    let new_leader = wait_for(Duration::from_secs(30), "a new leader for the dead broker's partition", || {
        let described = cluster.eddy_json(&["topic", "describe", TOPIC]);
        described["partitions"][1]["leader"].as_u64().filter(|id| *id != victim)
    });
    assert!(survivors.contains(&new_leader));
    // min.insync.replicas=3 cannot be met with a broker down; the partition takes writes again
    // once it is lowered, which shows the new leader commits.
    let out = cluster.eddy(&["topic", "alter", TOPIC, "--config", "min.insync.replicas=1"]);
    assert!(out.status.success(), "alter: {}", String::from_utf8_lossy(&out.stderr));
    wait_for(Duration::from_secs(30), "a write to the partition after failover", || {
        try_produce(&cluster, 1, "after-failover").ok()
    });
    let out = cluster.eddy(&["consume", TOPIC, "--partition", "1", "--offset", "0", "--exit-at-end"]);
    let read = String::from_utf8_lossy(&out.stdout);
    assert!(read.contains("before") && read.contains("after-failover"), "partition 1 holds {read:?}");

    // Once the broker is back and caught up, every group goes quiet again.
    cluster.start_node(victim);
    wait_all_quiet(&cluster, &[1, 2, 3]);

    // A quiet leader's lease has lapsed: without a heartbeat round first, openraft would refuse
    // every write (and, not ticking, never renew it).
    produce_one(&cluster, 2, "quiet-again");
}
