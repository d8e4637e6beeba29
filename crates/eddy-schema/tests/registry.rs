//! The registry's rules through its public operations: ids, versions, deletes, levels.

use eddy_schema::api::{RegistryReply, RegistryRequest, Step, plan};
use eddy_schema::{
    Compatibility, RegisterPlan, Registry, RegistryCommand, RegistryError, RegistryOutcome, SchemaInput,
    SchemaReference, SchemaType, VersionSpec,
};

fn avro(text: &str) -> SchemaInput {
    SchemaInput { schema_type: SchemaType::Avro, schema: text.into(), references: vec![] }
}

const ORDER_V1: &str =
    r#"{"type":"record","name":"OrderCreated","namespace":"shop","fields":[{"name":"order_id","type":"string"}]}"#;
const ORDER_V2: &str = r#"{"type":"record","name":"OrderCreated","namespace":"shop","fields":[{"name":"order_id","type":"string"},{"name":"note","type":"string","default":""}]}"#;
const ORDER_BAD: &str = r#"{"type":"record","name":"OrderCreated","namespace":"shop","fields":[{"name":"order_id","type":"string"},{"name":"qty","type":"int"}]}"#;

/// Applies `command` at the next revision.
fn apply(registry: &mut Registry, command: &RegistryCommand) -> Result<RegistryOutcome, RegistryError> {
    let next = registry.revision() + 1;
    registry.apply(next, command)
}

/// Registers through the leader's plan and the apply, as the controller does.
fn register(registry: &mut Registry, subject: &str, input: &SchemaInput) -> Result<(u32, u32), RegistryError> {
    match registry.plan_register(subject, input)? {
        RegisterPlan::Existing { id, version } => Ok((id, version)),
        RegisterPlan::Propose(command) => match apply(registry, &command)? {
            RegistryOutcome::Registered { id, version } => Ok((id, version)),
            other => panic!("unexpected outcome {other:?}"),
        },
    }
}

#[test]
fn ids_are_global_and_versions_per_subject() {
    let mut registry = Registry::default();
    assert_eq!(register(&mut registry, "orders-value", &avro(ORDER_V1)), Ok((1, 1)));
    // The same schema again (other whitespace): same id and version, no write.
    let spaced = ORDER_V1.replace(',', " , ");
    assert_eq!(
        registry.plan_register("orders-value", &avro(&spaced)),
        Ok(RegisterPlan::Existing { id: 1, version: 1 })
    );
    assert_eq!(register(&mut registry, "orders-value", &avro(ORDER_V2)), Ok((2, 2)));
    // The first schema under another subject keeps its id and starts that subject at version 1.
    assert_eq!(register(&mut registry, "archive-value", &avro(ORDER_V1)), Ok((1, 1)));
    assert_eq!(registry.subjects(false, None), vec!["archive-value", "orders-value"]);
    assert_eq!(registry.versions("orders-value", false), Ok(vec![1, 2]));
    assert_eq!(registry.version("orders-value", VersionSpec::Latest, false), Ok((2, 2)));
    assert_eq!(
        registry.subject_versions_of(1, false),
        Ok(vec![("archive-value".into(), 1), ("orders-value".into(), 1)])
    );
    assert_eq!(registry.lookup("orders-value", &avro(ORDER_V2), false), Ok((2, 2)));
    assert_eq!(registry.lookup("orders-value", &avro(ORDER_BAD), false), Err(RegistryError::SchemaNotFound));
    assert_eq!(registry.schema(9).map(|_| ()), Err(RegistryError::SchemaIdNotFound(9)));
}

#[test]
fn an_incompatible_schema_is_refused_at_the_subjects_level() {
    let mut registry = Registry::default();
    register(&mut registry, "orders-value", &avro(ORDER_V1)).unwrap();
    // BACKWARD by default: a new field without a default cannot read old records.
    let refused = register(&mut registry, "orders-value", &avro(ORDER_BAD));
    assert!(
        matches!(&refused, Err(RegistryError::Incompatible { messages, .. }) if !messages.is_empty()),
        "{refused:?}"
    );
    assert_eq!(refused.unwrap_err().http_status(), 409);
    // With the subject at NONE it goes in.
    apply(
        &mut registry,
        &RegistryCommand::SetCompatibility {
            subject: Some("orders-value".into()),
            compatibility: Some(Compatibility::None),
        },
    )
    .unwrap();
    assert_eq!(register(&mut registry, "orders-value", &avro(ORDER_BAD)), Ok((2, 2)));
    // The global level is untouched.
    assert_eq!(registry.compatibility_of("other"), Compatibility::Backward);
}

#[test]
fn transitive_levels_check_every_version() {
    let mut registry = Registry::default();
    let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    let v2 =
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}"#;
    // b without a default: reads v2's records, not v1's.
    let v3 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
    register(&mut registry, "r", &avro(v1)).unwrap();
    register(&mut registry, "r", &avro(v2)).unwrap();
    assert!(registry.check_compatibility("r", None, &avro(v3)).unwrap().is_empty());
    apply(
        &mut registry,
        &RegistryCommand::SetCompatibility { subject: None, compatibility: Some(Compatibility::BackwardTransitive) },
    )
    .unwrap();
    assert!(!registry.check_compatibility("r", None, &avro(v3)).unwrap().is_empty());
    assert!(register(&mut registry, "r", &avro(v3)).is_err());
}

#[test]
fn a_registration_checked_against_an_older_state_is_refused_as_a_conflict() {
    let mut registry = Registry::default();
    let RegisterPlan::Propose(stale) = registry.plan_register("s", &avro(ORDER_V1)).unwrap() else { panic!() };
    register(&mut registry, "other", &avro(ORDER_V2)).unwrap();
    assert!(matches!(apply(&mut registry, &stale), Err(RegistryError::Conflict { .. })));
}

#[test]
fn soft_then_permanent_deletes() {
    let mut registry = Registry::default();
    register(&mut registry, "s", &avro(ORDER_V1)).unwrap();
    register(&mut registry, "s", &avro(ORDER_V2)).unwrap();
    let delete = |permanent| RegistryCommand::DeleteSubject { subject: "s".into(), permanent };
    assert_eq!(apply(&mut registry, &delete(true)), Err(RegistryError::SubjectNotSoftDeleted("s".into())));
    assert_eq!(apply(&mut registry, &delete(false)), Ok(RegistryOutcome::Deleted { versions: vec![1, 2] }));
    assert_eq!(apply(&mut registry, &delete(false)), Err(RegistryError::SubjectSoftDeleted("s".into())));
    assert!(registry.subjects(false, None).is_empty());
    assert_eq!(registry.subjects(true, None), vec!["s"]);
    assert_eq!(registry.versions("s", false), Err(RegistryError::SubjectNotFound("s".into())));
    // Ids still answer after a soft delete, and a new registration continues the numbering.
    assert!(registry.schema(2).is_ok());
    assert_eq!(register(&mut registry, "s", &avro(ORDER_V1)), Ok((1, 3)));
    // A version: soft first, then permanent.
    let version = |permanent| RegistryCommand::DeleteVersion { subject: "s".into(), version: 3, permanent };
    assert!(matches!(apply(&mut registry, &version(true)), Err(RegistryError::VersionNotSoftDeleted { .. })));
    apply(&mut registry, &version(false)).unwrap();
    apply(&mut registry, &version(true)).unwrap();
    assert_eq!(registry.versions("s", true), Ok(vec![1, 2]));
    apply(&mut registry, &delete(true)).unwrap();
    assert_eq!(registry.subjects(true, None), Vec::<String>::new());
    // Ids are stable: the same schema registered again gets its old id.
    assert_eq!(register(&mut registry, "s", &avro(ORDER_V2)), Ok((2, 1)));
}

#[test]
fn references_resolve_and_protect_what_they_reference() {
    let mut registry = Registry::default();
    let address = r#"{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"city","type":"string"}]}"#;
    register(&mut registry, "address", &avro(address)).unwrap();
    let order = SchemaInput {
        schema_type: SchemaType::Avro,
        schema:
            r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"ship_to","type":"shop.Address"}]}"#
                .into(),
        references: vec![SchemaReference { name: "shop.Address".into(), subject: "address".into(), version: 1 }],
    };
    assert_eq!(register(&mut registry, "orders-value", &order), Ok((2, 1)));
    let parsed = registry.parse_id(2).unwrap();
    // ship_to.city = "Oslo": a string is its length (zigzag 8) and bytes.
    assert_eq!(parsed.validate(&[8, b'O', b's', b'l', b'o']), Ok(()));
    assert_eq!(
        apply(&mut registry, &RegistryCommand::DeleteSubject { subject: "address".into(), permanent: false }),
        Err(RegistryError::ReferenceExists { subject: "address".into(), version: 1 })
    );
    assert_eq!(registry.referenced_by("address", VersionSpec::Number(1)), Ok(vec![2]));
    let dangling = SchemaInput {
        references: vec![SchemaReference { name: "shop.Address".into(), subject: "address".into(), version: 7 }],
        ..order
    };
    assert!(matches!(registry.plan_register("x", &dangling), Err(RegistryError::InvalidSchema(_))));
}

#[test]
fn bad_input_gets_the_apis_errors() {
    let registry = Registry::default();
    assert!(matches!(registry.plan_register("s", &avro("{not json")), Err(RegistryError::InvalidSchema(_))));
    assert!(matches!(registry.plan_register("", &avro(ORDER_V1)), Err(RegistryError::InvalidSubject { .. })));
    assert_eq!(VersionSpec::parse("0"), Err(RegistryError::InvalidVersion("0".into())));
    assert_eq!(VersionSpec::parse("latest"), Ok(VersionSpec::Latest));
    let get = RegistryRequest::GetCompatibility { subject: Some("s".into()), default_to_global: false };
    assert_eq!(plan(&registry, &get), Err(RegistryError::SubjectLevelCompatibilityNotConfigured("s".into())));
    let fallback = RegistryRequest::GetCompatibility { subject: Some("s".into()), default_to_global: true };
    assert_eq!(plan(&registry, &fallback), Ok(Step::Answer(RegistryReply::Compatibility(Compatibility::Backward))));
}
