//! CLI errors: one sentence, with the broker's reason code when there is one.

use std::process::ExitCode;

use eddy_client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A request failed; the message ends with the reason code.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The command line or configuration is wrong.
    #[error("{0}")]
    Usage(String),
    /// Anything else (I/O, a failed start).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

impl From<eddy_bench::BenchError> for CliError {
    fn from(e: eddy_bench::BenchError) -> Self {
        match e {
            eddy_bench::BenchError::Eddy(e) => CliError::Client(e),
            eddy_bench::BenchError::Usage(message) => CliError::Usage(message),
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Failed(e.to_string())
    }
}
