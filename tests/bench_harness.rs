//! Smoke test of the side-by-side benchmark harness (`eddy-bench`): every workload with a few
//! hundred records against a real 3-node Eddy cluster and, when `nats-server` is on PATH, a
//! real 3-node NATS JetStream cluster; the reports must count every record acknowledged and hold
//! sane figures. Also `eddy bench produce|consume`, which is the same engine. Timings are never
//! asserted: this keeps the tool working, it does not benchmark.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use eddy_bench::cli::{Cli, Command as BenchCommand};
use serde_json::{Value, json};
use support::{Cluster, free_port, wait_for};

/// Runs `eddy-bench run ARGS` in this process, as the binary would, and returns its report.
fn harness(args: &[String]) -> Value {
    let argv = ["eddy-bench", "run"].into_iter().map(String::from).chain(args.iter().cloned());
    let BenchCommand::Run(args) = Cli::try_parse_from(argv).expect("valid flags").command else {
        panic!("not a run command");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let report = runtime.block_on(eddy_bench::cli::run(&args)).unwrap_or_else(|e| panic!("{args:?} failed: {e}"));
    serde_json::to_value(&report).expect("a report encodes as JSON")
}

fn number(report: &Value, pointer: &str) -> f64 {
    report.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("{pointer} missing from {report}"))
}

/// What every report must hold: `records` counted, no errors, ordered percentiles, CPU figures.
fn assert_sane(report: &Value, system: &str, workload: &str, records: u64) {
    assert_eq!(report["system"], system, "{report}");
    assert_eq!(report["workload"], workload, "{report}");
    assert_eq!(report["records"].as_u64(), Some(records), "records of {report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "errors of {report}");
    assert!(number(report, "/records_per_sec") > 0.0, "{report}");
    assert!(number(report, "/mb_per_sec") > 0.0, "{report}");
    let [p50, p99, p99_9, max] = ["p50", "p99", "p99_9", "max"].map(|p| number(report, &format!("/latency_ms/{p}")));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= p99_9 && p99_9 <= max, "percentiles of {report}");
    for field in ["servers_s", "client_s", "machine_processes_s", "other_cores", "servers_s_per_million"] {
        assert!(number(report, &format!("/cpu/{field}")) >= 0.0, "cpu.{field} of {report}");
    }
    assert!(report["cpu"]["contended"].is_boolean(), "{report}");
}

/// Runs the workloads against one system; `servers` are `--server-pid` values. Kills the leader
/// of partition 0 (W5), so it comes last.
fn run_all(system: &str, addresses: &str, servers: &[String]) -> Vec<Value> {
    let base = |workload: &str, stream: &str| -> Vec<String> {
        let mut args: Vec<String> =
            ["--system", system, "--servers", addresses, "--workload", workload, "--stream", stream]
                .map(String::from)
                .into();
        for server in servers {
            args.extend(["--server-pid".to_string(), server.clone()]);
        }
        args
    };
    let with = |mut args: Vec<String>, extra: &[&str]| {
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let mut reports = Vec::new();

    let w1 = harness(&with(base("w1", "smoke-w1"), &["--records", "200"]));
    assert_sane(&w1, system, "w1", 200);
    reports.push(("W1", w1));

    let w2 = harness(&with(base("w2", "smoke-w2"), &["--records", "2000", "--partitions", "3", "--in-flight", "100"]));
    assert_sane(&w2, system, "w2", 2000);
    assert!(number(&w2, "/cpu/servers_s") > 0.0, "3 servers stored 2000 records without CPU time: {w2}");
    assert_eq!(w2["parameters"]["partitions"], 3, "{w2}");
    reports.push(("W2-3p", w2));

    let w3 = harness(&with(base("w3", "smoke-w3"), &["--rate", "300", "--duration-s", "1", "--partitions", "2"]));
    assert_sane(&w3, system, "w3", 300);
    assert_eq!(w3["verification"], json!({"acknowledged": 300, "read": 300, "lost": 0, "duplicates": 0}), "{w3}");
    assert!(number(&w3, "/ack_latency_ms/p50") > 0.0, "{w3}");
    reports.push(("W3", w3));

    let w4 = harness(&with(base("w4", "smoke-w4"), &["--records", "1000", "--fetch-records", "300"]));
    assert_sane(&w4, system, "w4", 1000);
    assert_eq!(w4["preload"]["records"].as_u64(), Some(1000), "{w4}");
    reports.push(("W4", w4));

    let w5 = harness(&with(base("w5", "smoke-w5"), &["--rate", "200", "--duration-s", "3", "--kill-after-s", "1"]));
    assert_sane(&w5, system, "w5", 600);
    assert_eq!(w5["verification"]["lost"].as_u64(), Some(0), "{w5}");
    assert_eq!(w5["verification"]["read"].as_u64(), Some(600), "{w5}");
    let killed = w5["failover"]["killed"].as_str().expect("a killed server").to_string();
    assert!(servers.iter().any(|s| s.starts_with(&format!("{killed}="))), "killed {killed}, not a server: {w5}");
    assert!(number(&w5, "/failover/no_ack_window_ms") > 0.0, "{w5}");
    reports.push(("W5", w5));

    reports
        .into_iter()
        .map(|(case, report)| json!({"case": case, "rep": 1, "system": system, "report": report}))
        .collect()
}

/// Three `nats-server` processes with JetStream on 127.0.0.1, killed when dropped.
struct NatsCluster {
    _dir: tempfile::TempDir,
    children: Vec<(String, Child)>,
    addresses: Vec<String>,
}

impl NatsCluster {
    fn start() -> NatsCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_list = routes.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect::<Vec<_>>().join(", ");
        let mut children = Vec::new();
        let mut addresses = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let port = free_port();
            let config = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{store}\" }}\n\
                 cluster {{ name: smoke\n listen: 127.0.0.1:{route}\n routes: [{route_list}] }}\n",
                store = dir.path().join(&name).display(),
            );
            let path = support::write_file(dir.path(), &format!("{name}.conf"), &config);
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).expect("log file");
            let child = Command::new("nats-server")
                .arg("-c")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .expect("spawn nats-server");
            children.push((name, child));
            addresses.push(format!("127.0.0.1:{port}"));
        }
        for address in &addresses {
            wait_for(Duration::from_secs(30), "nats-server to listen", || {
                std::net::TcpStream::connect(address).ok().map(|_| ())
            });
        }
        NatsCluster { _dir: dir, children, addresses }
    }

    fn server_pids(&self) -> Vec<String> {
        self.children.iter().map(|(name, child)| format!("{name}={}", child.id())).collect()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn nats_server_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| Path::new(&dir).join("nats-server").is_file()))
}

#[test]
fn the_harness_runs_every_workload_against_both_systems() {
    let cluster = Cluster::start(3);
    // `eddy bench` is the same engine behind the CLI's flags and JSON shape.
    let produced = cluster.eddy_json(&[
        "bench",
        "produce",
        "--topic",
        "smoke-cli",
        "--partitions",
        "2",
        "--record-size",
        "100",
        "--count",
        "300",
        "--in-flight",
        "50",
    ]);
    assert_eq!((produced["bench"].as_str(), produced["records"].as_u64()), (Some("produce"), Some(300)), "{produced}");
    assert_eq!(produced["errors"].as_u64(), Some(0), "{produced}");
    assert!(number(&produced, "/latency_ms/p50") > 0.0, "{produced}");
    let consumed = cluster.eddy_json(&["bench", "consume", "--topic", "smoke-cli"]);
    assert_eq!((consumed["records"].as_u64(), number(&consumed, "/mb_per_sec") > 0.0), (Some(300), true), "{consumed}");

    let eddy_pids: Vec<String> =
        cluster.nodes.iter().map(|n| format!("{}={}", n.id, cluster.pid(n.id).expect("running"))).collect();
    let mut runs = run_all("eddy", &cluster.brokers(), &eddy_pids);
    drop(cluster);

    if nats_server_on_path() {
        let nats = NatsCluster::start();
        runs.extend(run_all("nats", &nats.addresses.join(","), &nats.server_pids()));
    } else {
        eprintln!("nats-server is not on PATH: the NATS half of the smoke test did not run");
    }

    let comparison = eddy_bench::compare::compare(&runs);
    assert!(comparison.flagged.iter().all(|f| !f.reason.starts_with("failed")), "{:?}", comparison.flagged);
    let w2 = comparison.rows.iter().find(|r| r.case == "W2-3p" && r.metric == "records/s").expect("a W2 row");
    assert_eq!(w2.eddy.map(|s| s.runs), Some(1), "{w2:?}");
    if nats_server_on_path() {
        assert!(w2.eddy_over_nats.is_some_and(|r| r > 0.0), "{w2:?}");
    }
    assert!(eddy_bench::compare::table(&comparison).contains("W2-3p"));
}
