//! `GET /asyncapi.json` and `/asyncapi.yaml`: the cluster's AsyncAPI 3.0 document, built from
//! the broker's metadata (brokers, topics and their configs) and the schema registry's latest
//! version of every subject (`eddy_schema::asyncapi`). `?topics=PATTERN` (`*` matches any run
//! of characters) keeps only the matching topics.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use eddy_broker::Broker;
use eddy_schema::api::{RegistryReply, RegistryRequest};
use eddy_schema::asyncapi::{Cluster, Server, Topic, document};

use crate::registry::ApiError;

/// The document's routes.
pub fn routes(broker: Broker) -> Router {
    Router::new().route("/asyncapi.json", get(as_json)).route("/asyncapi.yaml", get(as_yaml)).with_state(broker)
}

async fn build(
    broker: &Broker,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<serde_json::Value, ApiError> {
    let subjects = match broker.registry(RegistryRequest::Latest).await? {
        RegistryReply::Latest(views) => views,
        other => return Err(eddy_schema::RegistryError::Store(format!("unexpected registry reply {other:?}")).into()),
    };
    let view = broker.view();
    let metadata = &view.metadata;
    let servers = metadata
        .brokers
        .values()
        .filter(|b| !b.decommissioning)
        .map(|b| Server { id: b.id, address: b.address.clone(), rack: b.rack.clone() })
        .collect();
    let topics = metadata
        .topics
        .values()
        .map(|t| Topic {
            name: t.name.clone(),
            partitions: t.partitions.len() as u32,
            replication_factor: t.replication_factor,
            configs: t.configs.clone(),
        })
        .collect();
    // The registry is where this document was asked for.
    let registry_url = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(|host| format!("http://{host}"));
    let cluster = Cluster { name: broker.cluster_name().to_string(), servers, topics, subjects, registry_url };
    Ok(document(&cluster, params.get("topics").map(String::as_str)))
}

async fn as_json(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    respond(&broker, &headers, &params, false).await
}

async fn as_yaml(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    respond(&broker, &headers, &params, true).await
}

async fn respond(
    broker: &Broker,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    yaml: bool,
) -> Result<Response, ApiError> {
    let doc = build(broker, headers, params).await?;
    let failed = |e: String| ApiError::from(eddy_schema::RegistryError::Store(e));
    let (content_type, body) = if yaml {
        ("application/yaml", serde_norway::to_string(&doc).map_err(|e| failed(e.to_string()))?)
    } else {
        ("application/json", serde_json::to_string_pretty(&doc).map_err(|e| failed(e.to_string()))?)
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response())
}
