//! The example end to end, through its public interfaces: `ecommerce run --orders 200 --chaos`
//! against a cluster of real `eddy` processes, with every service SIGKILLed and restarted while
//! orders flow (Inventory and Payment among them). Every order must reach exactly one outcome
//! with no duplicate charge or e-mail; the test then checks the side effects itself (the
//! gateway's ledger, the outbox), the events as `eddy consume --decode` prints them, and the
//! Order service's REST API as a freshly started instance rebuilds it from the events.
//!
//! The `eddy` binary is the one next to this package's binary (a workspace build makes both).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn ecommerce() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ecommerce"))
}

fn eddy() -> PathBuf {
    let path = ecommerce().parent().expect("bin dir").join("eddy");
    assert!(path.exists(), "{} is missing: build the workspace (cargo build -p eddy-cli)", path.display());
    path
}

/// `count` consecutive ports nothing listens on.
fn free_ports(count: u16) -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    for _ in 0..500 {
        let attempt = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = 20_000 + ((std::process::id() * 7 + attempt * 131) % 40_000) as u16;
        if (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free ports");
}

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    /// SIGTERM first (`eddy dev` then stops its nodes), SIGKILL after 30 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An `eddy dev` cluster: brokers and registry URL.
fn cluster(dir: &Path) -> (Running, String, String) {
    let (base, internal, metrics, http) = (free_ports(3), free_ports(3), free_ports(3), free_ports(3));
    let log = std::fs::File::create(dir.join("cluster.log")).unwrap();
    let child = Command::new(eddy())
        .args(["dev", "--data-dir"])
        .arg(dir.join("cluster"))
        .args(["--base-port", &base.to_string(), "--metrics-base-port", &metrics.to_string()])
        .args(["--http-base-port", &http.to_string(), "--internal-base-port", &internal.to_string()])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("eddy dev");
    let brokers = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect::<Vec<_>>().join(",");
    (Running(child), brokers, format!("http://127.0.0.1:{http}"))
}

fn eddy_cli(brokers: &str, args: &[&str]) -> Output {
    Command::new(eddy()).args(args).args(["--brokers", brokers]).output().expect("run eddy")
}

/// One HTTP/1.0 request; the status and the body as JSON (Null when it is not).
fn http(address: &str, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String, Value)> {
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    Some((status, content_type, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[test]
fn two_hundred_orders_survive_killed_services_each_with_one_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, brokers, registry) = cluster(dir.path());
    let data = dir.path().join("run");
    let out = Command::new(ecommerce())
        .args(["run", "--orders", "200", "--chaos", "--data-dir"])
        .arg(&data)
        .env("EDDY_BROKERS", &brokers)
        .env("EDDY_SCHEMA_REGISTRY", &registry)
        .stderr(Stdio::piped())
        .output()
        .expect("ecommerce run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ecommerce run failed: {stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("JSON summary");
    assert!(stdout.trim_start().starts_with(r#"{"orders":200,"shipped":"#), "the documented field order: {stdout}");

    // Every order has exactly one outcome; nothing doubled; chaos really ran.
    let outcome = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(outcome("orders"), 200);
    assert_eq!(outcome("shipped") + outcome("payment_failed") + outcome("rejected"), 200, "{summary}");
    for zero in [
        "stuck",
        "duplicate_charges",
        "duplicate_emails",
        "missing_emails",
        "conflicting_outcomes",
        "declines_unaccounted",
    ] {
        assert_eq!(outcome(zero), 0, "{zero}: {summary}");
    }
    // The sample has 20 orders for the limited print (stock 10) and declined cards.
    assert_eq!(outcome("rejected"), 10, "{summary}");
    assert!(outcome("payment_failed") > 0, "{summary}");
    assert!(outcome("services_killed") >= 10, "{summary}");
    for service in ["inventory", "payment"] {
        assert!(stderr.contains(&format!("chaos kills {service}")), "{service} was never killed:\n{stderr}");
    }

    // The side effects, read independently: one charge per shipped order, one e-mail per event.
    let charges = lines(&data.join("payment/gateway.jsonl"));
    let keys: HashSet<&str> = charges.iter().filter_map(|c| c["idempotency_key"].as_str()).collect();
    assert_eq!(keys.len(), charges.len(), "a charge repeated");
    assert_eq!(charges.len() as u64, outcome("shipped"));
    let emails = lines(&data.join("notification/outbox.jsonl"));
    let ids: HashSet<&str> = emails.iter().filter_map(|m| m["event_id"].as_str()).collect();
    assert_eq!(ids.len(), emails.len(), "an e-mail repeated");
    assert_eq!(emails.len() as u64, 200 + outcome("shipped") + outcome("payment_failed"));

    // The events as the CLI decodes them: type, event_id and order_id in every value, one
    // outcome event per order.
    let mut outcomes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for topic in ["orders", "inventory", "payments", "shipping"] {
        let out = eddy_cli(
            &brokers,
            &[
                "consume",
                topic,
                "--from-beginning",
                "--exit-at-end",
                "--decode",
                "--format",
                "json",
                "--schema-registry",
                &registry,
            ],
        );
        assert!(out.status.success(), "consume {topic}: {}", String::from_utf8_lossy(&out.stderr));
        let records: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
        assert!(!records.is_empty(), "{topic} is empty");
        for record in records {
            let value = &record["value"];
            for field in ["type", "event_id", "order_id"] {
                assert!(value[field].is_string(), "{topic}: {field} missing in {value}");
            }
            assert_eq!(record["key"], value["order_id"], "keyed by order id");
            assert_eq!(record["headers"]["ce_id"], value["event_id"], "the event id travels in ce_id");
            let kind = value["type"].as_str().unwrap();
            if matches!(kind, "InventoryRejected" | "PaymentFailed" | "OrderShipped") {
                outcomes.entry(value["order_id"].as_str().unwrap().to_string()).or_default().insert(kind.to_string());
            }
        }
    }
    assert_eq!(outcomes.len(), 200, "every order has an outcome event");
    assert!(outcomes.values().all(|kinds| kinds.len() == 1), "an order with two outcomes");

    // A new Order service rebuilds every order from the events and answers over REST.
    let port = free_ports(1);
    let listen = format!("127.0.0.1:{port}");
    let _order = Running(
        Command::new(ecommerce())
            .args(["order", "--listen", &listen, "--data-dir"])
            .arg(dir.path().join("fresh"))
            .env("EDDY_BROKERS", &brokers)
            .env("EDDY_SCHEMA_REGISTRY", &registry)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ecommerce order"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let (shipped_id, kinds) = outcomes.iter().find(|(_, k)| k.contains("OrderShipped")).expect("a shipped order");
    assert_eq!(kinds.len(), 1);
    loop {
        if let Some((200, _, order)) = http(&listen, "GET", &format!("/orders/{shipped_id}"), None)
            && order["status"] == "SHIPPED"
        {
            let history: Vec<&str> =
                order["history"].as_array().unwrap().iter().filter_map(|h| h["type"].as_str()).collect();
            for step in ["OrderCreated", "InventoryReserved", "PaymentProcessed", "OrderShipped"] {
                assert!(history.contains(&step), "{step} missing from {history:?}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "the rebuilt Order service never showed {shipped_id} shipped");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (status, content_type, body) = http(&listen, "GET", "/orders/ord-nonexistent", None).unwrap();
    assert_eq!((status, content_type.as_str()), (404, "application/problem+json"), "{body}");
    let bad = r#"{"customer":"nobody","items":[{"sku":"mug","quantity":1}],"payment_token":"tok_visa"}"#;
    let (status, content_type, body) = http(&listen, "POST", "/orders", Some(bad)).unwrap();
    assert_eq!((status, content_type.as_str()), (422, "application/problem+json"));
    assert!(body["detail"].as_str().unwrap().contains("e-mail"), "{body}");
    let (status, _, _) = http(&listen, "POST", "/orders", Some("{not json")).unwrap();
    assert_eq!(status, 400);
    let unknown = r#"{"customer":"a@b.c","items":[{"sku":"yacht","quantity":1}],"payment_token":"tok_visa"}"#;
    let (status, _, body) = http(&listen, "POST", "/orders", Some(unknown)).unwrap();
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("unknown sku"), "{body}");
}

#[test]
fn run_starts_its_own_cluster_when_no_brokers_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(ecommerce())
        .args(["run", "--orders", "12", "--data-dir"])
        .arg(dir.path())
        .env_remove("EDDY_BROKERS")
        .env_remove("EDDY_SCHEMA_REGISTRY")
        .output()
        .expect("ecommerce run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["orders"], 12);
    assert_eq!(summary["stuck"], 0);
    assert_eq!(
        summary["shipped"].as_u64().unwrap()
            + summary["payment_failed"].as_u64().unwrap()
            + summary["rejected"].as_u64().unwrap(),
        12
    );
    assert!(dir.path().join("cluster").exists(), "the run's own cluster keeps its data in the run's directory");
}
