//! Client errors: a broker's answer (with its stable reason code) or a transport failure.

use std::collections::HashMap;

use tonic::Code;
use tonic_types::StatusExt;

/// What went wrong with a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with an error.
    #[error("{message} ({reason})")]
    Broker { code: Code, reason: String, message: String, metadata: HashMap<String, String> },
    /// No broker could be reached.
    #[error("cannot reach any broker: {0}")]
    Unreachable(String),
    /// The request's outcome is unknown (timed out, connection lost mid-way).
    #[error("request timed out: {0}")]
    Timeout(String),
    /// The caller's input is invalid before anything was sent.
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// Builds the error from a gRPC status, reading Eddy's ErrorInfo when present.
    pub fn from_status(status: &tonic::Status) -> ClientError {
        let details = status.get_error_details();
        match details.error_info() {
            Some(info) => ClientError::Broker {
                code: status.code(),
                reason: info.reason.clone(),
                message: status.message().to_string(),
                metadata: info.metadata.clone(),
            },
            None => match status.code() {
                Code::Unavailable | Code::Unknown | Code::Cancelled => {
                    ClientError::Unreachable(status.message().to_string())
                }
                Code::DeadlineExceeded => ClientError::Timeout(status.message().to_string()),
                code => ClientError::Broker {
                    code,
                    reason: format!("{code:?}").to_uppercase(),
                    message: status.message().to_string(),
                    metadata: HashMap::new(),
                },
            },
        }
    }

    /// The stable reason code (`NOT_LEADER`, `UNKNOWN_TOPIC`, ...), or a code for client-side
    /// failures (`UNREACHABLE`, `TIMEOUT`, `INVALID_ARGUMENT`).
    pub fn reason(&self) -> &str {
        match self {
            ClientError::Broker { reason, .. } => reason,
            ClientError::Unreachable(_) => "UNREACHABLE",
            ClientError::Timeout(_) => "TIMEOUT",
            ClientError::Invalid(_) => "INVALID_ARGUMENT",
        }
    }

    /// Whether the request certainly changed nothing: the broker rejected it before writing
    /// (NOT_LEADER, LEADER_NOT_AVAILABLE and SHUTTING_DOWN are only answered before a batch is
    /// appended, and validation errors before anything is done). Timeouts, lost connections and
    /// OUTCOME_UNKNOWN may or may not have taken effect.
    pub fn is_definite(&self) -> bool {
        match self {
            ClientError::Broker { reason, .. } => matches!(
                reason.as_str(),
                "NOT_LEADER"
                    | "LEADER_NOT_AVAILABLE"
                    | "SHUTTING_DOWN"
                    | "METADATA_NOT_READY"
                    | "UNKNOWN_TOPIC"
                    | "UNKNOWN_PARTITION"
                    | "RECORD_TOO_LARGE"
                    | "BATCH_TOO_LARGE"
                    | "INVALID_REQUEST"
                    | "OUT_OF_ORDER_SEQUENCE"
                    | "PRODUCER_FENCED"
            ),
            ClientError::Unreachable(_) | ClientError::Timeout(_) => false,
            ClientError::Invalid(_) => true,
        }
    }

    /// Whether sending the same request again may succeed (leader moved, broker down, timeout).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { reason, .. } => matches!(
                reason.as_str(),
                "NOT_LEADER"
                    | "LEADER_NOT_AVAILABLE"
                    | "TIMEOUT"
                    | "OUTCOME_UNKNOWN"
                    | "SHUTTING_DOWN"
                    | "NOT_CONTROLLER"
                    | "CONTROLLER_UNAVAILABLE"
                    | "METADATA_NOT_READY"
            ),
            ClientError::Unreachable(_) | ClientError::Timeout(_) => true,
            ClientError::Invalid(_) => false,
        }
    }

    /// Whether the broker said the topic or partition does not exist (in the controller's
    /// committed metadata, as far as that broker knows).
    pub fn is_unknown_topic(&self) -> bool {
        matches!(self.reason(), "UNKNOWN_TOPIC" | "UNKNOWN_PARTITION")
    }

    /// For NOT_LEADER: the leader's address, when the broker knew it.
    pub fn leader_address(&self) -> Option<&str> {
        match self {
            ClientError::Broker { metadata, .. } => metadata.get("leader_address").map(String::as_str),
            _ => None,
        }
    }

    /// A metadata value of the broker's ErrorInfo.
    pub fn detail(&self, key: &str) -> Option<&str> {
        match self {
            ClientError::Broker { metadata, .. } => metadata.get(key).map(String::as_str),
            _ => None,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;
