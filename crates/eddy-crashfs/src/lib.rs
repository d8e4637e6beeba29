//! A FUSE filesystem that loses every write not yet fsynced when its "power" is cut, in the
//! spirit of LazyFS: the crash model of Eddy's disk path under real processes and RocksDB.
//!
//! [`Mounted::mount`] shows a backing directory at a mount point. File data written through
//! the mount, and size changes (truncate, extension), stay in the filesystem's own page cache
//! ([`page_cache`]): reads see them, the backing file does not. fsync and fdatasync (and writes
//! to files opened with O_SYNC or O_DSYNC) write a file's cached state through to its backing
//! file and sync it. [`PowerSwitch::cut`] drops every unsynced byte at once and makes every
//! later operation fail with EIO until the filesystem is unmounted: the backing directory then
//! holds exactly what was synced, and mounting it again is the machine coming back.
//!
//! Simplification (LazyFS makes the same one): names and attributes (create, mkdir, rename,
//! unlink, link, chmod, chown, utimes) go straight to the backing directory, so they are
//! durable at once and a directory fsync has nothing to do. A file created and renamed but
//! never fsynced therefore survives the cut with the name, but empty (or at its last synced
//! contents), which is what a real filesystem can leave too.
//!
//! The unsynced bytes are bounded ([`CrashFsConfig::dirty_bytes_max`]): a write that would pass
//! the bound first writes every dirty file back, as a kernel under memory pressure does, and
//! [`Stats::forced_writebacks`] counts it so a test can tell.
//!
//! - [`cache`]: one file's unsynced state over its backing file (no I/O of its own).
//! - [`page_cache`]: every file's, the bound, and the cut.
//! - [`inodes`]: inode numbers tied to the backing files' identities.
//! - `state`, `meta_ops`, `file_ops`, `dir_ops`, `fs`: the filesystem's operations and the
//!   FUSE requests that run them.
//! - [`mount`]: mounting, unmounting and the [`PowerSwitch`].
//! - [`control`]: the binary's control socket (`cut`, `sync`, `stats`, `unmount`).

pub mod cache;
pub mod config;
pub mod control;
mod dir_ops;
pub mod error;
mod file_ops;
mod fs;
pub mod inodes;
mod meta_ops;
pub mod mount;
pub mod page_cache;
mod state;
pub mod stats;

pub use config::CrashFsConfig;
pub use error::CrashFsError;
pub use mount::{Mounted, PowerSwitch};
pub use stats::Stats;
