//! The registry's replicated state and the only ways it changes.
//!
//! Writes are split in two, as the controller's other writes are: the leader checks a request
//! against the state it holds ([`Registry::plan_register`] parses the schema and checks its
//! compatibility; the parsers run once, on the leader) and proposes a small
//! [`RegistryCommand`]; every replica applies that command with [`Registry::apply`], which
//! assigns ids and versions and re-checks only what is cheap and must hold. A registration
//! carries the revision the leader checked it against and is refused as a
//! [`RegistryError::Conflict`] when the registry changed meanwhile (the leader plans it again),
//! so a compatibility check is never applied against a state it did not see.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, RegistryResult};
use crate::format::{NamedSource, ParsedSchema, Source};
use crate::types::{Compatibility, SchemaReference, SchemaType};

/// Longest subject name accepted, in bytes.
pub const SUBJECT_LEN_MAX: usize = 512;
/// Largest schema text accepted, in bytes.
pub const SCHEMA_BYTES_MAX: usize = 1 << 20;
/// Most schema text the registry holds, in bytes: its state is part of the controller's
/// snapshot, which must stay well inside one controller message.
pub const REGISTRY_BYTES_MAX: usize = 32 << 20;
/// Deepest chain of references followed (a reference of a reference of ...).
pub const REFERENCE_DEPTH_MAX: usize = 32;

/// A schema as registered: its id names exactly this, forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSchema {
    pub schema_type: SchemaType,
    /// The text of its first registration.
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

/// What makes two registrations the same schema (and so the same id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct SchemaKey {
    schema_type: SchemaType,
    canonical: String,
    references: Vec<SchemaReference>,
}

/// A version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectVersion {
    pub id: u32,
    /// Soft-deleted: kept (its id still answers) but no longer listed, served or checked against.
    pub deleted: bool,
}

/// A subject: a named sequence of schema versions, such as a topic's values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub versions: BTreeMap<u32, SubjectVersion>,
    /// The subject's own compatibility level, if set.
    pub compatibility: Option<Compatibility>,
}

impl Subject {
    fn active(&self) -> impl DoubleEndedIterator<Item = (u32, u32)> + '_ {
        self.versions.iter().filter(|(_, v)| !v.deleted).map(|(n, v)| (*n, v.id))
    }

    /// Whether any version is not deleted: a subject only of deleted versions is not listed.
    pub fn is_active(&self) -> bool {
        self.active().next().is_some()
    }
}

/// A version as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionSpec {
    Latest,
    Number(u32),
}

impl VersionSpec {
    /// Parses the API's form: a number in [1, 2^31-1], `latest` or `-1`.
    pub fn parse(text: &str) -> RegistryResult<VersionSpec> {
        if text == "latest" || text == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion(text.to_string())),
        }
    }
}

/// A schema to register, look up or check, as a request gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaInput {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

/// A change to the registry, as the controller's log carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryCommand {
    /// Registers `schema` under `subject` as its next version (see [`Registry::plan_register`]).
    Register {
        subject: String,
        schema: StoredSchema,
        canonical: String,
        expected_revision: u64,
    },
    DeleteVersion {
        subject: String,
        version: u32,
        permanent: bool,
    },
    DeleteSubject {
        subject: String,
        permanent: bool,
    },
    /// Sets (or with `None` removes) the compatibility level of `subject`, or the global one.
    SetCompatibility {
        subject: Option<String>,
        compatibility: Option<Compatibility>,
    },
}

/// What an applied command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryOutcome {
    Registered {
        id: u32,
        version: u32,
    },
    Deleted {
        versions: Vec<u32>,
    },
    /// The level that was set before the command.
    Compatibility {
        previous: Option<Compatibility>,
    },
}

/// What a registration needs after the leader's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterPlan {
    /// The subject already holds this schema: no write.
    Existing {
        id: u32,
        version: u32,
    },
    Propose(RegistryCommand),
}

/// The registry: every schema by id, every subject's versions, the compatibility levels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// The controller log index of the last change (0 before any).
    revision: u64,
    /// The highest id given so far; ids start at 1 and are never reused.
    last_id: u32,
    schemas: BTreeMap<u32, StoredSchema>,
    ids: BTreeMap<SchemaKey, u32>,
    subjects: BTreeMap<String, Subject>,
    /// The global level, if set ([`Compatibility::DEFAULT`] otherwise).
    compatibility: Option<Compatibility>,
}

/// Refuses a subject name the API could not carry or a log would show confusingly.
pub fn validate_subject(subject: &str) -> RegistryResult<()> {
    let invalid = |reason: &str| RegistryError::InvalidSubject { subject: subject.to_string(), reason: reason.into() };
    if subject.is_empty() {
        return Err(invalid("it is empty"));
    }
    if subject.len() > SUBJECT_LEN_MAX {
        return Err(invalid(&format!("it is longer than {SUBJECT_LEN_MAX} bytes")));
    }
    if subject.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(())
}

impl Registry {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Applies a command at controller log index `revision`. Deterministic: every replica
    /// applying the same commands in order holds the same registry and gives the same answers.
    pub fn apply(&mut self, revision: u64, command: &RegistryCommand) -> RegistryResult<RegistryOutcome> {
        let outcome = match command {
            RegistryCommand::Register { subject, schema, canonical, expected_revision } => {
                if *expected_revision != self.revision {
                    return Err(RegistryError::Conflict { expected: *expected_revision, current: self.revision });
                }
                self.register(subject, schema, canonical)?
            }
            RegistryCommand::DeleteVersion { subject, version, permanent } => {
                self.delete_version(subject, *version, *permanent)?
            }
            RegistryCommand::DeleteSubject { subject, permanent } => self.delete_subject(subject, *permanent)?,
            RegistryCommand::SetCompatibility { subject, compatibility } => {
                let previous = match subject {
                    None => std::mem::replace(&mut self.compatibility, *compatibility),
                    Some(name) => {
                        validate_subject(name)?;
                        let entry = self.subjects.entry(name.clone()).or_default();
                        let previous = std::mem::replace(&mut entry.compatibility, *compatibility);
                        if entry.versions.is_empty() && entry.compatibility.is_none() {
                            self.subjects.remove(name);
                        }
                        previous
                    }
                };
                RegistryOutcome::Compatibility { previous }
            }
        };
        self.revision = revision;
        Ok(outcome)
    }

    fn register(&mut self, subject: &str, schema: &StoredSchema, canonical: &str) -> RegistryResult<RegistryOutcome> {
        validate_subject(subject)?;
        for reference in &schema.references {
            self.version_id(&reference.subject, reference.version)?;
        }
        let key = SchemaKey {
            schema_type: schema.schema_type,
            canonical: canonical.to_string(),
            references: schema.references.clone(),
        };
        let id = match self.ids.get(&key) {
            Some(id) => *id,
            None => {
                // Summed when a new schema comes (rare), rather than kept beside the schemas.
                let held: usize = self.schemas.values().map(|s| s.schema.len()).sum();
                if held + schema.schema.len() > REGISTRY_BYTES_MAX {
                    return Err(RegistryError::Store(format!(
                        "the registry holds {held} bytes of schemas; {REGISTRY_BYTES_MAX} at most"
                    )));
                }
                let id = self.last_id.checked_add(1).ok_or_else(|| RegistryError::Store("no schema id left".into()))?;
                self.last_id = id;
                self.schemas.insert(id, schema.clone());
                self.ids.insert(key, id);
                id
            }
        };
        let entry = self.subjects.entry(subject.to_string()).or_default();
        if let Some((version, _)) = entry.active().find(|(_, existing)| *existing == id) {
            return Ok(RegistryOutcome::Registered { id, version });
        }
        let version = entry.versions.keys().next_back().map_or(1, |last| last + 1);
        entry.versions.insert(version, SubjectVersion { id, deleted: false });
        Ok(RegistryOutcome::Registered { id, version })
    }

    /// Versions of other subjects' schemas that reference `subject` (at `version`, or any).
    fn referrers(&self, subject: &str, version: Option<u32>, include_deleted: bool) -> Vec<u32> {
        let mut ids = BTreeSet::new();
        for s in self.subjects.values() {
            for v in s.versions.values().filter(|v| include_deleted || !v.deleted) {
                let refers = self.schemas.get(&v.id).is_some_and(|schema| {
                    schema.references.iter().any(|r| r.subject == subject && version.is_none_or(|n| r.version == n))
                });
                if refers {
                    ids.insert(v.id);
                }
            }
        }
        ids.into_iter().collect()
    }

    fn delete_version(&mut self, subject: &str, version: u32, permanent: bool) -> RegistryResult<RegistryOutcome> {
        let entry = self.subjects.get(subject).ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
        let existing = *entry
            .versions
            .get(&version)
            .ok_or_else(|| RegistryError::VersionNotFound { subject: subject.into(), version })?;
        if !self.referrers(subject, Some(version), permanent).is_empty() {
            return Err(RegistryError::ReferenceExists { subject: subject.into(), version });
        }
        match (permanent, existing.deleted) {
            (false, true) => return Err(RegistryError::VersionSoftDeleted { subject: subject.into(), version }),
            (true, false) => return Err(RegistryError::VersionNotSoftDeleted { subject: subject.into(), version }),
            _ => {}
        }
        let entry = self.subjects.get_mut(subject).expect("looked up above");
        if permanent {
            entry.versions.remove(&version);
            if entry.versions.is_empty() && entry.compatibility.is_none() {
                self.subjects.remove(subject);
            }
        } else {
            entry.versions.insert(version, SubjectVersion { deleted: true, ..existing });
        }
        Ok(RegistryOutcome::Deleted { versions: vec![version] })
    }

    fn delete_subject(&mut self, subject: &str, permanent: bool) -> RegistryResult<RegistryOutcome> {
        let entry = self.subjects.get(subject).filter(|s| !s.versions.is_empty());
        let entry = entry.ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
        let active: Vec<u32> = entry.active().map(|(n, _)| n).collect();
        match (permanent, active.is_empty()) {
            (false, true) => return Err(RegistryError::SubjectSoftDeleted(subject.into())),
            (true, false) => return Err(RegistryError::SubjectNotSoftDeleted(subject.into())),
            _ => {}
        }
        if let Some(version) = entry.versions.keys().find(|n| !self.referrers(subject, Some(**n), permanent).is_empty())
        {
            return Err(RegistryError::ReferenceExists { subject: subject.into(), version: *version });
        }
        if permanent {
            let removed = self.subjects.remove(subject).expect("looked up above");
            return Ok(RegistryOutcome::Deleted { versions: removed.versions.into_keys().collect() });
        }
        let entry = self.subjects.get_mut(subject).expect("looked up above");
        for n in &active {
            if let Some(v) = entry.versions.get_mut(n) {
                v.deleted = true;
            }
        }
        Ok(RegistryOutcome::Deleted { versions: active })
    }

    // -----------------------------------------------------------------------------------------
    // Reads

    /// Subjects with a version not deleted (with `deleted`, also those only of deleted ones),
    /// optionally only those starting with `prefix`.
    pub fn subjects(&self, deleted: bool, prefix: Option<&str>) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, s)| !s.versions.is_empty() && (deleted || s.is_active()))
            .filter(|(name, _)| prefix.is_none_or(|p| name.starts_with(p)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A subject's version numbers; [`RegistryError::SubjectNotFound`] when it has none listed.
    pub fn versions(&self, subject: &str, deleted: bool) -> RegistryResult<Vec<u32>> {
        let versions: Vec<u32> = self
            .subjects
            .get(subject)
            .map(|s| s.versions.iter().filter(|(_, v)| deleted || !v.deleted).map(|(n, _)| *n).collect())
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.into()));
        }
        Ok(versions)
    }

    /// The number and id of a subject's version (the latest one not deleted for
    /// [`VersionSpec::Latest`]; with `deleted`, deleted versions count too).
    pub fn version(&self, subject: &str, spec: VersionSpec, deleted: bool) -> RegistryResult<(u32, u32)> {
        let entry = self
            .subjects
            .get(subject)
            .filter(|s| if deleted { !s.versions.is_empty() } else { s.is_active() })
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
        let found = match spec {
            VersionSpec::Latest => {
                entry.versions.iter().rev().find(|(_, v)| deleted || !v.deleted).map(|(n, v)| (*n, v.id))
            }
            VersionSpec::Number(n) => entry.versions.get(&n).filter(|v| deleted || !v.deleted).map(|v| (n, v.id)),
        };
        found.ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.into(),
            version: match spec {
                VersionSpec::Number(n) => n,
                VersionSpec::Latest => 0,
            },
        })
    }

    fn version_id(&self, subject: &str, version: u32) -> RegistryResult<u32> {
        self.version(subject, VersionSpec::Number(version), true).map(|(_, id)| id)
    }

    /// The schema an id names.
    pub fn schema(&self, id: u32) -> RegistryResult<&StoredSchema> {
        self.schemas.get(&id).ok_or(RegistryError::SchemaIdNotFound(id))
    }

    /// Every (subject, version) registered with schema `id`.
    pub fn subject_versions_of(&self, id: u32, deleted: bool) -> RegistryResult<Vec<(String, u32)>> {
        self.schema(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions
                    .iter()
                    .filter(|(_, v)| v.id == id && (deleted || !v.deleted))
                    .map(|(n, _)| (name.clone(), *n))
            })
            .collect())
    }

    /// Ids of the schemas that reference a subject's version.
    pub fn referenced_by(&self, subject: &str, version: VersionSpec) -> RegistryResult<Vec<u32>> {
        let (number, _) = self.version(subject, version, false)?;
        Ok(self.referrers(subject, Some(number), false))
    }

    /// The level set for `subject` (or globally, for `None`), without defaults.
    pub fn compatibility_set(&self, subject: Option<&str>) -> Option<Compatibility> {
        match subject {
            None => self.compatibility,
            Some(name) => self.subjects.get(name).and_then(|s| s.compatibility),
        }
    }

    /// The level a subject's registrations are checked with.
    pub fn compatibility_of(&self, subject: &str) -> Compatibility {
        self.compatibility_set(Some(subject)).or(self.compatibility).unwrap_or(Compatibility::DEFAULT)
    }

    /// Every schema by id (for documents of the whole registry).
    pub fn schemas(&self) -> impl Iterator<Item = (u32, &StoredSchema)> {
        self.schemas.iter().map(|(id, s)| (*id, s))
    }

    // -----------------------------------------------------------------------------------------
    // Parsing against the registry

    /// The source of a schema, with its references resolved (transitively) from the registry.
    pub fn resolve(&self, input: &SchemaInput) -> RegistryResult<Source> {
        self.resolve_at(input.schema_type, &input.schema, &input.references, 0)
    }

    fn resolve_at(
        &self,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
        depth: usize,
    ) -> RegistryResult<Source> {
        if depth > REFERENCE_DEPTH_MAX {
            return Err(RegistryError::InvalidSchema(format!("references nest deeper than {REFERENCE_DEPTH_MAX}")));
        }
        let mut resolved = Vec::new();
        for reference in references {
            let id = self.version_id(&reference.subject, reference.version).map_err(|_| {
                RegistryError::InvalidSchema(format!(
                    "reference {:?} names subject {:?} version {}, which is not registered",
                    reference.name, reference.subject, reference.version
                ))
            })?;
            let target = self.schema(id)?;
            let source = self.resolve_at(target.schema_type, &target.schema, &target.references, depth + 1)?;
            resolved.push(NamedSource { name: reference.name.clone(), source });
        }
        Ok(Source { schema_type, schema: schema.to_string(), references: resolved })
    }

    /// Parses a registered schema.
    pub fn parse_id(&self, id: u32) -> RegistryResult<ParsedSchema> {
        let stored = self.schema(id)?;
        let source = self.resolve_at(stored.schema_type, &stored.schema, &stored.references, 0)?;
        ParsedSchema::parse(&source)
            .map_err(|e| RegistryError::Store(format!("registered schema {id} no longer parses: {e}")))
    }

    fn parse_input(&self, input: &SchemaInput) -> RegistryResult<ParsedSchema> {
        if input.schema.len() > SCHEMA_BYTES_MAX {
            return Err(RegistryError::InvalidSchema(format!(
                "the schema is {} bytes; {SCHEMA_BYTES_MAX} at most",
                input.schema.len()
            )));
        }
        ParsedSchema::parse(&self.resolve(input)?)
    }

    fn key_of(input: &SchemaInput, parsed: &ParsedSchema) -> SchemaKey {
        SchemaKey {
            schema_type: input.schema_type,
            canonical: parsed.canonical().to_string(),
            references: input.references.clone(),
        }
    }

    /// The version of `subject` that holds `input`, if any (POST /subjects/{subject}).
    pub fn lookup(&self, subject: &str, input: &SchemaInput, deleted: bool) -> RegistryResult<(u32, u32)> {
        let parsed = self.parse_input(input)?;
        let entry = self
            .subjects
            .get(subject)
            .filter(|s| if deleted { !s.versions.is_empty() } else { s.is_active() })
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
        let id = self.ids.get(&Self::key_of(input, &parsed)).ok_or(RegistryError::SchemaNotFound)?;
        entry
            .versions
            .iter()
            .rev()
            .find(|(_, v)| v.id == *id && (deleted || !v.deleted))
            .map(|(n, _)| (*n, *id))
            .ok_or(RegistryError::SchemaNotFound)
    }

    /// Why `new` is not compatible with the given versions of `subject` at `level`; empty when
    /// it is.
    fn compatibility_problems(
        &self,
        subject: &str,
        new: &ParsedSchema,
        versions: &[(u32, u32)],
        level: Compatibility,
    ) -> RegistryResult<Vec<String>> {
        let mut problems = Vec::new();
        for (version, id) in versions {
            let old = self.parse_id(*id)?;
            if level.backward() {
                for p in new.read_problems(&old) {
                    problems.push(format!("{{reader: new schema, writer: {subject} version {version}}} {p}"));
                }
            }
            if level.forward() {
                for p in old.read_problems(new) {
                    problems.push(format!("{{reader: {subject} version {version}, writer: new schema}} {p}"));
                }
            }
        }
        Ok(problems)
    }

    /// The versions a new schema of `subject` is checked against at `level`: none for NONE, the
    /// latest for the plain levels, every one not deleted for the transitive ones.
    fn checked_versions(&self, subject: &str, level: Compatibility) -> Vec<(u32, u32)> {
        if level == Compatibility::None {
            return Vec::new();
        }
        let Some(entry) = self.subjects.get(subject) else { return Vec::new() };
        let active: Vec<(u32, u32)> = entry.active().collect();
        if level.transitive() { active } else { active.last().copied().into_iter().collect() }
    }

    /// The leader's side of `POST /subjects/{subject}/versions`: parses `input`, answers the
    /// version that already holds it, or checks it against the subject's compatibility level
    /// and gives the command that registers it.
    pub fn plan_register(&self, subject: &str, input: &SchemaInput) -> RegistryResult<RegisterPlan> {
        validate_subject(subject)?;
        let parsed = self.parse_input(input)?;
        let key = Self::key_of(input, &parsed);
        if let Some(id) = self.ids.get(&key)
            && let Some((version, _)) =
                self.subjects.get(subject).and_then(|s| s.active().rev().find(|(_, existing)| existing == id))
        {
            return Ok(RegisterPlan::Existing { id: *id, version });
        }
        let level = self.compatibility_of(subject);
        let problems = self.compatibility_problems(subject, &parsed, &self.checked_versions(subject, level), level)?;
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible { subject: subject.into(), messages: problems });
        }
        Ok(RegisterPlan::Propose(RegistryCommand::Register {
            subject: subject.into(),
            schema: StoredSchema {
                schema_type: input.schema_type,
                schema: input.schema.clone(),
                references: input.references.clone(),
            },
            canonical: key.canonical,
            expected_revision: self.revision,
        }))
    }

    /// `POST /compatibility/subjects/{subject}/versions[/{version}]`: the problems of `input`
    /// against one version (in the directions of the subject's level, both ways for NONE
    /// being unchecked: no problem) or, without a version, against those the level checks.
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        input: &SchemaInput,
    ) -> RegistryResult<Vec<String>> {
        let parsed = self.parse_input(input)?;
        let level = self.compatibility_of(subject);
        let versions = match version {
            Some(spec) => vec![self.version(subject, spec, false)?],
            None => self.checked_versions(subject, level),
        };
        self.compatibility_problems(subject, &parsed, &versions, level)
    }
}
