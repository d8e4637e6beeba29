//! Avro: apache-avro parses, resolves and decodes; its schema-resolution checker decides
//! compatibility, as the Avro specification's resolution rules (which Confluent follows).

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use super::{Source, canonical_json};

#[derive(Debug)]
pub(super) struct AvroSchema {
    schema: Schema,
    /// The named types of the referenced schemas.
    named: Vec<Schema>,
}

impl AvroSchema {
    pub(super) fn parse(source: &Source) -> Result<AvroSchema, String> {
        let dependencies: Vec<&str> = source.dependencies().iter().map(|d| d.source.schema.as_str()).collect();
        if dependencies.is_empty() {
            let schema = Schema::parse_str(&source.schema).map_err(|e| e.to_string())?;
            return Ok(AvroSchema { schema, named: Vec::new() });
        }
        let (schema, named) = Schema::parse_str_with_list(&source.schema, dependencies).map_err(|e| e.to_string())?;
        Ok(AvroSchema { schema, named })
    }

    /// The parsed schema written back as JSON with sorted keys: documentation, defaults, aliases
    /// and logical types count (they change what a reader does); whitespace and order do not.
    pub(super) fn canonical(&self) -> String {
        canonical_json(&self.as_json())
    }

    pub(super) fn as_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.schema).expect("an Avro schema serializes to JSON")
    }

    pub(super) fn read_problems(&self, writer: &AvroSchema) -> Vec<String> {
        match SchemaCompatibility::can_read(&writer.schema, &self.schema) {
            Ok(Compatibility::Full) => Vec::new(),
            // The reader can resolve only some of the writer's values: an enum symbol it lacks
            // (and has no default for) or a union branch it has no match for.
            Ok(Compatibility::Partial) => {
                vec![
                    "the reader resolves only some of the writer's values (an enum symbol or union branch is missing)"
                        .into(),
                ]
            }
            Err(e) => vec![e.to_string()],
        }
    }

    pub(super) fn record_name(&self) -> Result<String, String> {
        match &self.schema {
            Schema::Record(r) => Ok(r.name.fullname(None)),
            Schema::Enum(e) => Ok(e.name.fullname(None)),
            Schema::Fixed(f) => Ok(f.name.fullname(None)),
            _ => Err("the schema is not a named type (record, enum or fixed), so it names no record".into()),
        }
    }

    /// The schemas a reader or writer resolves names in: the referenced types first (resolving
    /// a schema needs the names it refers to known), then the schema itself.
    fn schemata(&self) -> Vec<&Schema> {
        self.named.iter().chain(std::iter::once(&self.schema)).collect()
    }

    fn decode(&self, payload: &[u8]) -> Result<apache_avro::types::Value, String> {
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&self.schema)
            .writer_schemata(self.schemata())
            .and_then(|b| b.build())
            .map_err(|e| format!("the schema cannot decode: {e}"))?;
        let mut rest = payload;
        let value = reader.read_value(&mut rest).map_err(|e| format!("not an Avro value of the schema: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the Avro value", rest.len()));
        }
        Ok(value)
    }

    pub(super) fn validate(&self, payload: &[u8]) -> Result<(), String> {
        self.decode(payload).map(|_| ())
    }

    pub(super) fn decode_json(&self, payload: &[u8]) -> Result<serde_json::Value, String> {
        serde_json::Value::try_from(self.decode(payload)?).map_err(|e| format!("the value has no JSON form: {e}"))
    }

    pub(super) fn encode_json(&self, json: &serde_json::Value) -> Result<Vec<u8>, String> {
        let value = apache_avro::types::Value::try_from(json.clone()).map_err(|e| e.to_string())?;
        let value = value
            .resolve_schemata(&self.schema, self.named.iter().collect())
            .map_err(|e| format!("not a value of the schema: {e}"))?;
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema)
            .schemata(self.schemata())
            .and_then(|b| b.build())
            .and_then(|w| w.write_value_to_vec(value))
            .map_err(|e| format!("cannot encode: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SchemaType;

    #[test]
    fn json_values_round_trip_through_avro() {
        let source = Source {
            schema_type: SchemaType::Avro,
            schema: r#"{"type":"record","name":"OrderCreated","namespace":"shop","fields":[
                {"name":"order_id","type":"string"},{"name":"cents","type":"long"},
                {"name":"note","type":["null","string"],"default":null}]}"#
                .into(),
            references: vec![],
        };
        let schema = AvroSchema::parse(&source).unwrap();
        assert_eq!(schema.record_name(), Ok("shop.OrderCreated".into()));
        let value = serde_json::json!({"order_id": "o-1", "cents": 1250, "note": null});
        let bytes = schema.encode_json(&value).unwrap();
        assert_eq!(schema.validate(&bytes), Ok(()));
        assert_eq!(schema.decode_json(&bytes).unwrap(), value);
        assert!(schema.encode_json(&serde_json::json!({"order_id": 7})).is_err());
        // Cut inside the order id: the string runs past the end.
        assert!(schema.validate(&bytes[..3]).is_err());
    }
}
