//! The FUSE side: each kernel request takes the state's lock (failing with EIO once the power
//! is cut), runs the operation on [`State`] and answers.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};

use crate::meta_ops::AttrChanges;
use crate::state::Shared;

/// Inode numbers are never reused, so one generation serves every inode.
const GENERATION: Generation = Generation(0);

/// The filesystem handed to fuser: the shared state and how long the kernel may cache answers.
#[derive(Debug)]
pub struct CrashFs {
    shared: Arc<Shared>,
    ttl: Duration,
}

impl CrashFs {
    pub fn new(shared: Arc<Shared>, ttl: Duration) -> Self {
        Self { shared, ttl }
    }
}

fn entry(reply: ReplyEntry, ttl: Duration, result: Result<fuser::FileAttr, Errno>) {
    match result {
        Ok(attr) => reply.entry(&ttl, &attr, GENERATION),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for CrashFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = self.shared.powered().and_then(|mut s| s.lookup(parent.0, name));
        entry(reply, self.ttl, result);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // Bookkeeping goes on after the power cut, so the kernel's references are released.
        self.shared.lock().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.shared.powered().and_then(|s| s.getattr(ino.0, fh.map(|f| f.0))) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = AttrChanges { mode, uid, gid, size, atime, mtime };
        match self.shared.powered().and_then(|mut s| s.setattr(ino.0, fh.map(|f| f.0), changes)) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.shared.powered().and_then(|s| s.readlink(ino.0)) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let result = self.shared.powered().and_then(|mut s| s.mknod(parent.0, name, mode, umask));
        entry(reply, self.ttl, result);
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let result = self.shared.powered().and_then(|mut s| s.mkdir(parent.0, name, mode, umask));
        entry(reply, self.ttl, result);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.shared.powered().and_then(|mut s| s.unlink(parent.0, name)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.shared.powered().and_then(|mut s| s.rmdir(parent.0, name)));
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let result = self.shared.powered().and_then(|mut s| s.symlink(parent.0, link_name, target));
        entry(reply, self.ttl, result);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.shared.powered().and_then(|mut s| s.rename(parent.0, name, newparent.0, newname, flags));
        empty(reply, result);
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let result = self.shared.powered().and_then(|mut s| s.link(ino.0, newparent.0, newname));
        entry(reply, self.ttl, result);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.shared.powered().and_then(|mut s| s.open(ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.shared.powered().and_then(|s| s.read(ino.0, fh.0, offset, size)) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.shared.powered().and_then(|mut s| s.write(ino.0, fh.0, offset, data, flags.0)) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(e),
        }
    }

    /// close(2): nothing becomes durable by closing a file.
    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        empty(reply, self.shared.powered().map(drop));
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Released even after the power cut, so the backing file is closed.
        self.shared.lock().release(ino.0, fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        empty(reply, self.shared.powered().and_then(|mut s| s.fsync(ino.0)));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.shared.powered().and_then(|mut s| s.opendir(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let state = match self.shared.powered() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        match state.readdir(fh.0, offset) {
            Ok(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    // Each entry's offset is where the next read starts; stop when the reply is full.
                    if reply.add(INodeNo(e.ino), offset + i as u64 + 1, e.kind, &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.shared.lock().releasedir(fh.0);
        reply.ok();
    }

    /// Names are durable as soon as they change (see `meta_ops`), so a directory sync has
    /// nothing left to do; it still fails after the power cut.
    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        empty(reply, self.shared.powered().map(drop));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.shared.powered().and_then(|s| s.statfs()) {
            Ok(f) => reply.statfs(
                f.blocks,
                f.blocks_free,
                f.blocks_available,
                f.files,
                f.files_free,
                f.block_size,
                f.name_max,
                f.fragment_size,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.shared.powered().and_then(|mut s| s.create(parent.0, name, mode, umask, flags)) {
            Ok((attr, fh)) => reply.created(&self.ttl, &attr, GENERATION, FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.shared.powered().and_then(|mut s| s.fallocate(ino.0, fh.0, offset, length, mode)));
    }
}
