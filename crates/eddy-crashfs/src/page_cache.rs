//! The filesystem's "page cache": every file's unsynced state, under one bound on the unsynced
//! bytes held, and the power cut that drops it all.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::io;

use crate::cache::{Backing, FileCache};
use crate::stats::Stats;

/// One file with unsynced state: its cache and the backing file it is written back to.
#[derive(Debug)]
struct DirtyFile<B> {
    backing: B,
    cache: FileCache,
}

/// Every file's unsynced state, keyed by inode.
#[derive(Debug)]
pub struct PageCache<B> {
    files: BTreeMap<u64, DirtyFile<B>>,
    /// Unsynced data bytes over every file.
    dirty_bytes: u64,
    /// The bound on `dirty_bytes`; see [`PageCache::write`].
    dirty_bytes_max: u64,
    stats: Stats,
}

impl<B: Backing> PageCache<B> {
    /// An empty cache holding at most `dirty_bytes_max` unsynced bytes.
    pub fn new(dirty_bytes_max: u64) -> Self {
        Self { files: BTreeMap::new(), dirty_bytes: 0, dirty_bytes_max, stats: Stats::default() }
    }

    /// Counters, with the current dirty figures.
    pub fn stats(&self) -> Stats {
        Stats { dirty_bytes: self.dirty_bytes, dirty_files: self.files.len() as u64, ..self.stats }
    }

    /// The size readers see of file `ino`, when it has unsynced state.
    pub fn size(&self, ino: u64) -> Option<u64> {
        self.files.get(&ino).map(|f| f.cache.size())
    }

    /// Whether file `ino` has unsynced state.
    pub fn is_dirty(&self, ino: u64) -> bool {
        self.files.contains_key(&ino)
    }

    /// Records a write to file `ino`; `backing` opens its backing file (writable) if the file
    /// has no unsynced state yet.
    ///
    /// When the write would take the unsynced bytes past the bound, every dirty file is first
    /// written back and synced, as a kernel under memory pressure writes dirty pages back
    /// before their time: more becomes durable than was asked for, which a real system may do
    /// too, and nothing that was synced is lost. `Stats::forced_writebacks` counts these, so a
    /// test can tell whether its unsynced data really stayed unsynced.
    pub fn write(
        &mut self,
        ino: u64,
        backing: impl FnOnce() -> io::Result<B>,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        if self.dirty_bytes + data.len() as u64 > self.dirty_bytes_max {
            self.stats.forced_writebacks += 1;
            tracing::warn!(
                dirty_bytes = self.dirty_bytes,
                dirty_bytes_max = self.dirty_bytes_max,
                "unsynced bytes at their bound: writing every dirty file back"
            );
            self.sync_all()?;
        }
        let file = self.entry(ino, backing)?;
        let before = file.cache.dirty_bytes();
        file.cache.write(offset, data)?;
        let after = file.cache.dirty_bytes();
        // A write only ever adds to the bytes held (overwritten bytes stay held once).
        assert!(after >= before, "a write shrank the dirty bytes from {before} to {after}");
        self.dirty_bytes += after - before;
        Ok(())
    }

    /// Records a truncate (or extension) of file `ino` to `len`.
    pub fn truncate(&mut self, ino: u64, backing: impl FnOnce() -> io::Result<B>, len: u64) -> io::Result<()> {
        let file = match self.files.entry(ino) {
            Entry::Occupied(file) => file.into_mut(),
            Entry::Vacant(vacant) => {
                let backing = backing()?;
                let backing_len = backing.synced_len()?;
                if backing_len == len {
                    return Ok(()); // nothing changes: no state to keep
                }
                vacant.insert(DirtyFile { backing, cache: FileCache::new(backing_len) })
            }
        };
        let before = file.cache.dirty_bytes();
        file.cache.truncate(len);
        self.dirty_bytes -= before - file.cache.dirty_bytes();
        Ok(())
    }

    /// Reads file `ino` as readers see it, or `None` when it has no unsynced state (the backing
    /// file holds it all). `backing` reads the synced contents.
    pub fn read(&self, ino: u64, backing: &impl Backing, offset: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
        match self.files.get(&ino) {
            Some(file) => file.cache.read(backing, offset, len).map(Some),
            None => Ok(None),
        }
    }

    /// fsync: writes file `ino`'s unsynced state through to its backing file and syncs it.
    /// On failure the state is kept (the caller's fsync fails, and may be retried).
    pub fn sync(&mut self, ino: u64) -> io::Result<()> {
        self.stats.fsyncs += 1;
        let Some(file) = self.files.get(&ino) else { return Ok(()) };
        file.cache.write_back(&file.backing)?;
        let file = self.files.remove(&ino).expect("present above");
        self.dirty_bytes -= file.cache.dirty_bytes();
        self.stats.synced_bytes += file.cache.dirty_bytes();
        Ok(())
    }

    /// sync(2): writes every dirty file back.
    pub fn sync_all(&mut self) -> io::Result<()> {
        let inos: Vec<u64> = self.files.keys().copied().collect();
        for ino in inos {
            self.sync(ino)?;
        }
        Ok(())
    }

    /// Forgets file `ino`'s unsynced state without writing it: the file was deleted and is no
    /// longer open, so nothing can ever read it.
    pub fn discard(&mut self, ino: u64) {
        if let Some(file) = self.files.remove(&ino) {
            self.dirty_bytes -= file.cache.dirty_bytes();
        }
    }

    /// The power cut: drops every file's unsynced state. Returns (files, bytes) dropped.
    pub fn cut(&mut self) -> (u64, u64) {
        let dropped = (self.files.len() as u64, self.dirty_bytes);
        self.files.clear();
        self.dirty_bytes = 0;
        self.stats.cuts += 1;
        self.stats.dropped_files += dropped.0;
        self.stats.dropped_bytes += dropped.1;
        dropped
    }

    fn entry(&mut self, ino: u64, backing: impl FnOnce() -> io::Result<B>) -> io::Result<&mut DirtyFile<B>> {
        Ok(match self.files.entry(ino) {
            Entry::Occupied(file) => file.into_mut(),
            Entry::Vacant(vacant) => {
                let backing = backing()?;
                let cache = FileCache::new(backing.synced_len()?);
                vacant.insert(DirtyFile { backing, cache })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::tests::MemFile;

    fn file(bytes: &[u8]) -> Arc<MemFile> {
        Arc::new(MemFile::with(bytes))
    }

    #[test]
    fn fsync_persists_one_file_and_a_cut_drops_the_others() {
        let (a, b) = (file(b""), file(b"kept"));
        let mut cache = PageCache::new(1 << 20);
        cache.write(1, || Ok(a.clone()), 0, b"synced").unwrap();
        cache.write(2, || Ok(b.clone()), 4, b" and lost").unwrap();
        assert_eq!(cache.stats().dirty_bytes, 6 + 9);
        assert_eq!(cache.read(2, &b, 0, 100).unwrap().unwrap(), b"kept and lost");
        cache.sync(1).unwrap();
        assert_eq!(a.contents(), b"synced");
        assert!(!cache.is_dirty(1));
        assert_eq!(cache.cut(), (1, 9));
        assert_eq!(b.contents(), b"kept", "the unsynced append is gone");
        assert_eq!(cache.read(2, &b, 0, 100).unwrap(), None, "the backing file answers again");
        let stats = cache.stats();
        assert_eq!((stats.dirty_bytes, stats.dropped_bytes, stats.synced_bytes, stats.cuts), (0, 9, 6, 1));
    }

    #[test]
    fn passing_the_bound_writes_everything_back_first() {
        let (a, b) = (file(b""), file(b""));
        let mut cache = PageCache::new(10);
        cache.write(1, || Ok(a.clone()), 0, b"123456").unwrap();
        cache.write(2, || Ok(b.clone()), 0, b"abcdef").unwrap();
        assert_eq!(cache.stats().forced_writebacks, 1);
        assert_eq!(a.contents(), b"123456", "the first file was written back to make room");
        assert_eq!(b.contents(), b"", "the write that passed the bound is cached");
        assert_eq!(cache.stats().dirty_bytes, 6);
    }

    #[test]
    fn a_truncate_alone_is_unsynced_state_too() {
        let a = file(b"0123456789");
        let mut cache = PageCache::new(100);
        cache.truncate(1, || Ok(a.clone()), 10).unwrap();
        assert!(!cache.is_dirty(1), "a truncate to the same size changes nothing");
        cache.truncate(1, || Ok(a.clone()), 4).unwrap();
        assert_eq!(cache.size(1), Some(4));
        cache.cut();
        assert_eq!(a.contents(), b"0123456789", "the unsynced truncate is undone by the cut");
        cache.truncate(1, || Ok(a.clone()), 4).unwrap();
        cache.sync(1).unwrap();
        assert_eq!(a.contents(), b"0123");
    }

    #[test]
    fn a_discarded_file_frees_its_bytes() {
        let a = file(b"");
        let mut cache = PageCache::new(100);
        cache.write(7, || Ok(a.clone()), 0, b"doomed").unwrap();
        cache.discard(7);
        assert_eq!(cache.stats().dirty_bytes, 0);
        cache.sync_all().unwrap();
        assert_eq!(a.contents(), b"");
    }
}
