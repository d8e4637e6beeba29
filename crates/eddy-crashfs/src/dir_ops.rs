//! Directory listings and filesystem statistics, read from the backing directory.

use std::os::unix::fs::{DirEntryExt, MetadataExt};

use fuser::{Errno, FileType};

use crate::inodes::ROOT_INO;
use crate::state::{DirEntry, Handle, State, errno, identity, kind};

/// `statfs` figures of the backing filesystem.
#[derive(Debug, Clone, Copy)]
pub struct FsStats {
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub block_size: u32,
    pub name_max: u32,
    pub fragment_size: u32,
}

impl State {
    /// Takes the directory's listing now, so reading it in several calls is consistent.
    pub fn opendir(&mut self, ino: u64) -> Result<u64, Errno> {
        let fh = self.next_handle()?;
        let path = self.inodes.path(ino).ok_or(Errno::ENOENT)?.to_path_buf();
        let meta = std::fs::metadata(&path).map_err(errno)?;
        let device = identity(&meta).0;
        let parent_ino = match path.parent().filter(|_| ino != ROOT_INO) {
            Some(parent) => {
                let parent_meta = std::fs::metadata(parent).map_err(errno)?;
                self.inodes.known(identity(&parent_meta)).unwrap_or(parent_meta.ino())
            }
            None => ROOT_INO,
        };
        let mut entries = vec![
            DirEntry { ino, kind: FileType::Directory, name: ".".into() },
            DirEntry { ino: parent_ino, kind: FileType::Directory, name: "..".into() },
        ];
        for entry in std::fs::read_dir(&path).map_err(errno)? {
            let entry = entry.map_err(errno)?;
            let file_type = entry.file_type().map_err(errno)?;
            // A name the kernel has not looked up yet shows the backing inode number: readdir's
            // numbers are informational, lookup gives the real one.
            let number = self.inodes.known((device, entry.ino())).unwrap_or(entry.ino());
            entries.push(DirEntry { ino: number, kind: kind(file_type), name: entry.file_name() });
        }
        self.handles.insert(fh, Handle::Dir { entries });
        Ok(fh)
    }

    /// The listing of handle `fh` from position `offset` on.
    pub fn readdir(&self, fh: u64, offset: u64) -> Result<&[DirEntry], Errno> {
        let Some(Handle::Dir { entries }) = self.handles.get(&fh) else { return Err(Errno::EBADF) };
        Ok(entries.get(offset as usize..).unwrap_or_default())
    }

    pub fn releasedir(&mut self, fh: u64) {
        self.handles.remove(&fh);
    }

    pub fn statfs(&self) -> Result<FsStats, Errno> {
        let stats = nix::sys::statvfs::statvfs(self.root()).map_err(|e| errno(e.into()))?;
        Ok(FsStats {
            blocks: stats.blocks(),
            blocks_free: stats.blocks_free(),
            blocks_available: stats.blocks_available(),
            files: stats.files(),
            files_free: stats.files_free(),
            block_size: stats.block_size() as u32,
            name_max: stats.name_max() as u32,
            fragment_size: stats.fragment_size() as u32,
        })
    }
}
