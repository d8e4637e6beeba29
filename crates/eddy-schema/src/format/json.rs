//! JSON Schema: the jsonschema crate validates (schemas and values); compatibility is decided
//! here by asking whether every value the writer's schema allows is one the reader's allows,
//! keyword by keyword, with open and closed content models told apart as Confluent does: adding
//! a property to an open model (the writer may have written anything under that name) or
//! closing a model, or removing a property from a closed one, breaks readers.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Source, canonical_json};

pub(super) struct JsonSchema {
    schema: Value,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema").field("schema", &self.schema).finish_non_exhaustive()
    }
}

/// Resolves `$ref`s to the referenced registered schemas, by the name the reference gives, and
/// to nothing else: a registered schema never reaches for the network or the file system.
struct References(Vec<(String, Value)>);

impl jsonschema::Retrieve for References {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let wanted = uri.as_str();
        self.0
            .iter()
            .find(|(name, _)| wanted == name || wanted.ends_with(&format!("/{}", name.trim_start_matches('/'))))
            .map(|(_, schema)| schema.clone())
            .ok_or_else(|| format!("{wanted} is not among the schema's references").into())
    }
}

impl JsonSchema {
    pub(super) fn parse(source: &Source) -> Result<JsonSchema, String> {
        let schema: Value = serde_json::from_str(&source.schema).map_err(|e| format!("not JSON: {e}"))?;
        if !schema.is_object() && !schema.is_boolean() {
            return Err("a JSON schema is an object or a boolean".into());
        }
        let mut references = Vec::new();
        for dependency in source.dependencies() {
            let value: Value = serde_json::from_str(&dependency.source.schema)
                .map_err(|e| format!("reference {} is not JSON: {e}", dependency.name))?;
            references.push((dependency.name.clone(), value));
        }
        let validator =
            jsonschema::options().with_retriever(References(references)).build(&schema).map_err(|e| e.to_string())?;
        Ok(JsonSchema { schema, validator: Arc::new(validator) })
    }

    pub(super) fn canonical(&self) -> String {
        canonical_json(&self.schema)
    }

    pub(super) fn as_json(&self) -> &Value {
        &self.schema
    }

    pub(super) fn read_problems(&self, writer: &JsonSchema) -> Vec<String> {
        let mut problems = Vec::new();
        accepts_all(&self.schema, &writer.schema, "#", &mut problems);
        problems
    }

    pub(super) fn record_name(&self) -> Result<String, String> {
        self.schema
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "the JSON schema has no \"title\", so it names no record".into())
    }

    pub(super) fn validate(&self, payload: &[u8]) -> Result<(), String> {
        let value: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
        match self.validator.iter_errors(&value).next() {
            None => Ok(()),
            Some(error) => {
                let at = error.instance_path().to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                Err(format!("{error} (at {at})"))
            }
        }
    }
}

/// Whether `schema` allows every value.
fn permissive(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(map) => map.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

/// Keywords that do not constrain values.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
];

fn types(map: &Map<String, Value>) -> Option<BTreeSet<&str>> {
    match map.get("type")? {
        Value::String(t) => Some(BTreeSet::from([t.as_str()])),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// Properties the object schema lets through beyond `properties`: `None` when it allows none
/// (`additionalProperties: false`), else the schema they must match (`true` when absent).
fn additional(map: &Map<String, Value>) -> Option<Value> {
    match map.get("additionalProperties") {
        Some(Value::Bool(false)) => None,
        Some(schema) => Some(schema.clone()),
        None => Some(Value::Bool(true)),
    }
}

const LOWER_BOUNDS: &[&str] = &["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"];
const UPPER_BOUNDS: &[&str] = &["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"];
const EXACT: &[&str] = &["pattern", "format", "multipleOf", "uniqueItems", "$ref", "not", "if", "then", "else"];

/// Adds to `problems` each way in which a value valid under `writer` may be invalid under
/// `reader` (at `path` of the schema).
fn accepts_all(reader: &Value, writer: &Value, path: &str, problems: &mut Vec<String>) {
    if permissive(reader) || writer == &Value::Bool(false) || canonical_json(reader) == canonical_json(writer) {
        return;
    }
    let (Value::Object(r), Some(w)) =
        (reader, writer.as_object().cloned().or_else(|| permissive(writer).then(Map::new)))
    else {
        problems.push(format!("{path}: the reader allows no value"));
        return;
    };
    let w = &w;
    if let Some(reader_types) = types(r) {
        match types(w) {
            None => problems.push(format!("{path}: the reader requires type {reader_types:?}, the writer allowed any")),
            Some(writer_types) => {
                for t in writer_types {
                    let widened = t == "integer" && reader_types.contains("number");
                    if !reader_types.contains(t) && !widened {
                        problems.push(format!("{path}: type {t} is no longer allowed"));
                    }
                }
            }
        }
    }
    if let Some(Value::Array(reader_enum)) = r.get("enum") {
        let writer_values: Option<Vec<&Value>> = match (w.get("enum"), w.get("const")) {
            (Some(Value::Array(values)), _) => Some(values.iter().collect()),
            (_, Some(value)) => Some(vec![value]),
            _ => None,
        };
        match writer_values {
            None => problems.push(format!("{path}: the reader allows only an enumeration, the writer did not")),
            Some(values) => {
                for value in values.into_iter().filter(|v| !reader_enum.contains(v)) {
                    problems.push(format!("{path}: enum value {value} was removed"));
                }
            }
        }
    }
    if let Some(reader_const) = r.get("const")
        && w.get("const") != Some(reader_const)
    {
        problems.push(format!("{path}: the reader requires the constant {reader_const}"));
    }
    for keyword in LOWER_BOUNDS {
        if let Some(bound) = r.get(*keyword).and_then(Value::as_f64) {
            match w.get(*keyword).and_then(Value::as_f64) {
                Some(written) if written >= bound => {}
                _ => problems.push(format!("{path}: {keyword} {bound} is stricter than the writer's")),
            }
        }
    }
    for keyword in UPPER_BOUNDS {
        if let Some(bound) = r.get(*keyword).and_then(Value::as_f64) {
            match w.get(*keyword).and_then(Value::as_f64) {
                Some(written) if written <= bound => {}
                _ => problems.push(format!("{path}: {keyword} {bound} is stricter than the writer's")),
            }
        }
    }
    for keyword in EXACT {
        if let Some(value) = r.get(*keyword)
            && w.get(*keyword).map(canonical_json) != Some(canonical_json(value))
        {
            problems.push(format!("{path}: {keyword} changed"));
        }
    }
    objects(r, w, path, problems);
    arrays(r, w, path, problems);
    combinators(r, w, path, problems);
}

fn objects(r: &Map<String, Value>, w: &Map<String, Value>, path: &str, problems: &mut Vec<String>) {
    let empty = Map::new();
    let reader_properties = r.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let writer_properties = w.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let required = |m: &Map<String, Value>| -> BTreeSet<String> {
        m.get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let writer_required = required(w);
    for name in required(r).difference(&writer_required) {
        problems.push(format!("{path}: property {name:?} is required by the reader, not by the writer"));
    }
    let writer_additional = additional(w);
    let reader_additional = additional(r);
    for (name, reader_property) in reader_properties {
        let at = format!("{path}/properties/{name}");
        match (writer_properties.get(name), &writer_additional) {
            (Some(writer_property), _) => accepts_all(reader_property, writer_property, &at, problems),
            (None, None) => {}
            (None, Some(writer_any)) => {
                if !permissive(reader_property) && permissive(writer_any) {
                    problems.push(format!("{at}: property {name:?} was added to an open content model"));
                } else {
                    accepts_all(reader_property, writer_any, &at, problems);
                }
            }
        }
    }
    for (name, writer_property) in writer_properties {
        if reader_properties.contains_key(name) {
            continue;
        }
        let at = format!("{path}/properties/{name}");
        match &reader_additional {
            None => problems.push(format!("{at}: property {name:?} was removed from a closed content model")),
            Some(reader_any) => accepts_all(reader_any, writer_property, &at, problems),
        }
    }
    match (&reader_additional, &writer_additional) {
        (None, Some(_)) if types(w).is_none_or(|t| t.contains("object")) => {
            problems.push(format!("{path}: the content model was closed (additionalProperties: false)"));
        }
        (Some(reader_any), Some(writer_any)) => {
            accepts_all(reader_any, writer_any, &format!("{path}/additionalProperties"), problems)
        }
        _ => {}
    }
}

fn arrays(r: &Map<String, Value>, w: &Map<String, Value>, path: &str, problems: &mut Vec<String>) {
    for keyword in ["items", "prefixItems", "additionalItems"] {
        let Some(reader_items) = r.get(keyword) else { continue };
        let at = format!("{path}/{keyword}");
        match (reader_items, w.get(keyword)) {
            (Value::Array(reader_each), Some(Value::Array(writer_each))) => {
                for (i, reader_item) in reader_each.iter().enumerate() {
                    let writer_item = writer_each.get(i).cloned().unwrap_or(Value::Bool(true));
                    accepts_all(reader_item, &writer_item, &format!("{at}/{i}"), problems);
                }
            }
            (reader_item, writer_item) => {
                accepts_all(reader_item, writer_item.unwrap_or(&Value::Bool(true)), &at, problems)
            }
        }
    }
}

fn combinators(r: &Map<String, Value>, w: &Map<String, Value>, path: &str, problems: &mut Vec<String>) {
    for keyword in ["anyOf", "oneOf"] {
        let Some(Value::Array(reader_branches)) = r.get(keyword) else { continue };
        // Every branch the writer may have taken must be read by some branch of the reader.
        let writer_branches: Vec<Value> = match w.get(keyword) {
            Some(Value::Array(branches)) => branches.clone(),
            _ => {
                let mut rest = w.clone();
                rest.remove(keyword);
                vec![Value::Object(rest)]
            }
        };
        for (i, writer_branch) in writer_branches.iter().enumerate() {
            let read = reader_branches.iter().any(|reader_branch| {
                let mut trial = Vec::new();
                accepts_all(reader_branch, writer_branch, path, &mut trial);
                trial.is_empty()
            });
            if !read {
                problems.push(format!("{path}/{keyword}: no branch of the reader reads the writer's branch {i}"));
            }
        }
    }
    if let Some(Value::Array(reader_all)) = r.get("allOf") {
        let writer = Value::Object(w.clone());
        for (i, reader_part) in reader_all.iter().enumerate() {
            let writer_part = match w.get("allOf") {
                Some(Value::Array(parts)) => parts.get(i).cloned().unwrap_or(Value::Bool(true)),
                _ => writer.clone(),
            };
            accepts_all(reader_part, &writer_part, &format!("{path}/allOf/{i}"), problems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SchemaType;

    fn schema(text: &str) -> JsonSchema {
        JsonSchema::parse(&Source { schema_type: SchemaType::Json, schema: text.into(), references: vec![] })
            .expect("valid schema")
    }

    fn problems(reader: &str, writer: &str) -> Vec<String> {
        schema(reader).read_problems(&schema(writer))
    }

    const OPEN: &str = r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#;
    const CLOSED: &str =
        r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"],"additionalProperties":false}"#;

    #[test]
    fn optional_property_added_to_a_closed_model_is_backward_compatible() {
        let reader = r#"{"type":"object","properties":{"id":{"type":"string"},"note":{"type":"string"}},"required":["id"],"additionalProperties":false}"#;
        assert_eq!(problems(reader, CLOSED), Vec::<String>::new());
        // ... and forward: the old reader is closed, so it cannot read the new property.
        assert!(!problems(CLOSED, reader).is_empty());
    }

    #[test]
    fn property_added_to_an_open_model_is_refused() {
        let reader =
            r#"{"type":"object","properties":{"id":{"type":"string"},"note":{"type":"string"}},"required":["id"]}"#;
        let found = problems(reader, OPEN);
        assert!(found.iter().any(|p| p.contains("open content model")), "{found:?}");
        // Removing a property from an open model is fine for the old reader.
        assert_eq!(problems(OPEN, reader), Vec::<String>::new());
    }

    #[test]
    fn new_required_property_and_narrowed_type_are_refused() {
        let reader = r#"{"type":"object","properties":{"id":{"type":"string"},"qty":{"type":"integer"}},"required":["id","qty"],"additionalProperties":false}"#;
        assert!(problems(reader, CLOSED).iter().any(|p| p.contains("\"qty\" is required")));
        let number = r#"{"type":"number"}"#;
        let integer = r#"{"type":"integer"}"#;
        assert_eq!(problems(number, integer), Vec::<String>::new());
        assert!(!problems(integer, number).is_empty());
    }

    #[test]
    fn enums_may_grow_for_readers_only() {
        let small = r#"{"enum":["a","b"]}"#;
        let large = r#"{"enum":["a","b","c"]}"#;
        assert_eq!(problems(large, small), Vec::<String>::new());
        assert!(problems(small, large).iter().any(|p| p.contains("\"c\"")));
    }

    #[test]
    fn values_are_validated() {
        let s = schema(CLOSED);
        assert_eq!(s.validate(br#"{"id":"o-1"}"#), Ok(()));
        assert!(s.validate(br#"{"id":1}"#).is_err());
        assert!(s.validate(br#"{"id":"o-1","x":2}"#).is_err());
        assert!(s.validate(b"not json").is_err());
    }

    #[test]
    fn references_resolve_from_the_registry_only() {
        let address = Source {
            schema_type: SchemaType::Json,
            schema: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#.into(),
            references: vec![],
        };
        let order = Source {
            schema_type: SchemaType::Json,
            schema: r#"{"type":"object","properties":{"ship_to":{"$ref":"address.json"}}}"#.into(),
            references: vec![super::super::NamedSource { name: "address.json".into(), source: address }],
        };
        let parsed = JsonSchema::parse(&order).expect("resolves");
        assert_eq!(parsed.validate(br#"{"ship_to":{"city":"Oslo"}}"#), Ok(()));
        assert!(parsed.validate(br#"{"ship_to":{}}"#).is_err());
        let unresolved = Source { references: vec![], ..order };
        assert!(
            JsonSchema::parse(&unresolved).is_err()
                || JsonSchema::parse(&unresolved).unwrap().validate(br#"{"ship_to":{}}"#).is_err()
        );
    }
}
