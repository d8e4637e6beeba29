//! Property: the registry's Avro verdicts agree with the Avro specification's resolution rules,
//! modelled independently here for records of primitive fields, over generated schema changes
//! (fields added with and without defaults, removed, promoted, and changed to unrelated types).

use eddy_schema::{Compatibility, RegisterPlan, Registry, RegistryCommand, RegistryError, SchemaInput, SchemaType};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Primitive {
    Int,
    Long,
    Float,
    Double,
    String,
    Bytes,
    Boolean,
}

const PRIMITIVES: [Primitive; 7] = [
    Primitive::Int,
    Primitive::Long,
    Primitive::Float,
    Primitive::Double,
    Primitive::String,
    Primitive::Bytes,
    Primitive::Boolean,
];

impl Primitive {
    fn name(self) -> &'static str {
        match self {
            Primitive::Int => "int",
            Primitive::Long => "long",
            Primitive::Float => "float",
            Primitive::Double => "double",
            Primitive::String => "string",
            Primitive::Bytes => "bytes",
            Primitive::Boolean => "boolean",
        }
    }

    fn default(self) -> &'static str {
        match self {
            Primitive::Int | Primitive::Long => "0",
            Primitive::Float | Primitive::Double => "0.0",
            Primitive::String | Primitive::Bytes => "\"\"",
            Primitive::Boolean => "false",
        }
    }

    /// The specification's promotions: a reader of `self` reads what a writer of `writer` wrote.
    fn reads(self, writer: Primitive) -> bool {
        use Primitive::*;
        self == writer
            || matches!(
                (writer, self),
                (Int, Long)
                    | (Int, Float)
                    | (Int, Double)
                    | (Long, Float)
                    | (Long, Double)
                    | (Float, Double)
                    | (String, Bytes)
                    | (Bytes, String)
            )
    }
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    kind: Primitive,
    default: bool,
}

fn schema(fields: &[Field]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|f| {
            let default = if f.default { format!(",\"default\":{}", f.kind.default()) } else { String::new() };
            format!("{{\"name\":\"{}\",\"type\":\"{}\"{default}}}", f.name, f.kind.name())
        })
        .collect();
    format!("{{\"type\":\"record\",\"name\":\"Event\",\"fields\":[{}]}}", fields.join(","))
}

/// Whether a reader with `reader` fields reads every record written with `writer` fields.
fn model_reads(reader: &[Field], writer: &[Field]) -> bool {
    reader.iter().all(|r| match writer.iter().find(|w| w.name == r.name) {
        Some(w) => r.kind.reads(w.kind),
        None => r.default,
    })
}

#[derive(Debug, Clone)]
enum Change {
    Add { kind: Primitive, default: bool },
    Remove(usize),
    Retype(usize, Primitive),
    ToggleDefault(usize),
}

fn primitive() -> impl Strategy<Value = Primitive> {
    (0..PRIMITIVES.len()).prop_map(|i| PRIMITIVES[i])
}

fn fields() -> impl Strategy<Value = Vec<Field>> {
    prop::collection::vec((primitive(), any::<bool>()), 1..5).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (kind, default))| Field { name: format!("f{i}"), kind, default })
            .collect()
    })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (primitive(), any::<bool>()).prop_map(|(kind, default)| Change::Add { kind, default }),
        (0usize..8).prop_map(Change::Remove),
        (0usize..8, primitive()).prop_map(|(i, kind)| Change::Retype(i, kind)),
        (0usize..8).prop_map(Change::ToggleDefault),
    ]
}

fn evolve(old: &[Field], changes: &[Change]) -> Vec<Field> {
    let mut new = old.to_vec();
    for (n, change) in changes.iter().enumerate() {
        match change {
            Change::Add { kind, default } => {
                new.push(Field { name: format!("added{n}"), kind: *kind, default: *default })
            }
            Change::Remove(i) if new.len() > 1 => {
                let i = i % new.len();
                new.remove(i);
            }
            Change::Retype(i, kind) => {
                let i = i % new.len();
                new[i].kind = *kind;
            }
            Change::ToggleDefault(i) => {
                let i = i % new.len();
                new[i].default = !new[i].default;
            }
            Change::Remove(_) => {}
        }
    }
    new
}

fn input(fields: &[Field]) -> SchemaInput {
    SchemaInput { schema_type: SchemaType::Avro, schema: schema(fields), references: vec![] }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn verdicts_follow_the_resolution_rules(old in fields(), changes in prop::collection::vec(change(), 1..4)) {
        let new = evolve(&old, &changes);
        for level in [Compatibility::Backward, Compatibility::Forward, Compatibility::Full, Compatibility::None] {
            let mut registry = Registry::default();
            registry
                .apply(1, &RegistryCommand::SetCompatibility { subject: None, compatibility: Some(level) })
                .unwrap();
            let RegisterPlan::Propose(first) = registry.plan_register("s", &input(&old)).unwrap() else {
                panic!("a first registration is proposed")
            };
            registry.apply(2, &first).unwrap();
            let expected = (!level.backward() || model_reads(&new, &old)) && (!level.forward() || model_reads(&old, &new));
            let verdict = registry.plan_register("s", &input(&new));
            match verdict {
                Ok(_) => prop_assert!(expected, "{level}: accepted {} after {}", schema(&new), schema(&old)),
                Err(RegistryError::Incompatible { .. }) => {
                    prop_assert!(!expected, "{level}: refused {} after {}", schema(&new), schema(&old))
                }
                Err(e) => prop_assert!(false, "{level}: unexpected error {e}"),
            }
        }
    }
}
