//! One seeded run: build the simulated cluster and clients, step the simulation while applying
//! the fault schedule and sampling Raft leadership, heal, then check the history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use eddy_broker::{Broker, BrokerConfig, Clock, ControllerVoter, NodeEnv};
use eddy_raft::RaftTiming;

use crate::checker::{self, Anomaly};
use crate::faults::{self, Fault, FaultKind};
use crate::history::{Event, History, trace_hash, trace_lines};
use crate::net::{INTERNAL_PORT, PORT, SimConnector, incoming};
use crate::storage::SimDisk;
use crate::workload::{self, MemberLife, Plan};

/// How long a partition group stays settled before it quiesces in the simulation.
const SIM_QUIESCE_AFTER_MS: u64 = 2_000;
/// The controller snapshots its metadata every this many entries (the default is 10,000).
const CONTROLLER_SNAPSHOT_ENTRIES: u64 = 4;
/// A broker silent this long is fenced (the default is 10 s).
const BROKER_SESSION_TIMEOUT_MS: u64 = 6_000;
/// A broker fenced this long has its replicas replaced (the default is 30 s), so crashes and
/// isolations of some seconds move replicas.
const REPLICA_REPLACEMENT_DELAY_MS: u64 = 2_000;
/// How often partition leaders apply retention (the default is 30 s).
const RETENTION_CHECK_INTERVAL_MS: u64 = 300;

/// The largest message latency outside `delay` faults.
const NORMAL_MAX_LATENCY: Duration = Duration::from_millis(3);

/// A deliberate bug, to prove the checker catches what it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The disks acknowledge syncs without making anything durable.
    SkipFsync,
    /// Channels between nodes, and from clients, have no HTTP/2 keep-alive, so a connection that
    /// died silently is used forever (what seeds 1122, 1288 and 1391 found).
    NoKeepalive,
}

impl Bug {
    /// The name `--bug` takes.
    pub fn name(self) -> &'static str {
        match self {
            Bug::SkipFsync => "skip-fsync",
            Bug::NoKeepalive => "no-keepalive",
        }
    }
}

impl std::str::FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip-fsync" => Ok(Bug::SkipFsync),
            "no-keepalive" => Ok(Bug::NoKeepalive),
            other => Err(format!("unknown bug {other:?}; the ones there are: skip-fsync, no-keepalive")),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Nodes in the cluster; `None` lets the seed draw it (see [`Shape`]).
    pub nodes: Option<u64>,
    /// Run the ACKS_LEADER client (on unless `--no-leader-acks`).
    pub leader_acks: bool,
    /// Run the standard shape ([`Shape::STANDARD`]) instead of drawing one from the seed: how
    /// seeds found before shapes were drawn replay exactly.
    pub standard_shape: bool,
    pub partitions: u32,
    /// Simulated seconds of faults (and of sending).
    pub fault_secs: u64,
    /// Simulated seconds between the end of the faults and the final read.
    pub heal_secs: u64,
    /// Run without any fault (for comparisons and for the determinism check of the bare cluster).
    pub no_faults: bool,
    pub bug: Option<Bug>,
}

impl Options {
    /// Seed 1 of the standard run: 3 nodes, 3 partitions, 30 s of faults, 15 s of healing.
    pub const DEFAULT: Options = Options {
        seed: 1,
        nodes: None,
        standard_shape: false,
        leader_acks: true,
        partitions: 3,
        fault_secs: 30,
        heal_secs: 15,
        no_faults: false,
        bug: None,
    };
}

/// What a seed draws besides its fault schedule, each within bounds: the cluster size (unless
/// `--nodes` fixes it), the Raft timing of every group, the broker heartbeat, and the clients'
/// request timeout. So the seeds explore timings, not only fault schedules; the seed alone still
/// reproduces the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub nodes: u64,
    pub raft: RaftTiming,
    pub broker_heartbeat_interval_ms: u64,
    pub client_request_timeout_ms: u64,
}

impl Shape {
    /// The bounds of each draw.
    pub const NODES: std::ops::RangeInclusive<u64> = 3..=5;
    pub const RAFT_HEARTBEAT_MS: std::ops::RangeInclusive<u64> = 100..=300;
    /// The election timeout's lower end; at least four heartbeats above the heartbeat.
    pub const ELECTION_TIMEOUT_MIN_MS: std::ops::RangeInclusive<u64> = 800..=1_500;
    /// How far the upper end of the election timeout lies above its lower end.
    pub const ELECTION_TIMEOUT_SPREAD_MS: std::ops::RangeInclusive<u64> = 300..=1_000;
    pub const BROKER_HEARTBEAT_MS: std::ops::RangeInclusive<u64> = 250..=750;
    pub const CLIENT_REQUEST_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1_500..=4_000;

    /// The shape every run had before shapes were drawn: 3 nodes and the production defaults.
    pub const STANDARD: Shape = Shape {
        nodes: 3,
        raft: RaftTiming { heartbeat_interval_ms: 200, election_timeout_min_ms: 1000, election_timeout_max_ms: 2000 },
        broker_heartbeat_interval_ms: 500,
        client_request_timeout_ms: 3_000,
    };

    /// The shape of a run of `options`.
    pub fn of(options: &Options) -> Shape {
        if options.standard_shape {
            Shape { nodes: options.nodes.unwrap_or(Self::STANDARD.nodes), ..Self::STANDARD }
        } else {
            Self::draw(options.seed, options.nodes)
        }
    }

    /// The shape of `seed`'s run; `nodes` overrides the drawn cluster size.
    pub fn draw(seed: u64, nodes: Option<u64>) -> Shape {
        use rand::{Rng, SeedableRng};
        // A stream of its own, like the fault schedule's.
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7368_6170_6573);
        let drawn_nodes = rng.random_range(Self::NODES);
        let heartbeat_interval_ms = rng.random_range(Self::RAFT_HEARTBEAT_MS);
        let lowest = (*Self::ELECTION_TIMEOUT_MIN_MS.start()).max(4 * heartbeat_interval_ms);
        let election_timeout_min_ms = rng.random_range(lowest..=*Self::ELECTION_TIMEOUT_MIN_MS.end());
        let election_timeout_max_ms = election_timeout_min_ms + rng.random_range(Self::ELECTION_TIMEOUT_SPREAD_MS);
        let shape = Shape {
            nodes: nodes.unwrap_or(drawn_nodes),
            raft: RaftTiming { heartbeat_interval_ms, election_timeout_min_ms, election_timeout_max_ms },
            broker_heartbeat_interval_ms: rng.random_range(Self::BROKER_HEARTBEAT_MS),
            client_request_timeout_ms: rng.random_range(Self::CLIENT_REQUEST_TIMEOUT_MS),
        };
        assert!(shape.raft.election_timeout_min_ms >= 4 * shape.raft.heartbeat_interval_ms);
        shape
    }
}

// Every drawn heartbeat leaves room for an election timeout of four heartbeats.
const _: () = assert!(4 * *Shape::RAFT_HEARTBEAT_MS.end() <= *Shape::ELECTION_TIMEOUT_MIN_MS.end());

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} nodes, raft heartbeat {} ms, election timeout {}..{} ms, broker heartbeat {} ms, client request \
             timeout {} ms",
            self.nodes,
            self.raft.heartbeat_interval_ms,
            self.raft.election_timeout_min_ms,
            self.raft.election_timeout_max_ms,
            self.broker_heartbeat_interval_ms,
            self.client_request_timeout_ms
        )
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::DEFAULT
    }
}

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub shape: Shape,
    pub schedule: Vec<Fault>,
    pub faults: BTreeMap<&'static str, u64>,
    pub anomalies: Vec<Anomaly>,
    pub records_checked: u64,
    pub trace: Vec<String>,
    pub trace_hash: u64,
    /// The simulation itself failed (a host returned an error, a panic, the time limit).
    pub error: Option<String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.error.is_some() || !self.anomalies.is_empty()
    }

    /// The report in the form the seed runner passes between processes.
    pub fn summary(&self, with_trace: bool) -> Summary {
        Summary {
            seed: self.seed,
            shape: self.shape.to_string(),
            failed: self.failed(),
            error: self.error.clone(),
            anomalies: self.anomalies.clone(),
            schedule: self.schedule.iter().map(ToString::to_string).collect(),
            faults: self.faults.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            records_checked: self.records_checked,
            trace_hash: format!("{:016x}", self.trace_hash),
            trace: if with_trace { self.trace.clone() } else { Vec::new() },
        }
    }
}

/// A seed's outcome as data: what `eddy-sim --child` prints as one JSON line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub seed: u64,
    pub failed: bool,
    pub error: Option<String>,
    pub anomalies: Vec<Anomaly>,
    pub schedule: Vec<String>,
    pub faults: BTreeMap<String, u64>,
    pub records_checked: u64,
    pub trace_hash: String,
    #[serde(default)]
    pub trace: Vec<String>,
    /// The run's shape, as [`Shape`] prints it.
    #[serde(default)]
    pub shape: String,
}

impl Summary {
    /// The summary an `eddy-sim --child` process printed as the last line of its output.
    pub fn from_child_output(output: &std::process::Output) -> Result<Summary, String> {
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout.lines().last().and_then(|line| serde_json::from_str(line).ok()).ok_or_else(|| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            format!(
                "the seed's process ended with {} without a summary; its last output:\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
    }
}

/// A node's wall clock: the simulation's epoch plus simulated time, plus a jump the fault
/// schedule may set.
#[derive(Debug)]
struct SimClock {
    jump_ms: Arc<AtomicI64>,
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default().as_millis() as i64;
        crate::clock::EPOCH_MILLIS as i64 + elapsed + self.jump_ms.load(Ordering::SeqCst)
    }
}

fn host(node: u64) -> String {
    format!("n{node}")
}

fn mix(a: u64, b: u64) -> u64 {
    eddy_raft::group_seed(a, b)
}

/// What the driver knows about the nodes while the simulation runs.
struct Nodes {
    count: u64,
    disks: BTreeMap<u64, SimDisk>,
    clocks: BTreeMap<u64, Arc<AtomicI64>>,
    /// The running broker of each node, set by the node when it has started.
    running: Arc<Mutex<BTreeMap<u64, Broker>>>,
    down: BTreeSet<u64>,
}

/// Link state with reference counts, so overlapping faults undo only their own part.
#[derive(Default)]
struct Links {
    cut: BTreeMap<(u64, u64), u32>,
    held: BTreeMap<(String, String), u32>,
}

/// Runs one seed.
///
/// # Panics
/// When the calling binary has not installed [`crate::virtual_clock!`]: without it, libraries
/// that read the real clock would make the run irreproducible.
pub fn run(options: &Options) -> Report {
    assert!(
        crate::clock::is_installed(),
        "the simulation needs the virtual clock: invoke eddy_sim::virtual_clock!() in the binary"
    );
    let _clock = crate::clock::Guard::start();
    let seed = options.seed;
    let shape = Shape::of(options);
    let history = History::new();
    history.record(Event::Note { text: format!("shape: {shape}") });
    let fault_start_ms = 5_000;
    let fault_end_ms = fault_start_ms + options.fault_secs * 1_000;
    let final_read_ms = fault_end_ms + options.heal_secs * 1_000;
    let plan = Plan {
        nodes: shape.nodes,
        partitions: options.partitions,
        producers: 2,
        send_until_ms: fault_end_ms,
        final_read_ms,
        final_read_budget_ms: 30_000,
        send_interval: Duration::from_millis(10),
        keepalive: options.bug != Some(Bug::NoKeepalive),
        request_timeout: Duration::from_millis(shape.client_request_timeout_ms),
    };

    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(crate::clock::EPOCH_MILLIS))
        .simulation_duration(Duration::from_millis(final_read_ms + 120_000))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(NORMAL_MAX_LATENCY)
        // Links broken by the loss fault come back at random as traffic tries them.
        .repair_rate(0.05)
        .tcp_capacity(1 << 16)
        .build();

    let skip_fsync = options.bug == Some(Bug::SkipFsync);
    let connector = SimConnector { keepalive: options.bug != Some(Bug::NoKeepalive) };
    let mut nodes = Nodes {
        count: shape.nodes,
        disks: (1..=shape.nodes).map(|n| (n, SimDisk::new(skip_fsync))).collect(),
        clocks: (1..=shape.nodes).map(|n| (n, Arc::new(AtomicI64::new(0)))).collect(),
        running: Arc::new(Mutex::new(BTreeMap::new())),
        down: BTreeSet::new(),
    };
    let voters: Vec<ControllerVoter> =
        (1..=shape.nodes).map(|n| ControllerVoter { id: n, address: format!("{}:{INTERNAL_PORT}", host(n)) }).collect();
    for node in 1..=shape.nodes {
        let config = BrokerConfig {
            node_id: node,
            listen: format!("0.0.0.0:{PORT}").parse().expect("listen address"),
            advertise: Some(format!("{}:{PORT}", host(node))),
            internal_listen: format!("0.0.0.0:{INTERNAL_PORT}").parse().expect("internal listen address"),
            internal_advertise: Some(format!("{}:{INTERNAL_PORT}", host(node))),
            controller_voters: voters.clone(),
            raft: shape.raft,
            heartbeat_interval_ms: shape.broker_heartbeat_interval_ms,
            // Snapshots of the controller's metadata, installed on lagging controllers, happen
            // many times a run; retention runs often enough to trim under every fault.
            controller_snapshot_entries: CONTROLLER_SNAPSHOT_ENTRIES,
            broker_session_timeout_ms: BROKER_SESSION_TIMEOUT_MS,
            replica_replacement_delay_ms: REPLICA_REPLACEMENT_DELAY_MS,
            retention_check_interval_ms: RETENTION_CHECK_INTERVAL_MS,
            // Quiescing runs in every seed, as in production (2 s, the default);
            // EDDY_SIM_QUIESCE_AFTER_MS overrides it (0: groups never quiesce), to tell whether a
            // failure depends on it.
            quiesce_after_ms: std::env::var("EDDY_SIM_QUIESCE_AFTER_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(SIM_QUIESCE_AFTER_MS),
            ..BrokerConfig::default()
        };
        let disk = nodes.disks[&node].clone();
        let jump = nodes.clocks[&node].clone();
        let running = nodes.running.clone();
        let boots = Arc::new(AtomicU64::new(0));
        let node_history = history.clone();
        sim.host(host(node), move || {
            let (config, disk, jump, running) = (config.clone(), disk.clone(), jump.clone(), running.clone());
            let history = node_history.clone();
            let boot = boots.fetch_add(1, Ordering::SeqCst);
            async move {
                let env = NodeEnv {
                    kv: disk.store(),
                    connector: Arc::new(connector),
                    clock: Arc::new(SimClock { jump_ms: jump }),
                    seed: mix(mix(seed, node), boot),
                };
                let broker = Broker::start(config, env).await.map_err(|e| format!("n{node} start: {e}"))?;
                running.lock().expect("running lock").insert(node, broker.clone());
                history.record(Event::Note { text: format!("n{node} started (boot {boot})") });
                // The two listeners of a real node: clients on PORT, brokers on INTERNAL_PORT.
                let routes = broker.client_routes().await.map_err(|e| e.to_string())?;
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                let internal_routes = broker.internal_routes().await;
                let internal_listener = turmoil::net::TcpListener::bind(("0.0.0.0", INTERNAL_PORT)).await?;
                let clients = eddy_broker::server_builder().add_routes(routes).serve_with_incoming(incoming(listener));
                let brokers = eddy_broker::server_builder()
                    .add_routes(internal_routes)
                    .serve_with_incoming(incoming(internal_listener));
                futures::future::try_join(clients, brokers).await?;
                Ok(())
            }
        });
    }

    let ready = Arc::new(AtomicBool::new(false));
    sim.client("setup", workload::setup(plan.clone(), history.clone(), ready.clone()));
    for index in 0..plan.producers {
        sim.client(
            format!("producer-{index}"),
            workload::producer(plan.clone(), index, history.clone(), ready.clone()),
        );
    }
    sim.client("oneshot", workload::oneshot(plan.clone(), history.clone(), ready.clone()));
    if options.leader_acks {
        sim.client("leader-acks", workload::leader_acks(plan.clone(), history.clone(), ready.clone()));
    }
    for partition in 0..plan.partitions {
        sim.client(
            format!("consumer-{partition}"),
            workload::consumer(plan.clone(), partition, history.clone(), ready.clone()),
        );
    }
    // The group: two members throughout, one that crashes halfway through the faults, one that
    // joins then.
    let halfway_ms = (fault_start_ms + fault_end_ms) / 2;
    let lives = [
        MemberLife { start_ms: 0, stop_ms: final_read_ms, crash: false },
        MemberLife { start_ms: 0, stop_ms: final_read_ms, crash: false },
        MemberLife { start_ms: 0, stop_ms: halfway_ms, crash: true },
        MemberLife { start_ms: halfway_ms, stop_ms: final_read_ms, crash: false },
    ];
    for (index, life) in lives.into_iter().enumerate() {
        sim.client(
            format!("member-{index}"),
            workload::group_member(plan.clone(), index as u32, life, history.clone(), ready.clone()),
        );
    }
    sim.client("group-final", workload::group_final(plan.clone(), final_read_ms + 10_000, history.clone()));
    sim.client("final-reader", workload::final_reader(plan.clone(), history.clone()));
    sim.client("retained-producer", workload::retained_producer(plan.clone(), history.clone(), ready.clone()));
    sim.client("retained-final", workload::retained_final(plan.clone(), history.clone()));
    // The schema registry (held by the controller): two registrars, then a read after healing.
    for index in 0..2 {
        sim.client(
            format!("registrar-{index}"),
            workload::registrar(plan.clone(), index, history.clone(), ready.clone()),
        );
    }
    sim.client("registry-final", workload::registry_final(plan.clone(), history.clone()));
    // Users and ACLs (held by the controller): one writer, then every broker's view after healing.
    sim.client("securer-0", workload::securer(plan.clone(), 0, history.clone(), ready.clone()));
    sim.client("security-final", workload::security_final(plan.clone(), history.clone()));
    // Membership changes under the faults: a rebalance a third of the way through, and (with a
    // broker to spare) the drain of the last broker halfway; crashes longer than the replacement
    // delay move replicas off the crashed brokers as well.
    let rebalance_ms = fault_start_ms + (fault_end_ms - fault_start_ms) / 3;
    let decommission = (plan.nodes >= 4).then_some((halfway_ms, plan.nodes));
    sim.client("operator", workload::operator(plan.clone(), rebalance_ms, decommission, history.clone()));

    let schedule = if options.no_faults {
        Vec::new()
    } else {
        faults::schedule(seed, shape.nodes, options.partitions, fault_start_ms, fault_end_ms)
    };
    // (time, start?, index into schedule), in time order; ends before starts at the same time.
    let mut actions: Vec<(u64, bool, usize)> = Vec::new();
    for (i, fault) in schedule.iter().enumerate() {
        actions.push((fault.start_ms, true, i));
        actions.push((fault.end_ms, false, i));
    }
    actions.sort_by_key(|&(at, start, i)| (at, start, i));
    let mut next_action = 0usize;
    let mut resolved: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut links = Links::default();
    let mut counts: BTreeMap<&'static str, u64> = FaultKind::NAMES.iter().map(|n| (*n, 0)).collect();
    let mut leaders_seen: BTreeSet<(u64, u64, u64)> = BTreeSet::new();
    let mut healed = false;

    let error = loop {
        let now = sim.elapsed().as_millis() as u64;
        while next_action < actions.len() && actions[next_action].0 <= now {
            let (_, start, i) = actions[next_action];
            next_action += 1;
            let fault = &schedule[i];
            if start {
                *counts.get_mut(fault.kind.name()).expect("known fault") += 1;
                let targets = start_fault(&mut sim, &mut nodes, &mut links, fault);
                history.record_at(now, Event::Fault { description: format!("start {fault} on {targets:?}") });
                resolved.insert(i, targets);
            } else {
                let targets = resolved.remove(&i).unwrap_or_default();
                end_fault(&mut sim, &mut nodes, &mut links, fault, &targets);
                history.record_at(now, Event::Fault { description: format!("end   {fault}") });
            }
        }
        if !healed && now >= fault_end_ms {
            healed = true;
            heal(&mut sim, &mut nodes, &mut links);
            history.record_at(now, Event::Note { text: "healed: every fault is over".into() });
        }
        sample_leaders(&nodes, &history, now, &mut leaders_seen);
        crate::clock::set_now(Some(sim.elapsed()));
        match sim.step() {
            Ok(true) => break None,
            Ok(false) => {}
            Err(e) => break Some(e.to_string()),
        }
    };

    let entries = history.entries();
    let verdict = checker::check(&entries, options.partitions);
    let trace = trace_lines(&entries);
    let trace_hash = trace_hash(&trace);
    // Drop the simulation (and every task in it) before the brokers the driver still holds.
    drop(sim);
    nodes.running.lock().expect("running lock").clear();
    Report {
        seed,
        shape,
        schedule,
        faults: counts,
        anomalies: verdict.anomalies,
        records_checked: verdict.records_checked,
        trace,
        trace_hash,
        error,
    }
}

/// Records every (group, term, leader) the nodes report, once.
fn sample_leaders(nodes: &Nodes, history: &History, now: u64, seen: &mut BTreeSet<(u64, u64, u64)>) {
    let running = nodes.running.lock().expect("running lock");
    for (&node, broker) in running.iter() {
        for status in broker.raft_status() {
            if status.leading && seen.insert((status.group, status.term, node)) {
                history.record_at(now, Event::Leader { group: status.group, term: status.term, node });
            }
        }
    }
}

/// The Raft group of a partition of the workload's topic, from the metadata a running node holds
/// (none before the topic exists).
fn group_of(nodes: &Nodes, partition: u32) -> Option<u64> {
    let running = nodes.running.lock().expect("running lock");
    running.values().find_map(|broker| {
        let view = broker.view();
        let topic = view.metadata.topics.get(crate::workload::TOPIC)?;
        topic.partitions.get(partition as usize).map(|p| p.group_id)
    })
}

/// The Raft group of the `__consumer_offsets` partition that coordinates the workload's
/// consumer group, once the offsets topic exists.
fn coordinator_group(nodes: &Nodes) -> Option<u64> {
    let running = nodes.running.lock().expect("running lock");
    running.values().find_map(|broker| {
        let view = broker.view();
        let topic = view.metadata.topics.get(eddy_groups::OFFSETS_TOPIC)?;
        let shard = eddy_groups::shard_of(crate::workload::GROUP, topic.partitions.len() as u32);
        topic.partitions.get(shard as usize).map(|p| p.group_id)
    })
}

/// The node that leads `group` now, by the nodes' own reports (the highest term wins).
fn leader_of(nodes: &Nodes, group: u64) -> Option<u64> {
    let running = nodes.running.lock().expect("running lock");
    running
        .iter()
        .flat_map(|(&node, broker)| {
            broker.raft_status().into_iter().filter(|s| s.group == group && s.leading).map(move |s| (s.term, node))
        })
        .max()
        .map(|(_, node)| node)
}

fn cut(sim: &mut turmoil::Sim<'_>, links: &mut Links, from: u64, to: u64) {
    let count = links.cut.entry((from, to)).or_insert(0);
    *count += 1;
    if *count == 1 {
        sim.partition_oneway(host(from), host(to));
    }
}

fn uncut(sim: &mut turmoil::Sim<'_>, links: &mut Links, from: u64, to: u64) {
    if let Some(count) = links.cut.get_mut(&(from, to)) {
        *count -= 1;
        if *count == 0 {
            links.cut.remove(&(from, to));
            sim.repair_oneway(host(from), host(to));
        }
    }
}

fn isolate(sim: &mut turmoil::Sim<'_>, links: &mut Links, nodes: &Nodes, side: &[u64], undo: bool) {
    for &a in side {
        for b in 1..=nodes.count {
            if side.contains(&b) {
                continue;
            }
            if undo {
                uncut(sim, links, a, b);
                uncut(sim, links, b, a);
            } else {
                cut(sim, links, a, b);
                cut(sim, links, b, a);
            }
        }
    }
}

/// Every host name the node talks to: the other nodes and every client.
fn peers_of(sim: &mut turmoil::Sim<'_>, node: u64) -> Vec<String> {
    let me = sim.lookup(host(node));
    let mut names = Vec::new();
    sim.links(|links| {
        for link in links {
            let (a, b) = link.pair();
            if a == me {
                names.push(b);
            } else if b == me {
                names.push(a);
            }
        }
    });
    names.into_iter().filter_map(|ip| sim.reverse_lookup(ip)).collect()
}

fn crash(sim: &mut turmoil::Sim<'_>, nodes: &mut Nodes, node: u64) {
    if nodes.down.insert(node) {
        nodes.running.lock().expect("running lock").remove(&node);
        sim.crash(host(node));
        nodes.disks[&node].crash();
    }
}

fn restart(sim: &mut turmoil::Sim<'_>, nodes: &mut Nodes, node: u64) {
    if nodes.down.remove(&node) {
        sim.bounce(host(node));
    }
}

/// Starts `fault`; returns the nodes it resolved to (for faults aimed at a role).
fn start_fault(sim: &mut turmoil::Sim<'_>, nodes: &mut Nodes, links: &mut Links, fault: &Fault) -> Vec<u64> {
    match &fault.kind {
        FaultKind::NetSplit { side } => {
            isolate(sim, links, nodes, side, false);
            side.clone()
        }
        FaultKind::DropOneWay { from, to } => {
            cut(sim, links, *from, *to);
            vec![*from, *to]
        }
        FaultKind::IsolateLeader { partition } => {
            let target: Vec<u64> =
                group_of(nodes, *partition).and_then(|group| leader_of(nodes, group)).into_iter().collect();
            isolate(sim, links, nodes, &target, false);
            target
        }
        FaultKind::IsolateController => {
            let target: Vec<u64> = leader_of(nodes, eddy_controller::CONTROLLER_GROUP).into_iter().collect();
            isolate(sim, links, nodes, &target, false);
            target
        }
        FaultKind::IsolateCoordinator => {
            let target: Vec<u64> =
                coordinator_group(nodes).and_then(|group| leader_of(nodes, group)).into_iter().collect();
            isolate(sim, links, nodes, &target, false);
            target
        }
        FaultKind::Delay { max_ms } => {
            sim.set_max_message_latency(Duration::from_millis(*max_ms));
            Vec::new()
        }
        FaultKind::Loss { per_mille } => {
            set_node_fail_rate(sim, nodes, f64::from(*per_mille) / 1000.0);
            Vec::new()
        }
        FaultKind::Crash { node } => {
            crash(sim, nodes, *node);
            vec![*node]
        }
        FaultKind::PowerLoss => {
            for node in 1..=nodes.count {
                crash(sim, nodes, node);
            }
            (1..=nodes.count).collect()
        }
        FaultKind::Pause { node } => {
            for peer in peers_of(sim, *node) {
                let count = links.held.entry((host(*node), peer.clone())).or_insert(0);
                *count += 1;
                if *count == 1 {
                    sim.hold(host(*node), peer);
                }
            }
            vec![*node]
        }
        FaultKind::ClockJump { node, by_ms } => {
            nodes.clocks[node].fetch_add(*by_ms, Ordering::SeqCst);
            vec![*node]
        }
    }
}

fn end_fault(sim: &mut turmoil::Sim<'_>, nodes: &mut Nodes, links: &mut Links, fault: &Fault, targets: &[u64]) {
    match &fault.kind {
        FaultKind::NetSplit { .. }
        | FaultKind::IsolateLeader { .. }
        | FaultKind::IsolateController
        | FaultKind::IsolateCoordinator => {
            isolate(sim, links, nodes, targets, true);
        }
        FaultKind::DropOneWay { from, to } => uncut(sim, links, *from, *to),
        FaultKind::Delay { .. } => sim.set_max_message_latency(NORMAL_MAX_LATENCY),
        FaultKind::Loss { .. } => set_node_fail_rate(sim, nodes, 0.0),
        FaultKind::Crash { .. } | FaultKind::PowerLoss => {
            for &node in targets {
                restart(sim, nodes, node);
            }
        }
        FaultKind::Pause { node } => {
            let held: Vec<(String, String)> = links.held.keys().filter(|(a, _)| *a == host(*node)).cloned().collect();
            for key in held {
                let count = links.held.get_mut(&key).expect("held link");
                *count -= 1;
                if *count == 0 {
                    links.held.remove(&key);
                    sim.release(key.0, key.1);
                }
            }
        }
        FaultKind::ClockJump { node, by_ms } => {
            nodes.clocks[node].fetch_sub(*by_ms, Ordering::SeqCst);
        }
    }
}

fn set_node_fail_rate(sim: &mut turmoil::Sim<'_>, nodes: &Nodes, rate: f64) {
    for a in 1..=nodes.count {
        for b in (a + 1)..=nodes.count {
            sim.set_link_fail_rate(host(a), host(b), rate);
        }
    }
}

/// Ends every fault still in effect: links repaired, latency back to normal, nodes restarted.
fn heal(sim: &mut turmoil::Sim<'_>, nodes: &mut Nodes, links: &mut Links) {
    for (from, to) in std::mem::take(&mut links.cut).into_keys() {
        sim.repair_oneway(host(from), host(to));
    }
    for (a, b) in std::mem::take(&mut links.held).into_keys() {
        sim.release(a, b);
    }
    sim.set_max_message_latency(NORMAL_MAX_LATENCY);
    set_node_fail_rate(sim, nodes, 0.0);
    let down: Vec<u64> = nodes.down.iter().copied().collect();
    for node in down {
        restart(sim, nodes, node);
    }
    for clock in nodes.clocks.values() {
        clock.store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_one_shape_within_bounds() {
        let mut sizes = BTreeSet::new();
        for seed in 0..300 {
            let shape = Shape::draw(seed, None);
            assert_eq!(shape, Shape::draw(seed, None), "seed {seed} draws one shape");
            assert!(Shape::NODES.contains(&shape.nodes), "{shape}");
            assert!(Shape::RAFT_HEARTBEAT_MS.contains(&shape.raft.heartbeat_interval_ms), "{shape}");
            assert!(shape.raft.election_timeout_min_ms >= 4 * shape.raft.heartbeat_interval_ms, "{shape}");
            assert!(shape.raft.election_timeout_max_ms > shape.raft.election_timeout_min_ms, "{shape}");
            assert!(Shape::BROKER_HEARTBEAT_MS.contains(&shape.broker_heartbeat_interval_ms), "{shape}");
            assert!(Shape::CLIENT_REQUEST_TIMEOUT_MS.contains(&shape.client_request_timeout_ms), "{shape}");
            assert_eq!(Shape::draw(seed, Some(7)).nodes, 7, "--nodes wins");
            sizes.insert(shape.nodes);
        }
        assert_eq!(sizes, Shape::NODES.collect(), "every cluster size is drawn");
        let standard = Options { standard_shape: true, ..Options::DEFAULT };
        assert_eq!(Shape::of(&standard), Shape::STANDARD);
        assert_eq!(Shape::STANDARD.raft, RaftTiming::default(), "the standard shape is production's timing");
    }
}
