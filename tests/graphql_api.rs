//! The GraphQL API, exercised by clients that are not Eddy's against a real three-broker
//! cluster (tests/python/graphql_api.py):
//!
//! - gql over HTTP, validating each document against the schema it fetched by introspection:
//!   topics, a topic's partitions and offsets, the cluster, the produce mutation (keys, headers,
//!   base64 values, an idempotency key retried through another broker), records read back
//!   through another broker, and errors carrying the cluster's reason codes;
//! - gql over WebSocket in both subscription protocols (graphql-transport-ws and the legacy
//!   graphql-ws): records from EARLIEST, from LATEST as they commit, from given offsets, filtered
//!   by header and by key, and as a consumer group member whose commits bring the group's lag to
//!   zero;
//! - a raw graphql-transport-ws subscriber (the `websockets` library) that stops reading is ended
//!   with SLOW_SUBSCRIBER after a bounded number of records, and resumes from the offsets the
//!   error names with nothing lost or repeated.

mod support;

use support::{Cluster, run_python};

#[test]
fn graphql_clients_query_produce_and_subscribe() {
    let cluster = Cluster::start(3);
    let url = |id: u64| format!("http://{}", cluster.node(id).http);
    let out = run_python("graphql_api.py", &["queries", &url(1), &url(2)]);
    eprintln!("queries: {out}");
    let out = run_python("graphql_api.py", &["subscriptions", &url(3)]);
    eprintln!("subscriptions: {out}");
    let out = run_python("graphql_api.py", &["slow", &url(2)]);
    eprintln!("slow subscriber: {out}");
}
