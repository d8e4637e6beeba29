//! Operations on names and attributes. They go straight to the backing directory: metadata is
//! durable the moment the operation returns (the model's simplification, as in LazyFS), while
//! file data and sizes wait in the page cache for an fsync.

use std::ffi::OsStr;
use std::fs::{FileTimes, Permissions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

use fuser::{Errno, FileAttr, RenameFlags, TimeOrNow};
use nix::sys::stat::SFlag;

use crate::state::{Handle, State, errno, identity, writable_backing};

/// The attribute changes of one setattr request.
#[derive(Debug, Default)]
pub struct AttrChanges {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
}

fn system_time(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl State {
    pub fn lookup(&mut self, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let path = self.child(parent, name)?;
        self.lookup_path(path)
    }

    pub fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<FileAttr, Errno> {
        let meta = self.metadata(ino, fh)?;
        Ok(self.attr(ino, &meta))
    }

    /// Mode, owner and times change on the backing file at once; a size change is cached like
    /// a write (lost by a power cut unless synced).
    pub fn setattr(&mut self, ino: u64, fh: Option<u64>, changes: AttrChanges) -> Result<FileAttr, Errno> {
        let file = match fh.and_then(|fh| self.open_file(fh, ino)) {
            Some(Handle::File { file, .. }) => Some(file.clone()),
            _ => None,
        };
        let path = self.inodes.path(ino).map(Path::to_path_buf);
        if let Some(mode) = changes.mode {
            let permissions = Permissions::from_mode(mode & 0o7777);
            match (&file, &path) {
                (Some(file), _) => file.set_permissions(permissions),
                (None, Some(path)) => std::fs::set_permissions(path, permissions),
                (None, None) => return Err(Errno::ENOENT),
            }
            .map_err(errno)?;
        }
        if changes.uid.is_some() || changes.gid.is_some() {
            match (&file, &path) {
                (Some(file), _) => std::os::unix::fs::fchown(&**file, changes.uid, changes.gid),
                (None, Some(path)) => std::os::unix::fs::lchown(path, changes.uid, changes.gid),
                (None, None) => return Err(Errno::ENOENT),
            }
            .map_err(errno)?;
        }
        if let Some(size) = changes.size {
            let (handles, inodes) = (&self.handles, &self.inodes);
            self.cache.truncate(ino, || writable_backing(handles, inodes, ino, fh), size).map_err(errno)?;
        }
        if changes.atime.is_some() || changes.mtime.is_some() {
            let mut times = FileTimes::new();
            if let Some(atime) = changes.atime {
                times = times.set_accessed(system_time(atime));
            }
            if let Some(mtime) = changes.mtime {
                times = times.set_modified(system_time(mtime));
            }
            let file = match (file, &path) {
                (Some(file), _) => file,
                (None, Some(path)) => std::sync::Arc::new(std::fs::File::open(path).map_err(errno)?),
                (None, None) => return Err(Errno::ENOENT),
            };
            file.set_times(times).map_err(errno)?;
        }
        self.getattr(ino, fh)
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, mode: u32, umask: u32) -> Result<FileAttr, Errno> {
        let path = self.child(parent, name)?;
        std::fs::DirBuilder::new().mode(mode & !umask & 0o7777).create(&path).map_err(errno)?;
        self.lookup_path(path)
    }

    /// Only regular files: the filesystem holds no devices, fifos or sockets.
    pub fn mknod(&mut self, parent: u64, name: &OsStr, mode: u32, umask: u32) -> Result<FileAttr, Errno> {
        if mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
            return Err(Errno::EPERM);
        }
        let path = self.child(parent, name)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & !umask & 0o7777)
            .open(&path)
            .map_err(errno)?;
        self.lookup_path(path)
    }

    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let path = self.child(parent, name)?;
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        std::fs::remove_file(&path).map_err(errno)?;
        if meta.nlink() <= 1 {
            self.detached(identity(&meta));
        }
        Ok(())
    }

    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let path = self.child(parent, name)?;
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        std::fs::remove_dir(&path).map_err(errno)?;
        self.detached(identity(&meta));
        Ok(())
    }

    /// A plain rename (RocksDB's CURRENT and MANIFEST switches are these). The moved file keeps
    /// its inode number and its unsynced data; a file it replaces loses its name.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if !flags.is_empty() {
            return Err(Errno::EINVAL);
        }
        let from = self.child(parent, name)?;
        let to = self.child(new_parent, new_name)?;
        let moved = std::fs::symlink_metadata(&from).map_err(errno)?;
        let replaced = std::fs::symlink_metadata(&to).ok();
        std::fs::rename(&from, &to).map_err(errno)?;
        if let Some(old) = replaced
            && identity(&old) != identity(&moved)
            && (old.is_dir() || old.nlink() <= 1)
        {
            self.detached(identity(&old));
        }
        self.inodes.renamed(&from, &to);
        Ok(())
    }

    pub fn link(&mut self, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<FileAttr, Errno> {
        let from = self.inodes.path(ino).ok_or(Errno::ENOENT)?.to_path_buf();
        let to = self.child(new_parent, new_name)?;
        std::fs::hard_link(&from, &to).map_err(errno)?;
        self.lookup_path(to)
    }

    pub fn symlink(&mut self, parent: u64, name: &OsStr, target: &Path) -> Result<FileAttr, Errno> {
        let path = self.child(parent, name)?;
        std::os::unix::fs::symlink(target, &path).map_err(errno)?;
        self.lookup_path(path)
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        let path = self.inodes.path(ino).ok_or(Errno::ENOENT)?;
        Ok(std::fs::read_link(path).map_err(errno)?.as_os_str().as_bytes().to_vec())
    }

    /// The kernel dropped `count` lookups of `ino`.
    pub fn forget(&mut self, ino: u64, count: u64) {
        if self.inodes.forget(ino, count) {
            self.sweep(ino);
        }
    }
}
