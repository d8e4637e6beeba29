//! Topic configuration: the keys a topic accepts, their defaults, and the one check of a value.
//!
//! Configs are kept in the replicated metadata as the strings they were set to (only keys set
//! explicitly are stored); [`TopicConfig`] is their typed reading, with defaults for the rest.

use std::collections::BTreeMap;

use eddy_schema::{SubjectNameStrategy, asyncapi};

use crate::error::ControllerError;

/// Milliseconds a record is kept (Kafka's `retention.ms`); -1 keeps records forever.
pub const RETENTION_MS: &str = "retention.ms";
/// Bytes a partition keeps (its oldest records go first); -1 is unlimited.
pub const RETENTION_BYTES: &str = "retention.bytes";
/// The largest record the topic accepts (key, value and headers as counted by
/// `eddy_proto::record_size_bytes`); at most the broker's `record_size_max_bytes`.
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// Replicas (the leader included) that must be live and caught up for an ACKS_ALL produce to be
/// accepted; fewer: NOT_ENOUGH_REPLICAS.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// Whether every record's value must name a registered schema (the wire format's magic byte
/// and id) and be a value of it: `true` or `false` (the default).
pub const VALUE_SCHEMA_VALIDATION: &str = "value.schema.validation";
/// The same for keys (records without a key pass).
pub const KEY_SCHEMA_VALIDATION: &str = "key.schema.validation";
/// Which subject a validated value's schema must be registered under: `topic` (`<topic>-value`,
/// the default), `record` (the record's full name) or `topic_record` (`<topic>-<full name>`);
/// Confluent's strategy class names are accepted too.
pub const VALUE_SUBJECT_NAME_STRATEGY: &str = "value.subject.name.strategy";
/// The same for keys (`<topic>-key` with `topic`).
pub const KEY_SUBJECT_NAME_STRATEGY: &str = "key.subject.name.strategy";

/// Seven days, as Kafka.
pub const RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;

/// Every key a topic accepts, with what it means (for error messages and docs).
pub const KEYS: [(&str, &str); 12] = [
    (RETENTION_MS, "milliseconds to keep records, -1 for ever (default 604800000, 7 days)"),
    (RETENTION_BYTES, "bytes to keep per partition, -1 for no limit (default -1)"),
    (MAX_MESSAGE_BYTES, "largest record in bytes, 1 to the broker's record_size_max_bytes (default: that limit)"),
    (
        MIN_INSYNC_REPLICAS,
        "live, caught-up replicas an acks=all produce needs, 1 to the replication factor (default 1)",
    ),
    (VALUE_SCHEMA_VALIDATION, "true: every value must carry a registered schema id and match it (default false)"),
    (KEY_SCHEMA_VALIDATION, "true: every key must carry a registered schema id and match it (default false)"),
    (
        VALUE_SUBJECT_NAME_STRATEGY,
        "subject of a validated value's schema: topic, record or topic_record (default topic)",
    ),
    (KEY_SUBJECT_NAME_STRATEGY, "subject of a validated key's schema: topic, record or topic_record (default topic)"),
    (asyncapi::DESCRIPTION, "the topic's description in the cluster's AsyncAPI document"),
    (asyncapi::SENDERS, "services that write to the topic, comma-separated (AsyncAPI send operations)"),
    (asyncapi::RECEIVERS, "services that read the topic, comma-separated (AsyncAPI receive operations)"),
    (asyncapi::SUBJECTS, "subjects of the event types the topic carries, comma-separated (AsyncAPI messages)"),
];

/// Longest value of a free-text config (the AsyncAPI ones), in bytes.
pub const TEXT_VALUE_LEN_MAX: usize = 4_096;

/// A topic's configuration, read from its stored configs with defaults for keys not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// `None`: records are kept for ever.
    pub retention_ms: Option<u64>,
    /// `None`: no limit.
    pub retention_bytes: Option<u64>,
    /// `None`: the broker's own limit.
    pub max_message_bytes: Option<u32>,
    pub min_insync_replicas: u32,
    /// How values are validated against the schema registry; `None`: they are not.
    pub value_schema: Option<SubjectNameStrategy>,
    /// How keys are validated; `None`: they are not.
    pub key_schema: Option<SubjectNameStrategy>,
}

impl TopicConfig {
    /// Reads stored configs (already validated when they were set).
    pub fn of(configs: &BTreeMap<String, String>) -> TopicConfig {
        let int = |key: &str| configs.get(key).and_then(|v| v.parse::<i64>().ok());
        let limit = |v: Option<i64>| match v {
            Some(v) if v >= 0 => Some(v as u64),
            _ => None,
        };
        TopicConfig {
            retention_ms: match int(RETENTION_MS) {
                None => Some(RETENTION_MS_DEFAULT as u64),
                v => limit(v),
            },
            retention_bytes: limit(int(RETENTION_BYTES)),
            max_message_bytes: int(MAX_MESSAGE_BYTES).and_then(|v| u32::try_from(v).ok()),
            min_insync_replicas: int(MIN_INSYNC_REPLICAS).and_then(|v| u32::try_from(v).ok()).unwrap_or(1),
            value_schema: validation(configs, VALUE_SCHEMA_VALIDATION, VALUE_SUBJECT_NAME_STRATEGY),
            key_schema: validation(configs, KEY_SCHEMA_VALIDATION, KEY_SUBJECT_NAME_STRATEGY),
        }
    }
}

/// The strategy of a validation turned on by `switch`, `None` when it is off.
fn validation(configs: &BTreeMap<String, String>, switch: &str, strategy: &str) -> Option<SubjectNameStrategy> {
    let on = configs.get(switch).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let strategy = configs.get(strategy).and_then(|v| SubjectNameStrategy::parse(v.trim()));
    on.then(|| strategy.unwrap_or(SubjectNameStrategy::Topic))
}

/// Checks a change of configs: every key known, every value valid for a topic of
/// `replication_factor` on brokers whose record limit is `record_size_max_bytes`.
pub fn validate(
    configs: &BTreeMap<String, String>,
    replication_factor: u32,
    record_size_max_bytes: u32,
) -> Result<(), ControllerError> {
    for (key, value) in configs {
        let bad = |why: String| ControllerError::InvalidConfig(format!("{key}={value:?}: {why}"));
        let int = || value.trim().parse::<i64>().map_err(|_| bad("not an integer".into()));
        match key.as_str() {
            RETENTION_MS | RETENTION_BYTES => {
                let v = int()?;
                if v < -1 || v == 0 {
                    return Err(bad("must be -1 (no limit) or a positive number".into()));
                }
            }
            MAX_MESSAGE_BYTES => {
                let v = int()?;
                if v < 1 || v > i64::from(record_size_max_bytes) {
                    return Err(bad(format!("must be between 1 and the broker's limit, {record_size_max_bytes}")));
                }
            }
            MIN_INSYNC_REPLICAS => {
                let v = int()?;
                if v < 1 || v > i64::from(replication_factor) {
                    return Err(bad(format!("must be between 1 and the replication factor, {replication_factor}")));
                }
            }
            VALUE_SCHEMA_VALIDATION | KEY_SCHEMA_VALIDATION => {
                if !["true", "false"].contains(&value.trim().to_ascii_lowercase().as_str()) {
                    return Err(bad("must be true or false".into()));
                }
            }
            asyncapi::DESCRIPTION | asyncapi::SENDERS | asyncapi::RECEIVERS | asyncapi::SUBJECTS => {
                if value.len() > TEXT_VALUE_LEN_MAX {
                    return Err(bad(format!("longer than {TEXT_VALUE_LEN_MAX} bytes")));
                }
            }
            VALUE_SUBJECT_NAME_STRATEGY | KEY_SUBJECT_NAME_STRATEGY => {
                if SubjectNameStrategy::parse(value.trim()).is_none() {
                    return Err(bad("must be topic, record or topic_record".into()));
                }
            }
            _ => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(ControllerError::InvalidConfig(format!(
                    "unknown topic config {key:?}; known: {}",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_values() {
        let none = TopicConfig::of(&BTreeMap::new());
        assert_eq!(none.retention_ms, Some(RETENTION_MS_DEFAULT as u64));
        assert_eq!((none.retention_bytes, none.max_message_bytes, none.min_insync_replicas), (None, None, 1));
        let set = TopicConfig::of(&configs(&[
            (RETENTION_MS, "-1"),
            (RETENTION_BYTES, "1048576"),
            (MAX_MESSAGE_BYTES, "1000"),
            (MIN_INSYNC_REPLICAS, "2"),
        ]));
        assert_eq!(set.retention_ms, None, "-1 keeps records for ever");
        assert_eq!(
            (set.retention_bytes, set.max_message_bytes, set.min_insync_replicas),
            (Some(1 << 20), Some(1000), 2)
        );
        assert_eq!((none.value_schema, none.key_schema), (None, None));
        let validated = TopicConfig::of(&configs(&[
            (VALUE_SCHEMA_VALIDATION, "true"),
            (KEY_SCHEMA_VALIDATION, "false"),
            (KEY_SUBJECT_NAME_STRATEGY, "record"),
        ]));
        assert_eq!((validated.value_schema, validated.key_schema), (Some(SubjectNameStrategy::Topic), None));
    }

    #[test]
    fn bad_keys_and_values_name_the_key() {
        let check = |pairs: &[(&str, &str)]| validate(&configs(pairs), 3, 1 << 20).map_err(|e| e.to_string());
        assert!(check(&[(RETENTION_MS, "3600000"), (MIN_INSYNC_REPLICAS, "2")]).is_ok());
        for (pairs, needle) in [
            (&[("cleanup.polcy", "delete")][..], "unknown topic config \"cleanup.polcy\""),
            (&[(RETENTION_MS, "soon")], "retention.ms=\"soon\": not an integer"),
            (&[(RETENTION_BYTES, "0")], "retention.bytes"),
            (&[(MIN_INSYNC_REPLICAS, "4")], "replication factor, 3"),
            (&[(MAX_MESSAGE_BYTES, "2000000")], "broker's limit"),
            (&[(VALUE_SCHEMA_VALIDATION, "yes")], "true or false"),
            (&[(KEY_SUBJECT_NAME_STRATEGY, "by-color")], "topic, record or topic_record"),
        ] {
            let err = check(pairs).unwrap_err();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}
