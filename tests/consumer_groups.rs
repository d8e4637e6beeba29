//! Consumer groups with real processes: three `eddy consume --group` members share a 6-partition
//! topic while a producer runs; one is SIGKILLed and the others take its partitions once its
//! session expires. Every produced record is consumed (at least once); duplicates come only from
//! the killed member's uncommitted tail; committed offsets never move back; and the group's
//! offsets survive SIGKILL of its coordinator's broker.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use support::{Cluster, ProduceSession, eddy_bin, metric_value, scrape_metrics, wait_for};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const PARTITIONS: u64 = 6;
const RECORDS: usize = 900;
const SESSION_TIMEOUT_MS: u64 = 3_000;

/// One `eddy consume --group` process, printing JSON lines to a file.
struct Member {
    child: Option<Child>,
    out: PathBuf,
}

impl Member {
    fn start(cluster: &Cluster, name: &str) -> Member {
        let out = cluster.dir.path().join(format!("{name}.jsonl"));
        let err = cluster.dir.path().join(format!("{name}.err"));
        let child = Command::new(eddy_bin())
            .args(["consume", TOPIC, "--group", GROUP, "--from-beginning", "--format", "json"])
            .args(["--session-timeout-ms", &SESSION_TIMEOUT_MS.to_string(), "--commit-interval-ms", "200"])
            .args(["--brokers", &cluster.brokers()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("output file"))
            .stderr(std::fs::File::create(err).expect("error file"))
            .spawn()
            .expect("spawn eddy consume");
        Member { child: Some(child), out }
    }

    /// (partition, offset) -> value of every record printed so far.
    fn consumed(&self) -> Vec<((u64, u64), String)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter(|line| line.ends_with('}'))
            .map(|line| {
                let v: Value = serde_json::from_str(line).expect("a JSON line");
                let key = (v["partition"].as_u64().unwrap(), v["offset"].as_u64().unwrap());
                (key, v["value"].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn sigkill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// SIGINT: the member commits, leaves the group and exits 0.
    fn interrupt(&mut self) {
        let mut child = self.child.take().expect("running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
        let status = child.wait().expect("reap");
        assert!(status.success(), "eddy consume --group exited with {status} after SIGINT");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The group's committed offset per partition, and the coordinator's node id.
fn committed(cluster: &Cluster) -> (BTreeMap<u64, u64>, u64, Value) {
    let described = cluster.eddy_json(&["group", "describe", GROUP]);
    let offsets = described["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .filter_map(|o| Some((o["partition"].as_u64()?, o["committed_offset"].as_u64()?)))
        .collect();
    let coordinator = described["coordinator"].as_u64().expect("coordinator");
    (offsets, coordinator, described)
}

#[test]
fn a_group_shares_partitions_survives_a_killed_member_and_a_killed_coordinator() {
    let mut cluster = Cluster::start(3);
    let partitions = PARTITIONS.to_string();
    cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", &partitions, "--replication-factor", "3"]);
    cluster.wait_leaders(TOPIC);

    let mut producer = ProduceSession::start(&cluster.brokers(), TOPIC, &["--acks", "all"]);
    let mut members: Vec<Member> = ["a", "b", "c"].iter().map(|n| Member::start(&cluster, n)).collect();
    let mut last_committed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut check_monotonic = |cluster: &Cluster| {
        let (now, _, _) = committed(cluster);
        for (partition, offset) in now {
            let before = last_committed.insert(partition, offset).unwrap_or(0);
            assert!(offset >= before, "partition {partition}: committed offset moved back from {before} to {offset}");
        }
    };

    // Every member gets a share.
    wait_for(Duration::from_secs(60), "three members with two partitions each", || {
        let (_, _, described) = committed(&cluster);
        let members = described["members"].as_array()?;
        let shares: Vec<usize> = members.iter().map(|m| m["assignment"].as_array().map_or(0, Vec::len)).collect();
        (described["state"] == "stable" && shares == vec![2, 2, 2]).then_some(())
    });
    for i in 0..RECORDS / 2 {
        assert!(producer.send(&format!("event-{i}")), "eddy produce exited early");
        if i % 50 == 0 {
            check_monotonic(&cluster);
        }
    }
    wait_for(Duration::from_secs(60), "the first half consumed", || {
        let seen: BTreeSet<(u64, u64)> = members.iter().flat_map(|m| m.consumed()).map(|(k, _)| k).collect();
        (seen.len() >= RECORDS / 2).then_some(())
    });

    // SIGKILL one member: after its session times out, the others own everything.
    let victim_consumed: Vec<((u64, u64), String)> = {
        members[0].sigkill();
        members[0].consumed()
    };
    wait_for(Duration::from_secs(SESSION_TIMEOUT_MS / 1000 + 30), "two members owning all partitions", || {
        let (_, _, described) = committed(&cluster);
        let members = described["members"].as_array()?;
        let owned: usize = members.iter().map(|m| m["assignment"].as_array().map_or(0, Vec::len)).sum();
        (members.len() == 2 && owned == PARTITIONS as usize && described["state"] == "stable").then_some(())
    });
    for i in RECORDS / 2..RECORDS {
        assert!(producer.send(&format!("event-{i}")), "eddy produce exited early");
        if i % 50 == 0 {
            check_monotonic(&cluster);
        }
    }
    let (ok, stderr, acks) = producer.finish();
    assert!(ok, "eddy produce failed: {stderr}");
    assert_eq!(acks.len(), RECORDS);
    let produced: BTreeMap<(u64, u64), String> = acks
        .iter()
        .map(|a| {
            ((a["partition"].as_u64().unwrap(), a["offset"].as_u64().unwrap()), a["value"].as_str().unwrap().into())
        })
        .collect();

    // At least once: every produced record reaches a live member or was consumed by the victim.
    wait_for(Duration::from_secs(60), "every record consumed", || {
        let seen: BTreeSet<(u64, u64)> = members.iter().flat_map(|m| m.consumed()).map(|(k, _)| k).collect();
        produced.keys().all(|k| seen.contains(k)).then_some(())
    });
    for member in &mut members[1..] {
        member.interrupt();
    }
    check_monotonic(&cluster);

    // Duplicates only from the killed member's tail: the survivors never printed one record twice
    // between them, and each record they share with the victim is on a partition the victim read.
    let mut by_survivors: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for (key, value) in members[1..].iter().flat_map(|m| m.consumed()) {
        assert_eq!(produced.get(&key), Some(&value), "{key:?} was consumed with a value it was not produced with");
        *by_survivors.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = by_survivors.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "live members consumed records twice: {twice:?}");
    let victim_max: BTreeMap<u64, u64> = victim_consumed.iter().fold(BTreeMap::new(), |mut max, ((p, o), _)| {
        let entry = max.entry(*p).or_insert(*o);
        *entry = (*entry).max(*o);
        max
    });
    for ((p, o), _) in &victim_consumed {
        if by_survivors.contains_key(&(*p, *o)) {
            assert!(victim_max.get(p).is_some_and(|max| o <= max));
        }
    }

    // Everything is committed; the offsets survive SIGKILL of the coordinator's broker.
    let ends: BTreeMap<u64, u64> = produced.keys().fold(BTreeMap::new(), |mut end, (p, o)| {
        let entry = end.entry(*p).or_insert(0);
        *entry = (*entry).max(o + 1);
        end
    });
    let (offsets, coordinator, described) = committed(&cluster);
    assert_eq!(offsets, ends, "the members committed everything they consumed before leaving");
    assert_eq!(described["state"], "empty");
    // The coordinator exports the same figures on /metrics.
    let metrics = cluster.node(coordinator).metrics.clone();
    wait_for(Duration::from_secs(30), "the group's gauges on the coordinator", || {
        let body = scrape_metrics(&metrics);
        let gauge = |name: &str, p: u64| {
            let labels = [format!("group=\"{GROUP}\""), format!("topic=\"{TOPIC}\""), format!("partition=\"{p}\"")];
            body.lines()
                .filter(|l| {
                    l.starts_with(&format!("{name}{{")) && labels.iter().all(|label| l.contains(label.as_str()))
                })
                .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        let all = (0..PARTITIONS).all(|p| {
            gauge("eddy_group_committed_offset", p) == Some(ends[&p] as f64) && gauge("eddy_group_lag", p) == Some(0.0)
        });
        (all && metric_value(&body, "eddy_group_members", &format!("group=\"{GROUP}\"")) == Some(0.0)).then_some(())
    });
    cluster.kill_node(coordinator);
    let after = wait_for(Duration::from_secs(60), "a new coordinator", || {
        let out = cluster.eddy(&["group", "describe", GROUP, "--format", "json"]);
        if !out.status.success() {
            return None;
        }
        let described: Value = serde_json::from_slice(&out.stdout).ok()?;
        (described["coordinator"].as_u64()? != coordinator).then_some(described)
    });
    let survived: BTreeMap<u64, u64> = after["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| Some((o["partition"].as_u64()?, o["committed_offset"].as_u64()?)))
        .collect();
    assert_eq!(survived, ends, "a coordinator failover lost committed offsets");
}
