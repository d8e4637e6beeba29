//! GraphQL at `/graphql`: queries of topics, groups and records, a `produce` mutation, and a
//! `records` subscription pushing records as they commit, over WebSocket in both the
//! `graphql-transport-ws` protocol and the legacy `graphql-ws` one (Apollo's
//! subscriptions-transport-ws). A browser asking for `/graphql` gets GraphiQL, served from the
//! broker itself (no CDN: it works on a network without internet access).
//!
//! Like the REST API, the schema is a client of the cluster: any broker answers for every topic
//! and group. Errors carry the cluster's reason code (`NOT_LEADER`, `UNKNOWN_TOPIC`, ...) in
//! their `code` extension.

mod subscription;
pub mod types;

use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Context, ErrorExtensions, Object, Schema};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use eddy_client::credentials::Scoped;
use eddy_client::{ClientError, partition_for_key, v1};

pub use subscription::{BUFFER_RECORDS, SLOW_SUBSCRIBER, SubscriptionRoot};
use types::{Cluster, Group, Header, Long, Produced, Record, Topic, ValueEncoding};

use crate::rest::Gateway;
use crate::rest::records::idempotent_producer_id;

/// The schema served at `/graphql`.
pub type EddySchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

type GqlResult<T> = async_graphql::Result<T>;

/// Most records one `records` query returns.
pub const RECORDS_LIMIT_MAX: u32 = 10_000;

/// The longest a `records` query waits for a record.
const WAIT_MS_MAX: u32 = 30_000;

/// Deepest query accepted (the schema's own nesting is at most five levels).
const DEPTH_MAX: usize = 16;

/// Largest query accepted, by async-graphql's complexity count (one per field).
const COMPLEXITY_MAX: usize = 1_000;

/// The schema, answering through `gateway`.
pub fn schema(gateway: Gateway) -> EddySchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(gateway)
        .extension(CallerCredentials)
        .limit_depth(DEPTH_MAX)
        .limit_complexity(COMPLEXITY_MAX)
        .finish()
}

/// What `/graphql` answers with.
#[derive(Clone)]
struct Graphql {
    schema: EddySchema,
    /// Authenticates WebSocket connections from their first message.
    broker: eddy_broker::Broker,
}

/// `/graphql` (queries and mutations by POST or GET, subscriptions by WebSocket upgrade,
/// GraphiQL for a browser) and GraphiQL's assets.
pub fn routes(gateway: Gateway, broker: eddy_broker::Broker) -> Router {
    let schema = schema(gateway);
    Router::new()
        .route("/graphql", get(get_graphql).post(post_graphql))
        .route("/graphql/assets/{file}", get(asset))
        .with_state(Graphql { schema, broker })
}

/// Runs every operation of a WebSocket connection with the credentials it was opened with
/// (the connection's data holds them): its calls to the cluster carry them, as an HTTP
/// request's do.
struct CallerCredentials;

impl async_graphql::extensions::ExtensionFactory for CallerCredentials {
    fn create(&self) -> Arc<dyn async_graphql::extensions::Extension> {
        Arc::new(CallerCredentials)
    }
}

#[async_graphql::async_trait::async_trait]
impl async_graphql::extensions::Extension for CallerCredentials {
    async fn execute(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: async_graphql::extensions::NextExecute<'_>,
    ) -> async_graphql::Response {
        match ctx.data_opt::<Scoped>() {
            Some(scoped) => eddy_client::credentials::scope(scoped.clone(), next.run(ctx, operation_name)).await,
            None => next.run(ctx, operation_name).await,
        }
    }

    fn subscribe<'s>(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        stream: futures::stream::BoxStream<'s, async_graphql::Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures::stream::BoxStream<'s, async_graphql::Response> {
        use futures::StreamExt as _;
        let stream = next.run(ctx, stream);
        match ctx.data_opt::<Scoped>() {
            Some(scoped) => eddy_client::credentials::scope_stream(scoped.clone(), stream).boxed(),
            None => stream,
        }
    }
}

/// The credentials in a WebSocket connection's first message (`connection_init`): an
/// `Authorization` field (any case), or one in a `headers` object, as GraphQL clients send
/// them.
pub fn init_authorization(payload: &serde_json::Value) -> Option<String> {
    let field = |object: &serde_json::Value| {
        object
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?
            .1
            .as_str()
            .map(str::to_string)
    };
    field(payload).or_else(|| payload.get("headers").and_then(field))
}

/// Longest reason a WebSocket close frame carries: a control frame's payload is at most 125
/// bytes, two of them the close code (RFC 6455, 5.5).
const CLOSE_REASON_MAX_BYTES: usize = 123;

/// `text` cut to fit a close frame, on a character boundary.
fn close_reason(text: &str) -> String {
    if text.len() <= CLOSE_REASON_MAX_BYTES {
        return text.to_string();
    }
    let mut end = CLOSE_REASON_MAX_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The credentials a WebSocket connection's operations run with: those of its upgrade request
/// when it carried any (the authentication middleware checked them), else those of its
/// `connection_init` message, checked here (a refusal closes the connection with the reason).
async fn connection_credentials(
    broker: eddy_broker::Broker,
    at_upgrade: Option<Scoped>,
    payload: serde_json::Value,
) -> async_graphql::Result<async_graphql::Data> {
    let mut data = async_graphql::Data::default();
    if let Some(scoped) = at_upgrade {
        data.insert(scoped);
        return Ok(data);
    }
    let authorization = init_authorization(&payload);
    let view = broker.view();
    if let Err(e) = broker.auth().authenticate_parts(authorization.as_deref(), None, &view.metadata.security) {
        return Err(async_graphql::Error::new(close_reason(&format!("{}: {e}", e.code().as_str()))));
    }
    data.insert(Scoped::authorization(authorization.as_deref()));
    Ok(data)
}

/// A `BAD_REQUEST`-coded error.
fn invalid(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("code", "INVALID_ARGUMENT"))
}

/// A client error as a GraphQL error: the message, and the reason in the `code` extension.
fn error_of(error: ClientError) -> async_graphql::Error {
    let code = error.reason().to_string();
    let retriable = error.is_retriable();
    async_graphql::Error::new(error.to_string()).extend_with(move |_, e| {
        e.set("code", code.as_str());
        e.set("retriable", retriable);
    })
}

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// Every topic.
    async fn topics(&self, ctx: &Context<'_>) -> GqlResult<Vec<Topic>> {
        let gateway = ctx.data_unchecked::<Gateway>();
        let topics = gateway.client.list_topics().await.map_err(error_of)?;
        Ok(topics
            .into_iter()
            .map(|t| Topic {
                name: t.name,
                partition_count: t.partitions,
                replication_factor: t.replication_factor,
                described: Default::default(),
            })
            .collect())
    }

    /// One topic with its partitions and offsets; null when there is no such topic.
    async fn topic(&self, ctx: &Context<'_>, name: String) -> GqlResult<Option<Topic>> {
        let gateway = ctx.data_unchecked::<Gateway>();
        match gateway.client.describe_topic(&name).await {
            Ok(description) => Ok(Some(Topic::from_description(description))),
            Err(e) if e.code() == Some(eddy_client::Reason::UnknownTopic) => Ok(None),
            Err(e) => Err(error_of(e)),
        }
    }

    /// The cluster: brokers and controller.
    async fn cluster(&self, ctx: &Context<'_>) -> GqlResult<Cluster> {
        let gateway = ctx.data_unchecked::<Gateway>();
        Ok(gateway.client.describe_cluster().await.map_err(error_of)?.into())
    }

    /// Every consumer group, with members and lag when selected.
    async fn groups(&self, ctx: &Context<'_>) -> GqlResult<Vec<Group>> {
        let gateway = ctx.data_unchecked::<Gateway>();
        let groups = gateway.client.list_groups().await.map_err(error_of)?;
        Ok(groups
            .into_iter()
            .map(|g| Group { group_id: g.group_id, state: g.state, described: Default::default() })
            .collect())
    }

    /// One consumer group; null when the cluster knows no such group.
    async fn group(&self, ctx: &Context<'_>, id: String) -> GqlResult<Option<Group>> {
        let gateway = ctx.data_unchecked::<Gateway>();
        let described = gateway.client.describe_group(&id).await.map_err(error_of)?;
        // The coordinator describes a group it never heard of as dead and empty (as Kafka does).
        if described.state == "dead" && described.members.is_empty() && described.offsets.is_empty() {
            return Ok(None);
        }
        Ok(Some(Group {
            group_id: described.group_id.clone(),
            state: described.state.clone(),
            described: Arc::new(tokio::sync::OnceCell::new_with(Some(described))),
        }))
    }

    /// Records of one partition from `offset` (the oldest stored when omitted), at most
    /// `limit` (100 by default, 10,000 at most). With `waitMs`, waits up to that long for a
    /// record when there is none yet.
    async fn records(
        &self,
        ctx: &Context<'_>,
        topic: String,
        partition: u32,
        offset: Option<Long>,
        limit: Option<u32>,
        wait_ms: Option<u32>,
    ) -> GqlResult<Vec<Record>> {
        let gateway = ctx.data_unchecked::<Gateway>();
        let (limit, wait_ms) = (limit.unwrap_or(100), wait_ms.unwrap_or(0));
        if limit == 0 || limit > RECORDS_LIMIT_MAX {
            return Err(invalid(format!("limit must be 1 to {RECORDS_LIMIT_MAX}")));
        }
        let offset = match offset {
            Some(offset) => offset.offset("offset")?,
            None => {
                gateway
                    .client
                    .list_offsets(&topic, partition, v1::OffsetSpec::Earliest, 0)
                    .await
                    .map_err(error_of)?
                    .offset
            }
        };
        let request = v1::FetchRequest {
            topic: topic.clone(),
            partition,
            offset,
            max_bytes: 0,
            max_records: limit,
            max_wait_ms: wait_ms.min(WAIT_MS_MAX),
            read_from_follower: false,
        };
        let answer = gateway.client.fetch(request).await.map_err(error_of)?;
        let topic: Arc<str> = topic.into();
        Ok(answer.records.into_iter().take(limit as usize).map(|r| Record::new(topic.clone(), partition, r)).collect())
    }
}

pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Appends one record and answers where it went. A record with a key goes to the key's
    /// partition (as every Eddy client picks it), one without to `partition` or the next in
    /// turn. With `idempotencyKey`, sending the same mutation again appends nothing more and
    /// answers the first append's offset (as the REST API's `Idempotency-Key`).
    #[allow(clippy::too_many_arguments)]
    async fn produce(
        &self,
        ctx: &Context<'_>,
        topic: String,
        key: Option<String>,
        value: String,
        encoding: Option<ValueEncoding>,
        headers: Option<Vec<Header>>,
        partition: Option<u32>,
        idempotency_key: Option<String>,
    ) -> GqlResult<Produced> {
        let gateway = ctx.data_unchecked::<Gateway>();
        let value = encoding.unwrap_or_default().decode(value, "value")?;
        let partitions = gateway.client.partition_count(&topic).await.map_err(error_of)?;
        let partition = match (partition, &key) {
            (Some(p), _) if p >= partitions => {
                return Err(error_of(ClientError::answer(
                    eddy_client::Reason::UnknownPartition,
                    format!("topic {topic:?} has no partition {p} (it has {partitions})"),
                )));
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key.as_bytes(), partitions),
            (None, None) => gateway.next_partition(partitions),
        };
        if let Some(key) = &idempotency_key
            && (key.is_empty() || key.len() > 255)
        {
            return Err(invalid("idempotencyKey must have 1 to 255 characters"));
        }
        let record = v1::Record {
            key: key.map(|k| k.into_bytes().into()),
            value,
            headers: headers
                .into_iter()
                .flatten()
                .map(|h| v1::Header { key: h.name, value: h.value.into_bytes().into() })
                .collect(),
            timestamp_ms: 0,
        };
        let request = v1::ProduceRequest {
            topic: topic.clone(),
            partition,
            records: vec![record],
            acks: v1::Acks::All as i32,
            producer: idempotency_key.map(|key| v1::ProducerIdentity {
                producer_id: idempotent_producer_id(&topic, &key),
                epoch: 0,
                first_sequence: 0,
            }),
            timeout_ms: 0,
        };
        let answer = gateway.client.produce(request).await.map_err(error_of)?;
        Ok(Produced {
            topic,
            partition: answer.partition,
            offset: answer.base_offset.into(),
            duplicate: answer.duplicate,
        })
    }
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, GraphiQL for a browser, or a query in
/// the URL (GraphQL over HTTP).
async fn get_graphql(State(Graphql { schema, broker }): State<Graphql>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if parts.headers.contains_key(header::UPGRADE) {
        let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
            Ok(protocol) => protocol,
            Err(rejection) => return rejection.into_response(),
        };
        // Taken in the request's task, which the authentication middleware scoped to the
        // upgrade request's credentials (none when it carried none).
        let at_upgrade = eddy_client::credentials::scoped();
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        return upgrade
            .protocols(ALL_WEBSOCKET_PROTOCOLS)
            .on_upgrade(move |socket| {
                GraphQLWebSocket::new(socket, schema, protocol)
                    .on_connection_init(move |payload| connection_credentials(broker, at_upgrade, payload))
                    .serve()
            })
            .into_response();
    }
    if wants_html(&parts.headers) && !parts.uri.query().is_some_and(|q| q.contains("query=")) {
        return graphiql();
    }
    let request = <GraphQLRequest as FromRequest<()>>::from_request(Request::from_parts(parts, body), &()).await;
    execute(&schema, request).await
}

/// `POST /graphql`: a query or mutation.
async fn post_graphql(
    State(Graphql { schema, .. }): State<Graphql>,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    execute(&schema, request).await
}

/// Runs a request; one that cannot be read is answered 400 with a GraphQL error saying why.
async fn execute(schema: &EddySchema, request: Result<GraphQLRequest, GraphQLRejection>) -> Response {
    match request {
        Ok(request) => GraphQLResponse::from(schema.execute(request.into_inner()).await).into_response(),
        Err(rejection) => {
            let message = match rejection.0 {
                async_graphql::ParseRequestError::InvalidRequest(e) => {
                    format!("the request is not a GraphQL request: {e}")
                }
                other => format!("the request cannot be read: {other}"),
            };
            let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": "INVALID_REQUEST"}}]});
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
    }
}

/// Whether a request comes from a browser navigating to the page.
fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|accept| accept.contains("text/html"))
}

/// The GraphiQL page: its scripts and styles come from [`asset`], subscriptions go over the same
/// URL.
fn graphiql() -> Response {
    Html(include_str!("../../assets/graphiql/graphiql.html")).into_response()
}

/// GraphiQL's files, built into the binary (`assets/graphiql/README.md` says what they are):
/// name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("graphiql.min.js", "text/javascript", include_bytes!("../../assets/graphiql/graphiql.min.js")),
    ("graphiql.min.css", "text/css", include_bytes!("../../assets/graphiql/graphiql.min.css")),
    ("react.production.min.js", "text/javascript", include_bytes!("../../assets/graphiql/react.production.min.js")),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    ("graphql-ws.min.js", "text/javascript", include_bytes!("../../assets/graphiql/graphql-ws.min.js")),
];

/// `GET /graphql/assets/{file}`.
async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/graphql.md shows the schema as served: regenerate the block with
    /// `EDDY_WRITE_SCHEMA=1 cargo test -p eddy-http documented_schema`.
    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_reason("UNAUTHENTICATED: no"), "UNAUTHENTICATED: no");
        let long = format!("UNAUTHENTICATED: {}", "é".repeat(200));
        let cut = close_reason(&long);
        assert!(cut.len() <= CLOSE_REASON_MAX_BYTES && cut.starts_with("UNAUTHENTICATED: é") && cut.ends_with('…'));
    }

    #[test]
    fn credentials_come_from_the_init_payload() {
        let auth = |v: serde_json::Value| init_authorization(&v);
        assert_eq!(auth(serde_json::json!({"Authorization": "Basic x"})).as_deref(), Some("Basic x"));
        assert_eq!(auth(serde_json::json!({"authorization": "Bearer t"})).as_deref(), Some("Bearer t"));
        assert_eq!(auth(serde_json::json!({"headers": {"AUTHORIZATION": "Bearer t"}})).as_deref(), Some("Bearer t"));
        assert_eq!(auth(serde_json::json!({"Authorization": 7})), None);
        assert_eq!(auth(serde_json::json!(null)), None);
    }

    #[tokio::test]
    async fn the_documented_schema_is_the_served_one() {
        let client = eddy_client::Client::new(vec!["127.0.0.1:1".into()], eddy_client::ClientConfig::default());
        let sdl = schema(Gateway::new(Arc::new(client.expect("a client")))).sdl();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/graphql.md");
        let doc = std::fs::read_to_string(&path).expect("docs/graphql.md");
        let (start, end) = ("<!-- schema start -->\n```graphql\n", "```\n<!-- schema end -->");
        let from = doc.find(start).expect("the schema block's start") + start.len();
        let to = doc.find(end).expect("the schema block's end");
        if std::env::var_os("EDDY_WRITE_SCHEMA").is_some() {
            std::fs::write(&path, format!("{}{}{}", &doc[..from], sdl.trim_start(), &doc[to..])).expect("write");
            return;
        }
        assert_eq!(doc[from..to], *sdl.trim_start(), "docs/graphql.md's schema differs from the served one");
    }
}
