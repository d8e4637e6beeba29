//! A cluster that heals and grows by itself, through real processes: five brokers, a topic of six
//! partitions replicated three times.
//!
//! - One broker is SIGKILLed for good while records are produced: it is fenced, and once the
//!   replacement delay has passed every partition it held gets a new replica on a live broker
//!   (learner, caught up, promoted, the dead one removed); every partition is back to three live,
//!   caught-up replicas and every acknowledged record is readable.
//! - A sixth broker joins and `eddy cluster rebalance` moves replicas and preferred leaders onto
//!   it: it ends up holding replicas and leading partitions, and the data is intact.
//! - `eddy broker decommission` drains a broker: it ends with no replica.
//! - A broker restarted at another address is reached there: its partitions get back in sync.
//!
//! And a topic creation survives the loss of the controller leader while it is under way.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use support::{Cluster, ProduceSession, wait_for};

const TOPIC: &str = "orders";

/// Every partition's replicas, once none is moving and each has all its replicas in sync.
fn settled_replicas(cluster: &Cluster, what: &str) -> BTreeMap<u64, Vec<u64>> {
    wait_for(Duration::from_secs(120), what, || {
        let out = cluster.eddy(&["topic", "describe", TOPIC, "--format", "json"]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let mut replicas = BTreeMap::new();
        for p in v["partitions"].as_array()? {
            let ids: Vec<u64> = p["replicas"].as_array()?.iter().filter_map(Value::as_u64).collect();
            let isr: BTreeSet<u64> = p["isr"].as_array()?.iter().filter_map(Value::as_u64).collect();
            if !p["target_replicas"].is_null() || ids.len() != 3 || isr != ids.iter().copied().collect() {
                return None;
            }
            replicas.insert(p["partition"].as_u64()?, ids);
        }
        Some(replicas)
    })
}

fn broker(cluster: &Cluster, id: u64) -> Value {
    let d = cluster.eddy_json(&["cluster", "describe"]);
    d["brokers"].as_array().unwrap().iter().find(|b| b["id"] == id).cloned().unwrap_or(Value::Null)
}

/// Reads the whole topic and checks every acknowledged record is at its offset.
fn assert_all_acknowledged_readable(cluster: &Cluster, acks: &[Value]) {
    let out = cluster.eddy(&["consume", TOPIC, "--from-beginning", "--exit-at-end", "--format", "json"]);
    assert!(out.status.success(), "consume failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut stored: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        stored.insert(
            (v["partition"].as_u64().unwrap(), v["offset"].as_u64().unwrap()),
            v["value"].as_str().unwrap().to_string(),
        );
    }
    for ack in acks {
        let at = (ack["partition"].as_u64().unwrap(), ack["offset"].as_u64().unwrap());
        assert_eq!(stored.get(&at).map(String::as_str), ack["value"].as_str(), "record acknowledged at {at:?}");
    }
}

#[test]
fn dead_brokers_are_replaced_new_ones_take_load_and_drained_ones_empty() {
    let env = [
        ("EDDY_BROKER_SESSION_TIMEOUT_MS", "3000"),
        ("EDDY_REPLICA_REPLACEMENT_DELAY_MS", "2000"),
        ("EDDY_LEADER_BALANCE_INTERVAL_MS", "1000"),
    ];
    let mut cluster = Cluster::start_with_voters(5, 3, &env);
    cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", "6", "--replication-factor", "3"]);
    let before = settled_replicas(&cluster, "the topic to be fully replicated");
    // A broker holding replicas dies for good while records are produced.
    let victim = 4;
    assert!(before.values().any(|r| r.contains(&victim)), "broker {victim} holds replicas: {before:?}");

    let mut producer = ProduceSession::start(&cluster.brokers(), TOPIC, &["--acks", "all"]);
    let mut sent = 0;
    let mut send = |producer: &mut ProduceSession, n: usize| {
        for _ in 0..n {
            assert!(producer.send(&format!("event-{sent}")), "eddy produce exited early");
            sent += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    send(&mut producer, 200);
    cluster.kill_node(victim);
    send(&mut producer, 400);
    let healed = settled_replicas(&cluster, "every partition back to three in-sync replicas without the dead broker");
    for (partition, replicas) in &healed {
        assert!(!replicas.contains(&victim), "partition {partition} still has the dead broker: {replicas:?}");
    }
    assert_eq!(broker(&cluster, victim)["state"], "fenced");
    let described = cluster.eddy_json(&["cluster", "describe"]);
    assert_eq!(described["under_replicated_partitions"], 0, "{described}");
    send(&mut producer, 100);
    let (ok, stderr, acks) = producer.finish();
    assert!(ok, "eddy produce failed: {stderr}\n{}", cluster.logs());
    assert_eq!(acks.len(), sent, "every record was acknowledged");
    assert_all_acknowledged_readable(&cluster, &acks);

    // A new broker joins; a rebalance moves replicas and preferred leaders onto it.
    let newcomer = cluster.add_node();
    cluster.wait_healthy();
    let dry = cluster.eddy_json(&["cluster", "rebalance", "--dry-run"]);
    assert!(!dry["planned"].as_array().unwrap().is_empty(), "a dry run plans moves: {dry}");
    let status = cluster.eddy_json(&["cluster", "rebalance", "--status"]);
    assert!(status["planned"].as_array().unwrap().is_empty(), "a dry run queues nothing: {status}");
    cluster.eddy_json(&["cluster", "rebalance"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let status = cluster.eddy_json(&["cluster", "rebalance", "--status"]);
        if status["planned"].as_array().unwrap().is_empty() && status["in_progress"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the rebalance did not finish: {status}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(500));
    }
    let rebalanced = settled_replicas(&cluster, "the rebalanced topic to be in sync");
    assert!(rebalanced.values().any(|r| r.contains(&newcomer)), "broker {newcomer} holds replicas: {rebalanced:?}");
    wait_for(Duration::from_secs(60), "the new broker to lead a partition", || {
        (broker(&cluster, newcomer)["leader_count"].as_u64()? > 0).then_some(())
    });
    assert_all_acknowledged_readable(&cluster, &acks);

    // A broker is drained before it leaves.
    let drained = 5;
    cluster.eddy(&["broker", "decommission", &drained.to_string()]);
    assert_eq!(broker(&cluster, drained)["state"], "decommissioning");
    wait_for(Duration::from_secs(120), "the drained broker to hold no replica", || {
        (broker(&cluster, drained)["replica_count"].as_u64()? == 0).then_some(())
    });
    let after = settled_replicas(&cluster, "the topic to be in sync without the drained broker");
    assert!(after.values().all(|r| !r.contains(&drained)), "{after:?}");
    assert_all_acknowledged_readable(&cluster, &acks);

    // A broker restarted at another address is reached there by every group it is in.
    let moved = cluster.move_node(newcomer);
    cluster.wait_healthy();
    wait_for(Duration::from_secs(30), "the moved broker to register its new address", || {
        (broker(&cluster, newcomer)["address"] == moved.as_str()).then_some(())
    });
    let after_move = settled_replicas(&cluster, "every partition in sync with the moved broker");
    assert!(after_move.values().any(|r| r.contains(&newcomer)), "{after_move:?}");

    let unknown = cluster.eddy(&["broker", "decommission", "99"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("broker 99 is not registered"));
}

#[test]
fn a_topic_creation_survives_the_loss_of_the_controller_leader() {
    let mut cluster = Cluster::start_with_voters(4, 3, &[]);
    let controller = cluster.eddy_json(&["cluster", "describe"])["controller_leader"].as_u64().expect("a controller");
    let others: Vec<String> = cluster.nodes.iter().filter(|n| n.id != controller).map(|n| n.address.clone()).collect();
    let child = std::process::Command::new(support::eddy_bin())
        .args(["topic", "create", TOPIC, "--partitions", "4", "--replication-factor", "3"])
        .args(["--brokers", &others.join(",")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn eddy topic create");
    std::thread::sleep(Duration::from_millis(20));
    cluster.kill_node(controller);
    let first = child.wait_with_output().expect("eddy topic create");
    // Whatever the first attempt answered, the topic exists once, whole, after a retry.
    let retry = std::process::Command::new(support::eddy_bin())
        .args(["topic", "create", TOPIC, "--partitions", "4", "--replication-factor", "3"])
        .args(["--brokers", &others.join(",")])
        .output()
        .expect("eddy topic create");
    let retry_err = String::from_utf8_lossy(&retry.stderr);
    assert!(
        retry.status.success() || retry_err.contains("already exists"),
        "first: {:?} {}; retry: {retry_err}",
        first.status,
        String::from_utf8_lossy(&first.stderr)
    );
    let described = cluster.wait_leaders(TOPIC);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 4, "{described}");
    let topics = cluster.eddy_json(&["topic", "list"]);
    assert_eq!(topics["topics"].as_array().unwrap().iter().filter(|t| t["name"] == TOPIC).count(), 1);
    let mut producer = ProduceSession::start(&cluster.brokers(), TOPIC, &["--acks", "all"]);
    assert!(producer.send("a") && producer.send("b"));
    let (ok, stderr, acks) = producer.finish();
    assert!(ok, "{stderr}\n{}", cluster.logs());
    assert_all_acknowledged_readable(&cluster, &acks);
}
