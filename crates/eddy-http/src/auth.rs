//! Authentication of HTTP requests, with the broker's authenticator: the same principals and
//! credentials as gRPC (`Authorization: Basic` with a user's password, or `Bearer` with an API
//! key). A request's credentials travel on with every call its handler makes to the cluster
//! (`eddy_client::with_authorization`), so the brokers authorize the REST and GraphQL APIs
//! with the caller's ACLs; the schema registry's routes are authorized here, per subject.

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eddy_auth::{Operation, Resource};
use eddy_broker::Broker;
use eddy_broker::auth::{Caller, Mechanism};
use eddy_broker::error::BrokerError;
use serde_json::json;

use crate::HttpPeer;
use crate::problem::Problem;

/// Authenticates the request (401 with problem+json when authentication is on and it proves
/// no one), then runs the handler with the caller known and its credentials passed on.
///
/// A caller that proved itself with a client certificate (over TLS with client certificates
/// requested) has no credentials to pass on: the handler's calls act for its principal
/// instead ([`eddy_client::with_principal`]), which the brokers accept from this broker's
/// certificate only.
///
/// A WebSocket upgrade of `/graphql` without credentials passes: browsers cannot set headers on
/// a WebSocket, so its credentials come in the connection's first message (see
/// [`crate::graphql`]).
pub async fn authenticate(State(broker): State<Broker>, mut request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let certificate = client_certificate(&request);
    if authorization.is_none() && certificate.is_none() && is_graphql_upgrade(&request) {
        return next.run(request).await;
    }
    let view = broker.view();
    let authenticated =
        broker.auth().authenticate_parts(authorization.as_deref(), certificate.as_deref(), &view.metadata.security);
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(e) => return unauthenticated(&e),
    };
    let by_certificate = authorization.is_none() && caller.mechanism == Mechanism::Certificate;
    let principal = caller.principal.to_string();
    request.extensions_mut().insert(caller);
    match by_certificate {
        true => eddy_client::with_principal(&principal, next.run(request)).await,
        false => eddy_client::with_authorization(authorization.as_deref(), next.run(request)).await,
    }
}

/// A 401 problem for `error`, with the challenge of the Basic scheme.
pub(crate) fn unauthenticated(error: &BrokerError) -> Response {
    let mut response = Problem::from_broker(error).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"eddy\""));
    response
}

/// The principal name of the client certificate the request's connection presented, if any.
fn client_certificate(request: &Request) -> Option<String> {
    let peer = request.extensions().get::<ConnectInfo<HttpPeer>>()?;
    let ConnectInfo(HttpPeer(peer)) = peer;
    peer.certificates.as_ref()?.first().and_then(eddy_tls::principal_of)
}

fn is_graphql_upgrade(request: &Request) -> bool {
    request.uri().path() == "/graphql" && request.headers().contains_key(header::UPGRADE)
}

/// Authorizes a schema registry request on its subject (or on the cluster, for the global
/// configuration), as Confluent's registry ACLs do: reads need READ, registering WRITE, deletes
/// DELETE, configuration changes ALTER. Refusals use the registry's error shape (40301).
pub async fn authorize_registry(State(broker): State<Broker>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else { return next.run(request).await };
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let subject = subject_of(request.uri().path());
    let method = request.method().clone();
    let needed = match (route.as_str(), subject.as_deref()) {
        (r, Some(subject)) if r.starts_with("/subjects/") || r.starts_with("/compatibility/") => {
            let operation = match (&method, r) {
                (&Method::DELETE, _) => Operation::Delete,
                (&Method::POST, "/subjects/{subject}/versions") => Operation::Write,
                _ => Operation::Read,
            };
            Some((Resource::subject(subject), operation))
        }
        ("/config/{subject}", Some(subject)) => {
            let operation = if method == Method::GET { Operation::Describe } else { Operation::Alter };
            Some((Resource::subject(subject), operation))
        }
        ("/config", _) => {
            let operation = if method == Method::GET { Operation::Describe } else { Operation::Alter };
            Some((Resource::cluster(), operation))
        }
        // Schemas by id, the subject list, types and modes: any authenticated caller.
        _ => None,
    };
    if let Some((resource, operation)) = needed {
        let view = broker.view();
        if let Err(e) = broker.auth().authorize(&caller, &view.metadata.security, &resource, operation) {
            let body = json!({"error_code": 40301, "message": e.to_string()}).to_string();
            return (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, crate::registry::CONTENT_TYPE)], body)
                .into_response();
        }
    }
    next.run(request).await
}

/// The subject a registry path names (`/subjects/{subject}/...`, `/config/{subject}`,
/// `/compatibility/subjects/{subject}/...`), percent-decoded.
fn subject_of(path: &str) -> Option<String> {
    let rest = path
        .strip_prefix("/subjects/")
        .or_else(|| path.strip_prefix("/config/"))
        .or_else(|| path.strip_prefix("/compatibility/subjects/"))?;
    let raw = rest.split('/').next().filter(|s| !s.is_empty())?;
    Some(percent_decode(raw))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The problem+json of a broker error.
impl Problem {
    pub fn from_broker(error: &BrokerError) -> Problem {
        Problem::new(error.code(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_found_in_registry_paths() {
        assert_eq!(subject_of("/subjects/orders-value/versions").as_deref(), Some("orders-value"));
        assert_eq!(subject_of("/config/a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(subject_of("/compatibility/subjects/x/versions/1").as_deref(), Some("x"));
        assert_eq!(subject_of("/subjects"), None);
        assert_eq!(subject_of("/schemas/ids/1"), None);
    }
}
