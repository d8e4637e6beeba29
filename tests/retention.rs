//! Retention against real processes: `retention.bytes` moves the log start on every replica
//! (`topic describe`, ListOffsets EARLIEST, OFFSET_OUT_OF_RANGE below it), the records kept are
//! exactly what the rule keeps, and a replica that lost its whole disk catches up from a leader
//! whose log was purged: it installs the leader's snapshot and then holds exactly the retained
//! records, at the same offsets, byte-identical (read from it with follower reads).

mod support;

use std::time::Duration;

use bytes::Bytes;
use eddy_client::{Client, ClientConfig, Reason, v1};
use support::{Cluster, wait_for};

const TOPIC: &str = "events";
const RETENTION_BYTES: u64 = 200_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Produces `count` records of about 1 KiB, 20 per request, acks=all, `pause` between requests;
/// values name their index.
fn produce(runtime: &tokio::runtime::Runtime, client: &Client, from: usize, count: usize, pause: Duration) {
    runtime.block_on(async {
        for chunk in (from..from + count).collect::<Vec<_>>().chunks(20) {
            let records = chunk
                .iter()
                .map(|i| v1::Record {
                    key: Some(Bytes::from(format!("k{}", i % 7))),
                    value: Bytes::from(format!("{i:06}-{}", "v".repeat(1_000))),
                    headers: vec![v1::Header { key: "i".into(), value: Bytes::from(i.to_string()) }],
                    ..Default::default()
                })
                .collect();
            let request = support::produce_request(TOPIC, 0, records);
            client.produce(request).await.expect("produce");
            tokio::time::sleep(pause).await;
        }
    });
}

/// Every record from `from` to `end`, from one broker's own replica.
fn read_from(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    address: &str,
    from: u64,
    end: u64,
) -> Result<Vec<v1::StoredRecord>, eddy_client::ClientError> {
    runtime.block_on(async {
        let mut out: Vec<v1::StoredRecord> = Vec::new();
        let mut offset = from;
        while offset < end {
            let request = v1::FetchRequest {
                topic: TOPIC.into(),
                partition: 0,
                offset,
                max_wait_ms: 200,
                read_from_follower: true,
                ..Default::default()
            };
            let response = client.fetch_from_broker(address, request).await?;
            for record in response.records {
                assert_eq!(record.offset, offset, "offsets are dense on {address}");
                offset += 1;
                out.push(record);
            }
        }
        Ok(out)
    })
}

fn log_start_and_end(runtime: &tokio::runtime::Runtime, client: &Client) -> (u64, u64) {
    let answer = runtime.block_on(client.list_offsets(TOPIC, 0, v1::OffsetSpec::Earliest, 0)).expect("list offsets");
    (answer.log_start_offset, answer.high_watermark)
}

/// The log start and end once retention has done its work: at least `min_start`, and the same
/// over a second (retention checks every 200 ms; nothing is being produced).
fn settled(runtime: &tokio::runtime::Runtime, client: &Client, min_start: u64) -> (u64, u64) {
    let mut last = (0, 0);
    wait_for(Duration::from_secs(30), "retention to move the log start and settle", || {
        std::thread::sleep(Duration::from_millis(1_000));
        let now = log_start_and_end(runtime, client);
        (now.0 >= min_start && std::mem::replace(&mut last, now) == now).then_some(now)
    })
}

#[test]
fn retention_trims_every_replica_and_a_wiped_replica_catches_up_from_a_snapshot() {
    // Node 4 is a broker only, so its disk can be wiped without touching the controller group.
    let mut cluster = Cluster::start_with_voters(4, 3, &[("EDDY_RETENTION_CHECK_INTERVAL_MS", "200")]);
    let retention = format!("retention.bytes={RETENTION_BYTES}");
    cluster.eddy_json(&[
        "topic",
        "create",
        TOPIC,
        "--partitions",
        "1",
        "--replication-factor",
        "4",
        "--config",
        &retention,
    ]);
    cluster.wait_leaders(TOPIC);
    let runtime = runtime();
    let client = Client::new(vec![cluster.node(1).address.clone()], ClientConfig::default()).expect("client");

    produce(&runtime, &client, 0, 1_000, Duration::ZERO);
    let (start, end) = settled(&runtime, &client, 1);
    assert_eq!(end, 1_000);
    let described = cluster.eddy_json(&["topic", "describe", TOPIC]);
    assert_eq!(described["partitions"][0]["log_start_offset"].as_u64(), Some(start), "{described}");

    // The retained records are what the rule keeps: at least the limit, and dropping the first
    // batch (20 records) would go below it.
    let leader = cluster.node(1).address.clone();
    let retained = read_from(&runtime, &client, &leader, start, end).expect("read the retained records");
    let bytes = |records: &[v1::StoredRecord]| -> u64 {
        records
            .iter()
            .map(|r| {
                eddy_client::record_size_bytes(
                    r.key.as_ref().map_or(0, Bytes::len),
                    r.value.len(),
                    r.headers.iter().map(|h| (h.key.len(), h.value.len())),
                ) as u64
            })
            .sum()
    };
    assert!(bytes(&retained) >= RETENTION_BYTES, "kept {} bytes", bytes(&retained));
    assert!(bytes(&retained[20..]) < RETENTION_BYTES, "kept more than the rule: {} bytes", bytes(&retained));
    assert_eq!(start % 20, 0, "the log starts at a batch boundary: {start}");

    // Below the log start: OFFSET_OUT_OF_RANGE naming it.
    let error = read_from(&runtime, &client, &leader, 0, 1).expect_err("offset 0 was deleted");
    assert_eq!(error.code(), Some(Reason::OffsetOutOfRange), "{error}");
    assert!(error.to_string().contains(&format!("[{start}, ")), "{error}");

    // Node 4 loses its disk; meanwhile the log moves on (and is purged behind the log start).
    // Slowly: retention trims many times on the way, each time a little, so the snapshots taken
    // at trims stand for offsets beyond later log starts, which a snapshot must never cover.
    cluster.kill_node(4);
    std::fs::remove_dir_all(&cluster.node(4).data_dir).expect("wipe node 4");
    produce(&runtime, &client, 1_000, 1_000, Duration::from_millis(60));
    let (start, end) = settled(&runtime, &client, 1_000);
    cluster.start_node(4);
    cluster.wait_healthy();
    let node4 = cluster.node(4).address.clone();
    let want = read_from(&runtime, &client, &leader, start, end).expect("read the leader");
    let got = wait_for(Duration::from_secs(60), "node 4 to hold every retained record", || {
        read_from(&runtime, &client, &node4, start, end).ok()
    });
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(a, b, "node 4 holds the leader's record at offset {}", b.offset);
    }
    let below = read_from(&runtime, &client, &node4, start - 1, start).expect_err("below the log start");
    assert_eq!(below.code(), Some(Reason::OffsetOutOfRange), "{below}");
    let node4_log = std::fs::read_to_string(&cluster.node(4).log).expect("node 4 log");
    assert!(
        node4_log.contains("installed a partition snapshot"),
        "node 4 caught up through a snapshot, as the leader's log was purged:\n{}",
        cluster.logs()
    );
}

/// Bytes under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn disk_usage_stops_growing_under_a_steady_produce_with_retention() {
    // Small RocksDB buffers, so a test-sized produce goes through many flushes and compactions.
    let env = [
        ("EDDY_RETENTION_CHECK_INTERVAL_MS", "200"),
        ("EDDY_STORAGE_WRITE_BUFFER_BYTES", "4194304"),
        ("EDDY_STORAGE_WAL_MAX_BYTES", "16777216"),
    ];
    let cluster = Cluster::start_with_env(1, &env);
    cluster.eddy_json(&[
        "topic",
        "create",
        TOPIC,
        "--partitions",
        "1",
        "--replication-factor",
        "1",
        "--config",
        "retention.bytes=4000000",
    ]);
    cluster.wait_leaders(TOPIC);
    let runtime = runtime();
    let client = Client::new(vec![cluster.node(1).address.clone()], ClientConfig::default()).expect("client");
    let data = cluster.node(1).data_dir.clone();
    // 300 MiB in rounds of 30 MiB (1 MiB requests), sampling the data directory after each.
    let mut sizes = Vec::new();
    for round in 0..10 {
        runtime.block_on(async {
            for request in 0..30 {
                let records = (0..64)
                    .map(|i| v1::Record {
                        value: Bytes::from(format!("{round}-{request}-{i}-{}", "x".repeat(16_000))),
                        ..Default::default()
                    })
                    .collect();
                let produce = support::produce_request(TOPIC, 0, records);
                client.produce(produce).await.expect("produce");
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        sizes.push(dir_bytes(&data));
    }
    let mib = |b: u64| b / (1 << 20);
    let shown: Vec<u64> = sizes.iter().map(|b| mib(*b)).collect();
    eprintln!("data directory after each 30 MiB (MiB): {shown:?}");
    // What may stay on disk besides the 4 MB retained: up to 16 MiB of write-ahead log, flushed
    // files whose entries are already purged until compaction drops them, and blob files until
    // no flushed file refers to them any more. That stays well under 80 MiB (24-50 MiB seen),
    // while a data directory that kept even a fifth of what was produced would pass it by the
    // end, and one that kept everything would by the third round.
    let bound = 80 << 20;
    assert!(
        sizes.iter().all(|size| *size < bound),
        "300 MiB produced in rounds of 30, 4 MB retained, yet the data directory grew past 80 MiB: {shown:?} MiB after each round"
    );
    let (start, end) = log_start_and_end(&runtime, &client);
    assert!(start > 0 && end - start < 1_000, "retention kept [{start}, {end})");
}
