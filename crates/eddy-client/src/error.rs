//! Client errors: a broker's answer (with its stable reason code) or a transport failure.

use std::collections::HashMap;

use eddy_proto::Reason;
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
    /// The schema registry answered with an error (its HTTP status and API error code).
    #[error("{message} (schema registry error {code}, HTTP {status})")]
    Registry { status: u16, code: u32, message: String },
    /// A value does not match its schema, or bytes are not a value of the schema they name.
    #[error("{0}")]
    Schema(String),
    /// A local store of the client failed (a processed-id journal's file).
    #[error("{0}")]
    Store(String),
    /// A record's handler failed for good and the processor has no dead-letter topic to put it in.
    #[error("{topic}/{partition}@{offset} was not handled: {error}")]
    Unhandled { topic: String, partition: u32, offset: u64, error: String },
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
                // What a TLS listener's alert looks like to a plaintext HTTP/2 client.
                Code::Internal if status.message().contains("h2 protocol error") => ClientError::Broker {
                    code: Code::Internal,
                    reason: "PROTOCOL_ERROR".into(),
                    message: format!(
                        "the broker did not answer in plaintext HTTP/2 ({}); if it requires TLS, give the client \
                         the cluster's CA (eddy --tls-ca, ClientConfig::tls)",
                        status.message()
                    ),
                    metadata: HashMap::new(),
                },
                code => ClientError::Broker {
                    code,
                    reason: format!("{code:?}").to_uppercase(),
                    message: status.message().to_string(),
                    metadata: HashMap::new(),
                },
            },
        }
    }

    /// An answer the client gives itself from what brokers told it (a partition the topic's
    /// description lacks, a partition without a leader yet), as a broker would have answered.
    pub fn answer(reason: Reason, message: String) -> ClientError {
        ClientError::Broker {
            code: reason.grpc_code(),
            reason: reason.as_str().to_string(),
            message,
            metadata: HashMap::new(),
        }
    }

    /// The stable reason code (`NOT_LEADER`, `UNKNOWN_TOPIC`, ...), or a code for client-side
    /// failures (`UNREACHABLE`, `TIMEOUT`, `INVALID_ARGUMENT`). A broker's answer without Eddy's
    /// ErrorInfo (a proxy, another server) carries its gRPC code's name instead.
    pub fn reason(&self) -> &str {
        match self {
            ClientError::Broker { reason, .. } => reason,
            ClientError::Unreachable(_) => Reason::Unreachable.as_str(),
            ClientError::Timeout(_) => Reason::Timeout.as_str(),
            ClientError::Invalid(_) => Reason::InvalidArgument.as_str(),
            // The registry lives in the controller: its server-side failures are retriable.
            ClientError::Registry { status, .. } if *status >= 500 => Reason::ControllerUnavailable.as_str(),
            ClientError::Registry { .. } => Reason::InvalidRequest.as_str(),
            ClientError::Schema(_) => Reason::SchemaValidationFailed.as_str(),
            ClientError::Store(_) => Reason::StorageError.as_str(),
            ClientError::Unhandled { .. } => "HANDLER_FAILED",
        }
    }

    /// The reason as one of Eddy's codes; `None` for a code this client does not know.
    pub fn code(&self) -> Option<Reason> {
        Reason::from_code(self.reason())
    }

    /// Whether the request certainly changed nothing: the broker rejected it before writing
    /// (NOT_LEADER, LEADER_NOT_AVAILABLE and SHUTTING_DOWN are only answered before a batch is
    /// appended, and validation errors before anything is done). Timeouts, lost connections and
    /// OUTCOME_UNKNOWN may or may not have taken effect. [`Reason`]'s table decides.
    pub fn is_definite(&self) -> bool {
        self.code().is_some_and(Reason::is_definite)
    }

    /// Whether sending the same request again may succeed (leader moved, broker down, timeout).
    pub fn is_retriable(&self) -> bool {
        self.code().is_some_and(Reason::is_retriable)
    }

    /// Whether the broker said the topic or partition does not exist (in the controller's
    /// committed metadata, as far as that broker knows).
    pub fn is_unknown_topic(&self) -> bool {
        matches!(self.code(), Some(Reason::UnknownTopic | Reason::UnknownPartition))
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
