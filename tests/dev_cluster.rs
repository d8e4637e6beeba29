//! `eddy dev` (the README's main command) starts a working local cluster and stops it cleanly,
//! nodes and all, on Ctrl-C (SIGINT) and on SIGTERM (what scripts and supervisors send).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{eddy_bin, wait_for};

/// Three consecutive free ports starting at the returned one (`support::free_port` counts up, so
/// three calls in a row usually give a run).
fn free_port_run() -> u16 {
    loop {
        let base = support::free_port();
        if support::free_port() == base + 1 && support::free_port() == base + 2 {
            return base;
        }
    }
}

#[test]
fn dev_starts_a_cluster_and_stops_on_ctrl_c() {
    starts_and_stops_on(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn dev_stops_its_nodes_on_sigterm() {
    starts_and_stops_on(nix::sys::signal::Signal::SIGTERM);
}

fn starts_and_stops_on(signal: nix::sys::signal::Signal) {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_run();
    let metrics = free_port_run();
    let http = free_port_run();
    let internal = free_port_run();
    let mut dev = Command::new(eddy_bin())
        .args(["dev", "--nodes", "3", "--format", "json", "--base-port", &base.to_string()])
        .args(["--metrics-base-port", &metrics.to_string(), "--http-base-port", &http.to_string()])
        .args(["--internal-base-port", &internal.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("EDDY_BROKERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line is printed once every node is alive.
    let mut stdout = BufReader::new(dev.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let started: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("eddy dev printed {line:?}"));
    let brokers = started["brokers"].as_str().unwrap().to_string();
    assert_eq!(started["nodes"].as_array().unwrap().len(), 3);

    let run = |args: &[&str]| Command::new(eddy_bin()).args(args).args(["--brokers", &brokers]).output().unwrap();
    let out = run(&["topic", "create", "dev-topic", "--partitions", "2", "--replication-factor", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["cluster", "describe", "--format", "json"]);
    let cluster: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(cluster["brokers"].as_array().unwrap().iter().all(|b| b["alive"] == true));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(dev.id() as i32), signal).unwrap();
    let status = wait_for(Duration::from_secs(60), "eddy dev to stop", || dev.try_wait().unwrap());
    assert!(status.success(), "eddy dev exited with {status}");
    // Its nodes are gone: nothing listens on their ports any more.
    for i in 0..3 {
        assert!(std::net::TcpStream::connect(("127.0.0.1", base + i)).is_err(), "node {} still listens", i + 1);
        let internal = ("127.0.0.1", internal + i);
        assert!(std::net::TcpStream::connect(internal).is_err(), "node {} still listens to brokers", i + 1);
    }
}
