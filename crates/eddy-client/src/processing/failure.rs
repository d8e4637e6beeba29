//! The headers a failed record carries into the retry topics and the dead-letter topic, and the
//! topics' names.
//!
//! A record keeps its key, value and own headers; the processor adds the `eddy.*` headers below
//! (values are UTF-8 text, numbers in decimal). Replaying a dead letter strips them again.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// The topic the record was first read from.
pub const ORIGINAL_TOPIC: &str = "eddy.original.topic";
/// Its partition there.
pub const ORIGINAL_PARTITION: &str = "eddy.original.partition";
/// Its offset there.
pub const ORIGINAL_OFFSET: &str = "eddy.original.offset";
/// The consumer group whose handler failed.
pub const GROUP: &str = "eddy.group";
/// Attempts made so far, in place and in retry topics together.
pub const ATTEMPTS: &str = "eddy.attempts";
/// The first attempt's error.
pub const FIRST_ERROR: &str = "eddy.error.first";
/// The last attempt's error.
pub const LAST_ERROR: &str = "eddy.error.last";
/// When the first attempt failed (ms since the Unix epoch).
pub const FIRST_FAILURE_MS: &str = "eddy.error.first.timestamp";
/// When the last attempt failed (ms since the Unix epoch).
pub const LAST_FAILURE_MS: &str = "eddy.error.last.timestamp";
/// In a retry topic: the record is not tried again before this time (ms since the Unix epoch).
pub const NOT_BEFORE_MS: &str = "eddy.retry.not.before";
/// In the dead-letter topic: `FATAL` (the handler said retrying cannot help) or
/// `RETRIES_EXHAUSTED`.
pub const DLQ_REASON: &str = "eddy.dlq.reason";

/// Every header the processor adds; replay removes them.
pub const ALL: [&str; 11] = [
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    GROUP,
    ATTEMPTS,
    FIRST_ERROR,
    LAST_ERROR,
    FIRST_FAILURE_MS,
    LAST_FAILURE_MS,
    NOT_BEFORE_MS,
    DLQ_REASON,
];

/// The dead-letter topic of `topic`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Retry topic `level` (from 1) of `topic`.
pub fn retry_topic(topic: &str, level: usize) -> String {
    format!("{topic}.retry.{level}")
}

/// For a retry topic's name, its main topic and level.
pub fn parse_retry_topic(name: &str) -> Option<(&str, usize)> {
    let (main, level) = name.rsplit_once(".retry.")?;
    let level: usize = level.parse().ok()?;
    (level >= 1 && !main.is_empty()).then_some((main, level))
}

/// Where a failed record came from and how it failed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub original_topic: String,
    pub original_partition: u32,
    pub original_offset: u64,
    pub group: String,
    pub attempts: u32,
    pub first_error: String,
    pub last_error: String,
    pub first_failure_ms: i64,
    pub last_failure_ms: i64,
}

impl Failure {
    /// Reads the failure headers of a retry topic's or dead-letter topic's record; `None` when
    /// one is missing or malformed.
    pub fn from_headers(headers: &[(String, Bytes)]) -> Option<Failure> {
        Some(Failure {
            original_topic: text(headers, ORIGINAL_TOPIC)?.to_string(),
            original_partition: text(headers, ORIGINAL_PARTITION)?.parse().ok()?,
            original_offset: text(headers, ORIGINAL_OFFSET)?.parse().ok()?,
            group: text(headers, GROUP)?.to_string(),
            attempts: text(headers, ATTEMPTS)?.parse().ok()?,
            first_error: text(headers, FIRST_ERROR)?.to_string(),
            last_error: text(headers, LAST_ERROR)?.to_string(),
            first_failure_ms: text(headers, FIRST_FAILURE_MS)?.parse().ok()?,
            last_failure_ms: text(headers, LAST_FAILURE_MS)?.parse().ok()?,
        })
    }

    /// `headers` without any failure header, then this failure's headers and `extra`.
    pub fn onto(&self, headers: &[(String, Bytes)], extra: &[(&str, String)]) -> Vec<(String, Bytes)> {
        let mut out = strip(headers);
        let fields: [(&str, String); 9] = [
            (ORIGINAL_TOPIC, self.original_topic.clone()),
            (ORIGINAL_PARTITION, self.original_partition.to_string()),
            (ORIGINAL_OFFSET, self.original_offset.to_string()),
            (GROUP, self.group.clone()),
            (ATTEMPTS, self.attempts.to_string()),
            (FIRST_ERROR, self.first_error.clone()),
            (LAST_ERROR, self.last_error.clone()),
            (FIRST_FAILURE_MS, self.first_failure_ms.to_string()),
            (LAST_FAILURE_MS, self.last_failure_ms.to_string()),
        ];
        for (name, value) in fields.into_iter().chain(extra.iter().map(|(n, v)| (*n, v.clone()))) {
            out.push((name.to_string(), Bytes::from(value)));
        }
        out
    }
}

/// `headers` without the processor's failure headers.
pub fn strip(headers: &[(String, Bytes)]) -> Vec<(String, Bytes)> {
    headers.iter().filter(|(name, _)| !ALL.contains(&name.as_str())).cloned().collect()
}

/// The value of header `name` as text, if present and UTF-8 (the last one wins).
pub fn text<'a>(headers: &'a [(String, Bytes)], name: &str) -> Option<&'a str> {
    headers.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Wall-clock time in ms since the Unix epoch (failure and retry times cross processes).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            original_topic: "payments".into(),
            original_partition: 2,
            original_offset: 41,
            group: "shipping".into(),
            attempts: 5,
            first_error: "gateway timeout".into(),
            last_error: "card declined".into(),
            first_failure_ms: 1_700_000_000_000,
            last_failure_ms: 1_700_000_009_000,
        }
    }

    #[test]
    fn failure_headers_round_trip_and_replace_older_ones() {
        let own = vec![("traceparent".to_string(), Bytes::from("00-ab-cd-01"))];
        let first = failure().onto(&own, &[(NOT_BEFORE_MS, "5".into())]);
        let later = Failure { attempts: 6, ..failure() }.onto(&first, &[(DLQ_REASON, "FATAL".into())]);
        assert_eq!(Failure::from_headers(&later), Some(Failure { attempts: 6, ..failure() }));
        assert_eq!(text(&later, "traceparent"), Some("00-ab-cd-01"));
        assert_eq!(text(&later, NOT_BEFORE_MS), None, "a retry's deadline does not follow the record on");
        assert_eq!(later.iter().filter(|(n, _)| n == ATTEMPTS).count(), 1);
        assert_eq!(strip(&later), own);
    }

    #[test]
    fn retry_topic_names_parse_back() {
        assert_eq!(parse_retry_topic(&retry_topic("orders", 2)), Some(("orders", 2)));
        assert_eq!(parse_retry_topic("a.retry.x.retry.1"), Some(("a.retry.x", 1)));
        assert_eq!(parse_retry_topic("orders.retry.0"), None);
        assert_eq!(parse_retry_topic("orders"), None);
        assert_eq!(dead_letter_topic("orders"), "orders.dlq");
    }

    #[test]
    fn missing_or_malformed_headers_are_no_failure() {
        let mut headers = failure().onto(&[], &[]);
        headers.retain(|(n, _)| n != GROUP);
        assert_eq!(Failure::from_headers(&headers), None);
        let mut bad = failure().onto(&[], &[]);
        bad.push((ATTEMPTS.to_string(), Bytes::from("many")));
        assert_eq!(Failure::from_headers(&bad), None);
    }
}
