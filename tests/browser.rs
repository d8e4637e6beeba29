//! Eddy's pages in a real browser: Debian's Chromium, headless, driven over the Chrome DevTools
//! Protocol by tests/python/browser.py (installed by scripts/chromium when missing).
//!
//! - GraphiQL at `/graphql` renders with every script served by the broker, runs a query typed
//!   into its editor, and shows a subscription's records as they are produced;
//! - an EventSource on a page of another broker (a cross-origin request, allowed by
//!   `--http-cors-origins`) receives the stored records of `/topics/orders/stream`; the broker
//!   serving the stream is then killed and restarted, the browser reconnects by itself with
//!   `Last-Event-ID`, and the records produced afterwards arrive, in order and none twice.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use support::{Cluster, http_json, python};

#[test]
fn graphiql_and_event_source_work_in_chromium() {
    let chromium = {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/chromium");
        let out = Command::new(&script).stderr(Stdio::inherit()).output().expect("run scripts/chromium");
        assert!(out.status.success(), "scripts/chromium failed");
        String::from_utf8(out.stdout).expect("a path").trim().to_string()
    };
    // Any origin may call the brokers from a browser: the stream is read from another broker's page.
    let mut cluster = Cluster::start_with_env(3, &[("EDDY_HTTP_CORS_ORIGINS", "*")]);
    let create = json!({"name": "orders", "partitions": 2, "replication_factor": 3});
    let (status, answer) = http_json(&cluster.node(2).http, "POST", "/topics", Some(&create));
    assert_eq!(status, 201, "{answer}");
    cluster.wait_leaders("orders");
    let records = json!({"records": (0..5).map(|i| json!({"value": format!("stored-{i}"), "partition": i % 2}))
        .collect::<Vec<_>>(), "value_encoding": "string"});
    let (status, answer) = http_json(&cluster.node(2).http, "POST", "/topics/orders/records", Some(&records));
    assert_eq!(status, 200, "{answer}");

    let page = format!("http://{}", cluster.node(1).http);
    let other = format!("http://{}", cluster.node(2).http);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/browser.py");
    let mut child = Command::new(python())
        .arg(&script)
        .args([&chromium, &page, &other])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run browser.py");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut out = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a line");
        if line == "restart" {
            // The page's broker goes down hard and comes back on the same ports.
            cluster.kill_node(1);
            cluster.start_node(1);
            cluster.wait_healthy();
            writeln!(stdin, "restarted").expect("tell browser.py");
            continue;
        }
        out.push(line);
    }
    let status = child.wait().expect("browser.py ends");
    assert!(status.success(), "browser.py failed ({status}):\n{}\n{}", out.join("\n"), cluster.logs());
    eprintln!("browser: {}", out.join("\n"));
}
