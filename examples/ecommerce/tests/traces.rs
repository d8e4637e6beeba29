//! One trace shows an order's whole journey: `ecommerce run` with every service exporting to an
//! OTLP receiver that is not Eddy's (tests/python/otlp_receiver.py, the official OpenTelemetry
//! protos served with grpcio). The Order service's `POST /orders` span starts the trace; the
//! OrderCreated record carries it, and the Inventory, Payment, Notification and Shipping
//! services' spans continue it, each service's in the same trace.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn ecommerce() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ecommerce"))
}

fn python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python-env");
    let out = Command::new(&script).stderr(Stdio::inherit()).output().expect("run scripts/python-env");
    assert!(out.status.success(), "scripts/python-env failed");
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn one_trace_follows_an_order_through_every_service() {
    let dir = tempfile::tempdir().unwrap();
    let spans_file = dir.path().join("spans.jsonl");
    let port = free_port();
    let receiver_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/otlp_receiver.py");
    let mut receiver = Command::new(python())
        .arg(receiver_script)
        .args([&port.to_string(), spans_file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the OTLP receiver");
    let mut ready = String::new();
    BufReader::new(receiver.stdout.as_mut().unwrap()).read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    let _receiver = Killed(receiver);

    // The run starts its own cluster; only the services export.
    let out = Command::new(ecommerce())
        .args(["run", "--orders", "6", "--failure-rate", "0", "--data-dir"])
        .arg(dir.path().join("run"))
        .env_remove("EDDY_BROKERS")
        .env("EDDY_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .expect("ecommerce run");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // The services flush their spans as they stop; give the receiver a moment to write them.
    let wanted =
        ["ecommerce-order", "ecommerce-inventory", "ecommerce-payment", "ecommerce-notification", "ecommerce-shipping"];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans: Vec<Value> = std::fs::read_to_string(&spans_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let mut services_by_trace: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for span in &spans {
            if let (Some(trace), Some(service)) = (span["trace_id"].as_str(), span["service"].as_str()) {
                services_by_trace.entry(trace.to_string()).or_default().insert(service.to_string());
            }
        }
        let roots: Vec<&Value> =
            spans.iter().filter(|s| s["name"] == "POST /orders" && s["service"] == "ecommerce-order").collect();
        let whole = roots.iter().any(|root| {
            let services = &services_by_trace[root["trace_id"].as_str().unwrap()];
            wanted.iter().all(|w| services.contains(*w))
        });
        if whole {
            // The journey's spans are the trace's, not separate traces per service.
            assert!(roots.len() >= 6, "a POST /orders span per order: {}", roots.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no trace holds every service; traces of the POST spans: {:?}",
            roots.iter().map(|r| &services_by_trace[r["trace_id"].as_str().unwrap()]).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
