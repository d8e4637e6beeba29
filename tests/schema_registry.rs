//! The schema registry against Confluent's own Python client (confluent-kafka's
//! SchemaRegistryClient and Avro serializer from PyPI, unmodified): Avro, JSON Schema and
//! Protobuf subjects with references are registered, evolved and refused through one broker;
//! then the controller leader, which holds the registry, is SIGKILLed and another broker serves
//! every id, subject and version unchanged and gives new schemas fresh ids.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{Cluster, python};

/// Runs `tests/python/schema_registry.py verify URL` with `expected` on its standard input.
fn verify(url: &str, expected: &str) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/schema_registry.py");
    let mut child = Command::new(python())
        .arg(&script)
        .args(["verify", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().expect("stdin").write_all(expected.as_bytes()).expect("write expected registry");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "verify against {url} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn confluent_clients_register_evolve_and_read_through_a_controller_failover() {
    let mut cluster = Cluster::start(3);
    let controller =
        cluster.eddy_json(&["cluster", "describe"])["controller_leader"].as_u64().expect("a controller leader");
    // Register through a broker that is not the controller leader: it forwards.
    let first = (1..=3).find(|id| *id != controller).expect("another node");
    let populated =
        support::run_python("schema_registry.py", &["populate", &format!("http://{}", cluster.node(first).http)]);
    let expected = populated.lines().last().expect("the registry's contents").to_string();
    let contents: serde_json::Value = serde_json::from_str(&expected).expect("JSON");
    assert_eq!(contents["subjects"]["orders-value"], serde_json::json!([1, 2]), "{expected}");
    // Nine schemas under live subjects: addresses-value reuses shop.Address's id, and the scratch
    // subject was deleted permanently.
    assert_eq!(contents["ids"].as_object().map(|ids| ids.len()), Some(9), "{expected}");

    cluster.kill_node(controller);
    let other = (1..=3).find(|id| *id != controller && *id != first).expect("a third node");
    support::wait_for(std::time::Duration::from_secs(60), "a new controller leader", || {
        let described = cluster.eddy_json(&["cluster", "describe"]);
        described["controller_leader"].as_u64().filter(|leader| *leader != controller)
    });
    verify(&format!("http://{}", cluster.node(other).http), &expected);

    // The old leader comes back and serves the same registry (it forwards to the new leader).
    cluster.start_node(controller);
    cluster.wait_healthy();
    verify(&format!("http://{}", cluster.node(controller).http), &expected);
}

/// Runs `eddy ARGS` against the cluster and its registry (node 1's HTTP listener), with `stdin`.
fn eddy_with(cluster: &Cluster, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(support::eddy_bin())
        .args(args)
        .args(["--brokers", &cluster.brokers(), "--schema-registry", &format!("http://{}", cluster.node(1).http)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run eddy");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("eddy output")
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "eddy failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `eddy schema register SUBJECT --type KIND --file FILE`: the schema's id.
fn register(cluster: &Cluster, subject: &str, kind: &str, file: &std::path::Path) -> u32 {
    let args =
        ["schema", "register", subject, "--type", kind, "--file", file.to_str().expect("a path"), "--format", "json"];
    let registered: serde_json::Value = serde_json::from_str(&ok(&eddy_with(cluster, &args, ""))).expect("JSON");
    registered["id"].as_u64().expect("an id") as u32
}

#[test]
fn a_validating_topic_refuses_records_without_a_matching_schema_and_appends_nothing_of_their_batch() {
    let cluster = Cluster::start(3);
    let dir = tempfile::tempdir().expect("temp dir");
    let order = support::write_file(
        dir.path(),
        "order.avsc",
        r#"{"type":"record","name":"OrderCreated","namespace":"shop","fields":[{"name":"order_id","type":"string"},{"name":"cents","type":"long"}]}"#,
    );
    let payment = support::write_file(
        dir.path(),
        "payment.json",
        r#"{"title":"shop.PaymentProcessed","type":"object","properties":{"order_id":{"type":"string"}},"required":["order_id"]}"#,
    );
    let order_id = register(&cluster, "orders-value", "avro", &order);
    // The record strategy: a JSON schema names its record by its title.
    register(&cluster, "shop.PaymentProcessed", "json", &payment);
    cluster.eddy_json(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "1",
        "--replication-factor",
        "3",
        "--config",
        "value.schema.validation=true",
    ]);
    cluster.eddy_json(&[
        "topic",
        "create",
        "payments",
        "--partitions",
        "1",
        "--replication-factor",
        "3",
        "--config",
        "value.schema.validation=true",
        "--config",
        "value.subject.name.strategy=record",
    ]);
    cluster.wait_leaders("orders");
    cluster.wait_leaders("payments");

    // The CLI encodes with the subject's schema; a line that does not fit it is refused there.
    let produced = eddy_with(
        &cluster,
        &["produce", "orders", "--value-schema", "orders-value"],
        "{\"order_id\":\"o-1\",\"cents\":1250}\n{\"order_id\":\"o-2\",\"cents\":\"lots\"}\n{\"order_id\":\"o-3\",\"cents\":7}\n",
    );
    assert!(!produced.status.success(), "a line that does not fit the schema fails the command");
    assert!(String::from_utf8_lossy(&produced.stderr).contains("line 2 was not produced"), "{produced:?}");
    ok(&eddy_with(
        &cluster,
        &["produce", "payments", "--value-schema", "shop.PaymentProcessed"],
        "{\"order_id\":\"o-1\"}\n",
    ));

    // Through the client: a batch whose second record is plain text, or names another schema, or
    // does not decode, is refused whole, naming the record.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = eddy_client::Client::new(vec![cluster.node(1).address.clone()], eddy_client::ClientConfig::default())
        .expect("client");
    let framed = |id: u32, payload: &[u8]| bytes::Bytes::from(eddy_schema::wire::frame(id, payload));
    // order_id "o-9" (zigzag length 3), cents 5 (zigzag 10).
    let good = framed(order_id, &[6, b'o', b'-', b'9', 10]);
    for (bad, needle) in [
        (bytes::Bytes::from_static(b"{\"order_id\":\"o-9\"}"), "magic byte"),
        (framed(order_id + 100, &[6, b'o', b'-', b'9', 10]), "not registered"),
        (framed(order_id, &[6, b'o']), "not a value of schema"),
    ] {
        let records = [good.clone(), bad, good.clone()]
            .into_iter()
            .map(|value| eddy_client::v1::Record { value, ..Default::default() })
            .collect();
        let refused = runtime
            .block_on(client.produce(support::produce_request("orders", 0, records)))
            .expect_err("a batch with an invalid record is refused");
        assert_eq!(refused.reason(), "SCHEMA_VALIDATION_FAILED", "{refused}");
        assert!(refused.to_string().contains("record 1 ") && refused.to_string().contains(needle), "{refused}");
    }
    let accepted = runtime
        .block_on(client.produce(support::produce_request(
            "orders",
            0,
            vec![eddy_client::v1::Record { value: good, ..Default::default() }],
        )))
        .expect("a valid record is accepted");

    // Nothing of the refused batches was appended: o-1 and o-3 from the CLI, then the one above.
    assert_eq!(accepted.base_offset, 2, "{accepted:?}");
    let consumed = ok(&eddy_with(
        &cluster,
        &["consume", "orders", "--from-beginning", "--exit-at-end", "--decode", "--format", "json"],
        "",
    ));
    let values: Vec<serde_json::Value> = consumed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["value"].clone())
        .collect();
    assert_eq!(
        values,
        vec![
            serde_json::json!({"order_id": "o-1", "cents": 1250}),
            serde_json::json!({"order_id": "o-3", "cents": 7}),
            serde_json::json!({"order_id": "o-9", "cents": 5}),
        ]
    );
}

/// The node_modules of the AsyncAPI initiative's validators (`scripts/npm-env`), when the npm
/// registry is reachable.
fn official_validators() -> Option<String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/npm-env");
    let out = Command::new(script).stderr(Stdio::inherit()).output().expect("run scripts/npm-env");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !path.is_empty()).then_some(path)
}

#[test]
fn the_clusters_asyncapi_document_validates_with_tools_that_are_not_ours() {
    let cluster = Cluster::start(3);
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/schemas");
    for (subject, kind, file) in [
        ("orders-value", "avro", "OrderCreated.avsc"),
        ("shop.payments.PaymentProcessed", "json", "PaymentProcessed.json"),
        ("shop.payments.PaymentFailed", "json", "PaymentFailed.json"),
        ("shipments-value", "protobuf", "OrderShipped.proto"),
    ] {
        register(&cluster, subject, kind, &examples.join(file));
    }
    for args in [
        &[
            "orders",
            "--config",
            "asyncapi.senders=order-service",
            "--config",
            "asyncapi.receivers=inventory-service,payment-service",
        ][..],
        &[
            "payments",
            "--config",
            "value.subject.name.strategy=record",
            "--config",
            "asyncapi.subjects=shop.payments.PaymentProcessed,shop.payments.PaymentFailed",
        ],
        &["shipments", "--config", "asyncapi.description=Parcels leaving the warehouse"],
        &["audit"],
    ] {
        let mut create = vec!["topic", "create"];
        create.extend_from_slice(args);
        cluster.eddy_json(&create);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let modules = official_validators();
    if modules.is_none() {
        eprintln!("the npm registry is unreachable: the AsyncAPI initiative's JSON Schema and parser are not run");
    }
    for file in ["cluster.json", "cluster.yaml"] {
        let path = dir.path().join(file).to_string_lossy().to_string();
        ok(&eddy_with(&cluster, &["asyncapi", "--output", &path], ""));
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/asyncapi_validate.py");
        let mut validate = Command::new(python());
        validate.args(["-W", "ignore"]).arg(&script).args([path.as_str(), "orders", "payments", "shipments", "audit"]);
        match &modules {
            Some(m) => validate.env("NODE_MODULES", m),
            None => validate.env_remove("NODE_MODULES"),
        };
        let out = validate.output().expect("run the validators");
        let report = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{file} does not validate:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
        for line in ["pydantic-asyncapi: valid", "asyncapi3: valid", "payload schemas: 3 valid"] {
            assert!(report.contains(line), "{file}: {report}");
        }
        if modules.is_some() {
            assert!(report.contains("@asyncapi/parser: valid (4 channels, 5 messages)"), "{file}: {report}");
        }
        eprintln!("{file}:\n{report}");
    }
    // The document says what the cluster holds.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cluster.json")).expect("read")).expect("JSON");
    assert_eq!(doc["operations"]["payment-service_receive_orders"]["action"], "receive");
    assert_eq!(doc["channels"]["payments"]["messages"].as_object().map(|m| m.len()), Some(2));
    assert_eq!(doc["channels"]["shipments"]["description"], "Parcels leaving the warehouse");
    let only = ok(&eddy_with(&cluster, &["asyncapi", "--topic", "pay*"], ""));
    let only: serde_json::Value = serde_json::from_str(&only).expect("JSON");
    assert_eq!(
        only["channels"].as_object().map(|c| c.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["payments".to_string()])
    );
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Parcel {
    order_id: String,
    grams: i64,
}

/// The example's `shop.shipping.OrderShipped`, as prost derives it.
#[derive(Clone, PartialEq, prost::Message)]
struct OrderShipped {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    carrier: String,
    #[prost(string, tag = "3")]
    tracking_number: String,
    #[prost(int64, tag = "4")]
    shipped_at_ms: i64,
}

impl prost::Name for OrderShipped {
    const NAME: &'static str = "OrderShipped";
    const PACKAGE: &'static str = "shop.shipping";
}

#[test]
fn the_rust_client_serializes_serde_and_prost_values_that_a_validating_topic_accepts() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let parcel = support::write_file(
        dir.path(),
        "parcel.avsc",
        r#"{"type":"record","name":"Parcel","namespace":"shop","fields":[{"name":"order_id","type":"string"},{"name":"grams","type":"long"}]}"#,
    );
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/schemas/OrderShipped.proto");
    register(&cluster, "parcels-value", "avro", &parcel);
    register(&cluster, "shipments-value", "protobuf", &shipped);
    for topic in ["parcels", "shipments"] {
        cluster.eddy_json(&["topic", "create", topic, "--config", "value.schema.validation=true"]);
        cluster.wait_leaders(topic);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let registry =
            eddy_client::schema::SchemaRegistry::new(&format!("http://{}", cluster.node(1).http)).expect("registry");
        let client =
            eddy_client::Client::new(vec![cluster.node(1).address.clone()], eddy_client::ClientConfig::default())
                .expect("client");
        let produce_and_read = |topic: &'static str, value: Vec<u8>| {
            let client = &client;
            async move {
                let record = eddy_client::v1::Record { value: value.into(), ..Default::default() };
                let produced =
                    client.produce(support::produce_request(topic, 0, vec![record])).await.expect("accepted");
                let request = eddy_client::v1::FetchRequest {
                    topic: topic.into(),
                    partition: 0,
                    offset: produced.base_offset,
                    max_bytes: 0,
                    max_records: 1,
                    max_wait_ms: 0,
                    read_from_follower: false,
                };
                client.fetch(request).await.expect("fetch").records.remove(0).value
            }
        };
        let sent = Parcel { order_id: "o-1".into(), grams: 1200 };
        let bytes = registry.serialize("parcels-value", &sent).await.expect("serialize");
        let read = produce_and_read("parcels", bytes).await;
        assert_eq!(registry.deserialize::<Parcel>(&read).await.expect("deserialize"), sent);

        let sent = OrderShipped {
            order_id: "o-1".into(),
            carrier: "post".into(),
            tracking_number: "T1".into(),
            shipped_at_ms: 7,
        };
        let bytes = registry.serialize_protobuf("shipments-value", &sent).await.expect("serialize");
        let read = produce_and_read("shipments", bytes).await;
        assert_eq!(registry.deserialize_protobuf::<OrderShipped>(&read).await.expect("deserialize"), sent);

        // A prost type the subject's schema does not start with, and bytes of another schema.
        let wrong = registry.serialize_protobuf("parcels-value", &sent).await.expect_err("another schema");
        assert_eq!(wrong.reason(), "SCHEMA_VALIDATION_FAILED", "{wrong}");
        assert!(registry.deserialize::<Parcel>(&read).await.is_err(), "a Protobuf value is not a Parcel");
        let missing = registry
            .serialize("no-such-value", &Parcel { order_id: "x".into(), grams: 1 })
            .await
            .expect_err("no subject");
        assert!(matches!(missing, eddy_client::ClientError::Registry { status: 404, code: 40401, .. }), "{missing}");
    });
}

/// `eddy ARGS`: (exit code, stdout, stderr).
fn run(cluster: &Cluster, args: &[&str]) -> (i32, String, String) {
    let out = eddy_with(cluster, args, "");
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_schema_cli_lists_gets_checks_configures_and_deletes_and_names_bad_input() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let v1_text = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    let v1 = support::write_file(dir.path(), "v1.avsc", v1_text);
    let breaking = support::write_file(
        dir.path(),
        "v2.avsc",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
    );
    let id = register(&cluster, "r-value", "avro", &v1);
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        serde_json::from_str(&ok(&eddy_with(&cluster, &all, ""))).expect("JSON")
    };
    let listed = json(&["schema", "list"]);
    assert_eq!(listed, serde_json::json!([{"subject": "r-value", "version": 1, "id": id, "type": "AVRO"}]));
    let got = json(&["schema", "get", "r-value", "--version", "1"]);
    assert_eq!((got["id"].as_u64(), got["schema"].as_str()), (Some(u64::from(id)), Some(v1_text)));

    // An incompatible change: exit status 1, the problem printed, the reason named.
    let (code, stdout, stderr) =
        run(&cluster, &["schema", "check", "r-value", "--type", "avro", "--file", breaking.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("incompatible with r-value") && stdout.contains("Field 'a'"), "{stdout}");
    assert!(stderr.contains("(INCOMPATIBLE)"), "{stderr}");
    assert_eq!(json(&["schema", "config", "r-value", "--compatibility", "none"])["compatibility"], "NONE");
    assert_eq!(json(&["schema", "config"])["compatibility"], "BACKWARD");
    let (code, ..) =
        run(&cluster, &["schema", "check", "r-value", "--type", "avro", "--file", breaking.to_str().unwrap()]);
    assert_eq!(code, 0, "at NONE anything is compatible");

    // Soft delete, then the subject is listed only with --deleted; permanent delete after that.
    assert_eq!(json(&["schema", "delete", "r-value"])["deleted_versions"], serde_json::json!([1]));
    assert_eq!(json(&["schema", "list"]), serde_json::json!([]));
    assert_eq!(json(&["schema", "list", "--deleted"])[0]["subject"], "r-value");
    assert_eq!(json(&["schema", "delete", "r-value", "--permanent"])["deleted_versions"], serde_json::json!([1]));

    // Bad input: a clear sentence, a non-zero status, and the registry's code where it answered.
    cluster.eddy_json(&["topic", "create", "orders"]);
    let bad_file = dir.path().join("missing.avsc");
    let invalid = support::write_file(dir.path(), "invalid.avsc", r#"{"type":"recrod"}"#);
    for (args, status, needle) in [
        (
            vec!["schema", "register", "x", "--type", "avro", "--file", bad_file.to_str().unwrap()],
            2,
            "cannot read the schema file",
        ),
        (
            vec!["schema", "register", "x", "--type", "avro", "--file", invalid.to_str().unwrap()],
            1,
            "schema registry error 42201",
        ),
        (
            vec!["schema", "register", "x", "--type", "avro", "--file", v1.to_str().unwrap(), "--reference", "oops"],
            2,
            "NAME=SUBJECT:VERSION",
        ),
        (vec!["schema", "config", "--compatibility", "sideways"], 2, "unknown compatibility level"),
        (vec!["schema", "get", "no-such-subject"], 1, "schema registry error 40401"),
        (vec!["schema", "get", "r-value", "--version", "0"], 2, "not a valid version"),
        (vec!["produce", "orders", "--value-schema", "no-such-subject"], 1, "40401"),
    ] {
        let (code, stdout, stderr) = run(&cluster, &args);
        assert_eq!(code, status, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
