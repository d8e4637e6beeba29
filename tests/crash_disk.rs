//! Crash consistency of the real disk path: three `eddy server` processes with RocksDB, each
//! data directory on its own crash filesystem (`eddy-crashfs`: writes not yet fsynced live in
//! the filesystem's page cache, and a power cut drops them and kills the node). Producers send
//! unique values with acks=all while the power of a majority or of all nodes is cut at seeded
//! points; the cut filesystems are remounted over what was synced, the nodes restarted, every
//! partition read back from its leader and from every replica, and the simulation's checker
//! (`eddy_sim::checker`) judges the history: no acknowledged record may be lost or moved.
//!
//! The same scenario runs with the planted fault `EDDY_FAULT_SKIP_WAL_SYNC=1` (the group-commit
//! syncer acknowledges syncs without fsyncing the WAL), and there the checker must report
//! acknowledged records lost: proof that the filesystem really drops unsynced data and that
//! this test would catch a missing fsync. SIGKILL alone cannot (the page cache survives it), and
//! the simulation runs on the in-memory store.
//!
//! The schedule (victims, cut points) comes from a seed, printed at the start; set
//! `EDDY_CRASH_SEED` to run a schedule again. Timing still varies between runs (real processes).

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eddy_crashfs::{CrashFsConfig, Mounted, Stats};
use eddy_sim::checker::{Property, Verdict};
use eddy_sim::history::{Event, History, ReadRecord};
use serde_json::Value;
use support::{eddy_bin, free_port};

const TOPIC: &str = "crash";
const PARTITIONS: u32 = 3;
const NODES: u64 = 3;
/// Concurrent one-shot senders per partition (their syncs share the group commit).
const SENDERS_PER_PARTITION: u32 = 2;
/// Power cuts per run; the last one always takes every node.
const CUTS: usize = 6;
/// Acknowledgements to wait for before each cut, drawn from this range.
const ACKS_BEFORE_CUT_MIN: u64 = 5;
const ACKS_BEFORE_CUT_MAX: u64 = 200;
/// A further pause before each cut, drawn below this.
const CUT_DELAY_MAX_MS: u64 = 300;
/// Acknowledgements required after the last restart: the cluster serves again.
const ACKS_AFTER_RECOVERY: u64 = 10;
/// What the checker must see of a planted missing fsync.
const PLANTED_FAULT_LOG: &str = "PLANTED FAULT ON";

/// A small seeded generator (splitmix64): the schedule is a pure function of the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One power cut of the schedule.
#[derive(Debug, Clone)]
struct Cut {
    /// Acknowledgements (since the previous cut's recovery) to wait for.
    acks_before: u64,
    delay_ms: u64,
    /// The nodes that lose power: a majority, or all of them.
    victims: Vec<u64>,
}

fn schedule(seed: u64) -> Vec<Cut> {
    let mut rng = Rng(seed);
    (0..CUTS)
        .map(|i| {
            let all = i + 1 == CUTS || rng.below(2) == 0;
            let mut victims: Vec<u64> = (1..=NODES).collect();
            if !all {
                victims.remove(rng.below(NODES) as usize);
            }
            Cut {
                acks_before: ACKS_BEFORE_CUT_MIN + rng.below(ACKS_BEFORE_CUT_MAX - ACKS_BEFORE_CUT_MIN),
                delay_ms: rng.below(CUT_DELAY_MAX_MS),
                victims,
            }
        })
        .collect()
}

/// The run's seed: `EDDY_CRASH_SEED`, or one from the clock. Both tests of a process use the
/// same one, so the faulty run replays the schedule of the correct run.
fn seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("EDDY_CRASH_SEED") {
        Ok(text) => text.trim().parse().expect("EDDY_CRASH_SEED is a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64,
    })
}

/// Three `eddy server` processes whose data directories are crash filesystems.
mod cluster {
    use super::*;

    /// One node: its addresses, its crash filesystem and its process.
    pub struct Node {
        pub id: u64,
        pub address: String,
        internal: Option<String>,
        backing: PathBuf,
        mountpoint: PathBuf,
        log: PathBuf,
        pub fs: Option<Mounted>,
        child: Option<Child>,
    }

    /// The cluster. Dropping it kills every process and then unmounts every filesystem, also
    /// when the test fails.
    pub struct CrashCluster {
        pub nodes: Vec<Node>,
        voters: String,
        fault: bool,
        /// Node logs and backing directories; kept after the run when `EDDY_CRASH_KEEP` is set.
        dir: Option<tempfile::TempDir>,
    }

    /// Whether `eddy server` has a separate inter-broker listener (`--internal-listen`).
    fn has_internal_listener() -> bool {
        let out = Command::new(eddy_bin()).args(["server", "--help"]).output().expect("run eddy server --help");
        String::from_utf8_lossy(&out.stdout).contains("--internal-listen")
    }

    impl CrashCluster {
        /// Mounts a crash filesystem per node and starts the nodes, with the planted fault when
        /// `fault`; waits until every broker is alive.
        pub fn start(fault: bool) -> CrashCluster {
            let dir = tempfile::tempdir().expect("temp dir");
            let internal = has_internal_listener();
            let nodes: Vec<Node> = (1..=NODES)
                .map(|id| {
                    let node_dir = dir.path().join(format!("node-{id}"));
                    let (backing, mountpoint) = (node_dir.join("backing"), node_dir.join("mnt"));
                    std::fs::create_dir_all(&backing).expect("backing dir");
                    std::fs::create_dir_all(&mountpoint).expect("mount point");
                    Node {
                        id,
                        address: format!("127.0.0.1:{}", free_port()),
                        internal: internal.then(|| format!("127.0.0.1:{}", free_port())),
                        backing,
                        mountpoint,
                        log: node_dir.join("node.log"),
                        fs: None,
                        child: None,
                    }
                })
                .collect();
            let voters = nodes
                .iter()
                .map(|n| format!("{}={}", n.id, n.internal.as_ref().unwrap_or(&n.address)))
                .collect::<Vec<_>>()
                .join(",");
            let mut cluster = CrashCluster { nodes, voters, fault, dir: Some(dir) };
            for id in 1..=NODES {
                cluster.mount(id);
                cluster.start_node(id);
            }
            cluster.wait_healthy();
            cluster
        }

        fn node_mut(&mut self, id: u64) -> &mut Node {
            self.nodes.iter_mut().find(|n| n.id == id).expect("node id")
        }

        fn mount(&mut self, id: u64) {
            let node = self.node_mut(id);
            let mounted =
                Mounted::mount(&node.backing, &node.mountpoint, CrashFsConfig::default()).unwrap_or_else(|e| {
                    panic!("crash_disk needs a FUSE mount (/dev/fuse, as root or with fusermount3): {e}")
                });
            node.fs = Some(mounted);
        }

        fn start_node(&mut self, id: u64) {
            let (voters, fault) = (self.voters.clone(), self.fault);
            let node = self.node_mut(id);
            assert!(node.child.is_none(), "node {id} is already running");
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("log file");
            let mut command = Command::new(eddy_bin());
            command
                .args(["server", "--node-id", &id.to_string(), "--listen", &node.address])
                .args(["--controller-voters", &voters, "--log-level", "info,openraft=warn"])
                .arg("--data-dir")
                .arg(node.mountpoint.join("data"))
                .env_remove("EDDY_BROKERS")
                .env_remove(eddy_storage::rocks::FAULT_SKIP_WAL_SYNC_ENV)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log);
            if let Some(internal) = &node.internal {
                command.args(["--internal-listen", internal]);
            }
            if fault {
                command.env(eddy_storage::rocks::FAULT_SKIP_WAL_SYNC_ENV, "1");
            }
            node.child = Some(command.spawn().expect("spawn eddy server"));
        }

        /// The power cut of `victims`: their filesystems drop every unsynced byte and fail from
        /// then on, then their processes are SIGKILLed. Cutting first means nothing a victim
        /// does after the cut can become durable (its syncs fail). Returns each cut's counters.
        pub fn cut(&mut self, victims: &[u64]) -> Vec<Stats> {
            let stats = victims.iter().map(|id| self.node_mut(*id).fs.as_ref().expect("mounted").cut_power()).collect();
            for id in victims {
                if let Some(mut child) = self.node_mut(*id).child.take() {
                    child.kill().expect("SIGKILL");
                    child.wait().expect("reap");
                }
            }
            stats
        }

        /// The machines come back: unmount, mount over what was synced, start the node.
        pub fn restart(&mut self, victims: &[u64]) {
            for id in victims {
                let fs = self.node_mut(*id).fs.take().expect("mounted");
                fs.unmount().unwrap_or_else(|e| panic!("unmount node {id}: {e}"));
                self.mount(*id);
                self.start_node(*id);
            }
        }

        pub fn brokers(&self) -> String {
            self.nodes.iter().map(|n| n.address.clone()).collect::<Vec<_>>().join(",")
        }

        /// Runs `eddy ARGS --brokers <cluster>`.
        pub fn eddy(&self, args: &[&str]) -> Output {
            Command::new(eddy_bin()).args(args).args(["--brokers", &self.brokers()]).output().expect("run eddy")
        }

        /// Polls `check` until it answers, or fails after `timeout` with the nodes' logs.
        pub fn wait<T>(&self, timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(value) = check() {
                    return value;
                }
                assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}\n{}", self.logs());
                std::thread::sleep(Duration::from_millis(200));
            }
        }

        /// Waits until every node is alive in `cluster describe` and a controller leads.
        pub fn wait_healthy(&self) {
            self.wait(Duration::from_secs(90), "every broker to be alive", || {
                let out = self.eddy(&["cluster", "describe", "--format", "json"]);
                let v: Value = serde_json::from_slice(&out.stdout).ok()?;
                let alive = v["brokers"].as_array()?.iter().filter(|b| b["alive"] == Value::Bool(true)).count() as u64;
                (out.status.success() && alive == NODES && !v["controller_leader"].is_null()).then_some(())
            });
        }

        /// Waits until every partition of the topic has a leader.
        pub fn wait_leaders(&self) {
            self.wait(Duration::from_secs(90), "every partition to have a leader", || {
                let out = self.eddy(&["topic", "describe", TOPIC, "--format", "json"]);
                let v: Value = serde_json::from_slice(&out.stdout).ok()?;
                let partitions = v["partitions"].as_array()?;
                partitions.iter().all(|p| !p["leader"].is_null()).then_some(())
            });
        }

        /// Whether every node's log says the planted fault is on.
        pub fn fault_logged(&self) -> bool {
            self.nodes.iter().all(|n| std::fs::read_to_string(&n.log).unwrap_or_default().contains(PLANTED_FAULT_LOG))
        }

        /// The last lines of every node's log, for failure messages.
        pub fn logs(&self) -> String {
            let mut out = String::new();
            for node in &self.nodes {
                let text = std::fs::read_to_string(&node.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out.push_str(&format!("--- node {} (last 20 lines)\n", node.id));
                out.push_str(&lines[lines.len().saturating_sub(20)..].join("\n"));
                out.push('\n');
            }
            out
        }
    }

    impl Drop for CrashCluster {
        fn drop(&mut self) {
            // Processes first: a filesystem with open files cannot be unmounted cleanly.
            for node in &mut self.nodes {
                if let Some(mut child) = node.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            for node in &mut self.nodes {
                if let Some(fs) = node.fs.take()
                    && let Err(e) = fs.unmount()
                {
                    eprintln!("crash_disk: unmounting node {}: {e}", node.id);
                }
            }
            if std::env::var_os("EDDY_CRASH_KEEP").is_some()
                && let Some(dir) = self.dir.take()
            {
                eprintln!("crash_disk: kept node logs and backing directories in {}", dir.keep().display());
            }
        }
    }
}

/// The producers and the final reads, recording into the simulation's history format.
mod workload {
    use bytes::Bytes;
    use eddy_client::{Client, ClientConfig, v1};

    use super::*;

    /// Milliseconds since the run started, the history's clock.
    #[derive(Clone, Copy)]
    pub struct Clock(pub Instant);

    impl Clock {
        pub fn ms(&self) -> u64 {
            self.0.elapsed().as_millis() as u64
        }
    }

    /// One-shot senders: each value is sent once, without client retries, so a definite error
    /// means it was not written and a value can never be appended twice by a retry.
    fn sender_client(brokers: &str) -> Client {
        let config = ClientConfig {
            request_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_millis(500),
            retry_deadline: Duration::ZERO,
            ..ClientConfig::default()
        };
        Client::new(brokers.split(',').map(String::from).collect(), config).expect("client")
    }

    /// Producers running on a thread of their own until stopped.
    pub struct Producers {
        pub acks: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Producers {
        pub fn start(brokers: String, history: History, clock: Clock) -> Producers {
            let acks = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (task_acks, task_stop) = (acks.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let client = Arc::new(sender_client(&brokers));
                    let mut tasks = Vec::new();
                    for partition in 0..PARTITIONS {
                        for sender in 0..SENDERS_PER_PARTITION {
                            let (client, history) = (client.clone(), history.clone());
                            let (acks, stop) = (task_acks.clone(), task_stop.clone());
                            tasks.push(tokio::spawn(async move {
                                send_until_stopped(&client, partition, sender, &history, clock, &acks, &stop).await
                            }));
                        }
                    }
                    for task in tasks {
                        task.await.expect("sender task");
                    }
                });
            });
            Producers { acks, stop, thread: Some(thread) }
        }

        pub fn acked(&self) -> u64 {
            self.acks.load(Ordering::SeqCst)
        }

        /// Stops sending and waits for the sends in flight to end.
        pub fn stop(mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(thread) = self.thread.take() {
                thread.join().expect("producer thread");
            }
        }
    }

    impl Drop for Producers {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    async fn send_until_stopped(
        client: &Client,
        partition: u32,
        sender: u32,
        history: &History,
        clock: Clock,
        acks: &AtomicU64,
        stop: &AtomicBool,
    ) {
        let process = format!("sender-{partition}-{sender}");
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let value = format!("p{partition}-s{sender}-{n}");
            n += 1;
            history
                .record_at(clock.ms(), Event::SendInvoke { process: process.clone(), value: value.clone(), partition });
            let request = v1::ProduceRequest {
                topic: TOPIC.into(),
                partition,
                records: vec![v1::Record { value: Bytes::from(value.clone()), ..Default::default() }],
                acks: v1::Acks::All as i32,
                producer: None,
                timeout_ms: 0,
            };
            let (event, ok) = match client.produce(request).await {
                Ok(response) => (Event::SendOk { value, partition, offset: response.base_offset }, true),
                Err(e) if e.is_definite() => {
                    (Event::SendFail { value, partition, reason: e.reason().to_string() }, false)
                }
                Err(e) => (Event::SendUnknown { value, partition, reason: e.to_string() }, false),
            };
            history.record_at(clock.ms(), event);
            if ok {
                acks.fetch_add(1, Ordering::SeqCst);
            } else {
                // Nodes are down or electing: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    fn records(response: &v1::FetchResponse) -> Vec<ReadRecord> {
        response
            .records
            .iter()
            .map(|r| ReadRecord { offset: r.offset, value: String::from_utf8_lossy(&r.value).into_owned() })
            .collect()
    }

    /// After recovery: every partition read in full from its leader (`FinalRead`), then from
    /// every node's own replica up to that point (`ReplicaRead`).
    pub fn read_back(brokers: &str, nodes: &[(u64, String)], history: &History, clock: Clock) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let config = ClientConfig { retry_deadline: Duration::from_secs(60), ..ClientConfig::default() };
        let client = Client::new(brokers.split(',').map(String::from).collect(), config).expect("client");
        runtime.block_on(async {
            for partition in 0..PARTITIONS {
                let (read, high_watermark) = match read_leader(&client, partition).await {
                    Ok(done) => done,
                    Err(reason) => {
                        history.record_at(clock.ms(), Event::FinalReadFailed { partition, reason });
                        continue;
                    }
                };
                history.record_at(clock.ms(), Event::FinalRead { partition, records: read.clone(), high_watermark });
                for (node, address) in nodes {
                    let replica = read_replica(&client, address, partition, high_watermark).await;
                    history.record_at(clock.ms(), Event::ReplicaRead { node: *node, partition, records: replica });
                }
            }
        });
    }

    async fn read_leader(client: &Client, partition: u32) -> Result<(Vec<ReadRecord>, u64), String> {
        let mut out = Vec::new();
        let mut high_watermark = u64::MAX;
        while (out.len() as u64) < high_watermark {
            let request = v1::FetchRequest {
                topic: TOPIC.into(),
                partition,
                offset: out.len() as u64,
                max_bytes: 0,
                max_records: 0,
                max_wait_ms: 0,
                read_from_follower: false,
            };
            let response = client.fetch(request).await.map_err(|e| e.to_string())?;
            high_watermark = response.high_watermark;
            if response.records.is_empty() && (out.len() as u64) < high_watermark {
                return Err(format!("the leader returned nothing at {} below its high watermark", out.len()));
            }
            out.extend(records(&response));
        }
        Ok((out, high_watermark))
    }

    /// A replica's records up to `end`, or as far as it has them within a deadline: the checker
    /// requires only that they are a prefix of the leader's.
    async fn read_replica(client: &Client, address: &str, partition: u32, end: u64) -> Vec<ReadRecord> {
        let mut out: Vec<ReadRecord> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (out.len() as u64) < end && Instant::now() < deadline {
            let request = v1::FetchRequest {
                topic: TOPIC.into(),
                partition,
                offset: out.len() as u64,
                max_bytes: 0,
                max_records: 0,
                max_wait_ms: 500,
                read_from_follower: true,
            };
            match client.fetch_from_broker(address, request).await {
                Ok(response) => out.extend(records(&response)),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        out
    }
}

/// What one run saw.
struct Outcome {
    verdict: Verdict,
    /// The history as trace lines (`eddy_sim::history::trace_lines`).
    trace: Vec<String>,
    seed: u64,
    acked: u64,
    cuts: Vec<(Vec<u64>, Vec<Stats>)>,
    forced_writebacks: u64,
    fault_logged: bool,
    logs: String,
}

impl Outcome {
    fn count(&self, property: Property) -> usize {
        self.verdict.anomalies.iter().filter(|a| a.property == property).count()
    }

    fn summary(&self) -> String {
        let dropped: Vec<String> = self
            .cuts
            .iter()
            .map(|(victims, stats)| {
                let bytes: u64 = stats.iter().map(|s| s.dropped_bytes).sum();
                format!("nodes {victims:?} lost {bytes} unsynced bytes")
            })
            .collect();
        let mut by_property = std::collections::BTreeMap::<String, usize>::new();
        for anomaly in &self.verdict.anomalies {
            *by_property.entry(anomaly.property.to_string()).or_default() += 1;
        }
        format!(
            "seed {}: {} acknowledged, {} records checked, cuts: {}; anomalies {by_property:?}",
            self.seed,
            self.acked,
            self.verdict.records_checked,
            dropped.join("; ")
        )
    }

    /// How to run the schedule again, and where the history's trace was written.
    fn reproduce(&self, test: &str) -> String {
        let path = std::env::temp_dir().join(format!("crash_disk-{}-{test}.trace", self.seed));
        let written = match std::fs::write(&path, self.trace.join("\n")) {
            Ok(()) => format!("the history is in {}", path.display()),
            Err(e) => format!("the history could not be written to {}: {e}", path.display()),
        };
        format!(
            "{written}\nreproduce with: EDDY_CRASH_SEED={} cargo test -p eddy-cli --test crash_disk -- {test} \
             (EDDY_CRASH_KEEP=1 keeps the node logs and disks)",
            self.seed
        )
    }
}

/// The scenario: start, create the topic, write back the start-up state, then produce while
/// the seeded cuts happen, recover, and check the history.
fn run(seed: u64, fault: bool) -> Outcome {
    let mode = if fault { "with the planted fault EDDY_FAULT_SKIP_WAL_SYNC=1" } else { "without faults" };
    let plan = schedule(seed);
    eprintln!("crash_disk: seed {seed} {mode}; schedule {plan:?}");
    let started = Instant::now();
    let mut cluster = cluster::CrashCluster::start(fault);
    let created = cluster.eddy(&[
        "topic",
        "create",
        TOPIC,
        "--partitions",
        &PARTITIONS.to_string(),
        "--replication-factor",
        &NODES.to_string(),
    ]);
    assert!(created.status.success(), "topic create: {}\n{}", String::from_utf8_lossy(&created.stderr), cluster.logs());
    cluster.wait_leaders();
    // What start-up wrote is written back, as a kernel's periodic writeback would have done long
    // before the cuts: the cuts then hit the produce traffic.
    for node in &cluster.nodes {
        node.fs.as_ref().expect("mounted").sync_all().expect("write the start-up state back");
    }

    let history = History::new();
    let clock = workload::Clock(Instant::now());
    let producers = workload::Producers::start(cluster.brokers(), history.clone(), clock);
    let mut cuts = Vec::new();
    let mut base = 0;
    for cut in &plan {
        let target = base + cut.acks_before;
        cluster.wait(Duration::from_secs(90), &format!("{target} acknowledgements"), || {
            (producers.acked() >= target).then_some(())
        });
        std::thread::sleep(Duration::from_millis(cut.delay_ms));
        history.record_at(clock.ms(), Event::Fault { description: format!("power cut on nodes {:?}", cut.victims) });
        let stats = cluster.cut(&cut.victims);
        eprintln!("crash_disk: cut nodes {:?} after {} acks: {stats:?}", cut.victims, producers.acked());
        cuts.push((cut.victims.clone(), stats));
        cluster.restart(&cut.victims);
        history.record_at(clock.ms(), Event::Fault { description: format!("nodes {:?} restarted", cut.victims) });
        cluster.wait_healthy();
        cluster.wait_leaders();
        base = producers.acked();
    }
    let target = base + ACKS_AFTER_RECOVERY;
    cluster.wait(Duration::from_secs(90), "acknowledgements after recovery", || {
        (producers.acked() >= target).then_some(())
    });
    let acked = producers.acked();
    producers.stop();

    let nodes: Vec<(u64, String)> = cluster.nodes.iter().map(|n| (n.id, n.address.clone())).collect();
    workload::read_back(&cluster.brokers(), &nodes, &history, clock);
    let entries = history.entries();
    let verdict = eddy_sim::checker::check(&entries, PARTITIONS);
    let trace = eddy_sim::history::trace_lines(&entries);
    let forced_writebacks =
        cluster.nodes.iter().map(|n| n.fs.as_ref().map_or(0, |f| f.stats().forced_writebacks)).sum();
    let outcome = Outcome {
        verdict,
        trace,
        seed,
        acked,
        cuts,
        forced_writebacks,
        fault_logged: cluster.fault_logged(),
        logs: cluster.logs(),
    };
    eprintln!("crash_disk: {} in {:?}", outcome.summary(), started.elapsed());
    outcome
}

#[test]
fn acknowledged_records_survive_power_cuts_on_a_majority_and_on_all_nodes() {
    let outcome = run(seed(), false);
    let anomalies: Vec<String> = outcome.verdict.anomalies.iter().take(30).map(|a| a.to_string()).collect();
    assert!(
        anomalies.is_empty(),
        "the checker found anomalies: {}\n{}\n{}\n{}",
        outcome.summary(),
        anomalies.join("\n"),
        outcome.reproduce("acknowledged_records_survive"),
        outcome.logs
    );
    assert!(outcome.verdict.records_checked > 0, "nothing was read back: {}", outcome.summary());
    let dropped: u64 = outcome.cuts.iter().flat_map(|(_, stats)| stats).map(|s| s.dropped_bytes).sum();
    assert!(dropped > 0, "the power cuts dropped no unsynced data, so they tested nothing: {}", outcome.summary());
    assert_eq!(outcome.forced_writebacks, 0, "the bound on unsynced bytes forced write-backs: {}", outcome.summary());
}

#[test]
fn a_missing_wal_fsync_loses_acknowledged_records_and_is_caught() {
    if !cfg!(debug_assertions) {
        eprintln!("crash_disk: skipped: the planted fault exists only in debug builds");
        return;
    }
    // Without its fsyncs a node can also lose votes and membership it acknowledged, and a Raft
    // group may then never recover (openraft stops a group whose storage went back on what it
    // promised): a cluster that does not come back after the cuts has caught the fault too.
    let seed = seed();
    let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed, true))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert!(
                message.contains("timed out"),
                "the run with the planted fault failed otherwise than by not recovering (seed {seed}): {message}"
            );
            eprintln!("crash_disk: with the planted fault the cluster did not recover: caught");
            return;
        }
    };
    assert!(
        outcome.fault_logged,
        "a node's log does not say {PLANTED_FAULT_LOG:?}: the planted fault is not active\n{}",
        outcome.logs
    );
    assert_eq!(outcome.forced_writebacks, 0, "the bound on unsynced bytes forced write-backs: {}", outcome.summary());
    assert!(
        outcome.count(Property::AcknowledgedLost) > 0,
        "with the WAL never fsynced the checker must find acknowledged records lost, but: {}\n{}\n{}",
        outcome.summary(),
        outcome.reproduce("a_missing_wal_fsync"),
        outcome.logs
    );
}
