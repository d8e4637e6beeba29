//! `ecommerce run`: the whole example in one command. Starts a local cluster (`eddy dev`, unless
//! `EDDY_BROKERS` names one), the five services as processes of this binary, places sample
//! orders through `POST /orders`, waits until every order reached its outcome (bounded), checks
//! the side effects, and prints one JSON line:
//!
//! `{"orders":N,"shipped":..,"payment_failed":..,"rejected":..,"stuck":..,"duplicate_charges":..,
//! "duplicate_emails":..,...}`
//!
//! It exits non-zero when an order is stuck, has more than one outcome, was charged or e-mailed
//! twice, missed an e-mail, or a declined card did not end in PaymentFailed. With `--chaos` it
//! SIGKILLs the services in turn while orders flow and restarts them a moment later.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use eddy_client::schema::SchemaRegistry;
use eddy_client::{Client, ClientConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::events;
use crate::payment::DECLINED_TOKEN;
use crate::service;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How many sample orders to place.
    #[arg(long, default_value_t = 50)]
    pub orders: u32,
    /// Kill (SIGKILL) and restart the services in turn while orders flow.
    #[arg(long)]
    pub chaos: bool,
    /// The share of payment-gateway calls that fail transiently.
    #[arg(long, default_value_t = 0.2)]
    pub failure_rate: f64,
    /// How long to wait, after the last order was placed, for every order to finish.
    #[arg(long, default_value_t = 180)]
    pub timeout_secs: u64,
    /// Where the run keeps the services' state and logs (and the cluster's, when it starts one);
    /// default: a new directory under the system's temp directory, removed after a clean run.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// The services, in the order chaos visits them.
const SERVICES: [&str; 5] = ["inventory", "payment", "order", "notification", "shipping"];

type Http = HttpClient<HttpConnector, Full<Bytes>>;

/// The running services: their processes, and how to start each again.
struct Services {
    exe: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    order_listen: String,
    failure_rate: f64,
    children: Mutex<HashMap<&'static str, Child>>,
}

impl Services {
    fn command(&self, service: &'static str) -> Result<Command, String> {
        let mut command = Command::new(&self.exe);
        command.arg(service);
        match service {
            "order" => {
                command.args(["--listen", &self.order_listen]);
            }
            "payment" => {
                command.args(["--failure-rate", &self.failure_rate.to_string()]);
            }
            _ => {}
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{service}.log")))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        command.envs(self.env.iter().cloned()).stdin(Stdio::null()).stdout(log).stderr(err).kill_on_drop(true);
        Ok(command)
    }

    async fn start(&self, service: &'static str) -> Result<(), String> {
        let child = self.command(service)?.spawn().map_err(|e| format!("starting {service}: {e}"))?;
        self.children.lock().await.insert(service, child);
        Ok(())
    }

    async fn kill(&self, service: &'static str) {
        if let Some(mut child) = self.children.lock().await.remove(service) {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGTERM to every service, then waits for them (SIGKILL after 10 s).
    async fn stop_all(&self) {
        let mut children = self.children.lock().await;
        for child in children.values() {
            if let Some(pid) = child.id() {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
            }
        }
        for (_, mut child) in children.drain() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }

    /// A service that exited by itself (not killed by chaos) is a failure of the run.
    async fn exited(&self) -> Option<String> {
        let mut children = self.children.lock().await;
        for (name, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(format!(
                    "{name} exited with {status}; see {}",
                    self.logs.join(format!("{name}.log")).display()
                ));
            }
        }
        None
    }
}

/// A port nothing listens on now (and, for `count` > 1, the ones after it).
fn free_ports(count: u16) -> Result<u16, String> {
    for _ in 0..200 {
        let base: u16 = 20_000 + rand::random::<u16>() % 40_000;
        if (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    Err("no free ports on 127.0.0.1".into())
}

/// The `eddy` binary: `EDDY_BIN`, else next to this one.
fn eddy_binary() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("EDDY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.parent().map(|d| d.join("eddy")).ok_or("no directory for the eddy binary")?;
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is missing: build it (cargo build -p eddy-cli) or set EDDY_BIN", path.display()))
    }
}

/// A local three-node cluster for the run.
struct Cluster {
    child: Child,
}

impl Cluster {
    async fn start(dir: &Path) -> Result<(Cluster, String, String), String> {
        let (base, internal, metrics, http) = (free_ports(3)?, free_ports(3)?, free_ports(3)?, free_ports(3)?);
        let log = std::fs::File::create(dir.join("cluster.log")).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(eddy_binary()?)
            .arg("dev")
            .arg("--data-dir")
            .arg(dir.join("cluster"))
            .args(["--base-port", &base.to_string()])
            .args(["--internal-base-port", &internal.to_string()])
            .args(["--metrics-base-port", &metrics.to_string()])
            .args(["--http-base-port", &http.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting eddy dev: {e}"))?;
        let brokers = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect::<Vec<_>>().join(",");
        Ok((Cluster { child }, brokers, format!("http://127.0.0.1:{http}")))
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
        }
    }
}

async fn http(
    client: &Http,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut request = http::Request::builder().method(method).uri(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

/// Sample order `i`: every tenth asks for the limited print (stock runs out), every thirteenth
/// pays with a card the gateway declines.
fn sample_order(i: u32) -> Value {
    const EVERYDAY: [&str; 5] = ["mug", "tee", "hoodie", "poster", "sticker"];
    let sku = EVERYDAY[i as usize % EVERYDAY.len()];
    let mut items = vec![json!({"sku": sku, "quantity": 1 + i % 3})];
    if i % 10 == 3 {
        items.push(json!({"sku": "limited-print", "quantity": 1}));
    }
    let token = if i % 13 == 5 { DECLINED_TOKEN } else { "tok_visa" };
    json!({"customer": format!("customer{}@example.com", i % 37), "items": items, "payment_token": token})
}

/// Places order `i`, retrying (with the same idempotency key) while the Order service is down.
async fn place(client: &Http, base: &str, run_id: &str, i: u32) -> Result<String, String> {
    let key = format!("{run_id}-order-{i}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match http(client, "POST", &format!("{base}/orders"), &[("idempotency-key", &key)], Some(&sample_order(i)))
            .await
        {
            Ok((200 | 201, answer)) => {
                return answer["order_id"].as_str().map(String::from).ok_or_else(|| format!("no order id in {answer}"));
            }
            Ok((status, answer)) if status < 500 => return Err(format!("order {i} refused ({status}): {answer}")),
            other => {
                if tokio::time::Instant::now() > deadline {
                    return Err(format!("order {i} could not be placed: {other:?}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

pub async fn run(args: RunArgs) -> Result<bool, String> {
    let run_id = format!("{:08x}", rand::random::<u32>());
    let (dir, remove_after) = match &args.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("eddy-ecommerce-{run_id}")), true),
    };
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    eprintln!("ecommerce: run {run_id}, state and logs in {}", dir.display());

    let (cluster, brokers, registry_url) = match std::env::var("EDDY_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => {
            let registry = std::env::var("EDDY_SCHEMA_REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
            (None, brokers, registry)
        }
        _ => {
            let (cluster, brokers, registry) = Cluster::start(&dir).await?;
            eprintln!("ecommerce: started a local cluster at {brokers}");
            (Some(cluster), brokers, registry)
        }
    };
    let outcome = run_with(&args, &run_id, &dir, &logs, &brokers, &registry_url).await;
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
    match outcome {
        Ok((summary, ok)) => {
            println!("{summary}");
            if ok && remove_after {
                let _ = std::fs::remove_dir_all(&dir);
            } else if !ok {
                eprintln!("ecommerce: the run failed; its state and logs are in {}", dir.display());
            }
            Ok(ok)
        }
        Err(e) => Err(format!("{e} (state and logs in {})", dir.display())),
    }
}

async fn run_with(
    args: &RunArgs,
    run_id: &str,
    dir: &Path,
    logs: &Path,
    brokers: &str,
    registry_url: &str,
) -> Result<(String, bool), String> {
    let client = Arc::new(
        Client::new(brokers.split(',').map(String::from).collect(), ClientConfig::default())
            .map_err(|e| e.to_string())?,
    );
    let registry = SchemaRegistry::new(registry_url).map_err(|e| e.to_string())?;
    service::retry_start(|| events::setup(&client, &registry))
        .await
        .map_err(|e| format!("setting up the topics: {e}"))?;

    let order_port = free_ports(1)?;
    let services = Arc::new(Services {
        exe: std::env::current_exe().map_err(|e| e.to_string())?,
        env: vec![
            ("EDDY_BROKERS".into(), brokers.to_string()),
            ("EDDY_SCHEMA_REGISTRY".into(), registry_url.to_string()),
            ("ECOMMERCE_DATA_DIR".into(), dir.display().to_string()),
            ("RUST_LOG".into(), std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())),
        ],
        logs: logs.to_path_buf(),
        order_listen: format!("127.0.0.1:{order_port}"),
        failure_rate: args.failure_rate,
        children: Mutex::new(HashMap::new()),
    });
    for service in SERVICES {
        services.start(service).await?;
    }
    let result = drive(args, run_id, dir, &services, &client).await;
    services.stop_all().await;
    result
}

async fn drive(
    args: &RunArgs,
    run_id: &str,
    dir: &Path,
    services: &Arc<Services>,
    client: &Arc<Client>,
) -> Result<(String, bool), String> {
    let http_client: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{}", services.order_listen);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !matches!(http(&http_client, "GET", &format!("{base}/healthz"), &[], None).await, Ok((200, _))) {
        if let Some(exited) = services.exited().await {
            return Err(exited);
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the Order service did not come up within 90 s".into());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Chaos: SIGKILL one service every 2 s, in turn, and start it again a second later.
    let placing = Arc::new(AtomicBool::new(true));
    let kills = Arc::new(AtomicU32::new(0));
    let chaos = args.chaos.then(|| {
        let (services, placing, kills) = (services.clone(), placing.clone(), kills.clone());
        tokio::spawn(async move {
            let mut turn = 0usize;
            // Go on while orders are placed and for two more rounds, so every service dies at
            // least once with orders in flight.
            let mut rounds_after = 2 * SERVICES.len();
            while placing.load(Ordering::Relaxed) || rounds_after > 0 {
                if !placing.load(Ordering::Relaxed) {
                    rounds_after -= 1;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                let service = SERVICES[turn % SERVICES.len()];
                turn += 1;
                eprintln!("ecommerce: chaos kills {service}");
                services.kill(service).await;
                kills.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Err(e) = services.start(service).await {
                    eprintln!("ecommerce: chaos could not restart {service}: {e}");
                }
            }
        })
    });

    let mut placed: BTreeMap<String, u32> = BTreeMap::new();
    let pace = if args.chaos { Duration::from_millis(60) } else { Duration::ZERO };
    for i in 0..args.orders {
        let order_id = place(&http_client, &base, run_id, i).await?;
        placed.insert(order_id, i);
        tokio::time::sleep(pace).await;
    }
    placing.store(false, Ordering::Relaxed);
    eprintln!("ecommerce: placed {} orders", args.orders);

    // Every order to an outcome.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut states: BTreeMap<String, Value> = BTreeMap::new();
    loop {
        if let Ok((200, answer)) = http(&http_client, "GET", &format!("{base}/orders"), &[], None).await {
            states = answer["orders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| Some((o["order_id"].as_str()?.to_string(), o.clone())))
                .collect();
            let done = placed.keys().filter(|id| states.get(*id).is_some_and(terminal)).count();
            let chaos_over = chaos.as_ref().is_none_or(|c| c.is_finished());
            if done == placed.len() && chaos_over {
                break;
            }
        }
        if tokio::time::Instant::now() > deadline {
            eprintln!("ecommerce: gave up waiting after {} s", args.timeout_secs);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(chaos) = chaos {
        chaos.abort();
        let _ = chaos.await;
        // The services chaos left stopped run again for the checks.
        for service in SERVICES {
            if !services.children.lock().await.contains_key(service) {
                services.start(service).await?;
            }
        }
    }

    let status_of = |id: &str| states.get(id).and_then(|o| o["status"].as_str()).unwrap_or("UNKNOWN").to_string();
    let count = |status: &str| placed.keys().filter(|id| status_of(id) == status).count();
    let stuck: Vec<String> = placed.keys().filter(|id| !states.get(*id).is_some_and(terminal)).cloned().collect();
    let conflicting = placed
        .keys()
        .filter(|id| states.get(*id).and_then(|o| o["outcomes"].as_array()).is_some_and(|o| o.len() > 1))
        .count();
    // A declined card ends in PaymentFailed unless the order was rejected before payment.
    let declines_unaccounted = placed
        .iter()
        .filter(|(id, i)| {
            sample_order(**i)["payment_token"] == DECLINED_TOKEN
                && !matches!(status_of(id).as_str(), "PAYMENT_FAILED" | "REJECTED")
        })
        .count();

    // The side effects, from the gateway's ledger and the outbox.
    let charges = service::read_lines(&dir.join("payment/gateway.jsonl")).map_err(|e| e.to_string())?;
    let duplicate_charges = duplicates(charges.iter().filter_map(|c| c["idempotency_key"].as_str()));
    let paid = placed.keys().filter(|id| matches!(status_of(id).as_str(), "PAID" | "SHIPPED")).count();
    // One e-mail per OrderCreated and per payment outcome; the outbox may trail the order view.
    let expected_emails = placed.len() + paid + count("PAYMENT_FAILED");
    let outbox = dir.join("notification/outbox.jsonl");
    let wait = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut emails = service::read_lines(&outbox).map_err(|e| e.to_string())?;
    while distinct(emails.iter().filter_map(|m| m["event_id"].as_str())) < expected_emails
        && tokio::time::Instant::now() < wait
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        emails = service::read_lines(&outbox).map_err(|e| e.to_string())?;
    }
    let duplicate_emails = duplicates(emails.iter().filter_map(|m| m["event_id"].as_str()));
    let missing_emails = expected_emails.saturating_sub(distinct(emails.iter().filter_map(|m| m["event_id"].as_str())));
    let mut dead_letters = 0;
    for topic in events::TOPICS {
        if let Ok(dlq) = client.describe_topic(&format!("{topic}.dlq")).await {
            dead_letters += dlq
                .partitions
                .iter()
                .map(|p| p.high_watermark.unwrap_or(0) - p.log_start_offset.unwrap_or(0))
                .sum::<u64>();
        }
    }
    if !stuck.is_empty() {
        eprintln!(
            "ecommerce: stuck orders: {:?}",
            stuck.iter().map(|id| (id, status_of(id))).take(20).collect::<Vec<_>>()
        );
    }
    let ok = stuck.is_empty()
        && conflicting == 0
        && duplicate_charges == 0
        && duplicate_emails == 0
        && missing_emails == 0
        && declines_unaccounted == 0;
    // In this order, whatever the JSON library's map order: the counts first, as documented.
    let fields: [(&str, Value); 14] = [
        ("orders", placed.len().into()),
        ("shipped", count("SHIPPED").into()),
        ("payment_failed", count("PAYMENT_FAILED").into()),
        ("rejected", count("REJECTED").into()),
        ("stuck", stuck.len().into()),
        ("duplicate_charges", duplicate_charges.into()),
        ("duplicate_emails", duplicate_emails.into()),
        ("missing_emails", missing_emails.into()),
        ("conflicting_outcomes", conflicting.into()),
        ("declines_unaccounted", declines_unaccounted.into()),
        ("charges", charges.len().into()),
        ("emails", emails.len().into()),
        ("dead_letters", dead_letters.into()),
        ("services_killed", kills.load(Ordering::Relaxed).into()),
    ];
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", Value::from(*k))).collect();
    let summary = format!("{{{}}}", body.join(","));
    Ok((summary, ok))
}

fn terminal(order: &Value) -> bool {
    matches!(order["status"].as_str(), Some("SHIPPED" | "PAYMENT_FAILED" | "REJECTED"))
}

/// How many of `ids` repeat an earlier one.
fn duplicates<'a>(ids: impl Iterator<Item = &'a str>) -> usize {
    let mut seen = std::collections::HashSet::new();
    ids.filter(|id| !seen.insert(*id)).count()
}

fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> usize {
    ids.collect::<std::collections::HashSet<_>>().len()
}
