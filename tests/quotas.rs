//! Quotas end to end: a principal over its produce byte rate gets its answers late, told so by
//! `throttle_time_ms`, never refused, and /metrics shows who was throttled; a principal without
//! a quota is never throttled. Quotas set with `eddy quota` apply cluster-wide over the
//! configured ones, are removed as easily, and requests refused by ACLs count against a request
//! rate. Nothing here measures elapsed time (the machine is shared): the
//! assertions are on what the broker reports.

mod support;

use std::time::Duration;

use eddy_broker::quotas::QUOTA_THROTTLE_MAX_MS;
use eddy_client::{Client, ClientConfig, Credentials, v1};
use support::{ADMIN_TOKEN, Cluster, metric_value, produce_request, scrape_metrics, wait_for};

const TOPIC: &str = "metered";
/// Alice's produce quota: two batches' worth of burst, so a burst of batches goes into debt.
const ALICE_PRODUCE_BYTES_PER_SECOND: u64 = 2_000;
const BATCH_VALUE_BYTES: usize = 1_000;
const BURST_BATCHES: usize = 8;

fn client(cluster: &Cluster, credentials: Credentials) -> Client {
    let config = ClientConfig { credentials: Some(credentials), ..ClientConfig::default() };
    Client::new(vec![cluster.node(1).address.clone()], config).expect("client")
}

fn batch() -> v1::ProduceRequest {
    let record = v1::Record { value: vec![b'q'; BATCH_VALUE_BYTES].into(), ..Default::default() };
    produce_request(TOPIC, 0, vec![record])
}

/// Produces `BURST_BATCHES` batches one after the other and returns each answer's
/// `throttle_time_ms`.
async fn burst(client: &Client) -> Vec<u32> {
    let mut throttles = Vec::new();
    for _ in 0..BURST_BATCHES {
        let answer = client.produce(batch()).await.expect("a quota delays, it never refuses");
        throttles.push(answer.throttle_time_ms);
    }
    throttles
}

/// Creates user `name` with `password` through the CLI, as the administrator.
fn create_user(cluster: &Cluster, name: &str, password: &str) {
    let created = std::process::Command::new(support::eddy_bin())
        .args(["user", "create", name, "--brokers", &cluster.brokers()])
        .env("EDDY_TOKEN", ADMIN_TOKEN)
        .env_remove("EDDY_USER")
        .env_remove("EDDY_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes())?;
            child.wait_with_output()
        })
        .expect("run eddy user create");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
}

#[test]
fn a_principal_over_its_produce_quota_is_delayed_and_others_are_not() {
    let quotas = format!(
        "[[quotas.principals]]\nprincipal = \"User:alice\"\nproduce_bytes_per_second = {ALICE_PRODUCE_BYTES_PER_SECOND}\n"
    );
    let cluster = Cluster::start_with_auth_config(1, &quotas);
    let admin = |args: &[&str]| {
        let out = cluster.eddy(args);
        assert!(out.status.success(), "eddy {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    admin(&["topic", "create", TOPIC, "--partitions", "1", "--replication-factor", "1"]);
    cluster.wait_leaders(TOPIC);
    create_user(&cluster, "alice", "s3cret-alice");
    admin(&["acl", "add", "--principal", "User:alice", "--operation", "write", "--topic", TOPIC]);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let alice = client(&cluster, Credentials::Password { user: "alice".into(), password: "s3cret-alice".into() });
    let admin_client = client(&cluster, Credentials::Token(ADMIN_TOKEN.into()));
    // The user and the ACL reach the broker with its next metadata update.
    wait_for(Duration::from_secs(20), "alice to be allowed to produce", || {
        runtime.block_on(alice.produce(batch())).ok()
    });

    // Four times her burst in a row: the answers come, late, and say by how much.
    let throttles = runtime.block_on(burst(&alice));
    assert!(throttles.iter().any(|&t| t > 0), "alice's answers report no throttle: {throttles:?}");
    let cap = u32::try_from(QUOTA_THROTTLE_MAX_MS).unwrap();
    assert!(throttles.iter().all(|&t| t <= cap), "a throttle is capped at {cap} ms: {throttles:?}");

    // The administrator has no quota (superusers are not exempt, but none is configured for it).
    let throttles = runtime.block_on(burst(&admin_client));
    assert!(throttles.iter().all(|&t| t == 0), "the admin was throttled: {throttles:?}");

    let metrics = scrape_metrics(&cluster.node(1).metrics);
    // Alice's only quota is her produce byte rate: every line of hers is about it.
    let alice_produce = "principal=\"User:alice\"";
    let throttled = metric_value(&metrics, "eddy_quota_throttled_requests_total", alice_produce);
    assert!(throttled.is_some_and(|n| n > 0.0), "alice's throttled answers are not counted: {throttled:?}");
    let delayed = metric_value(&metrics, "eddy_quota_throttle_seconds_sum", alice_produce);
    assert!(delayed.is_some_and(|s| s > 0.0), "alice's delays are not summed: {delayed:?}");
    let charged = metric_value(&metrics, "eddy_quota_usage_bytes_total", alice_produce).unwrap_or(0.0);
    let sent = (BURST_BATCHES * BATCH_VALUE_BYTES) as f64;
    assert!(charged >= sent, "alice was charged {charged} bytes for more than {sent}");
    let admin_quota_lines: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("eddy_quota_") && l.contains("User:admin")).collect();
    assert!(admin_quota_lines.is_empty(), "the admin has no quota to report: {admin_quota_lines:?}");
}

#[test]
fn quotas_set_with_the_cli_apply_until_removed_and_refusals_count_as_requests() {
    let cluster = Cluster::start_with_auth(1);
    let eddy = |args: &[&str]| {
        let out = cluster.eddy(args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let admin = |args: &[&str]| {
        let (ok, stdout, stderr) = eddy(args);
        assert!(ok, "eddy {args:?}: {stderr}");
        stdout
    };
    admin(&["topic", "create", TOPIC, "--partitions", "1", "--replication-factor", "1"]);
    cluster.wait_leaders(TOPIC);
    create_user(&cluster, "bob", "s3cret-bob");
    admin(&["acl", "add", "--principal", "User:bob", "--operation", "write", "--topic", TOPIC]);

    // Bad input is named.
    let (ok, _, err) = eddy(&["quota", "set", "--principal", "User:bob"]);
    assert!(!ok && err.contains("give at least one rate"), "{err}");
    let (ok, _, err) = eddy(&["quota", "set", "--principal", "bob", "--requests-per-second", "5"]);
    assert!(!ok && err.contains("User:<name>"), "{err}");
    let (ok, _, err) = eddy(&["quota", "set", "--principal", "User:bob", "--requests-per-second", "0"]);
    assert!(!ok && err.contains("INVALID_REQUEST") && err.contains("requests_per_second"), "{err}");
    let (ok, _, err) = eddy(&["quota", "set", "--requests-per-second", "5"]);
    assert!(!ok && err.contains("--principal"), "{err}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let bob = client(&cluster, Credentials::Password { user: "bob".into(), password: "s3cret-bob".into() });
    wait_for(Duration::from_secs(20), "bob to be allowed to produce", || runtime.block_on(bob.produce(batch())).ok());
    let throttles = runtime.block_on(burst(&bob));
    assert!(throttles.iter().all(|&t| t == 0), "bob has no quota yet: {throttles:?}");

    // A produce quota set cluster-wide throttles him; listed; removed, it no longer does.
    let rate = ALICE_PRODUCE_BYTES_PER_SECOND.to_string();
    admin(&["quota", "set", "--principal", "User:bob", "--produce-bytes-per-second", &rate]);
    let listed: serde_json::Value = serde_json::from_str(&admin(&["quota", "list", "--format", "json"])).unwrap();
    assert_eq!(
        listed["quotas"],
        serde_json::json!([{"principal": "User:bob", "produce_bytes_per_second": ALICE_PRODUCE_BYTES_PER_SECOND,
                            "fetch_bytes_per_second": null, "requests_per_second": null}]),
        "{listed}"
    );
    let throttles = runtime.block_on(burst(&bob));
    assert!(throttles.iter().any(|&t| t > 0), "bob's quota did not throttle him: {throttles:?}");
    admin(&["quota", "remove", "--principal", "User:bob"]);
    let listed: serde_json::Value = serde_json::from_str(&admin(&["quota", "list", "--format", "json"])).unwrap();
    assert_eq!(listed["quotas"], serde_json::json!([]), "{listed}");
    let throttles = runtime.block_on(burst(&bob));
    assert!(throttles.iter().all(|&t| t == 0), "bob is throttled after his quota was removed: {throttles:?}");

    // One request a second (a new bucket holds one): requests refused for want of an ACL are
    // requests too, so the next allowed one pays for them.
    admin(&["quota", "set", "--principal", "User:bob", "--requests-per-second", "1"]);
    runtime.block_on(async {
        for _ in 0..4 {
            let record = v1::Record { value: b"x".to_vec().into(), ..Default::default() };
            let refused = bob.produce(produce_request("not-bobs", 0, vec![record])).await;
            assert!(refused.is_err(), "bob may not write to not-bobs: {refused:?}");
        }
        let answer = bob.produce(batch()).await.expect("a quota delays, it never refuses");
        assert!(answer.throttle_time_ms > 0, "the refused requests were not charged: {answer:?}");
    });
}
