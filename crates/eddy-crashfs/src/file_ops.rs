//! Operations on file data: writes go to the page cache, reads see it over the backing file,
//! and only fsync (or fdatasync, or a write to a file opened O_SYNC/O_DSYNC) writes it through.
//! Closing a file persists nothing, as on a real system.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use std::sync::Arc;

use fuser::{Errno, FileAttr};
use nix::fcntl::{FallocateFlags, OFlag};

use crate::cache::Backing;
use crate::state::{Handle, State, errno, writable_backing};

/// Whether open flags ask for synchronous writes.
fn sync_writes(flags: i32) -> bool {
    let flags = OFlag::from_bits_truncate(flags);
    flags.intersects(OFlag::O_SYNC | OFlag::O_DSYNC)
}

/// Whether open flags allow writing.
fn writable(flags: i32) -> bool {
    let mode = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE;
    mode == OFlag::O_WRONLY || mode == OFlag::O_RDWR
}

impl State {
    /// Creates (or, without O_EXCL, opens) a regular file and opens it. The backing file is
    /// always opened for reading and writing: the page cache reads and writes through it.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64), Errno> {
        let fh = self.next_handle()?;
        let path = self.child(parent, name)?;
        let open = OFlag::from_bits_truncate(flags);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .create_new(open.contains(OFlag::O_EXCL))
            .mode(mode & !umask & 0o7777)
            .open(&path)
            .map_err(errno)?;
        let file = Arc::new(file);
        let attr = self.lookup_path(path)?;
        let ino = attr.ino.0;
        if open.contains(OFlag::O_TRUNC) {
            let backing = file.clone();
            self.cache.truncate(ino, || Ok(backing), 0).map_err(errno)?;
        }
        self.inodes.get_mut(ino).expect("just looked up").open += 1;
        self.handles.insert(fh, Handle::File { ino, file, writable: true, sync_writes: sync_writes(flags) });
        Ok((self.getattr(ino, Some(fh))?, fh))
    }

    pub fn open(&mut self, ino: u64, flags: i32) -> Result<u64, Errno> {
        let fh = self.next_handle()?;
        let path = self.inodes.path(ino).ok_or(Errno::ENOENT)?;
        let writable = writable(flags);
        // Never O_APPEND or O_TRUNC on the backing file: the kernel sends every write with its
        // offset, and truncates through setattr (which the page cache records).
        let file = std::fs::OpenOptions::new().read(true).write(writable).open(path).map_err(errno)?;
        self.inodes.get_mut(ino).ok_or(Errno::ENOENT)?.open += 1;
        self.handles.insert(fh, Handle::File { ino, file: Arc::new(file), writable, sync_writes: sync_writes(flags) });
        Ok(fh)
    }

    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let Some(Handle::File { file, .. }) = self.open_file(fh, ino) else { return Err(Errno::EBADF) };
        if let Some(bytes) = self.cache.read(ino, file, offset, size as usize).map_err(errno)? {
            return Ok(bytes);
        }
        let mut buf = vec![0u8; size as usize];
        let n = Backing::read_at(&**file, &mut buf, offset).map_err(errno)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn write(&mut self, ino: u64, fh: u64, offset: u64, data: &[u8], flags: i32) -> Result<u32, Errno> {
        let Some(Handle::File { file, writable: true, sync_writes: sync, .. }) = self.open_file(fh, ino) else {
            return Err(Errno::EBADF);
        };
        let (file, sync) = (file.clone(), *sync || sync_writes(flags));
        self.cache.write(ino, || Ok(file), offset, data).map_err(errno)?;
        if sync {
            self.cache.sync(ino).map_err(errno)?;
        }
        Ok(data.len() as u32)
    }

    /// fsync and fdatasync: the file's unsynced state goes to the backing file, which is synced.
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        self.cache.sync(ino).map_err(errno)
    }

    /// The last close of a handle. A deleted file's unsynced state goes with its last handle.
    pub fn release(&mut self, ino: u64, fh: u64) {
        self.handles.remove(&fh);
        let Some(node) = self.inodes.get_mut(ino) else { return };
        node.open = node.open.saturating_sub(1);
        if node.open == 0 && node.path.is_none() {
            self.cache.discard(ino);
        }
        self.sweep(ino);
    }

    /// Plain preallocation extends the file (with zeros, cached like a truncate); with
    /// FALLOC_FL_KEEP_SIZE it changes nothing a reader sees, so it succeeds doing nothing.
    /// Hole punching and the other modes are refused (EOPNOTSUPP), which RocksDB tolerates.
    pub fn fallocate(&mut self, ino: u64, fh: u64, offset: u64, length: u64, mode: i32) -> Result<(), Errno> {
        let mode = FallocateFlags::from_bits(mode).ok_or(Errno::EOPNOTSUPP)?;
        if mode == FallocateFlags::FALLOC_FL_KEEP_SIZE {
            return Ok(());
        }
        if !mode.is_empty() {
            return Err(Errno::EOPNOTSUPP);
        }
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        let size = match self.cache.size(ino) {
            Some(size) => size,
            None => self.metadata(ino, Some(fh))?.size(),
        };
        if end > size {
            let (handles, inodes) = (&self.handles, &self.inodes);
            self.cache.truncate(ino, || writable_backing(handles, inodes, ino, Some(fh)), end).map_err(errno)?;
        }
        Ok(())
    }
}
