//! Registry errors, each with the error code and HTTP status the Confluent Schema Registry API
//! gives it, so that its clients recognise them. They travel between brokers (serde) unchanged.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {version} not found.")]
    VersionNotFound { subject: String, version: u32 },
    #[error("Schema {0} not found")]
    SchemaIdNotFound(u32),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted { subject: String, version: u32 },
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelCompatibilityNotConfigured(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", messages.join(", "))]
    Incompatible { subject: String, messages: Vec<String> },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibilityLevel(String),
    #[error("Invalid subject {subject:?}: {reason}")]
    InvalidSubject { subject: String, reason: String },
    #[error("One or more references exist to the schema {{subject={subject},version={version}}}")]
    ReferenceExists { subject: String, version: u32 },
    #[error("Invalid request: {0}")]
    InvalidRequest(String),
    /// The registry changed between the leader's check of a write and its apply; the leader
    /// checks again.
    #[error("the registry changed while the request was checked (revision {expected}, now {current})")]
    Conflict { expected: u64, current: u64 },
    #[error("Error in the backend data store: {0}")]
    Store(String),
    #[error("Error while forwarding the request to the primary: {0}")]
    Forwarding(String),
}

impl RegistryError {
    /// The API's `error_code`.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaIdNotFound(_) | RegistryError::SchemaNotFound => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted { .. } => 40406,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::SubjectLevelCompatibilityNotConfigured(_) => 40408,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibilityLevel(_) => 42203,
            RegistryError::ReferenceExists { .. } => 42206,
            RegistryError::InvalidSubject { .. } => 42208,
            RegistryError::InvalidRequest(_) => 42200,
            RegistryError::Conflict { .. } | RegistryError::Store(_) => 50001,
            RegistryError::Forwarding(_) => 50003,
        }
    }

    /// The HTTP status the API answers it with.
    pub fn http_status(&self) -> u16 {
        match self.error_code() {
            409 => 409,
            code if (40400..40500).contains(&code) => 404,
            code if (42200..42300).contains(&code) => 422,
            _ => 500,
        }
    }
}

/// Results of the registry.
pub type RegistryResult<T> = Result<T, RegistryError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_statuses() {
        assert_eq!(RegistryError::SubjectNotFound("s".into()).http_status(), 404);
        assert_eq!(RegistryError::Incompatible { subject: "s".into(), messages: vec![] }.http_status(), 409);
        assert_eq!(RegistryError::InvalidSchema("x".into()).http_status(), 422);
        assert_eq!(RegistryError::Store("x".into()).http_status(), 500);
        assert_eq!(
            RegistryError::SubjectNotFound("orders-value".into()).to_string(),
            "Subject 'orders-value' not found."
        );
    }
}
