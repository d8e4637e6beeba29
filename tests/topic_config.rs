//! Topic configuration through the CLI and the client against real processes: configs set at
//! creation and changed later show in `topic describe`; bad keys and values are refused naming
//! them; `max.message.bytes` bounds records; `min.insync.replicas` refuses acks=all produces
//! when too few replicas are live (NOT_ENOUGH_REPLICAS) and lowering it lets them through;
//! partitions are added, never removed.

mod support;

use std::time::Duration;

use bytes::Bytes;
use eddy_client::{Client, ClientConfig, Reason, v1};
use support::{Cluster, wait_for};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn expect_error(cluster: &Cluster, args: &[&str], needles: &[&str]) {
    let out = cluster.eddy(args);
    assert!(!out.status.success(), "eddy {args:?} should fail");
    let err = stderr(&out);
    for needle in needles {
        assert!(err.contains(needle), "eddy {args:?}: expected {needle:?} in {err:?}");
    }
}

fn produce(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    topic: &str,
    partition: u32,
    value: Vec<u8>,
) -> Result<u64, eddy_client::ClientError> {
    runtime.block_on(async {
        let records = vec![v1::Record { value: Bytes::from(value), ..Default::default() }];
        let request = support::produce_request(topic, partition, records);
        client.produce(request).await.map(|r| r.base_offset)
    })
}

#[test]
fn configs_are_validated_shown_enforced_and_changed() {
    let mut cluster = Cluster::start(3);
    let created = cluster.eddy_json(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "2",
        "--replication-factor",
        "3",
        "--config",
        "retention.ms=3600000",
        "--config",
        "max.message.bytes=1000",
        "--config",
        "min.insync.replicas=3",
    ]);
    assert_eq!(created["configs"]["retention.ms"], "3600000");
    let described = cluster.wait_leaders("orders");
    assert_eq!(described["configs"]["max.message.bytes"], "1000", "{described}");
    assert_eq!(described["configs"]["min.insync.replicas"], "3");

    // Bad keys and values are refused, naming them; nothing changes.
    expect_error(
        &cluster,
        &["topic", "create", "x", "--config", "cleanup.polcy=compact"],
        &["INVALID_CONFIG", "cleanup.polcy"],
    );
    expect_error(
        &cluster,
        &["topic", "create", "x", "--config", "retention.ms=soon"],
        &["INVALID_CONFIG", "retention.ms"],
    );
    expect_error(
        &cluster,
        &["topic", "create", "x", "--replication-factor", "1", "--config", "min.insync.replicas=2"],
        &["INVALID_CONFIG", "min.insync.replicas"],
    );
    expect_error(
        &cluster,
        &["topic", "alter", "orders", "--config", "max.message.bytes=0"],
        &["INVALID_CONFIG", "max.message.bytes"],
    );
    expect_error(
        &cluster,
        &["topic", "alter", "orders", "--partitions", "1"],
        &["INVALID_PARTITIONS", "only be added"],
    );
    expect_error(&cluster, &["topic", "alter", "orders"], &["nothing to change"]);
    expect_error(&cluster, &["topic", "alter", "missing", "--config", "retention.ms=1000"], &["UNKNOWN_TOPIC"]);
    let unchanged = cluster.eddy_json(&["topic", "describe", "orders"]);
    assert_eq!(unchanged["configs"], described["configs"]);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let _in_runtime = runtime.enter();
    let config = ClientConfig { retry_deadline: Duration::from_secs(3), ..ClientConfig::default() };
    let client = Client::new(cluster.brokers().split(',').map(String::from).collect(), config).unwrap();
    let produce =
        |topic: &str, partition: u32, value: &[u8]| produce(&runtime, &client, topic, partition, value.to_vec());

    // max.message.bytes bounds a record (key, value and headers plus 32 bytes of overhead).
    produce("orders", 0, &[b'x'; 900]).expect("a record within the topic's limit");
    let too_large = produce("orders", 0, &[b'x'; 1000]).unwrap_err();
    assert_eq!(too_large.code(), Some(Reason::RecordTooLarge), "{too_large}");

    // min.insync.replicas=3 with a broker down: acks=all is refused, nothing written.
    cluster.kill_node(3);
    let refused = wait_for(Duration::from_secs(60), "NOT_ENOUGH_REPLICAS on every partition", || {
        let answers: Vec<_> = (0..2).map(|p| produce("orders", p, b"while down")).collect();
        answers.iter().all(|a| matches!(a, Err(e) if e.code() == Some(Reason::NotEnoughReplicas))).then_some(answers)
    });
    let Err(e) = &refused[0] else { unreachable!() };
    assert_eq!(e.detail("required"), Some("3"), "{e}");

    // Lowered to 2, the two live replicas are enough.
    let altered = cluster.eddy_json(&["topic", "alter", "orders", "--config", "min.insync.replicas=2"]);
    assert_eq!(altered["configs"]["min.insync.replicas"], "2");
    assert_eq!(altered["configs"]["retention.ms"], "3600000", "other configs are kept");
    wait_for(Duration::from_secs(30), "acks=all to succeed with two replicas", || {
        produce("orders", 0, b"with two").ok()
    });
    // Back to the default: the key disappears from the description.
    let reset = cluster.eddy_json(&["topic", "alter", "orders", "--delete-config", "min.insync.replicas"]);
    assert!(reset["configs"].get("min.insync.replicas").is_none(), "{reset}");
    cluster.start_node(3);
    cluster.wait_healthy();

    // Partitions are added: the new ones get leaders and take records.
    let grown = cluster.eddy_json(&["topic", "alter", "orders", "--partitions", "4"]);
    assert_eq!(grown["partitions"].as_array().unwrap().len(), 4);
    cluster.wait_leaders("orders");
    let offset = wait_for(Duration::from_secs(30), "a produce to a new partition", || {
        produce("orders", 3, b"new partition").ok()
    });
    assert_eq!(offset, 0);
}
