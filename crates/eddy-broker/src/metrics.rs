//! The broker's Prometheus metrics (names follow Prometheus conventions: `eddy_` prefix, base
//! units, `_total` counters). The exporter itself is installed by the `eddy` binary.

use std::time::Duration;

use crate::broker::Inner;

pub fn record_produce(topic: &str, records: usize, bytes: usize, latency: Duration) {
    metrics::counter!("eddy_records_in_total", "topic" => topic.to_string()).increment(records as u64);
    metrics::counter!("eddy_bytes_in_total", "topic" => topic.to_string()).increment(bytes as u64);
    metrics::histogram!("eddy_produce_latency_seconds").record(latency.as_secs_f64());
}

/// A request refused or failed, by API, topic and reason code (`eddy_request_errors_total`).
/// A name that is no topic of the cluster is not a label (anyone could make up millions).
pub fn record_error(api: &'static str, topic: &str, reason: eddy_proto::Reason) {
    use eddy_proto::Reason;
    let topic = match reason {
        Reason::UnknownTopic | Reason::InvalidRequest | Reason::InternalTopic => "",
        _ => topic,
    };
    metrics::counter!(
        "eddy_request_errors_total",
        "api" => api,
        "topic" => topic.to_string(),
        "reason" => reason.as_str(),
    )
    .increment(1);
}

pub fn record_commit(latency: Duration) {
    metrics::histogram!("eddy_raft_commit_latency_seconds").record(latency.as_secs_f64());
}

pub fn record_fetch(topic: &str, records: usize, bytes: usize) {
    metrics::counter!("eddy_records_out_total", "topic" => topic.to_string()).increment(records as u64);
    metrics::counter!("eddy_bytes_out_total", "topic" => topic.to_string()).increment(bytes as u64);
}

pub(crate) fn record_broker_gauges(inner: &Inner, partitions_led: usize) {
    metrics::gauge!("eddy_partitions_led").set(partitions_led as f64);
    let replicas = inner.replicas.all();
    metrics::gauge!("eddy_partition_replicas").set(replicas.len() as f64);
    for replica in replicas {
        let view = *replica.view.borrow();
        let labels = [("topic", replica.topic.clone()), ("partition", replica.partition.to_string())];
        metrics::gauge!("eddy_partition_high_watermark", &labels).set(view.high_watermark as f64);
        metrics::gauge!("eddy_partition_log_start_offset", &labels).set(view.log_start_offset as f64);
        metrics::gauge!("eddy_partition_retained_bytes", &labels).set(view.retained_bytes as f64);
        // Dead-letter topics (`<topic>.dlq`, see eddy_client::processing): the records waiting
        // for an operator, as this replica sees them (`max by (topic, partition)` across
        // replicas).
        if replica.topic.ends_with(".dlq") {
            let depth = view.high_watermark.saturating_sub(view.log_start_offset);
            metrics::gauge!("eddy_dlq_records", &labels).set(depth as f64);
        }
        let leadership = replica.leadership();
        metrics::gauge!("eddy_partition_is_leader", &labels).set(if leadership.is_self { 1.0 } else { 0.0 });
        metrics::gauge!("eddy_partition_raft_term", &labels).set(leadership.term as f64);
    }
}

/// Stops reporting a removed partition.
pub fn forget_partition(topic: &str, partition: u32) {
    let labels = [("topic", topic.to_string()), ("partition", partition.to_string())];
    metrics::gauge!("eddy_partition_high_watermark", &labels).set(f64::NAN);
    metrics::gauge!("eddy_partition_is_leader", &labels).set(0.0);
    if topic.ends_with(".dlq") {
        metrics::gauge!("eddy_dlq_records", &labels).set(f64::NAN);
    }
}

/// One charge to a principal's quota: what it cost (`eddy_quota_usage_bytes_total`,
/// `eddy_quota_usage_requests_total`) and, when the quota asked for a delay,
/// `eddy_quota_throttled_requests_total` and the delay in the `eddy_quota_throttle_seconds`
/// histogram, whose `_sum` is the time answers were held back. (A histogram rather than a
/// seconds counter: the `metrics` crate's counters count whole numbers.) Only principals with
/// that quota are recorded, so the label set is bounded by the configuration and the principals
/// the brokers authenticate.
pub fn record_quota(principal: &eddy_auth::Principal, kind: crate::quotas::QuotaKind, amount: u64, delay: Duration) {
    let labels = [("principal", principal.to_string()), ("quota", kind.as_str().to_string())];
    match kind {
        crate::quotas::QuotaKind::Requests => {
            metrics::counter!("eddy_quota_usage_requests_total", &labels).increment(amount);
        }
        crate::quotas::QuotaKind::ProduceBytes | crate::quotas::QuotaKind::FetchBytes => {
            metrics::counter!("eddy_quota_usage_bytes_total", &labels).increment(amount);
        }
    }
    if !delay.is_zero() {
        metrics::counter!("eddy_quota_throttled_requests_total", &labels).increment(1);
        metrics::histogram!("eddy_quota_throttle_seconds", &labels).record(delay.as_secs_f64());
    }
}
