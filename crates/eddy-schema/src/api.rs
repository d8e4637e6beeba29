//! Requests and answers of the registry between a broker's HTTP API and the controller leader,
//! which holds the registry: [`serve_read`] answers reads from the state, [`plan_write`] turns a
//! write into the command to propose (or answers it at once when nothing needs writing).

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, RegistryResult};
use crate::format::Source;
use crate::registry::{
    RegisterPlan, Registry, RegistryCommand, RegistryOutcome, SchemaInput, StoredSchema, VersionSpec,
};
use crate::types::Compatibility;

/// What a broker asks of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryRequest {
    Subjects {
        deleted: bool,
        prefix: Option<String>,
    },
    Versions {
        subject: String,
        deleted: bool,
    },
    Version {
        subject: String,
        version: VersionSpec,
        deleted: bool,
    },
    SchemaById {
        id: u32,
    },
    SubjectVersionsOfId {
        id: u32,
        deleted: bool,
    },
    ReferencedBy {
        subject: String,
        version: VersionSpec,
    },
    Lookup {
        subject: String,
        schema: SchemaInput,
        deleted: bool,
    },
    Register {
        subject: String,
        schema: SchemaInput,
    },
    DeleteSubject {
        subject: String,
        permanent: bool,
    },
    DeleteVersion {
        subject: String,
        version: VersionSpec,
        permanent: bool,
    },
    /// The level of `subject` (or the global one); `default_to_global` answers the level in
    /// force where the subject sets none.
    GetCompatibility {
        subject: Option<String>,
        default_to_global: bool,
    },
    SetCompatibility {
        subject: Option<String>,
        compatibility: Compatibility,
    },
    DeleteCompatibility {
        subject: Option<String>,
    },
    CheckCompatibility {
        subject: String,
        version: Option<VersionSpec>,
        schema: SchemaInput,
    },
    /// What a broker needs to validate values written with schema `id`: its source with the
    /// references resolved, and the subjects listing it.
    Resolve {
        id: u32,
    },
    /// The latest version of every subject with one not deleted (for AsyncAPI documents).
    Latest,
}

/// A subject's version with its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionView {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: StoredSchema,
}

/// The registry's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryReply {
    Subjects(Vec<String>),
    Versions(Vec<u32>),
    Version(VersionView),
    Schema { id: u32, schema: StoredSchema },
    SubjectVersions(Vec<(String, u32)>),
    Ids(Vec<u32>),
    Registered { id: u32, version: u32 },
    Deleted(Vec<u32>),
    Compatibility(Compatibility),
    Compatible { messages: Vec<String> },
    Resolved { source: Source, subjects: Vec<String> },
    Latest(Vec<VersionView>),
}

/// Percent-encodes a subject (or any text) for one segment of a URL path of the registry's API.
pub fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What the leader does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Answer(RegistryReply),
    Propose(RegistryCommand),
}

impl RegistryRequest {
    /// Whether the request changes the registry.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            RegistryRequest::Register { .. }
                | RegistryRequest::DeleteSubject { .. }
                | RegistryRequest::DeleteVersion { .. }
                | RegistryRequest::SetCompatibility { .. }
                | RegistryRequest::DeleteCompatibility { .. }
        )
    }
}

/// Answers a request from `registry`, or gives the command a write needs.
pub fn plan(registry: &Registry, request: &RegistryRequest) -> RegistryResult<Step> {
    let answer = |reply| Ok(Step::Answer(reply));
    match request {
        RegistryRequest::Subjects { deleted, prefix } => {
            answer(RegistryReply::Subjects(registry.subjects(*deleted, prefix.as_deref())))
        }
        RegistryRequest::Versions { subject, deleted } => {
            answer(RegistryReply::Versions(registry.versions(subject, *deleted)?))
        }
        RegistryRequest::Version { subject, version, deleted } => {
            let (number, id) = registry.version(subject, *version, *deleted)?;
            let schema = registry.schema(id)?.clone();
            answer(RegistryReply::Version(VersionView { subject: subject.clone(), version: number, id, schema }))
        }
        RegistryRequest::SchemaById { id } => {
            answer(RegistryReply::Schema { id: *id, schema: registry.schema(*id)?.clone() })
        }
        RegistryRequest::SubjectVersionsOfId { id, deleted } => {
            answer(RegistryReply::SubjectVersions(registry.subject_versions_of(*id, *deleted)?))
        }
        RegistryRequest::ReferencedBy { subject, version } => {
            answer(RegistryReply::Ids(registry.referenced_by(subject, *version)?))
        }
        RegistryRequest::Lookup { subject, schema, deleted } => {
            let (version, id) = registry.lookup(subject, schema, *deleted)?;
            let schema = registry.schema(id)?.clone();
            answer(RegistryReply::Version(VersionView { subject: subject.clone(), version, id, schema }))
        }
        RegistryRequest::Register { subject, schema } => match registry.plan_register(subject, schema)? {
            RegisterPlan::Existing { id, version } => answer(RegistryReply::Registered { id, version }),
            RegisterPlan::Propose(command) => Ok(Step::Propose(command)),
        },
        RegistryRequest::DeleteSubject { subject, permanent } => {
            Ok(Step::Propose(RegistryCommand::DeleteSubject { subject: subject.clone(), permanent: *permanent }))
        }
        RegistryRequest::DeleteVersion { subject, version, permanent } => {
            // "latest" names the newest version still listed; a permanent delete may name a
            // soft-deleted one.
            let (number, _) = registry.version(subject, *version, *permanent)?;
            Ok(Step::Propose(RegistryCommand::DeleteVersion {
                subject: subject.clone(),
                version: number,
                permanent: *permanent,
            }))
        }
        RegistryRequest::GetCompatibility { subject, default_to_global } => {
            let set = registry.compatibility_set(subject.as_deref());
            let level = match (subject, set) {
                (_, Some(level)) => level,
                (None, None) => Compatibility::DEFAULT,
                (Some(name), None) if *default_to_global => registry.compatibility_of(name),
                (Some(name), None) => return Err(RegistryError::SubjectLevelCompatibilityNotConfigured(name.clone())),
            };
            answer(RegistryReply::Compatibility(level))
        }
        RegistryRequest::SetCompatibility { subject, compatibility } => {
            Ok(Step::Propose(RegistryCommand::SetCompatibility {
                subject: subject.clone(),
                compatibility: Some(*compatibility),
            }))
        }
        RegistryRequest::DeleteCompatibility { subject } => {
            if let Some(name) = subject
                && registry.compatibility_set(Some(name)).is_none()
            {
                return Err(RegistryError::SubjectNotFound(name.clone()));
            }
            Ok(Step::Propose(RegistryCommand::SetCompatibility { subject: subject.clone(), compatibility: None }))
        }
        RegistryRequest::CheckCompatibility { subject, version, schema } => {
            answer(RegistryReply::Compatible { messages: registry.check_compatibility(subject, *version, schema)? })
        }
        RegistryRequest::Latest => {
            let mut views = Vec::new();
            for subject in registry.subjects(false, None) {
                let (version, id) = registry.version(&subject, VersionSpec::Latest, false)?;
                views.push(VersionView { subject, version, id, schema: registry.schema(id)?.clone() });
            }
            answer(RegistryReply::Latest(views))
        }
        RegistryRequest::Resolve { id } => {
            let stored = registry.schema(*id)?;
            let input = SchemaInput {
                schema_type: stored.schema_type,
                schema: stored.schema.clone(),
                references: stored.references.clone(),
            };
            let source = registry.resolve(&input)?;
            let mut subjects: Vec<String> =
                registry.subject_versions_of(*id, false)?.into_iter().map(|(subject, _)| subject).collect();
            subjects.dedup();
            answer(RegistryReply::Resolved { source, subjects })
        }
    }
}

/// The answer to `request` once its command applied with `outcome`.
pub fn reply_of(request: &RegistryRequest, outcome: RegistryOutcome) -> RegistryReply {
    match (request, outcome) {
        (_, RegistryOutcome::Registered { id, version }) => RegistryReply::Registered { id, version },
        (_, RegistryOutcome::Deleted { versions }) => RegistryReply::Deleted(versions),
        (RegistryRequest::SetCompatibility { compatibility, .. }, RegistryOutcome::Compatibility { .. }) => {
            RegistryReply::Compatibility(*compatibility)
        }
        (_, RegistryOutcome::Compatibility { previous }) => {
            RegistryReply::Compatibility(previous.unwrap_or(Compatibility::DEFAULT))
        }
    }
}
