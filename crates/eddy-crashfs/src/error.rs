//! The crate's errors.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong mounting, driving or unmounting a crash filesystem.
#[derive(Debug, thiserror::Error)]
pub enum CrashFsError {
    /// A setting is out of bounds.
    #[error("invalid crash filesystem setting {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The machine has no FUSE device, so nothing can be mounted.
    #[error(
        "/dev/fuse is missing: this machine cannot mount FUSE filesystems (load the fuse module, or give the container the device)"
    )]
    NoFuseDevice,
    /// The backing or mount directory is unusable.
    #[error("{what} {path}: {source}")]
    Directory { what: &'static str, path: PathBuf, source: io::Error },
    /// The kernel refused the mount.
    #[error(
        "cannot mount a FUSE filesystem at {mountpoint} (as root it is mounted directly; otherwise fusermount3, from Debian's fuse3 package, must be installed): {source}"
    )]
    Mount { mountpoint: PathBuf, source: io::Error },
    /// The kernel refused the unmount.
    #[error("cannot unmount {mountpoint}: {source}")]
    Unmount { mountpoint: PathBuf, source: io::Error },
    /// Writing dirty files back to the backing directory failed.
    #[error("writing back to the backing directory failed: {0}")]
    WriteBack(io::Error),
    /// The power of the filesystem is cut: nothing works until it is unmounted.
    #[error("the filesystem's power is cut: every operation fails until it is unmounted and mounted again")]
    PoweredOff,
    /// The control socket of the binary failed.
    #[error("control socket {path}: {source}")]
    Control { path: PathBuf, source: io::Error },
}
