//! Black-box test support: real `eddy server` processes on 127.0.0.1, driven through the `eddy`
//! CLI and the client library (the project's public interfaces).

#![allow(dead_code)]

pub mod pki;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `eddy` binary under test.
pub fn eddy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_eddy")
}

/// A port nobody listens on right now, and one no other call in this test process returned.
///
/// Ports come from below the kernel's ephemeral range (32768 and up), so a client connection of a
/// concurrently running test cannot take one between this call and the server binding it, and
/// from a counter shared by the process's tests, so two clusters never get the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Each test binary starts at its own place in the span (they run one after another, but a
    // previous binary's ports may linger in TIME_WAIT).
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

/// The Python interpreter of the test environment (`scripts/python-env`: a virtual environment
/// with the third-party clients the tests drive Eddy with, such as confluent-kafka), made once.
pub fn python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python-env");
            let out = Command::new(&script).stderr(Stdio::inherit()).output().expect("run scripts/python-env");
            assert!(out.status.success(), "scripts/python-env failed");
            PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
        })
        .clone()
}

/// Runs the Python test client `tests/python/NAME` with `args`; panics with its output unless it
/// succeeds, and returns its standard output.
pub fn run_python(name: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python").join(name);
    let out = Command::new(python()).arg(&script).args(args).output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Polls `check` until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The API key of `User:admin` in a cluster started with [`Cluster::start_with_auth`].
pub const ADMIN_TOKEN: &str = "eddy_test_admin_token";

/// One node of a test cluster.
pub struct Node {
    pub id: u64,
    /// Client listener (HOST:PORT).
    pub address: String,
    /// Inter-broker listener (HOST:PORT): Raft and controller traffic.
    pub internal: String,
    /// Prometheus endpoint (HOST:PORT).
    pub metrics: String,
    /// HTTP listener (HOST:PORT): the schema registry's API.
    pub http: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// A cluster of `eddy server` processes, killed when dropped.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    voters: String,
    /// Environment every node starts with (broker settings as `EDDY_*` variables).
    env: Vec<(String, String)>,
    /// With TLS on every listener: the cluster's CA. Node N serves clients with the
    /// certificate of `eddy-node-N` and the other brokers with that of `broker-N`.
    pub pki: Option<pki::Pki>,
    /// Environment of every `eddy` client command [`Cluster::eddy`] runs (its credentials).
    pub client_env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts `n` nodes, all controller voters, and waits until every broker is alive.
    pub fn start(n: u64) -> Cluster {
        Self::start_with_env(n, &[])
    }

    /// Starts `n` nodes with extra environment variables (`EDDY_*` broker settings).
    pub fn start_with_env(n: u64, env: &[(&str, &str)]) -> Cluster {
        Self::start_with_voters(n, n, env)
    }

    /// Starts `n` nodes of which the first `voters` are controller voters (the others are
    /// brokers only), with extra environment variables.
    pub fn start_with_voters(n: u64, voters: u64, env: &[(&str, &str)]) -> Cluster {
        Self::start_cluster(n, voters, env, false)
    }

    /// Starts `n` nodes, all controller voters, with TLS on every listener: the client and HTTP
    /// listeners with each node's certificate, the inter-broker one with mutual TLS. Clients
    /// started through [`Cluster::eddy`] trust the cluster's CA.
    pub fn start_tls(n: u64, env: &[(&str, &str)]) -> Cluster {
        Self::start_cluster(n, n, env, true)
    }

    /// Starts `n` nodes with authentication on: `User:admin` is a superuser with the API key
    /// [`ADMIN_TOKEN`], which [`Cluster::eddy`] uses.
    pub fn start_with_auth(n: u64) -> Cluster {
        Self::start_with_auth_config(n, "")
    }

    /// [`Cluster::start_with_auth`] with more of the brokers' configuration file: `extra_toml`
    /// is appended to it (tables such as `[quotas]`).
    pub fn start_with_auth_config(n: u64, extra_toml: &str) -> Cluster {
        Self::start_auth(n, extra_toml, false, &[])
    }

    /// [`Cluster::start_tls`] and [`Cluster::start_with_auth`] at once.
    pub fn start_tls_with_auth(n: u64) -> Cluster {
        Self::start_auth(n, "", true, &[])
    }

    /// [`Cluster::start_tls_with_auth`], the client listeners also accepting client certificates
    /// (optional: callers may use credentials instead).
    pub fn start_tls_with_auth_and_client_certificates(n: u64) -> Cluster {
        Self::start_auth(n, "", true, &[("EDDY_TLS_CLIENT_AUTH", "optional")])
    }

    fn start_auth(n: u64, extra_toml: &str, tls: bool, env: &[(&str, &str)]) -> Cluster {
        let sha256 = eddy_auth::token_sha256(ADMIN_TOKEN);
        let text = format!(
            "[auth]\nenabled = true\nsuperusers = [\"User:admin\"]\n\n[[auth.api_keys]]\nprincipal = \"User:admin\"\nsha256 = \"{sha256}\"\n\n{extra_toml}"
        );
        Self::start_cluster_then(n, n, env, tls, |c| {
            let config = c.dir.path().join("auth.toml");
            std::fs::write(&config, text).expect("write the auth config");
            c.env.push(("EDDY_CONFIG".into(), config.display().to_string()));
            c.client_env.push(("EDDY_TOKEN".into(), ADMIN_TOKEN.into()));
        })
    }

    fn start_cluster(n: u64, voters: u64, env: &[(&str, &str)], tls: bool) -> Cluster {
        Self::start_cluster_then(n, voters, env, tls, |_| {})
    }

    fn start_cluster_then(
        n: u64,
        voters: u64,
        env: &[(&str, &str)],
        tls: bool,
        before_start: impl FnOnce(&mut Cluster),
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                address: format!("127.0.0.1:{}", free_port()),
                internal: format!("127.0.0.1:{}", free_port()),
                metrics: format!("127.0.0.1:{}", free_port()),
                http: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("node-{id}")),
                log: dir.path().join(format!("node-{id}.log")),
                child: None,
            })
            .collect();
        let voters = nodes
            .iter()
            .take(voters as usize)
            .map(|n| format!("{}={}", n.id, n.internal))
            .collect::<Vec<_>>()
            .join(",");
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let pki = tls.then(|| pki::Pki::new(&dir.path().join("pki"), "eddy-test"));
        let mut cluster = Cluster { dir, nodes, voters, env, pki, client_env: Vec::new() };
        before_start(&mut cluster);
        for id in 1..=n {
            cluster.start_node(id);
        }
        cluster.wait_healthy();
        cluster
    }

    /// Adds a node (a broker only, not a controller voter) with the next id and starts it.
    pub fn add_node(&mut self) -> u64 {
        let id = self.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        self.nodes.push(Node {
            id,
            address: format!("127.0.0.1:{}", free_port()),
            internal: format!("127.0.0.1:{}", free_port()),
            metrics: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
            data_dir: self.dir.path().join(format!("node-{id}")),
            log: self.dir.path().join(format!("node-{id}.log")),
            child: None,
        });
        self.start_node(id);
        id
    }

    pub fn brokers(&self) -> String {
        self.nodes.iter().map(|n| n.address.clone()).collect::<Vec<_>>().join(",")
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("node id")
    }

    /// Starts (or restarts, on its data dir) node `id`.
    pub fn start_node(&mut self, id: u64) {
        let voters = self.voters.clone();
        let node = self.nodes.iter_mut().find(|n| n.id == id).expect("node id");
        assert!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("log file");
        let mut tls_args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(pki) = &self.pki {
            let client = pki.leaf(&format!("eddy-node-{id}"), &format!("node-{id}-client"));
            let internal = pki.leaf(&format!("broker-{id}"), &format!("node-{id}-internal"));
            for (flag, path) in [
                ("--tls-cert", &client.cert),
                ("--tls-key", &client.key),
                ("--tls-ca", &pki.ca),
                ("--internal-tls-cert", &internal.cert),
                ("--internal-tls-key", &internal.key),
                ("--internal-tls-ca", &pki.ca),
            ] {
                tls_args.extend([flag.into(), path.into()]);
            }
        }
        let child = Command::new(eddy_bin())
            .args(["server", "--node-id", &id.to_string(), "--listen", &node.address, "--controller-voters", &voters])
            .args(["--internal-listen", &node.internal])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--log-level", "info,openraft=warn", "--metrics-listen", &node.metrics, "--http-listen", &node.http])
            .args(&tls_args)
            .env_remove("EDDY_BROKERS")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn eddy server");
        node.child = Some(child);
    }

    /// Restarts node `id` (a broker only, not a controller voter) at new client and inter-broker
    /// addresses; returns the client one.
    pub fn move_node(&mut self, id: u64) -> String {
        self.kill_node(id);
        let node = self.nodes.iter_mut().find(|n| n.id == id).expect("node id");
        node.address = format!("127.0.0.1:{}", free_port());
        node.internal = format!("127.0.0.1:{}", free_port());
        let address = node.address.clone();
        self.start_node(id);
        address
    }

    /// The process id of node `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id).child.as_ref().map(Child::id)
    }

    /// SIGKILLs node `id`.
    pub fn kill_node(&mut self, id: u64) {
        let node = self.nodes.iter_mut().find(|n| n.id == id).expect("node id");
        if let Some(mut child) = node.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// Runs `eddy ARGS --brokers <cluster>`.
    pub fn eddy(&self, args: &[&str]) -> Output {
        let mut command = Command::new(eddy_bin());
        command.args(args).args(["--brokers", &self.brokers()]);
        if let Some(pki) = &self.pki {
            command.arg("--tls-ca").arg(&pki.ca);
        }
        command.envs(self.client_env.iter().map(|(k, v)| (k, v)));
        command.output().expect("run eddy")
    }

    /// Runs `eddy ARGS --format json` and parses its single JSON document; panics on failure.
    pub fn eddy_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--format", "json"]);
        let out = self.eddy(&all);
        assert!(
            out.status.success(),
            "eddy {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    }

    /// Waits until every running node is alive in `cluster describe`.
    pub fn wait_healthy(&self) {
        let running: Vec<u64> = self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect();
        let healthy = || {
            let out = self.eddy(&["cluster", "describe", "--format", "json"]);
            if !out.status.success() {
                return false;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else { return false };
            let Some(brokers) = v["brokers"].as_array() else { return false };
            let alive: Vec<u64> =
                brokers.iter().filter(|b| b["alive"] == Value::Bool(true)).filter_map(|b| b["id"].as_u64()).collect();
            running.iter().all(|id| alive.contains(id)) && !v["controller_leader"].is_null()
        };
        let timeout = Duration::from_secs(90);
        let deadline = Instant::now() + timeout;
        while !healthy() {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for brokers {running:?} to be alive\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every partition of `topic` has a leader.
    pub fn wait_leaders(&self, topic: &str) -> Value {
        wait_for(Duration::from_secs(60), "every partition to have a leader", || {
            let out = self.eddy(&["topic", "describe", topic, "--format", "json"]);
            if !out.status.success() {
                return None;
            }
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let all_led =
                v["partitions"].as_array()?.iter().all(|p| !p["leader"].is_null() && !p["high_watermark"].is_null());
            all_led.then_some(v)
        })
    }

    /// The nodes' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- node {} (last 30 lines)\n", node.id));
            out.push_str(&lines[lines.len().saturating_sub(30)..].join("\n"));
            out.push('\n');
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A running `eddy produce --format json` fed line by line, with its acknowledgements read as
/// they arrive.
pub struct ProduceSession {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    acks: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ProduceSession {
    pub fn start(brokers: &str, topic: &str, extra: &[&str]) -> ProduceSession {
        let mut child = Command::new(eddy_bin())
            .args(["produce", topic, "--format", "json", "--brokers", brokers])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eddy produce");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = acks.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).expect("produce prints JSON lines");
                sink.lock().expect("acks lock").push(value);
            }
        });
        ProduceSession { child, stdin, acks, reader: Some(reader) }
    }

    /// Writes one line; false when the process no longer reads (it exited).
    pub fn send(&mut self, line: &str) -> bool {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").and_then(|_| stdin.flush()).is_ok()
    }

    pub fn acked(&self) -> usize {
        self.acks.lock().expect("acks lock").len()
    }

    /// Closes stdin and waits for the process; returns (success, stderr, acks).
    pub fn finish(mut self) -> (bool, String, Vec<Value>) {
        drop(self.stdin.take());
        let out = self.child.wait_with_output().expect("wait for eddy produce");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("reader thread");
        }
        let acks = self.acks.lock().expect("acks lock").clone();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), acks)
    }
}

/// An acks=all produce of `records` to `topic`/`partition`, without a producer identity.
pub fn produce_request(
    topic: &str,
    partition: u32,
    records: Vec<eddy_client::v1::Record>,
) -> eddy_client::v1::ProduceRequest {
    eddy_client::v1::ProduceRequest {
        topic: topic.into(),
        partition,
        records,
        acks: eddy_client::v1::Acks::All as i32,
        producer: None,
        timeout_ms: 0,
    }
}

/// Reads every record of a partition from one broker's own replica (leader or follower).
pub fn read_replica(address: &str, topic: &str, partition: u32, end: u64) -> Vec<(u64, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client =
            eddy_client::Client::new(vec![address.to_string()], eddy_client::ClientConfig::default()).expect("client");
        let mut out = Vec::new();
        let mut offset = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while offset < end {
            assert!(Instant::now() < deadline, "replica at {address} did not reach offset {end}; it has {offset}");
            let request = eddy_client::v1::FetchRequest {
                topic: topic.to_string(),
                partition,
                offset,
                max_bytes: 0,
                max_records: 0,
                max_wait_ms: 500,
                read_from_follower: true,
            };
            match client.fetch_from_broker(address, request).await {
                Ok(response) => {
                    for r in response.records {
                        assert_eq!(r.offset, offset, "offsets are dense on {address}");
                        out.push((r.offset, String::from_utf8_lossy(&r.value).into_owned()));
                        offset += 1;
                    }
                }
                Err(e) if e.is_retriable() => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => panic!("reading {topic}/{partition} from {address} failed: {e}"),
            }
        }
        out
    })
}

/// GETs `http://ADDRESS/metrics` with a plain HTTP/1.0 request and returns the body.
pub fn scrape_metrics(address: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "metrics answered {response:?}"
    );
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// One HTTP/1.0 request to `address` (HOST:PORT) with an optional JSON body; returns the status
/// and the body parsed as JSON (Null when it is not JSON).
pub fn http_json(address: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    http_request(address, method, path, &[], body)
}

/// [`http_json`] with extra request headers (`name`, `value`).
pub fn http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value) {
    use std::io::Read;
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the HTTP listener");
    stream.set_read_timeout(Some(Duration::from_secs(90))).expect("read timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The value of a metric line `name{labels} value` (first match whose labels contain `labels`).
pub fn metric_value(body: &str, name: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Path helper for tests that write files.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}
