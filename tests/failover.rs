//! Acknowledged records survive SIGKILL of a partition leader: produce with acks=all through the
//! CLI while the leader dies and later restarts on its data dir; every acknowledged record is read
//! back exactly once at its acknowledged offset, offsets are dense, and every replica, the
//! restarted one included, holds the same log.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::{Cluster, ProduceSession, read_replica, wait_for};

const TOPIC: &str = "orders";
const RECORDS: usize = 600;

#[test]
fn acknowledged_records_survive_leader_sigkill_and_restart() {
    let mut cluster = Cluster::start(3);
    let created = cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", "3", "--replication-factor", "3"]);
    assert_eq!(created["partitions"].as_array().unwrap().len(), 3);
    let described = cluster.wait_leaders(TOPIC);
    let victim = described["partitions"][0]["leader"].as_u64().expect("partition 0 has a leader");

    let mut producer = ProduceSession::start(&cluster.brokers(), TOPIC, &["--acks", "all"]);
    let mut sent = 0;
    let mut send_until = |producer: &mut ProduceSession, n: usize| {
        while sent < n {
            assert!(producer.send(&format!("event-{sent}")), "eddy produce exited early");
            sent += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    send_until(&mut producer, 200);
    wait_for(Duration::from_secs(60), "the first acknowledgements", || (producer.acked() >= 100).then_some(()));
    cluster.kill_node(victim);
    send_until(&mut producer, 400);
    wait_for(Duration::from_secs(90), "acknowledgements after the failover", || {
        (producer.acked() >= 300).then_some(())
    });
    cluster.start_node(victim);
    send_until(&mut producer, RECORDS);
    let (ok, stderr, acks) = producer.finish();
    assert!(ok, "eddy produce failed: {stderr}\n{}", cluster.logs());
    assert_eq!(acks.len(), RECORDS, "every input line was acknowledged");

    // Acknowledged (partition, offset) -> value, each offset once.
    let mut acked: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for ack in &acks {
        let key = (ack["partition"].as_u64().unwrap(), ack["offset"].as_u64().unwrap());
        let value = ack["value"].as_str().unwrap().to_string();
        assert!(acked.insert(key, value).is_none(), "offset {key:?} acknowledged twice");
    }

    let out = cluster.eddy(&["consume", TOPIC, "--from-beginning", "--exit-at-end", "--format", "json"]);
    assert!(out.status.success(), "consume failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut read: BTreeMap<u64, Vec<(u64, String)>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        read.entry(v["partition"].as_u64().unwrap())
            .or_default()
            .push((v["offset"].as_u64().unwrap(), v["value"].as_str().unwrap().to_string()));
    }
    let mut seen_values = std::collections::BTreeSet::new();
    for (partition, records) in &read {
        let mut last_sent: Option<u64> = None;
        for (i, (offset, value)) in records.iter().enumerate() {
            assert_eq!(*offset, i as u64, "partition {partition}: offsets are dense from 0");
            assert!(seen_values.insert(value.clone()), "{value} was read twice");
            // Values are event-N with N in send order: each partition keeps send order.
            let sent: u64 = value.trim_start_matches("event-").parse().unwrap();
            assert!(
                last_sent.is_none_or(|last| sent > last),
                "partition {partition}: {value} after event-{last_sent:?}"
            );
            last_sent = Some(sent);
        }
    }
    let out = cluster.eddy(&["consume", TOPIC, "--from-beginning", "--max-records", "5"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5, "--max-records stops after 5");
    for ((partition, offset), value) in &acked {
        let got = read.get(partition).and_then(|r| r.get(*offset as usize));
        assert_eq!(got.map(|(_, v)| v), Some(value), "acknowledged {value} at {partition}/{offset}");
    }
    assert_eq!(seen_values.len(), RECORDS, "every record exactly once, nothing else");

    // The restarted node rejoined by itself, and every replica holds the same log.
    cluster.wait_healthy();
    for (partition, records) in &read {
        for node in &cluster.nodes {
            let replica = read_replica(&node.address, TOPIC, *partition as u32, records.len() as u64);
            assert_eq!(&replica, records, "node {} holds the same log of partition {partition}", node.id);
        }
    }
}

/// The controller survives the loss of its leader: a topic can still be created and used.
#[test]
fn controller_leader_sigkill_fails_over() {
    let mut cluster = Cluster::start(3);
    let described = cluster.eddy_json(&["cluster", "describe"]);
    let controller = described["controller_leader"].as_u64().expect("a controller leader");
    cluster.kill_node(controller);

    let created =
        cluster.eddy_json(&["topic", "create", "after-failover", "--partitions", "2", "--replication-factor", "2"]);
    assert_eq!(created["partitions"].as_array().unwrap().len(), 2);
    cluster.wait_leaders("after-failover");
    let described = cluster.eddy_json(&["cluster", "describe"]);
    let new_controller = described["controller_leader"].as_u64().expect("a new controller leader");
    assert_ne!(new_controller, controller);
    wait_for(Duration::from_secs(60), "the killed broker to be reported dead", || {
        let d = cluster.eddy_json(&["cluster", "describe"]);
        let b = d["brokers"].as_array()?.iter().find(|b| b["id"] == controller)?.clone();
        (b["alive"] == false).then_some(())
    });

    let mut producer = ProduceSession::start(&cluster.brokers(), "after-failover", &[]);
    assert!(producer.send("a") && producer.send("b"));
    let (ok, stderr, acks) = producer.finish();
    assert!(ok, "{stderr}\n{}", cluster.logs());
    assert_eq!(acks.len(), 2);
}

/// With `--acks leader` the answer comes before the quorum commit, with the offset the batch
/// then gets: every acknowledged (partition, offset) holds the acknowledged record.
#[test]
fn leader_acks_carry_the_offsets_records_get() {
    let cluster = Cluster::start(3);
    cluster.eddy_json(&["topic", "create", "fast", "--partitions", "3", "--replication-factor", "3"]);
    cluster.wait_leaders("fast");
    let mut producer = ProduceSession::start(&cluster.brokers(), "fast", &["--acks", "leader", "--key-delimiter", ":"]);
    for i in 0..300 {
        assert!(producer.send(&format!("k{}:v{i}", i % 7)));
    }
    let (ok, stderr, acks) = producer.finish();
    assert!(ok, "{stderr}\n{}", cluster.logs());
    assert_eq!(acks.len(), 300);
    let out = cluster.eddy(&["consume", "fast", "--from-beginning", "--exit-at-end", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut stored = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        stored.insert(
            (v["partition"].as_u64().unwrap(), v["offset"].as_u64().unwrap()),
            v["value"].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(stored.len(), 300, "every record stored once");
    for ack in &acks {
        let at = (ack["partition"].as_u64().unwrap(), ack["offset"].as_u64().unwrap());
        assert_eq!(stored.get(&at).map(String::as_str), ack["value"].as_str(), "record acknowledged at {at:?}");
    }
}
