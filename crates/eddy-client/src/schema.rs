//! The schema registry from the client's side: [`SchemaRegistry`] speaks the registry's REST API
//! (any broker's `--http-listen` address, or any Confluent-compatible registry) and serializes
//! values as the Confluent serializers of every language do — the magic byte 0, the schema id,
//! the value in the schema's format — so records it writes are read by their deserializers and
//! the other way round.
//!
//! Schemas are cached once fetched (an id names the same schema forever); a subject's latest
//! version is cached on first use, as Confluent's `use.latest.version` does.
//!
//! ```no_run
//! # async fn example() -> eddy_client::ClientResult<()> {
//! use eddy_client::schema::SchemaRegistry;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct OrderCreated { order_id: String, cents: i64 }
//!
//! let registry = SchemaRegistry::new("http://127.0.0.1:8081")?;
//! let value = registry.serialize("orders-value", &OrderCreated { order_id: "o-1".into(), cents: 1250 }).await?;
//! let back: OrderCreated = registry.deserialize(&value).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use eddy_schema::api::path_segment as segment;
use eddy_schema::{
    Compatibility, NamedSource, ParsedSchema, SchemaInput, SchemaReference, SchemaType, Source, VersionSpec, wire,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ClientError, ClientResult};

/// The registry API's media type.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// How long one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest registry answer read.
const ANSWER_BYTES_MAX: usize = 64 << 20;
/// Deepest chain of references followed.
const REFERENCE_DEPTH_MAX: usize = 32;

/// A version of a subject, as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: SchemaInput,
}

/// A client of the schema registry's REST API, with a cache of parsed schemas.
pub struct SchemaRegistry {
    base: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    parsed: Mutex<HashMap<u32, Arc<ParsedSchema>>>,
    latest: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry").field("base", &self.base).finish_non_exhaustive()
    }
}

fn version_text(version: VersionSpec) -> String {
    match version {
        VersionSpec::Latest => "latest".into(),
        VersionSpec::Number(n) => n.to_string(),
    }
}

fn schema_body(schema: &SchemaInput) -> Value {
    let references: Vec<Value> =
        schema.references.iter().map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version})).collect();
    json!({"schema": schema.schema, "schemaType": schema.schema_type.name(), "references": references})
}

/// Reads the schema fields of an answer (`schema`, `schemaType`, `references`).
fn schema_of(answer: &Value) -> ClientResult<SchemaInput> {
    let bad = |what: &str| ClientError::Schema(format!("the registry's answer lacks {what}: {answer}"));
    let schema = answer["schema"].as_str().ok_or_else(|| bad("schema"))?.to_string();
    let schema_type = match answer["schemaType"].as_str() {
        None => SchemaType::Avro,
        Some(name) => SchemaType::parse(name).ok_or_else(|| bad("a known schemaType"))?,
    };
    let mut references = Vec::new();
    for r in answer["references"].as_array().into_iter().flatten() {
        references.push(SchemaReference {
            name: r["name"].as_str().ok_or_else(|| bad("a reference name"))?.into(),
            subject: r["subject"].as_str().ok_or_else(|| bad("a reference subject"))?.into(),
            version: r["version"]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad("a reference version"))?,
        });
    }
    Ok(SchemaInput { schema_type, schema, references })
}

/// The numbers of a JSON array answer (versions).
fn numbers(answer: &Value) -> Vec<u32> {
    answer.as_array().into_iter().flatten().filter_map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok())).collect()
}

/// The strings of a JSON array answer (subjects, messages).
fn strings(answer: &Value) -> Vec<String> {
    answer.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

fn number(answer: &Value, field: &str) -> ClientResult<u32> {
    answer[field]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| ClientError::Schema(format!("the registry's answer lacks {field}: {answer}")))
}

impl SchemaRegistry {
    /// A client of the registry at `url` (`http://HOST:PORT`).
    pub fn new(url: &str) -> ClientResult<SchemaRegistry> {
        let base = url.trim_end_matches('/').to_string();
        let uri: http::Uri =
            base.parse().map_err(|e| ClientError::Invalid(format!("schema registry URL {url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(ClientError::Invalid(format!("schema registry URL {url:?}: expected http://HOST:PORT")));
        }
        let http = HttpClient::builder(TokioExecutor::new()).build_http();
        Ok(SchemaRegistry { base, http, parsed: Mutex::new(HashMap::new()), latest: Mutex::new(HashMap::new()) })
    }

    /// The registry's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn request(&self, method: http::Method, path: &str, body: Option<Value>) -> ClientResult<Value> {
        let url = format!("{}{path}", self.base);
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(http::header::ACCEPT, CONTENT_TYPE)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(body))
            .map_err(|e| ClientError::Invalid(format!("{url}: {e}")))?;
        let unreachable = |e: String| ClientError::Unreachable(format!("schema registry {}: {e}", self.base));
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| ClientError::Timeout(format!("schema registry {url}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let limited = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX);
        let bytes = limited.collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes();
        let value: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        if status >= 400 {
            let code = value["error_code"].as_u64().and_then(|c| u32::try_from(c).ok()).unwrap_or(u32::from(status));
            let message = value["message"].as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
            return Err(ClientError::Registry { status, code, message });
        }
        Ok(value)
    }

    async fn get(&self, path: &str) -> ClientResult<Value> {
        self.request(http::Method::GET, path, None).await
    }

    /// Registers `schema` under `subject` (or finds it there): its id and version.
    pub async fn register(&self, subject: &str, schema: &SchemaInput) -> ClientResult<(u32, u32)> {
        let path = format!("/subjects/{}/versions", segment(subject));
        let answer = self.request(http::Method::POST, &path, Some(schema_body(schema))).await?;
        let id = number(&answer, "id")?;
        let version = match answer["version"].as_u64() {
            Some(v) => u32::try_from(v).unwrap_or(0),
            None => self.lookup(subject, schema).await?.version,
        };
        Ok((id, version))
    }

    /// The version of `subject` holding `schema`.
    pub async fn lookup(&self, subject: &str, schema: &SchemaInput) -> ClientResult<RegisteredSchema> {
        let path = format!("/subjects/{}", segment(subject));
        let answer = self.request(http::Method::POST, &path, Some(schema_body(schema))).await?;
        self.registered(&answer)
    }

    fn registered(&self, answer: &Value) -> ClientResult<RegisteredSchema> {
        Ok(RegisteredSchema {
            subject: answer["subject"].as_str().unwrap_or_default().to_string(),
            version: number(answer, "version")?,
            id: number(answer, "id")?,
            schema: schema_of(answer)?,
        })
    }

    /// Every subject with a version not deleted.
    pub async fn subjects(&self) -> ClientResult<Vec<String>> {
        let answer = self.get("/subjects").await?;
        Ok(strings(&answer))
    }

    /// Every subject, those whose versions are all soft-deleted included.
    pub async fn subjects_with_deleted(&self) -> ClientResult<Vec<String>> {
        let answer = self.get("/subjects?deleted=true").await?;
        Ok(strings(&answer))
    }

    /// A subject's version numbers.
    pub async fn versions(&self, subject: &str) -> ClientResult<Vec<u32>> {
        let answer = self.get(&format!("/subjects/{}/versions", segment(subject))).await?;
        Ok(numbers(&answer))
    }

    /// A version of a subject.
    pub async fn version(&self, subject: &str, version: VersionSpec) -> ClientResult<RegisteredSchema> {
        let answer = self.get(&format!("/subjects/{}/versions/{}", segment(subject), version_text(version))).await?;
        self.registered(&answer)
    }

    /// The schema an id names.
    pub async fn schema(&self, id: u32) -> ClientResult<SchemaInput> {
        schema_of(&self.get(&format!("/schemas/ids/{id}")).await?)
    }

    /// Why `schema` is not compatible with `subject` (its `version`, or the versions its level
    /// checks); empty when it is.
    pub async fn check(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        schema: &SchemaInput,
    ) -> ClientResult<Vec<String>> {
        let mut path = format!("/compatibility/subjects/{}/versions", segment(subject));
        if let Some(version) = version {
            path.push('/');
            path.push_str(&version_text(version));
        }
        path.push_str("?verbose=true");
        let answer = self.request(http::Method::POST, &path, Some(schema_body(schema))).await?;
        let messages = strings(&answer["messages"]);
        match answer["is_compatible"].as_bool() {
            Some(true) => Ok(Vec::new()),
            Some(false) if messages.is_empty() => Ok(vec!["incompatible".into()]),
            Some(false) => Ok(messages),
            None => Err(ClientError::Schema(format!("the registry's answer lacks is_compatible: {answer}"))),
        }
    }

    /// The compatibility level in force for `subject` (the global one for `None`).
    pub async fn compatibility(&self, subject: Option<&str>) -> ClientResult<Compatibility> {
        let path = match subject {
            Some(s) => format!("/config/{}?defaultToGlobal=true", segment(s)),
            None => "/config".into(),
        };
        let answer = self.get(&path).await?;
        let name = answer["compatibilityLevel"].as_str().unwrap_or_default();
        Compatibility::parse(name)
            .ok_or_else(|| ClientError::Schema(format!("unknown compatibility level in {answer}")))
    }

    /// Sets the compatibility level of `subject` (the global one for `None`).
    pub async fn set_compatibility(&self, subject: Option<&str>, level: Compatibility) -> ClientResult<()> {
        let path = match subject {
            Some(s) => format!("/config/{}", segment(s)),
            None => "/config".into(),
        };
        self.request(http::Method::PUT, &path, Some(json!({"compatibility": level.name()}))).await.map(|_| ())
    }

    /// Deletes a subject (soft, or `permanent` after a soft delete): the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> ClientResult<Vec<u32>> {
        let path = format!("/subjects/{}?permanent={permanent}", segment(subject));
        let answer = self.request(http::Method::DELETE, &path, None).await?;
        self.latest.lock().expect("latest cache").remove(subject);
        Ok(numbers(&answer))
    }

    /// Deletes one version of a subject (soft, or `permanent` after a soft delete).
    pub async fn delete_version(&self, subject: &str, version: VersionSpec, permanent: bool) -> ClientResult<u32> {
        let path = format!("/subjects/{}/versions/{}?permanent={permanent}", segment(subject), version_text(version));
        let answer = self.request(http::Method::DELETE, &path, None).await?;
        self.latest.lock().expect("latest cache").remove(subject);
        answer
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ClientError::Schema(format!("unexpected answer {answer}")))
    }

    /// The cluster's AsyncAPI 3.0 document (`GET /asyncapi.json` of a broker's HTTP listener),
    /// with only the topics matching `topics` (`*` matches any run of characters), if given.
    pub async fn asyncapi(&self, topics: Option<&str>) -> ClientResult<Value> {
        let path = match topics {
            Some(pattern) => format!("/asyncapi.json?topics={}", segment(pattern).replace("%2A", "*")),
            None => "/asyncapi.json".to_string(),
        };
        self.get(&path).await
    }

    /// The schema `id` names, parsed with its references (cached).
    pub async fn parsed(&self, id: u32) -> ClientResult<Arc<ParsedSchema>> {
        if let Some(parsed) = self.parsed.lock().expect("schema cache").get(&id) {
            return Ok(parsed.clone());
        }
        let input = self.schema(id).await?;
        let source = self.resolve(input, 0).await?;
        let parsed = Arc::new(ParsedSchema::parse(&source).map_err(|e| ClientError::Schema(e.to_string()))?);
        self.parsed.lock().expect("schema cache").insert(id, parsed.clone());
        Ok(parsed)
    }

    fn resolve(&self, input: SchemaInput, depth: usize) -> futures::future::BoxFuture<'_, ClientResult<Source>> {
        Box::pin(async move {
            if depth > REFERENCE_DEPTH_MAX {
                return Err(ClientError::Schema(format!("references nest deeper than {REFERENCE_DEPTH_MAX}")));
            }
            let mut references = Vec::new();
            for reference in input.references {
                let target = self.version(&reference.subject, VersionSpec::Number(reference.version)).await?;
                let source = self.resolve(target.schema, depth + 1).await?;
                references.push(NamedSource { name: reference.name, source });
            }
            Ok(Source { schema_type: input.schema_type, schema: input.schema, references })
        })
    }

    /// The id of the latest version of `subject` (cached on first use).
    pub async fn latest_id(&self, subject: &str) -> ClientResult<u32> {
        if let Some(id) = self.latest.lock().expect("latest cache").get(subject) {
            return Ok(*id);
        }
        let latest = self.version(subject, VersionSpec::Latest).await?;
        self.latest.lock().expect("latest cache").insert(subject.to_string(), latest.id);
        Ok(latest.id)
    }

    /// Encodes a value given as JSON with the latest schema of `subject`, in the wire format.
    pub async fn encode_json(&self, subject: &str, value: &Value) -> ClientResult<Vec<u8>> {
        let id = self.latest_id(subject).await?;
        let schema = self.parsed(id).await?;
        let payload = schema
            .encode_json(value)
            .map_err(|e| ClientError::Schema(format!("subject {subject:?}, schema {id}: {e}")))?;
        Ok(wire::frame(id, &payload))
    }

    /// Decodes a value in the wire format to JSON with the schema it names: (id, value).
    pub async fn decode_json(&self, bytes: &[u8]) -> ClientResult<(u32, Value)> {
        let (id, payload) = wire::split(bytes).map_err(|e| ClientError::Schema(e.to_string()))?;
        let schema = self.parsed(id).await?;
        let value = schema.decode_json(payload).map_err(|e| ClientError::Schema(format!("schema {id}: {e}")))?;
        Ok((id, value))
    }

    /// Serializes `value` (a serde type, as its JSON form) with the latest Avro or JSON schema
    /// of `subject`.
    pub async fn serialize<T: Serialize>(&self, subject: &str, value: &T) -> ClientResult<Vec<u8>> {
        let json = serde_json::to_value(value).map_err(|e| ClientError::Schema(e.to_string()))?;
        self.encode_json(subject, &json).await
    }

    /// Deserializes a value in the wire format into a serde type.
    pub async fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> ClientResult<T> {
        let (id, json) = self.decode_json(bytes).await?;
        serde_json::from_value(json).map_err(|e| ClientError::Schema(format!("schema {id}: {e}")))
    }

    /// Serializes a prost message with the latest Protobuf schema of `subject`, checking that
    /// the schema's first message is `M`.
    pub async fn serialize_protobuf<M: prost::Message + prost::Name>(
        &self,
        subject: &str,
        message: &M,
    ) -> ClientResult<Vec<u8>> {
        let id = self.latest_id(subject).await?;
        let schema = self.parsed(id).await?;
        let mut payload = wire::PROTOBUF_FIRST_MESSAGE.to_vec();
        message.encode(&mut payload).map_err(|e| ClientError::Schema(e.to_string()))?;
        let named = schema.record_name(&payload).map_err(ClientError::Schema)?;
        if named != M::full_name() {
            return Err(ClientError::Schema(format!(
                "subject {subject:?}'s schema {id} starts with message {named}, not {}",
                M::full_name()
            )));
        }
        Ok(wire::frame(id, &payload))
    }

    /// Deserializes a Protobuf value in the wire format into a prost message, after checking it
    /// against the schema it names.
    pub async fn deserialize_protobuf<M: prost::Message + Default>(&self, bytes: &[u8]) -> ClientResult<M> {
        let (id, payload) = wire::split(bytes).map_err(|e| ClientError::Schema(e.to_string()))?;
        let schema = self.parsed(id).await?;
        schema.validate(payload).map_err(|e| ClientError::Schema(format!("schema {id}: {e}")))?;
        let (_, message) = eddy_schema::format::message_indexes(payload).map_err(ClientError::Schema)?;
        M::decode(message).map_err(|e| ClientError::Schema(format!("schema {id}: {e}")))
    }
}
