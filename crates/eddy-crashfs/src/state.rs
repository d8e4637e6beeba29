//! The state behind one mounted filesystem: the power, the inode table, the page cache and the
//! open handles, under one lock.
//!
//! One lock makes the model simple to trust: a power cut, an fsync and a write never
//! interleave, so the backing directory always holds exactly what the syncs made durable. A
//! test filesystem needs no more concurrency than that.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};

use crate::inodes::{Identity, Inodes};
use crate::page_cache::PageCache;

/// An open file or directory.
#[derive(Debug)]
pub enum Handle {
    File {
        ino: u64,
        file: Arc<File>,
        writable: bool,
        /// Opened with O_SYNC or O_DSYNC: every write is synced before it returns.
        sync_writes: bool,
    },
    Dir {
        /// The listing taken at opendir, so a directory read in several calls is consistent.
        entries: Vec<DirEntry>,
    },
}

/// One name of a directory listing.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: FileType,
    pub name: OsString,
}

/// Everything the filesystem knows, guarded by [`Shared::lock`].
#[derive(Debug)]
pub struct State {
    /// False after the power cut: every operation fails with EIO until unmounted.
    pub powered: bool,
    pub inodes: Inodes,
    pub cache: PageCache<Arc<File>>,
    pub handles: BTreeMap<u64, Handle>,
    pub next_fh: u64,
    pub open_handles_max: usize,
    /// The backing directory.
    pub root: PathBuf,
}

/// The state shared by the FUSE threads and the power switch.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub fn new(state: State) -> Self {
        Self { state: Mutex::new(state) }
    }

    /// The state, whatever its power. A panic in one request must not wedge every later one
    /// (nor the power cut), so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state while the power is on; EIO after the power cut.
    pub fn powered(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let state = self.lock();
        if state.powered { Ok(state) } else { Err(Errno::EIO) }
    }
}

/// The error a failed backing operation answers the kernel with.
pub fn errno(error: io::Error) -> Errno {
    Errno::from(error)
}

/// A backing file's identity.
pub fn identity(meta: &Metadata) -> Identity {
    (meta.dev(), meta.ino())
}

/// The FUSE file type of a backing file type.
pub fn kind(file_type: std::fs::FileType) -> FileType {
    FileType::from_std(file_type).unwrap_or(FileType::RegularFile)
}

impl State {
    /// The backing path of `name` in directory `parent`.
    pub fn child(&self, parent: u64, name: &std::ffi::OsStr) -> Result<PathBuf, Errno> {
        let dir = self.inodes.path(parent).ok_or(Errno::ENOENT)?;
        Ok(dir.join(name))
    }

    /// The attributes of `ino` from its backing metadata, with the size readers see when it has
    /// unsynced state.
    pub fn attr(&self, ino: u64, meta: &Metadata) -> FileAttr {
        let size = self.cache.size(ino).unwrap_or(meta.len());
        let time = |secs: i64, nanos: i64| {
            let since = Duration::new(secs.unsigned_abs(), nanos.clamp(0, 999_999_999) as u32);
            if secs >= 0 { UNIX_EPOCH + since } else { UNIX_EPOCH - since }
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: meta.blocks().max(size.div_ceil(512)),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind(meta.file_type()),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: meta.blksize() as u32,
            flags: 0,
        }
    }

    /// Looks up the file at `path` (one more lookup the kernel holds) and answers its attributes.
    pub fn lookup_path(&mut self, path: PathBuf) -> Result<FileAttr, Errno> {
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        let ino = self.inodes.looked_up(path, identity(&meta));
        Ok(self.attr(ino, &meta))
    }

    /// The open file of handle `fh`, when it is a file handle of `ino`.
    pub fn open_file(&self, fh: u64, ino: u64) -> Option<&Handle> {
        self.handles.get(&fh).filter(|h| matches!(h, Handle::File { ino: i, .. } if *i == ino))
    }

    /// Metadata of `ino`: through an open handle when there is one (a file whose names are all
    /// gone has no path), else through its path.
    pub fn metadata(&self, ino: u64, fh: Option<u64>) -> Result<Metadata, Errno> {
        let handle_file = fh
            .and_then(|fh| self.open_file(fh, ino))
            .or_else(|| self.handles.values().find(|h| matches!(h, Handle::File { ino: i, .. } if *i == ino)));
        if let Some(Handle::File { file, .. }) = handle_file {
            return file.metadata().map_err(errno);
        }
        let path = self.inodes.path(ino).ok_or(Errno::ENOENT)?;
        std::fs::symlink_metadata(path).map_err(errno)
    }

    /// A new handle number, unless `open_handles_max` handles are open (ENFILE).
    pub fn next_handle(&mut self) -> Result<u64, Errno> {
        if self.handles.len() >= self.open_handles_max {
            tracing::warn!(open = self.handles.len(), "open handles at their bound");
            return Err(Errno::ENFILE);
        }
        self.next_fh += 1;
        Ok(self.next_fh)
    }

    /// The file of `identity` lost its last name: detach it, and drop its unsynced state
    /// unless it is still open (nothing can ever read a deleted, closed file).
    pub fn detached(&mut self, identity: Identity) {
        let Some(ino) = self.inodes.detach(identity) else { return };
        if self.inodes.get(ino).is_some_and(|n| n.open == 0) {
            self.cache.discard(ino);
            self.inodes.remove_if_unused(ino);
        }
    }

    /// Removes `ino` from the table if the kernel no longer holds it and it keeps no unsynced
    /// state (which must stay findable by the file's identity).
    pub fn sweep(&mut self, ino: u64) {
        if !self.cache.is_dirty(ino) {
            self.inodes.remove_if_unused(ino);
        }
    }

    /// The backing directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A writable backing file of `ino`, for the page cache to write back to: the handle's,
/// another writable handle's, or the file opened afresh by its path. It takes the fields it
/// reads, so it can be called while the page cache is borrowed mutably.
pub fn writable_backing(
    handles: &BTreeMap<u64, Handle>,
    inodes: &Inodes,
    ino: u64,
    fh: Option<u64>,
) -> io::Result<Arc<File>> {
    let writable = |h: &Handle| match h {
        Handle::File { ino: i, file, writable: true, .. } if *i == ino => Some(file.clone()),
        _ => None,
    };
    if let Some(file) = fh.and_then(|fh| handles.get(&fh)).and_then(writable) {
        return Ok(file);
    }
    if let Some(file) = handles.values().find_map(writable) {
        return Ok(file);
    }
    let path = inodes.path(ino).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    Ok(Arc::new(std::fs::OpenOptions::new().read(true).write(true).open(path)?))
}
