//! The data directory's identity: which on-disk format it holds and which node owns it.
//!
//! A file `eddy-format` at the top of the data directory is checked before RocksDB is opened, so
//! a directory written by an incompatible Eddy (or by another node) is refused with a clear error
//! instead of being misread.

use std::path::Path;

use crate::error::{StorageError, StorageResult};

/// The on-disk format this build reads and writes. Bump it on any incompatible change to key
/// layout or encoding.
pub const DATA_FORMAT_VERSION: u32 = 7;

const FORMAT_FILE: &str = "eddy-format";

/// Checks (or, for a new directory, writes) the data directory's format and owner.
pub fn check_data_dir(dir: &Path, node_id: u64) -> StorageResult<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(FORMAT_FILE);
    let shown = dir.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut format = None;
            let mut owner = None;
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("format=") {
                    format = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("node_id=") {
                    owner = v.trim().parse::<u64>().ok();
                }
            }
            let found = format.unwrap_or_else(|| "unknown".into());
            if found != DATA_FORMAT_VERSION.to_string() {
                return Err(StorageError::IncompatibleFormat { dir: shown, found, expected: DATA_FORMAT_VERSION });
            }
            match owner {
                Some(found) if found != node_id => {
                    Err(StorageError::WrongNode { dir: shown, found, expected: node_id })
                }
                Some(_) => Ok(()),
                None => Err(StorageError::IncompatibleFormat {
                    dir: shown,
                    found: "no node_id".into(),
                    expected: DATA_FORMAT_VERSION,
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let not_empty = std::fs::read_dir(dir)?.next().is_some();
            if not_empty {
                return Err(StorageError::IncompatibleFormat {
                    dir: shown,
                    found: "none (the directory holds other files)".into(),
                    expected: DATA_FORMAT_VERSION,
                });
            }
            // Synced before the rename and the directory after it: a node that loses power in its
            // first seconds must come back to the stamp it wrote, not to an empty file that
            // makes it refuse its own directory (the crash filesystem test found it).
            let tmp = dir.join(format!("{FORMAT_FILE}.tmp"));
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(
                &mut file,
                format!("format={DATA_FORMAT_VERSION}\nnode_id={node_id}\n").as_bytes(),
            )?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_dir_is_stamped_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        check_data_dir(dir.path(), 3).unwrap();
        check_data_dir(dir.path(), 3).unwrap();
        assert!(matches!(check_data_dir(dir.path(), 4), Err(StorageError::WrongNode { found: 3, .. })));
        std::fs::write(dir.path().join(FORMAT_FILE), "format=0\nnode_id=3\n").unwrap();
        assert!(matches!(check_data_dir(dir.path(), 3), Err(StorageError::IncompatibleFormat { .. })));
    }

    #[test]
    fn foreign_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("something"), "x").unwrap();
        assert!(matches!(check_data_dir(dir.path(), 1), Err(StorageError::IncompatibleFormat { .. })));
    }
}
