//! Authentication and ACLs end to end, through the CLI (gRPC metadata) and the HTTP listener
//! (Authorization header): requests without credentials get UNAUTHENTICATED, callers get only
//! what ACLs allow (deny wins; prefixed names), superusers everything; users and ACLs are
//! replicated, audited, and never show their secrets. GraphQL subscribers authenticate in their
//! WebSocket's first message (tests/python/graphql_auth.py).

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Cluster, eddy_bin, http_request, run_python, wait_for};

/// Runs `eddy ARGS` against `cluster` with exactly the credentials in `env` (none by default).
fn eddy_as(cluster: &Cluster, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(eddy_bin());
    command
        .args(args)
        .args(["--brokers", &cluster.brokers()])
        .env_remove("EDDY_TOKEN")
        .env_remove("EDDY_USER")
        .env_remove("EDDY_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run eddy");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

const ALICE: &[(&str, &str)] = &[("EDDY_USER", "alice"), ("EDDY_PASSWORD", "s3cret-alice")];

fn admin(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> Output {
    let out = eddy_as(cluster, &[("EDDY_TOKEN", ADMIN_TOKEN)], args, stdin);
    assert!(out.status.success(), "eddy {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn refused_with(out: &Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected {reason}, but it succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains(reason), "expected {reason}: {stderr}");
}

fn produce(cluster: &Cluster, env: &[(&str, &str)], topic: &str) -> Output {
    eddy_as(cluster, env, &["produce", topic, "--format", "json"], Some("an event\n"))
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[test]
fn callers_get_what_acls_allow_and_nothing_without_credentials() {
    let cluster = Cluster::start_with_auth(3);
    for topic in ["orders", "payments"] {
        admin(&cluster, &["topic", "create", topic, "--partitions", "1", "--replication-factor", "3"], None);
    }
    cluster.wait_leaders("orders");
    admin(&cluster, &["user", "create", "alice"], Some("s3cret-alice\n"));

    // No credentials, a wrong password, an unknown key: UNAUTHENTICATED.
    refused_with(&eddy_as(&cluster, &[], &["topic", "list"], None), "UNAUTHENTICATED");
    let wrong = [("EDDY_USER", "alice"), ("EDDY_PASSWORD", "guess")];
    refused_with(&eddy_as(&cluster, &wrong, &["topic", "list"], None), "UNAUTHENTICATED");
    refused_with(&eddy_as(&cluster, &[("EDDY_TOKEN", "eddy_nope")], &["topic", "list"], None), "UNAUTHENTICATED");

    // Authenticated but allowed nothing yet. (Each broker enforces a change from its next metadata
    // update, a heartbeat after the change: checks of what a change did wait for it.)
    let me = wait_for(Duration::from_secs(10), "every broker to know alice", || {
        let me = eddy_as(&cluster, ALICE, &["auth", "whoami", "--format", "json"], None);
        serde_json::from_slice::<Value>(&me.stdout).ok()
    });
    assert_eq!(me, json!({"principal": "User:alice", "superuser": false, "mechanism": "password"}));
    refused_with(&produce(&cluster, ALICE, "orders"), "PERMISSION_DENIED");

    // Allowed to write and read `orders` (a prefix) only.
    let acl =
        ["--principal", "User:alice", "--operation", "write", "--operation", "read", "--topic", "ord", "--prefixed"];
    admin(&cluster, &[&["acl", "add"][..], &acl[..]].concat(), None);
    wait_for(Duration::from_secs(10), "alice to be allowed to write orders", || {
        produce(&cluster, ALICE, "orders").status.success().then_some(())
    });
    refused_with(&produce(&cluster, ALICE, "payments"), "PERMISSION_DENIED");
    let listed = eddy_as(&cluster, ALICE, &["topic", "list", "--format", "json"], None);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("orders") && !listed.contains("payments"), "alice sees only what she may: {listed}");
    let read =
        eddy_as(&cluster, ALICE, &["consume", "orders", "--from-beginning", "--exit-at-end", "--format", "json"], None);
    assert!(String::from_utf8_lossy(&read.stdout).contains("an event"), "{}", String::from_utf8_lossy(&read.stderr));
    // Not an administrator.
    refused_with(&eddy_as(&cluster, ALICE, &["user", "create", "mallory"], Some("pw\n")), "PERMISSION_DENIED");
    refused_with(&eddy_as(&cluster, ALICE, &["acl", "list"], None), "PERMISSION_DENIED");

    // A deny wins over the allow, and removing it restores it.
    let deny = ["--principal", "User:alice", "--operation", "write", "--topic", "orders", "--deny"];
    admin(&cluster, &[&["acl", "add"][..], &deny[..]].concat(), None);
    let denied = wait_for(Duration::from_secs(10), "the deny to apply", || {
        let out = produce(&cluster, ALICE, "orders");
        (!out.status.success()).then_some(out)
    });
    refused_with(&denied, "PERMISSION_DENIED");
    admin(&cluster, &[&["acl", "remove"][..], &deny[..]].concat(), None);
    wait_for(Duration::from_secs(10), "the deny to be gone", || {
        produce(&cluster, ALICE, "orders").status.success().then_some(())
    });
    let acls = admin(&cluster, &["acl", "list", "--principal", "User:alice", "--format", "json"], None);
    let acls: Value = serde_json::from_slice(&acls.stdout).unwrap();
    assert_eq!(acls["acls"].as_array().unwrap().len(), 2, "{acls}");

    // The HTTP listener: the same principals, problem+json reason codes.
    let http = cluster.node(2).http.clone();
    let (status, problem) = http_request(&http, "GET", "/topics", &[], None);
    assert_eq!((status, problem["reason"].as_str()), (401, Some("UNAUTHENTICATED")), "{problem}");
    let alice = basic("alice", "s3cret-alice");
    // Another broker than the one that took the changes: it enforces them from its next metadata
    // update (a heartbeat away).
    let topics = wait_for(Duration::from_secs(10), "node 2 to know alice", || {
        let (status, topics) = http_request(&http, "GET", "/topics", &[("Authorization", &alice)], None);
        (status == 200 && topics.to_string().contains("orders")).then_some(topics)
    });
    assert!(topics.to_string().contains("orders") && !topics.to_string().contains("payments"), "{topics}");
    let record = json!({"records": [{"value": {"id": 1}}]});
    let (status, problem) =
        http_request(&http, "POST", "/topics/payments/records", &[("Authorization", &alice)], Some(&record));
    assert_eq!((status, problem["reason"].as_str()), (403, Some("PERMISSION_DENIED")), "{problem}");
    let (status, answer) =
        http_request(&http, "POST", "/topics/orders/records", &[("Authorization", &alice)], Some(&record));
    assert_eq!(status, 200, "{answer}");
    // The schema registry: subjects are resources of their own.
    let schema = json!({"schemaType": "JSON", "schema": "{\"type\": \"object\"}"});
    let path = "/subjects/orders-value/versions";
    let (status, answer) = http_request(&http, "POST", path, &[("Authorization", &alice)], Some(&schema));
    assert_eq!((status, answer["error_code"].as_u64()), (403, Some(40301)), "{answer}");
    admin(
        &cluster,
        &["acl", "add", "--principal", "User:alice", "--operation", "write", "--subject", "orders-value"],
        None,
    );
    wait_for(Duration::from_secs(10), "the subject ACL on node 2", || {
        let (status, _) = http_request(&http, "POST", path, &[("Authorization", &alice)], Some(&schema));
        (status == 200).then_some(())
    });

    // An HTTP group member reads with its maker's credentials, in the background too, and no
    // one else may use it.
    admin(&cluster, &["acl", "add", "--principal", "User:alice", "--operation", "read", "--group", "billing"], None);
    admin(&cluster, &["user", "create", "bob"], Some("s3cret-bob\n"));
    admin(&cluster, &["acl", "add", "--principal", "User:bob", "--operation", "read", "--group", "billing"], None);
    let read = "/groups/billing/records?topics=orders&instance=a1&reset=earliest&wait_ms=2000";
    let records = wait_for(Duration::from_secs(30), "alice's group member to read orders", || {
        let (status, answer) = http_request(&http, "GET", read, &[("Authorization", &alice)], None);
        (status == 200 && !answer["records"].as_array()?.is_empty()).then_some(answer)
    });
    assert!(records.to_string().contains("\"id\":1") || records.to_string().contains("an event"), "{records}");
    let bob = basic("bob", "s3cret-bob");
    let (status, problem) = wait_for(Duration::from_secs(10), "node 2 to know bob", || {
        let (status, problem) = http_request(&http, "GET", read, &[("Authorization", &bob)], None);
        (status != 401).then_some((status, problem))
    });
    assert_eq!((status, problem["reason"].as_str()), (403, Some("PERMISSION_DENIED")), "{problem}");

    // GraphQL subscriptions over WebSocket: the credentials come in the connection's first
    // message (gql's `init_payload`), in both protocols; none or wrong ones close it.
    let out = run_python("graphql_auth.py", &[&format!("http://{http}"), &alice, "orders", "payments"]);
    assert!(out.contains("refused payments"), "{out}");

    // Users are listed without secrets; every denial is in the audit log.
    let users = admin(&cluster, &["user", "list", "--format", "json"], None);
    let users = String::from_utf8_lossy(&users.stdout).to_string();
    assert!(users.contains("alice") && !users.contains("s3cret"), "{users}");
    let logs: String = cluster.nodes.iter().map(|n| std::fs::read_to_string(&n.log).unwrap_or_default()).collect();
    assert!(logs.contains("eddy::audit") && logs.contains("denied"), "no audit line for a denial");
    assert!(!logs.contains("s3cret"), "a password reached a log");

    // A deleted user can no longer authenticate.
    admin(&cluster, &["user", "delete", "alice"], None);
    let refused = wait_for(Duration::from_secs(10), "alice to be gone everywhere", || {
        let out = produce(&cluster, ALICE, "orders");
        (!out.status.success()).then_some(out)
    });
    refused_with(&refused, "UNAUTHENTICATED");
    refused_with(
        &eddy_as(&cluster, &[("EDDY_TOKEN", ADMIN_TOKEN)], &["user", "delete", "alice"], None),
        "UNKNOWN_USER",
    );
}
