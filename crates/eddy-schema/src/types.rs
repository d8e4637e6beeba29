//! The registry's vocabulary: schema types, references and compatibility levels, with the names
//! the Confluent Schema Registry API uses for them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A schema's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// Every type, in the order `GET /schemas/types` lists them.
    pub const ALL: [SchemaType; 3] = [SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];

    /// The API's name (`schemaType`): AVRO, JSON or PROTOBUF.
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// Parses an API name, in any case; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<SchemaType> {
        SchemaType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A reference from one schema to another registered one: `name` is how the referring schema
/// names it (an Avro full name, a Protobuf import path, a JSON Schema `$ref` URL).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// A compatibility level: which earlier versions of a subject a new one is checked against, and
/// in which direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    /// The level of a registry where none was set, as Confluent's.
    pub const DEFAULT: Compatibility = Compatibility::Backward;

    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    /// The API's name, e.g. BACKWARD_TRANSITIVE.
    pub fn name(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses an API name, in any case; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Compatibility> {
        Compatibility::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// Whether a new schema must read what the earlier ones wrote (consumers upgrade first).
    pub fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether the earlier schemas must read what a new one writes (producers upgrade first).
    pub fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether a new schema is checked against every earlier version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive | Compatibility::ForwardTransitive | Compatibility::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a topic's records name the subject their schema must be registered under (the
/// Confluent serializers' `subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubjectNameStrategy {
    /// `<topic>-value` (or `-key`): one schema lineage per topic. The default.
    Topic,
    /// The record's full name (an Avro record's, a Protobuf message's, a JSON schema's `title`):
    /// one lineage per event type, whatever topic carries it.
    Record,
    /// `<topic>-<record full name>`: per event type within a topic.
    TopicRecord,
}

impl SubjectNameStrategy {
    pub const ALL: [SubjectNameStrategy; 3] =
        [SubjectNameStrategy::Topic, SubjectNameStrategy::Record, SubjectNameStrategy::TopicRecord];

    /// The short name Eddy's topic configs use.
    pub fn name(self) -> &'static str {
        match self {
            SubjectNameStrategy::Topic => "topic",
            SubjectNameStrategy::Record => "record",
            SubjectNameStrategy::TopicRecord => "topic_record",
        }
    }

    /// Parses the short name or the Confluent class name
    /// (`io.confluent.kafka.serializers.subject.TopicNameStrategy`, ...).
    pub fn parse(text: &str) -> Option<SubjectNameStrategy> {
        let class = text.rsplit('.').next().unwrap_or(text);
        match (text, class) {
            ("topic", _) | (_, "TopicNameStrategy") => Some(SubjectNameStrategy::Topic),
            ("record", _) | (_, "RecordNameStrategy") => Some(SubjectNameStrategy::Record),
            ("topic_record", _) | (_, "TopicRecordNameStrategy") => Some(SubjectNameStrategy::TopicRecord),
            _ => None,
        }
    }

    /// Whether the subject depends on the record's name (so on the value, not only the topic).
    pub fn needs_record_name(self) -> bool {
        self != SubjectNameStrategy::Topic
    }

    /// The subject of a key (`is_key`) or value of `topic` whose schema names `record`.
    pub fn subject(self, topic: &str, is_key: bool, record: &str) -> String {
        match self {
            SubjectNameStrategy::Topic => format!("{topic}-{}", if is_key { "key" } else { "value" }),
            SubjectNameStrategy::Record => record.to_string(),
            SubjectNameStrategy::TopicRecord => format!("{topic}-{record}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in SchemaType::ALL {
            assert_eq!(SchemaType::parse(t.name()), Some(t));
            assert_eq!(SchemaType::parse(&t.name().to_lowercase()), Some(t));
        }
        for c in Compatibility::ALL {
            assert_eq!(Compatibility::parse(c.name()), Some(c));
        }
        assert_eq!(SchemaType::parse("XML"), None);
        assert_eq!(Compatibility::parse("SIDEWAYS"), None);
    }

    #[test]
    fn strategies_name_subjects() {
        assert_eq!(
            SubjectNameStrategy::parse("io.confluent.kafka.serializers.subject.RecordNameStrategy"),
            Some(SubjectNameStrategy::Record)
        );
        assert_eq!(SubjectNameStrategy::parse("topic_record"), Some(SubjectNameStrategy::TopicRecord));
        assert_eq!(SubjectNameStrategy::parse("by-color"), None);
        assert_eq!(SubjectNameStrategy::Topic.subject("orders", false, "shop.Order"), "orders-value");
        assert_eq!(SubjectNameStrategy::Topic.subject("orders", true, "shop.Order"), "orders-key");
        assert_eq!(SubjectNameStrategy::TopicRecord.subject("orders", false, "shop.Order"), "orders-shop.Order");
    }

    #[test]
    fn levels_say_direction_and_reach() {
        assert!(Compatibility::Full.backward() && Compatibility::Full.forward() && !Compatibility::Full.transitive());
        assert!(!Compatibility::None.backward() && !Compatibility::None.forward());
        assert!(Compatibility::ForwardTransitive.forward() && !Compatibility::ForwardTransitive.backward());
        assert!(Compatibility::BackwardTransitive.transitive());
    }
}
