//! Protobuf: protox compiles the schema (and the schemas it imports, which are its
//! references, plus Google's well-known types) into descriptors; prost-reflect decodes values.
//! Compatibility follows the wire format, as Confluent's rules do: a message or a required
//! field that disappears, a field number whose type changes to one its bytes do not decode as,
//! a field moved in or out of a oneof, or a changed package break readers; added and removed
//! optional fields do not (unknown fields are skipped, missing ones take their defaults).

use prost::Message;
use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::Source;

/// The file name the registered schema compiles as (its imports keep their own names).
const MAIN_FILE: &str = "eddy-registered-schema.proto";

#[derive(Debug)]
pub(super) struct ProtobufSchema {
    file: FileDescriptor,
}

struct Sources(Vec<(String, String)>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.iter().find(|(file, _)| file == name) {
            Some((file, source)) => File::from_source(file, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

impl ProtobufSchema {
    pub(super) fn parse(source: &Source) -> Result<ProtobufSchema, String> {
        let mut files = vec![(MAIN_FILE.to_string(), source.schema.clone())];
        files.extend(source.dependencies().into_iter().map(|d| (d.name.clone(), d.source.schema.clone())));
        let mut resolver = ChainFileResolver::new();
        resolver.add(Sources(files));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true).include_source_info(false);
        compiler.open_file(MAIN_FILE).map_err(|e| e.to_string())?;
        let pool: DescriptorPool = compiler.descriptor_pool();
        let file = pool.get_file_by_name(MAIN_FILE).ok_or("the schema compiled to no file")?;
        if file.messages().next().is_none() {
            return Err("the schema defines no message".into());
        }
        Ok(ProtobufSchema { file })
    }

    /// The compiled file descriptor, as hexadecimal of its encoding: comments, formatting and
    /// declaration order of options do not count.
    pub(super) fn canonical(&self) -> String {
        self.file.file_descriptor_proto().encode_to_vec().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(super) fn read_problems(&self, writer: &ProtobufSchema) -> Vec<String> {
        let mut problems = Vec::new();
        if self.file.package_name() != writer.file.package_name() {
            problems.push(format!(
                "the package changed from {:?} to {:?}",
                writer.file.package_name(),
                self.file.package_name()
            ));
        }
        for written in all_messages(&writer.file) {
            match self.file.parent_pool().get_message_by_name(written.full_name()) {
                None => problems.push(format!("message {} was removed", written.full_name())),
                Some(read) => message_problems(&read, &written, &mut problems),
            }
        }
        problems
    }

    pub(super) fn record_name(&self, payload: &[u8]) -> Result<String, String> {
        let (indexes, _) = message_indexes(payload)?;
        Ok(self.message_at(&indexes)?.full_name().to_string())
    }

    pub(super) fn encode_json(&self, json: &serde_json::Value) -> Result<Vec<u8>, String> {
        let descriptor = self.message_at(&[0])?;
        let message = DynamicMessage::deserialize(descriptor.clone(), json.clone())
            .map_err(|e| format!("not a {} message: {e}", descriptor.full_name()))?;
        let mut out = crate::wire::PROTOBUF_FIRST_MESSAGE.to_vec();
        message.encode(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    pub(super) fn decode_json(&self, payload: &[u8]) -> Result<serde_json::Value, String> {
        let (indexes, rest) = message_indexes(payload)?;
        let descriptor = self.message_at(&indexes)?;
        let message = DynamicMessage::decode(descriptor.clone(), rest)
            .map_err(|e| format!("not a {} message: {e}", descriptor.full_name()))?;
        serde_json::to_value(&message).map_err(|e| e.to_string())
    }

    pub(super) fn validate(&self, payload: &[u8]) -> Result<(), String> {
        let (indexes, rest) = message_indexes(payload)?;
        let descriptor = self.message_at(&indexes)?;
        DynamicMessage::decode(descriptor.clone(), rest)
            .map(|_| ())
            .map_err(|e| format!("not a {} message: {e}", descriptor.full_name()))
    }

    /// The message the wire format's indexes name: the first is among the file's top-level
    /// messages, each next one among the previous one's nested messages.
    fn message_at(&self, indexes: &[usize]) -> Result<MessageDescriptor, String> {
        let mut current: Option<MessageDescriptor> = None;
        for &index in indexes {
            let next = match &current {
                None => self.file.messages().nth(index),
                Some(parent) => parent.child_messages().nth(index),
            };
            current = Some(next.ok_or_else(|| format!("message index {indexes:?} names no message of the schema"))?);
        }
        current.ok_or_else(|| "no message index".to_string())
    }
}

fn all_messages(file: &FileDescriptor) -> Vec<MessageDescriptor> {
    fn walk(message: MessageDescriptor, out: &mut Vec<MessageDescriptor>) {
        if message.is_map_entry() {
            return;
        }
        for child in message.child_messages() {
            walk(child, out);
        }
        out.push(message);
    }
    let mut out = Vec::new();
    for message in file.messages() {
        walk(message, &mut out);
    }
    out
}

fn message_problems(read: &MessageDescriptor, written: &MessageDescriptor, problems: &mut Vec<String>) {
    let name = written.full_name();
    for field in written.fields() {
        match read.get_field(field.number()) {
            None if field.cardinality() == Cardinality::Required => {
                problems.push(format!("{name}: required field {} ({}) was removed", field.name(), field.number()))
            }
            None => {}
            Some(reader_field) => field_problems(name, &reader_field, &field, problems),
        }
    }
    for field in read.fields() {
        if field.cardinality() == Cardinality::Required && written.get_field(field.number()).is_none() {
            problems.push(format!("{name}: required field {} ({}) was added", field.name(), field.number()));
        }
    }
}

fn field_problems(message: &str, read: &FieldDescriptor, written: &FieldDescriptor, problems: &mut Vec<String>) {
    let number = written.number();
    let (read_wire, written_wire) = (wire_class(&read.kind()), wire_class(&written.kind()));
    if read_wire != written_wire {
        problems.push(format!("{message}: field {number} changed type from {written_wire} to {read_wire}"));
    }
    if read.is_list() != written.is_list() || read.is_map() != written.is_map() {
        problems.push(format!("{message}: field {number} changed between single, repeated and map"));
    }
    let oneof = |f: &FieldDescriptor| f.containing_oneof().filter(|o| !o.is_synthetic()).map(|o| o.name().to_string());
    if oneof(read) != oneof(written) {
        problems.push(format!("{message}: field {number} moved into or out of a oneof"));
    }
}

/// Types whose encodings decode as each other (Confluent's compatible scalar groups); messages
/// and enums by their full name.
fn wire_class(kind: &Kind) -> String {
    match kind {
        Kind::Int32 | Kind::Uint32 | Kind::Int64 | Kind::Uint64 | Kind::Bool => "varint".into(),
        Kind::Sint32 | Kind::Sint64 => "zigzag varint".into(),
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32".into(),
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64".into(),
        Kind::Float => "float".into(),
        Kind::Double => "double".into(),
        Kind::String | Kind::Bytes => "string or bytes".into(),
        Kind::Message(m) => format!("message {}", m.full_name()),
        Kind::Enum(e) => format!("enum {}", e.full_name()),
    }
}

/// Splits the wire format's message indexes (a zigzag varint count, then that many zigzag
/// varints; a lone 0 means the first message) from the encoded message.
pub fn message_indexes(payload: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    /// More nesting than any real schema has; a bound on what a hostile count can make us read.
    const DEPTH_MAX: i64 = 64;
    let mut rest = payload;
    let next = |rest: &mut &[u8]| -> Result<i64, String> {
        let raw = prost::encoding::decode_varint(rest).map_err(|e| format!("bad message indexes: {e}"))?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    };
    let count = next(&mut rest)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if !(1..=DEPTH_MAX).contains(&count) {
        return Err(format!("bad message indexes: count {count}"));
    }
    let mut indexes = Vec::new();
    for _ in 0..count {
        let index = next(&mut rest)?;
        indexes.push(usize::try_from(index).map_err(|_| format!("bad message index {index}"))?);
    }
    Ok((indexes, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SchemaType;

    fn schema(text: &str) -> ProtobufSchema {
        ProtobufSchema::parse(&Source { schema_type: SchemaType::Protobuf, schema: text.into(), references: vec![] })
            .expect("valid schema")
    }

    const V1: &str =
        r#"syntax = "proto3"; package shop; message OrderCreated { string order_id = 1; int64 amount_cents = 2; }"#;

    #[test]
    fn added_fields_are_compatible_changed_types_are_not() {
        let v2 = schema(
            r#"syntax = "proto3"; package shop; message OrderCreated { string order_id = 1; int64 amount_cents = 2; string currency = 3; }"#,
        );
        let v1 = schema(V1);
        assert_eq!(v2.read_problems(&v1), Vec::<String>::new());
        assert_eq!(v1.read_problems(&v2), Vec::<String>::new());
        let changed = schema(
            r#"syntax = "proto3"; package shop; message OrderCreated { string order_id = 1; double amount_cents = 2; }"#,
        );
        assert!(changed.read_problems(&v1).iter().any(|p| p.contains("field 2 changed type")));
        let widened = schema(
            r#"syntax = "proto3"; package shop; message OrderCreated { string order_id = 1; uint64 amount_cents = 2; }"#,
        );
        assert_eq!(widened.read_problems(&v1), Vec::<String>::new());
    }

    #[test]
    fn removed_messages_and_packages_are_refused() {
        let other = schema(
            r#"syntax = "proto3"; package store; message OrderCreated { string order_id = 1; int64 amount_cents = 2; }"#,
        );
        assert!(other.read_problems(&schema(V1)).iter().any(|p| p.contains("package")));
        let renamed = schema(r#"syntax = "proto3"; package shop; message OrderPlaced { string order_id = 1; }"#);
        assert!(renamed.read_problems(&schema(V1)).iter().any(|p| p.contains("shop.OrderCreated was removed")));
    }

    #[test]
    fn values_decode_by_message_index() {
        let s = schema(V1);
        // A lone 0: the first message. Field 1 (string "o"), field 2 (varint 5).
        assert_eq!(s.validate(&[0x00, 0x0a, 0x01, b'o', 0x10, 0x05]), Ok(()));
        // Count 1 (zigzag 2), index 0.
        assert_eq!(s.validate(&[0x02, 0x00, 0x0a, 0x01, b'o']), Ok(()));
        // Index 3 names nothing; a truncated field does not decode.
        assert!(s.validate(&[0x02, 0x06, 0x0a]).is_err());
        assert!(s.validate(&[0x00, 0x0a, 0x05, b'o']).is_err());
    }

    #[test]
    fn syntax_errors_are_reported() {
        let bad = ProtobufSchema::parse(&Source {
            schema_type: SchemaType::Protobuf,
            schema: "message { broken".into(),
            references: vec![],
        });
        assert!(bad.is_err());
    }
}
