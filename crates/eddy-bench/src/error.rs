//! What can stop a benchmark run. A record that is not acknowledged is not an error of the run:
//! it is counted in the report (`errors`), and the run goes on.

use std::path::PathBuf;

use eddy_client::ClientError;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The command line asks for something impossible; names the flag.
    #[error("{0}")]
    Usage(String),
    /// An Eddy request failed (the message ends with its reason code).
    #[error("eddy: {0}")]
    Eddy(#[from] ClientError),
    /// A NATS request failed.
    #[error("nats: {operation} failed: {message}")]
    Nats { operation: &'static str, message: String },
    /// A stream did not become usable (no leader, no JetStream) in time.
    #[error("{what} did not happen within {seconds} s")]
    Timeout { what: String, seconds: u64 },
    /// A reader received nothing for too long while records were still expected.
    #[error("partition {partition}: no record for {seconds} s with {missing} still expected")]
    Stalled { partition: u32, seconds: u64, missing: u64 },
    /// A /proc file could not be read or parsed.
    #[error("cannot read {}: {reason}", path.display())]
    Proc { path: PathBuf, reason: String },
    /// The leader to kill is not among the `--server-pid` names.
    #[error("the leader is {name:?}, which no --server-pid names (known: {known})")]
    UnknownServer { name: String, known: String },
    /// The partition has no leader to kill.
    #[error("partition {partition} of {stream} has no leader")]
    NoLeader { stream: String, partition: u32 },
    /// SIGKILL could not be sent.
    #[error("cannot kill server {name} (pid {pid}): {reason}")]
    Kill { name: String, pid: i32, reason: String },
    /// A background task of the run panicked or was cancelled.
    #[error("a task of the run failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl BenchError {
    /// A NATS failure of `operation`.
    pub fn nats(operation: &'static str, error: impl std::fmt::Display) -> BenchError {
        BenchError::Nats { operation, message: error.to_string() }
    }
}

/// Result of a benchmark step.
pub type BenchResult<T> = Result<T, BenchError>;
