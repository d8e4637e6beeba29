//! The schema registry's REST API, as the Confluent Schema Registry serves it: the same paths,
//! query parameters, bodies, content type (`application/vnd.schemaregistry.v1+json`) and error
//! shape (`{"error_code": 40401, "message": "..."}`), so Confluent's clients and serializers of
//! every language work against any Eddy broker.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use eddy_broker::Broker;
use eddy_schema::api::{RegistryReply, RegistryRequest, VersionView};
use eddy_schema::registry::SCHEMA_BYTES_MAX;
use eddy_schema::{Compatibility, RegistryError, SchemaInput, SchemaReference, SchemaType, StoredSchema, VersionSpec};
use serde::Deserialize;
use serde_json::{Value, json};

/// The registry API's media type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A request body may hold the largest schema, escaped as a JSON string, and its references.
const BODY_BYTES_MAX: usize = 4 * SCHEMA_BYTES_MAX;

/// The registry's routes.
pub fn routes(broker: Broker) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/schemas/types", get(|| async { reply(json!(SchemaType::ALL.map(SchemaType::name))) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(raw_version))
        .route("/subjects/{subject}/versions/{version}/referencedby", get(referenced_by))
        .route("/config", get(global_config).put(set_global_config).delete(delete_global_config))
        .route("/config/{subject}", get(subject_config).put(set_subject_config).delete(delete_subject_config))
        .route("/compatibility/subjects/{subject}/versions", post(check_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(check_version))
        .route("/mode", get(|| async { reply(json!({"mode": "READWRITE"})) }))
        .route("/mode/{subject}", get(|| async { reply(json!({"mode": "READWRITE"})) }))
        .fallback(|| async { ApiError::status(StatusCode::NOT_FOUND, "HTTP 404 Not Found") })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .route_layer(axum::middleware::from_fn_with_state(broker.clone(), crate::auth::authorize_registry))
        .with_state(broker)
}

/// A registry error as the API shapes it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn status(status: StatusCode, message: &str) -> ApiError {
        ApiError { status, code: u32::from(status.as_u16()), message: message.to_string() }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError { status, code: e.error_code(), message: e.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.code, "message": self.message}).to_string();
        (self.status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
    }
}

fn reply(value: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], value.to_string()).into_response()
}

type Answer = Result<Response, ApiError>;
type Params = Query<HashMap<String, String>>;

/// A boolean query parameter (`?deleted=true`); absent is false.
fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => {
            Err(RegistryError::InvalidRequest(format!("query parameter {name}={v} is not true or false")).into())
        }
    }
}

async fn call(broker: &Broker, request: RegistryRequest) -> Result<RegistryReply, ApiError> {
    Ok(broker.registry(request).await?)
}

fn unexpected(reply: RegistryReply) -> ApiError {
    RegistryError::Store(format!("unexpected registry reply {reply:?}")).into()
}

fn schema_id(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| RegistryError::InvalidRequest(format!("schema id {text:?} is not a number")).into())
}

/// A schema's fields as the API shows them: `schemaType` only when not AVRO, `references` only
/// when there are some.
fn schema_fields(schema: &StoredSchema, into: &mut serde_json::Map<String, Value>) {
    if schema.schema_type != SchemaType::Avro {
        into.insert("schemaType".into(), json!(schema.schema_type.name()));
    }
    if !schema.references.is_empty() {
        let references: Vec<Value> = schema
            .references
            .iter()
            .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
            .collect();
        into.insert("references".into(), Value::Array(references));
    }
    into.insert("schema".into(), json!(schema.schema));
}

fn version_json(view: &VersionView) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("subject".into(), json!(view.subject));
    map.insert("version".into(), json!(view.version));
    map.insert("id".into(), json!(view.id));
    schema_fields(&view.schema, &mut map);
    Value::Object(map)
}

async fn schema_by_id(State(broker): State<Broker>, Path(id): Path<String>) -> Answer {
    match call(&broker, RegistryRequest::SchemaById { id: schema_id(&id)? }).await? {
        RegistryReply::Schema { schema, .. } => {
            let mut map = serde_json::Map::new();
            schema_fields(&schema, &mut map);
            Ok(reply(Value::Object(map)))
        }
        other => Err(unexpected(other)),
    }
}

async fn raw_schema_by_id(State(broker): State<Broker>, Path(id): Path<String>) -> Answer {
    match call(&broker, RegistryRequest::SchemaById { id: schema_id(&id)? }).await? {
        RegistryReply::Schema { schema, .. } => Ok(raw(schema.schema)),
        other => Err(unexpected(other)),
    }
}

/// A schema's own text as the body (`.../schema` endpoints).
fn raw(text: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

async fn versions_of_id(State(broker): State<Broker>, Path(id): Path<String>, Query(params): Params) -> Answer {
    let request = RegistryRequest::SubjectVersionsOfId { id: schema_id(&id)?, deleted: flag(&params, "deleted")? };
    match call(&broker, request).await? {
        RegistryReply::SubjectVersions(pairs) => Ok(reply(json!(
            pairs.iter().map(|(subject, version)| json!({"subject": subject, "version": version})).collect::<Vec<_>>()
        ))),
        other => Err(unexpected(other)),
    }
}

async fn subjects_of_id(State(broker): State<Broker>, Path(id): Path<String>, Query(params): Params) -> Answer {
    let request = RegistryRequest::SubjectVersionsOfId { id: schema_id(&id)?, deleted: flag(&params, "deleted")? };
    match call(&broker, request).await? {
        RegistryReply::SubjectVersions(pairs) => {
            let mut subjects: Vec<String> = pairs.into_iter().map(|(subject, _)| subject).collect();
            subjects.dedup();
            Ok(reply(json!(subjects)))
        }
        other => Err(unexpected(other)),
    }
}

async fn subjects(State(broker): State<Broker>, Query(params): Params) -> Answer {
    let request = RegistryRequest::Subjects {
        deleted: flag(&params, "deleted")?,
        prefix: params.get("subjectPrefix").filter(|p| !p.is_empty() && *p != ":*:").cloned(),
    };
    match call(&broker, request).await? {
        RegistryReply::Subjects(subjects) => Ok(reply(json!(subjects))),
        other => Err(unexpected(other)),
    }
}

async fn versions(State(broker): State<Broker>, Path(subject): Path<String>, Query(params): Params) -> Answer {
    match call(&broker, RegistryRequest::Versions { subject, deleted: flag(&params, "deleted")? }).await? {
        RegistryReply::Versions(versions) => Ok(reply(json!(versions))),
        other => Err(unexpected(other)),
    }
}

async fn get_version(broker: &Broker, subject: String, version: &str, deleted: bool) -> Result<VersionView, ApiError> {
    let version = VersionSpec::parse(version)?;
    match call(broker, RegistryRequest::Version { subject, version, deleted }).await? {
        RegistryReply::Version(view) => Ok(view),
        other => Err(unexpected(other)),
    }
}

async fn version(
    State(broker): State<Broker>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let view = get_version(&broker, subject, &version, flag(&params, "deleted")?).await?;
    Ok(reply(version_json(&view)))
}

async fn raw_version(
    State(broker): State<Broker>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let view = get_version(&broker, subject, &version, flag(&params, "deleted")?).await?;
    Ok(raw(view.schema.schema))
}

async fn referenced_by(State(broker): State<Broker>, Path((subject, version)): Path<(String, String)>) -> Answer {
    let version = VersionSpec::parse(&version)?;
    match call(&broker, RegistryRequest::ReferencedBy { subject, version }).await? {
        RegistryReply::Ids(ids) => Ok(reply(json!(ids))),
        other => Err(unexpected(other)),
    }
}

/// The body of a registration, lookup or compatibility check.
#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<ReferenceBody>,
}

#[derive(Deserialize)]
struct ReferenceBody {
    name: String,
    subject: String,
    version: i64,
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: 422,
        message: format!("Unprocessable Entity: {e}"),
    })
}

fn schema_input(body: &Bytes) -> Result<SchemaInput, ApiError> {
    let body: SchemaBody = json_body(body)?;
    let schema_type = match body.schema_type.as_deref() {
        None | Some("") => SchemaType::Avro,
        Some(name) => SchemaType::parse(name)
            .ok_or_else(|| RegistryError::InvalidSchema(format!("unknown schema type {name:?}")))?,
    };
    let references = body
        .references
        .into_iter()
        .map(|r| {
            let version = u32::try_from(r.version).ok().filter(|v| *v >= 1).ok_or_else(|| {
                RegistryError::InvalidSchema(format!("reference {:?} has version {}", r.name, r.version))
            })?;
            Ok(SchemaReference { name: r.name, subject: r.subject, version })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(SchemaInput { schema_type, schema: body.schema, references })
}

async fn register(State(broker): State<Broker>, Path(subject): Path<String>, body: Bytes) -> Answer {
    let schema = schema_input(&body)?;
    match call(&broker, RegistryRequest::Register { subject, schema }).await? {
        RegistryReply::Registered { id, version } => Ok(reply(json!({"id": id, "version": version}))),
        other => Err(unexpected(other)),
    }
}

async fn lookup(
    State(broker): State<Broker>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    let schema = schema_input(&body)?;
    let request = RegistryRequest::Lookup { subject, schema, deleted: flag(&params, "deleted")? };
    match call(&broker, request).await? {
        RegistryReply::Version(view) => Ok(reply(version_json(&view))),
        other => Err(unexpected(other)),
    }
}

async fn delete_subject(State(broker): State<Broker>, Path(subject): Path<String>, Query(params): Params) -> Answer {
    let request = RegistryRequest::DeleteSubject { subject, permanent: flag(&params, "permanent")? };
    match call(&broker, request).await? {
        RegistryReply::Deleted(versions) => Ok(reply(json!(versions))),
        other => Err(unexpected(other)),
    }
}

async fn delete_version(
    State(broker): State<Broker>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let version = VersionSpec::parse(&version)?;
    let request = RegistryRequest::DeleteVersion { subject, version, permanent: flag(&params, "permanent")? };
    match call(&broker, request).await? {
        RegistryReply::Deleted(versions) => Ok(reply(json!(versions.first()))),
        other => Err(unexpected(other)),
    }
}

async fn get_config(broker: &Broker, subject: Option<String>, params: &HashMap<String, String>) -> Answer {
    let request = RegistryRequest::GetCompatibility { subject, default_to_global: flag(params, "defaultToGlobal")? };
    match call(broker, request).await? {
        RegistryReply::Compatibility(level) => Ok(reply(json!({"compatibilityLevel": level.name()}))),
        other => Err(unexpected(other)),
    }
}

async fn global_config(State(broker): State<Broker>, Query(params): Params) -> Answer {
    get_config(&broker, None, &params).await
}

async fn subject_config(State(broker): State<Broker>, Path(subject): Path<String>, Query(params): Params) -> Answer {
    get_config(&broker, Some(subject), &params).await
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
}

async fn set_config(broker: &Broker, subject: Option<String>, body: &Bytes) -> Answer {
    let body: ConfigBody = json_body(body)?;
    let name = body.compatibility.unwrap_or_default();
    let compatibility =
        Compatibility::parse(&name).ok_or_else(|| RegistryError::InvalidCompatibilityLevel(name.clone()))?;
    match call(broker, RegistryRequest::SetCompatibility { subject, compatibility }).await? {
        RegistryReply::Compatibility(level) => Ok(reply(json!({"compatibility": level.name()}))),
        other => Err(unexpected(other)),
    }
}

async fn set_global_config(State(broker): State<Broker>, body: Bytes) -> Answer {
    set_config(&broker, None, &body).await
}

async fn set_subject_config(State(broker): State<Broker>, Path(subject): Path<String>, body: Bytes) -> Answer {
    set_config(&broker, Some(subject), &body).await
}

async fn delete_config(broker: &Broker, subject: Option<String>) -> Answer {
    match call(broker, RegistryRequest::DeleteCompatibility { subject }).await? {
        RegistryReply::Compatibility(previous) => Ok(reply(json!({"compatibilityLevel": previous.name()}))),
        other => Err(unexpected(other)),
    }
}

async fn delete_global_config(State(broker): State<Broker>) -> Answer {
    delete_config(&broker, None).await
}

async fn delete_subject_config(State(broker): State<Broker>, Path(subject): Path<String>) -> Answer {
    delete_config(&broker, Some(subject)).await
}

async fn check(
    broker: &Broker,
    subject: String,
    version: Option<VersionSpec>,
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Answer {
    let schema = schema_input(body)?;
    let verbose = flag(params, "verbose")?;
    match call(broker, RegistryRequest::CheckCompatibility { subject, version, schema }).await? {
        RegistryReply::Compatible { messages } => {
            let mut answer = json!({"is_compatible": messages.is_empty()});
            if verbose {
                answer["messages"] = json!(messages);
            }
            Ok(reply(answer))
        }
        other => Err(unexpected(other)),
    }
}

async fn check_all(
    State(broker): State<Broker>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    check(&broker, subject, None, &params, &body).await
}

async fn check_version(
    State(broker): State<Broker>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Answer {
    let version = VersionSpec::parse(&version)?;
    check(&broker, subject, Some(version), &params, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> (StatusCode, u32, String) {
        match schema_input(&Bytes::from(body.to_string())) {
            Ok(input) => panic!("{body} was accepted as {input:?}"),
            Err(e) => (e.status, e.code, e.message),
        }
    }

    #[test]
    fn bodies_are_read_as_the_api_reads_them() {
        let avro = schema_input(&Bytes::from_static(br#"{"schema": "\"string\""}"#)).unwrap();
        assert_eq!((avro.schema_type, avro.schema.as_str()), (SchemaType::Avro, "\"string\""));
        let proto = schema_input(&Bytes::from_static(
            br#"{"schema": "x", "schemaType": "protobuf", "references": [{"name": "a.proto", "subject": "a", "version": 2}]}"#,
        ))
        .unwrap();
        assert_eq!(proto.schema_type, SchemaType::Protobuf);
        assert_eq!(proto.references, vec![SchemaReference { name: "a.proto".into(), subject: "a".into(), version: 2 }]);
    }

    #[test]
    fn bad_bodies_get_the_apis_codes() {
        assert_eq!(refused("{not json").0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused(r#"{"schemaType": "AVRO"}"#).1, 422, "no schema");
        let (status, code, message) = refused(r#"{"schema": "x", "schemaType": "XML"}"#);
        assert_eq!((status, code), (StatusCode::UNPROCESSABLE_ENTITY, 42201));
        assert!(message.contains("unknown schema type"), "{message}");
        let (_, code, _) = refused(r#"{"schema": "x", "references": [{"name": "n", "subject": "s", "version": 0}]}"#);
        assert_eq!(code, 42201);
    }
}
