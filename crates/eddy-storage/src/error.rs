//! Storage errors.

use std::io;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O failed: {0}")]
    Io(#[from] io::Error),
    #[cfg(feature = "rocksdb")]
    #[error("RocksDB failed: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "data directory {dir} was written by an incompatible version of Eddy (format {found}, this \
         build reads format {expected})"
    )]
    IncompatibleFormat { dir: String, found: String, expected: u32 },
    #[error("data directory {dir} belongs to node {found}, not node {expected}")]
    WrongNode { dir: String, found: u64, expected: u64 },
    #[error("the storage writer has stopped")]
    WriterStopped,
}

pub type StorageResult<T> = Result<T, StorageError>;

impl StorageError {
    /// Converts to the `io::Error` openraft's storage traits report.
    pub fn into_io(self) -> io::Error {
        match self {
            StorageError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(what.to_string())
}
