//! The processor's metrics, through the `metrics` facade: they reach whatever recorder the
//! application installed (a Prometheus exporter serving /metrics, for instance) and cost nothing
//! without one. Labels: `group`, and `topic` (the main topic).

use std::time::Duration;

pub(super) fn handled(group: &str, topic: &str) {
    ::metrics::counter!("eddy_processor_records_handled_total", "group" => group.to_string(), "topic" => topic.to_string())
        .increment(1);
}

/// `via`: `in_place` (each wait before another attempt) or `retry_topic` (each record sent to a
/// retry topic).
pub(super) fn retried(group: &str, topic: &str, via: &'static str) {
    ::metrics::counter!("eddy_processor_records_retried_total", "group" => group.to_string(), "topic" => topic.to_string(), "via" => via)
        .increment(1);
}

/// `reason`: `FATAL` or `RETRIES_EXHAUSTED`.
pub(super) fn dead_lettered(group: &str, topic: &str, reason: &'static str) {
    ::metrics::counter!("eddy_processor_records_dead_lettered_total", "group" => group.to_string(), "topic" => topic.to_string(), "reason" => reason)
        .increment(1);
}

/// A handler call that returned an error.
pub(super) fn handler_failure(group: &str, topic: &str, fatal: bool) {
    let kind = if fatal { "fatal" } else { "retriable" };
    ::metrics::counter!("eddy_processor_handler_failures_total", "group" => group.to_string(), "topic" => topic.to_string(), "kind" => kind)
        .increment(1);
}

/// A record skipped because its event id was processed before.
pub(super) fn duplicate(group: &str, topic: &str) {
    ::metrics::counter!("eddy_processor_duplicates_skipped_total", "group" => group.to_string(), "topic" => topic.to_string())
        .increment(1);
}

pub(super) fn handler_duration(group: &str, topic: &str, took: Duration) {
    ::metrics::histogram!("eddy_processor_handler_duration_seconds", "group" => group.to_string(), "topic" => topic.to_string())
        .record(took.as_secs_f64());
}

/// Records read and not yet handled or dead-lettered.
pub(super) fn in_flight(group: &str, records: usize) {
    ::metrics::gauge!("eddy_processor_in_flight_records", "group" => group.to_string()).set(records as f64);
}
