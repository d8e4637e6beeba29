//! The schema registry's inputs, which come as text over HTTP: a schema of each format (Avro,
//! JSON Schema, Protobuf) parsed as the registry parses it, compatibility checked in both
//! directions against a second schema, and a payload validated, decoded and named against it.
//! The first byte picks the format; the rest is `writer \0 reader \0 payload`.

#![no_main]

use eddy_schema::{ParsedSchema, SchemaType, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let schema_type = match selector % 3 {
        0 => SchemaType::Avro,
        1 => SchemaType::Json,
        _ => SchemaType::Protobuf,
    };
    let mut parts = bytes.splitn(3, |b| *b == 0);
    let writer = parts.next().unwrap_or_default();
    let reader = parts.next();
    let payload = parts.next().unwrap_or_default();
    let Some(writer) = parse(schema_type, writer) else { return };
    // The canonical form is what the registry compares. Avro's and JSON Schema's are schema
    // text again and must parse to themselves; Protobuf's is the compiled descriptor in hex.
    if schema_type != SchemaType::Protobuf {
        let canonical = parse(schema_type, writer.canonical().as_bytes()).expect("a canonical form parses");
        assert_eq!(canonical.canonical(), writer.canonical(), "the canonical form is a fixed point");
    }
    let _ = writer.validate(payload);
    let _ = writer.record_name(payload);
    if let Ok(value) = writer.decode_json(payload) {
        let _ = writer.encode_json(&value);
    }
    if let Some(reader) = reader.and_then(|r| parse(schema_type, r)) {
        let _ = reader.read_problems(&writer);
        let _ = writer.read_problems(&reader);
    }
    assert!(writer.read_problems(&writer).is_empty(), "a schema reads what it writes");
});

fn parse(schema_type: SchemaType, text: &[u8]) -> Option<ParsedSchema> {
    let schema = std::str::from_utf8(text).ok()?.to_string();
    ParsedSchema::parse(&Source { schema_type, schema, references: Vec::new() }).ok()
}
