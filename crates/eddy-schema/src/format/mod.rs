//! The three schema formats behind one type: parse a schema with the schemas it references,
//! give its canonical form (what makes two registrations "the same schema"), check whether it
//! can read what another version wrote, and validate a value against it.
//!
//! Each format uses its well-kept crate for parsing and decoding: apache-avro, jsonschema, and
//! protox with prost-reflect. The compatibility rules of JSON Schema and Protobuf are ours (no
//! crate has them), following the rules the Confluent Schema Registry documents.

mod avro;
mod json;
mod protobuf;

pub use protobuf::message_indexes;

use crate::error::{RegistryError, RegistryResult};
use crate::types::SchemaType;

/// A schema's text and, resolved from the registry, the schemas it references (transitively).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<NamedSource>,
}

/// A referenced schema and the name its referrer uses for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NamedSource {
    pub name: String,
    pub source: Source,
}

impl Source {
    /// Every referenced schema, depth first with each schema after those it references and
    /// each name once: the order in which a parser must see them.
    pub fn dependencies(&self) -> Vec<&NamedSource> {
        fn walk<'a>(source: &'a Source, out: &mut Vec<&'a NamedSource>) {
            for reference in &source.references {
                walk(&reference.source, out);
                if !out.iter().any(|seen| seen.name == reference.name) {
                    out.push(reference);
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// A parsed schema of any format.
#[derive(Debug)]
pub struct ParsedSchema {
    canonical: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(protobuf::ProtobufSchema),
}

impl ParsedSchema {
    /// Parses `source`, refusing an invalid schema (or reference) with
    /// [`RegistryError::InvalidSchema`].
    pub fn parse(source: &Source) -> RegistryResult<ParsedSchema> {
        let invalid = |e: String| RegistryError::InvalidSchema(e);
        let kind = match source.schema_type {
            SchemaType::Avro => Kind::Avro(avro::AvroSchema::parse(source).map_err(invalid)?),
            SchemaType::Json => Kind::Json(json::JsonSchema::parse(source).map_err(invalid)?),
            SchemaType::Protobuf => Kind::Protobuf(protobuf::ProtobufSchema::parse(source).map_err(invalid)?),
        };
        let canonical = match &kind {
            Kind::Avro(s) => s.canonical(),
            Kind::Json(s) => s.canonical(),
            Kind::Protobuf(s) => s.canonical(),
        };
        Ok(ParsedSchema { canonical, kind })
    }

    pub fn schema_type(&self) -> SchemaType {
        match self.kind {
            Kind::Avro(_) => SchemaType::Avro,
            Kind::Json(_) => SchemaType::Json,
            Kind::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The schema in a form where formatting, key order and other choices without meaning do
    /// not count: two registrations with the same canonical form (and references) are one
    /// schema with one id.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Why this schema, as a reader, cannot read every value `writer` wrote; empty when it can.
    /// Schemas of different types can never read each other.
    pub fn read_problems(&self, writer: &ParsedSchema) -> Vec<String> {
        match (&self.kind, &writer.kind) {
            (Kind::Avro(reader), Kind::Avro(writer)) => reader.read_problems(writer),
            (Kind::Json(reader), Kind::Json(writer)) => reader.read_problems(writer),
            (Kind::Protobuf(reader), Kind::Protobuf(writer)) => reader.read_problems(writer),
            _ => vec![format!("the schema type changed from {} to {}", writer.schema_type(), self.schema_type())],
        }
    }

    /// Checks that `payload` (a value after the wire format's magic byte and schema id) is a
    /// value of this schema; the error says why not.
    pub fn validate(&self, payload: &[u8]) -> Result<(), String> {
        match &self.kind {
            Kind::Avro(s) => s.validate(payload),
            Kind::Json(s) => s.validate(payload),
            Kind::Protobuf(s) => s.validate(payload),
        }
    }

    /// The full name of the record `payload` is a value of (see
    /// [`crate::SubjectNameStrategy::Record`]): an Avro named type's full name, the Protobuf
    /// message its indexes name, a JSON schema's `title`.
    pub fn record_name(&self, payload: &[u8]) -> Result<String, String> {
        match &self.kind {
            Kind::Avro(s) => s.record_name(),
            Kind::Json(s) => s.record_name(),
            Kind::Protobuf(s) => s.record_name(payload),
        }
    }

    /// Encodes a value given as JSON in this schema's format (the payload after the wire
    /// format's header): an Avro datum, the JSON text itself once validated, or a Protobuf
    /// message (the schema's first message, with its message index).
    pub fn encode_json(&self, value: &serde_json::Value) -> Result<Vec<u8>, String> {
        match &self.kind {
            Kind::Avro(s) => s.encode_json(value),
            Kind::Json(s) => {
                let bytes = value.to_string().into_bytes();
                s.validate(&bytes)?;
                Ok(bytes)
            }
            Kind::Protobuf(s) => s.encode_json(value),
        }
    }

    /// Decodes a payload (after the wire format's header) of this schema to JSON.
    pub fn decode_json(&self, payload: &[u8]) -> Result<serde_json::Value, String> {
        match &self.kind {
            Kind::Avro(s) => s.decode_json(payload),
            Kind::Json(_) => serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}")),
            Kind::Protobuf(s) => s.decode_json(payload),
        }
    }

    /// The schema as a JSON value, for documents that embed it (AsyncAPI): Avro and JSON Schema
    /// are JSON already; a Protobuf schema has no JSON form (`None`).
    pub fn as_json(&self) -> Option<serde_json::Value> {
        match &self.kind {
            Kind::Avro(s) => Some(s.as_json()),
            Kind::Json(s) => Some(s.as_json().clone()),
            Kind::Protobuf(_) => None,
        }
    }
}

/// JSON text with object keys sorted at every level and no insignificant whitespace.
pub(crate) fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // A map that keeps insertion order (serde_json's preserve_order, which a dependency may turn
    // on) keeps the sorted order; the default one sorts anyway.
    sorted(value).to_string()
}
