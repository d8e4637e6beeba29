//! AsyncAPI 3.0 documents of a cluster: its brokers as servers, its topics as channels, the
//! event types the schema registry holds for each topic as messages with their payload schemas,
//! and the services that send and receive on each topic as operations.
//!
//! Which subjects describe a topic's messages: those its `asyncapi.subjects` config lists, else
//! those its value subject name strategy implies (`<topic>-value` for `topic`, every
//! `<topic>-<record>` for `topic_record`; the `record` strategy names no subject by itself, so such
//! a topic lists its event types in `asyncapi.subjects`). A `<topic>-key` subject describes keys.
//! Payload schemas are embedded with their `schemaFormat` (Avro and JSON Schema as JSON, Protobuf
//! as its `.proto` text) and referenced (the registry's address of the schema's text, in the
//! message's `externalDocs`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::VersionView;
use crate::types::{SchemaType, SubjectNameStrategy};

/// The AsyncAPI version written.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// Topic configs the document reads (validated as topic configs by the controller).
pub const DESCRIPTION: &str = "asyncapi.description";
/// Services that write to the topic, comma-separated.
pub const SENDERS: &str = "asyncapi.senders";
/// Services that read the topic, comma-separated.
pub const RECEIVERS: &str = "asyncapi.receivers";
/// Subjects of the event types the topic carries, comma-separated.
pub const SUBJECTS: &str = "asyncapi.subjects";

/// A broker, as a server of the document.
#[derive(Debug, Clone)]
pub struct Server {
    pub id: u64,
    /// HOST:PORT of its gRPC API.
    pub address: String,
    pub rack: Option<String>,
}

/// A topic, as a channel of the document.
#[derive(Debug, Clone)]
pub struct Topic {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub configs: BTreeMap<String, String>,
}

/// What a document is made of.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub servers: Vec<Server>,
    pub topics: Vec<Topic>,
    /// The latest version of every subject.
    pub subjects: Vec<VersionView>,
    /// Where the registry serves schema texts (`http://HOST:PORT`), for references.
    pub registry_url: Option<String>,
}

/// An id as every tool accepts in AsyncAPI's keys (`[A-Za-z0-9_-]`; some refuse the dots the
/// specification allows in component keys): other characters become `_`.
fn key(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') { c } else { '_' }).collect()
}

fn list(configs: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    configs
        .get(name)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Whether `pattern` (with `*` matching any run of characters) matches all of `name`.
pub fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else { return false };
            (0..=tail.len()).filter(|i| tail.is_char_boundary(*i)).any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// The subjects whose latest versions describe `topic`'s values.
fn value_subjects<'a>(topic: &Topic, subjects: &'a BTreeMap<&str, &VersionView>) -> Vec<&'a VersionView> {
    let listed = list(&topic.configs, SUBJECTS);
    if !listed.is_empty() {
        return listed.iter().filter_map(|s| subjects.get(s.as_str()).copied()).collect();
    }
    let strategy = topic
        .configs
        .get("value.subject.name.strategy")
        .and_then(|s| SubjectNameStrategy::parse(s))
        .unwrap_or(SubjectNameStrategy::Topic);
    match strategy {
        SubjectNameStrategy::Topic => {
            subjects.get(format!("{}-value", topic.name).as_str()).copied().into_iter().collect()
        }
        SubjectNameStrategy::TopicRecord => {
            let prefix = format!("{}-", topic.name);
            let key = format!("{}-key", topic.name);
            let value = format!("{}-value", topic.name);
            subjects
                .iter()
                .filter(|(s, _)| s.starts_with(&prefix) && **s != key && **s != value)
                .map(|(_, v)| *v)
                .collect()
        }
        SubjectNameStrategy::Record => Vec::new(),
    }
}

/// The schema of a payload, as a Multi Format Schema Object.
fn payload(view: &VersionView) -> Value {
    let (format, schema) = match view.schema.schema_type {
        // A registered Avro or JSON schema is JSON text.
        SchemaType::Avro => {
            ("application/vnd.apache.avro+json;version=1.9.0", serde_json::from_str(&view.schema.schema))
        }
        SchemaType::Json => ("application/schema+json;version=draft-07", serde_json::from_str(&view.schema.schema)),
        SchemaType::Protobuf => ("application/vnd.google.protobuf;version=3", Ok(json!(view.schema.schema))),
    };
    json!({"schemaFormat": format, "schema": schema.unwrap_or_else(|_| json!(view.schema.schema))})
}

fn schema_url(view: &VersionView, registry_url: Option<&str>) -> Option<String> {
    registry_url.map(|base| {
        format!("{base}/subjects/{}/versions/{}/schema", crate::api::path_segment(&view.subject), view.version)
    })
}

fn content_type(schema_type: SchemaType) -> &'static str {
    match schema_type {
        SchemaType::Avro => "application/vnd.apache.avro+binary",
        SchemaType::Json => "application/json",
        SchemaType::Protobuf => "application/x-protobuf",
    }
}

/// The message of one subject's latest version.
fn message(view: &VersionView, key_view: Option<&VersionView>, registry_url: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(view.subject));
    m.insert("title".into(), json!(view.subject));
    m.insert("contentType".into(), json!(content_type(view.schema.schema_type)));
    m.insert(
        "summary".into(),
        json!(format!(
            "{} schema {} (subject {} version {}), framed as the schema registry's wire format: magic byte 0, then the id",
            view.schema.schema_type, view.id, view.subject, view.version
        )),
    );
    m.insert("payload".into(), payload(view));
    if let Some(url) = schema_url(view, registry_url) {
        m.insert(
            "externalDocs".into(),
            json!({"description": format!("The {} schema in the registry", view.schema.schema_type), "url": url}),
        );
    }
    let mut eddy = json!({
        "subject": view.subject, "version": view.version, "schemaId": view.id,
        "schemaType": view.schema.schema_type.name(),
    });
    if let Some(k) = key_view {
        eddy["key"] = json!({"subject": k.subject, "version": k.version, "schemaId": k.id, "schemaType": k.schema.schema_type.name()});
    }
    m.insert("x-eddy".into(), eddy);
    Value::Object(m)
}

/// The AsyncAPI 3.0 document of `cluster`, with only the topics matching `topics` (a pattern
/// with `*`), if given. Internal topics (`__*`) are left out.
pub fn document(cluster: &Cluster, topics: Option<&str>) -> Value {
    let registry_url = cluster.registry_url.as_deref();
    let subjects: BTreeMap<&str, &VersionView> = cluster.subjects.iter().map(|v| (v.subject.as_str(), v)).collect();
    let mut servers = Map::new();
    for server in &cluster.servers {
        let mut s = json!({
            "host": server.address,
            "protocol": "grpc",
            "title": format!("broker {}", server.id),
            "description": "Eddy's gRPC API (eddy.v1.Eddy): Produce, Fetch, consumer groups and admin",
        });
        if let Some(rack) = &server.rack {
            s["x-eddy-rack"] = json!(rack);
        }
        servers.insert(format!("broker-{}", server.id), s);
    }
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for topic in cluster.topics.iter().filter(|t| !t.name.starts_with("__")) {
        if topics.is_some_and(|pattern| !glob(pattern, &topic.name)) {
            continue;
        }
        let channel_id = key(&topic.name);
        let key_view = subjects.get(format!("{}-key", topic.name).as_str()).copied();
        let mut channel_messages = Map::new();
        let views = value_subjects(topic, &subjects);
        for view in &views {
            let id = key(&view.subject);
            messages.insert(id.clone(), message(view, key_view, registry_url));
            channel_messages.insert(id.clone(), json!({"$ref": format!("#/components/messages/{id}")}));
        }
        if views.is_empty() {
            // No registered schema: records are bytes.
            let id = format!("{channel_id}_record");
            messages.insert(
                id.clone(),
                json!({"name": format!("{} record", topic.name), "contentType": "application/octet-stream",
                       "summary": "A record of the topic; no schema is registered for it",
                       "payload": {"description": "Bytes: no schema is registered for this topic"}}),
            );
            channel_messages.insert(id.clone(), json!({"$ref": format!("#/components/messages/{id}")}));
        }
        let description = topic.configs.get(DESCRIPTION).cloned().unwrap_or_else(|| {
            format!(
                "Topic {}: {} partitions, replication factor {}; records of one key keep their order within its partition",
                topic.name, topic.partitions, topic.replication_factor
            )
        });
        let mut channel = json!({
            "address": topic.name,
            "title": topic.name,
            "description": description,
            "messages": Value::Object(channel_messages.clone()),
            "x-eddy": {"partitions": topic.partitions, "replicationFactor": topic.replication_factor,
                       "configs": topic.configs},
        });
        if !cluster.servers.is_empty() {
            let refs: Vec<Value> =
                cluster.servers.iter().map(|s| json!({"$ref": format!("#/servers/broker-{}", s.id)})).collect();
            channel["servers"] = Value::Array(refs);
        }
        channels.insert(channel_id.clone(), channel);
        let message_refs: Vec<Value> =
            channel_messages.keys().map(|m| json!({"$ref": format!("#/channels/{channel_id}/messages/{m}")})).collect();
        let mut add = |action: &str, service: Option<&str>| {
            let id = match service {
                Some(s) => key(&format!("{s}_{action}_{}", topic.name)),
                None => key(&format!("{action}_{}", topic.name)),
            };
            let summary = match (service, action) {
                (Some(s), "send") => format!("{s} writes to {}", topic.name),
                (Some(s), _) => format!("{s} reads {}", topic.name),
                (None, "send") => format!("Produce to {}", topic.name),
                (None, _) => format!("Consume {}", topic.name),
            };
            let mut op = json!({
                "action": action,
                "channel": {"$ref": format!("#/channels/{channel_id}")},
                "summary": summary,
                "messages": message_refs.clone(),
            });
            if let Some(s) = service {
                op["x-eddy-service"] = json!(s);
            }
            operations.insert(id, op);
        };
        let senders = list(&topic.configs, SENDERS);
        let receivers = list(&topic.configs, RECEIVERS);
        if senders.is_empty() {
            add("send", None);
        }
        for s in &senders {
            add("send", Some(s));
        }
        if receivers.is_empty() {
            add("receive", None);
        }
        for s in &receivers {
            add("receive", Some(s));
        }
    }
    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": format!("Eddy cluster {}", cluster.name),
            "version": "1.0.0",
            "description": "The topics of an Eddy cluster (a Raft-replicated event log) and the event types the schema registry holds for them. Values are framed in the schema registry's wire format.",
        },
        "defaultContentType": "application/octet-stream",
        "servers": Value::Object(servers),
        "channels": Value::Object(channels),
        "operations": Value::Object(operations),
        "components": {"messages": Value::Object(messages)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::StoredSchema;

    fn view(subject: &str, schema_type: SchemaType, schema: &str, id: u32) -> VersionView {
        VersionView {
            subject: subject.into(),
            version: 1,
            id,
            schema: StoredSchema { schema_type, schema: schema.into(), references: vec![] },
        }
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("orders", "orders") && !glob("orders", "orders2"));
        assert!(glob("ord*", "orders") && glob("*s", "orders") && glob("*", "x") && glob("o*d*s", "orders"));
        assert!(!glob("pay*", "orders"));
    }

    #[test]
    fn topics_become_channels_with_their_subjects_messages_and_services() {
        let configs: BTreeMap<String, String> = [
            (SENDERS.to_string(), "order-service".to_string()),
            (RECEIVERS.to_string(), "inventory, payment".to_string()),
        ]
        .into();
        let cluster = Cluster {
            name: "dev".into(),
            servers: vec![Server { id: 1, address: "127.0.0.1:9092".into(), rack: None }],
            topics: vec![
                Topic { name: "orders".into(), partitions: 3, replication_factor: 3, configs },
                Topic { name: "shipments".into(), partitions: 1, replication_factor: 1, configs: BTreeMap::new() },
                Topic {
                    name: "__consumer_offsets".into(),
                    partitions: 6,
                    replication_factor: 3,
                    configs: BTreeMap::new(),
                },
            ],
            subjects: vec![
                view("orders-value", SchemaType::Avro, r#"{"type":"record","name":"OrderCreated","fields":[]}"#, 1),
                view("orders-key", SchemaType::Json, r#"{"type":"string"}"#, 2),
                view("shipments-value", SchemaType::Protobuf, "syntax = \"proto3\"; message S {}", 3),
            ],
            registry_url: Some("http://127.0.0.1:8081".into()),
        };
        let doc = document(&cluster, None);
        assert_eq!(doc["asyncapi"], "3.0.0");
        assert!(doc["channels"].get("__consumer_offsets").is_none());
        assert_eq!(doc["channels"]["orders"]["messages"]["orders-value"]["$ref"], "#/components/messages/orders-value");
        let order = &doc["components"]["messages"]["orders-value"];
        assert_eq!(order["payload"]["schemaFormat"], "application/vnd.apache.avro+json;version=1.9.0");
        assert_eq!(order["payload"]["schema"]["name"], "OrderCreated");
        assert_eq!(order["x-eddy"]["key"]["subject"], "orders-key");
        let shipped = &doc["components"]["messages"]["shipments-value"];
        assert_eq!(shipped["payload"]["schemaFormat"], "application/vnd.google.protobuf;version=3");
        assert_eq!(shipped["payload"]["schema"], "syntax = \"proto3\"; message S {}");
        assert_eq!(shipped["externalDocs"]["url"], "http://127.0.0.1:8081/subjects/shipments-value/versions/1/schema");
        assert_eq!(doc["operations"]["order-service_send_orders"]["action"], "send");
        assert_eq!(doc["operations"]["payment_receive_orders"]["action"], "receive");
        assert_eq!(doc["operations"]["send_shipments"]["channel"]["$ref"], "#/channels/shipments");
        let only = document(&cluster, Some("ship*"));
        assert!(only["channels"].get("orders").is_none() && only["channels"].get("shipments").is_some());
    }
}
