//! One file's unsynced state: the bytes written and the size changes made since its last sync,
//! kept in memory over the synced contents of the backing file.
//!
//! This is the heart of the crash model, and it does no I/O of its own: reads and write-backs go
//! through [`Backing`], which is the real backing file in the filesystem and an in-memory file
//! in the unit tests.

use std::collections::BTreeMap;
use std::io;

/// Where a file's synced bytes live.
pub trait Backing {
    /// The length of the synced contents.
    fn synced_len(&self) -> io::Result<u64>;
    /// Reads into `buf` from `offset`; returns how many bytes there were (fewer at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `data` at `offset`.
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or zero-extends to `len`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes what was written durable.
    fn sync(&self) -> io::Result<()>;
}

impl Backing for std::fs::File {
    fn synced_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // A short read is not the end of the file: read until the buffer is full or EOF.
        let mut filled = 0;
        while filled < buf.len() {
            match std::os::unix::fs::FileExt::read_at(self, &mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }
}

impl<T: Backing + ?Sized> Backing for std::sync::Arc<T> {
    fn synced_len(&self) -> io::Result<u64> {
        (**self).synced_len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_at(data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }
}

/// A file's contents as readers see them: the backing file's first `base_len` bytes, zeros up
/// to `size`, and the unsynced extents over both.
#[derive(Debug, Clone)]
pub struct FileCache {
    /// How much of the backing file is still visible. A truncate since the last sync hides what
    /// lies past it, even when a later write or truncate makes the file longer again (those
    /// bytes read as zeros, as they would on a real filesystem).
    base_len: u64,
    /// The file's size as readers see it.
    size: u64,
    /// Unsynced data by offset: extents never overlap and never touch (touching ones merge).
    extents: BTreeMap<u64, Vec<u8>>,
    /// Bytes held in `extents`.
    dirty_bytes: u64,
}

impl FileCache {
    /// The cache of a file whose synced contents are `backing_len` bytes long.
    pub fn new(backing_len: u64) -> Self {
        Self { base_len: backing_len, size: backing_len, extents: BTreeMap::new(), dirty_bytes: 0 }
    }

    /// The file's size as readers see it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Unsynced data bytes held.
    pub fn dirty_bytes(&self) -> u64 {
        self.dirty_bytes
    }

    /// Records a write of `data` at `offset`. Fails with `EFBIG` when it would end past
    /// `u64::MAX`.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset.checked_add(data.len() as u64).ok_or(io::Error::from(nix::errno::Errno::EFBIG))?;
        if data.is_empty() {
            return Ok(());
        }
        // Every extent that overlaps or touches [offset, end] merges with the new data. They
        // are found from the last one starting at or before `end`, walking down.
        let touching: Vec<u64> = self
            .extents
            .range(..=end)
            .rev()
            .take_while(|(start, bytes)| **start + bytes.len() as u64 >= offset)
            .map(|(start, _)| *start)
            .collect();
        let mut merged_start = offset;
        let mut merged: Option<Vec<u8>> = None;
        for start in touching.iter().rev() {
            let bytes = self.extents.remove(start).expect("the extent was just seen");
            self.dirty_bytes -= bytes.len() as u64;
            let extent_end = *start + bytes.len() as u64;
            if *start < offset {
                // The lowest extent begins before the write: keep its head and reuse its buffer,
                // so appending to a file (a write-ahead log) copies nothing already cached.
                let mut head = bytes;
                let tail = (extent_end > end).then(|| head[(end - *start) as usize..].to_vec());
                head.truncate((offset - *start) as usize);
                head.extend_from_slice(data);
                head.extend(tail.unwrap_or_default());
                merged_start = *start;
                merged = Some(head);
            } else {
                let buffer = merged.get_or_insert_with(|| data.to_vec());
                if extent_end > end {
                    buffer.extend_from_slice(&bytes[(end - *start) as usize..]);
                }
            }
        }
        let merged = merged.unwrap_or_else(|| data.to_vec());
        self.dirty_bytes += merged.len() as u64;
        self.extents.insert(merged_start, merged);
        self.size = self.size.max(end);
        Ok(())
    }

    /// Records a truncate (or zero-extension) to `len`.
    pub fn truncate(&mut self, len: u64) {
        self.base_len = self.base_len.min(len);
        let beyond: Vec<u64> = self.extents.range(len..).map(|(start, _)| *start).collect();
        for start in beyond {
            let bytes = self.extents.remove(&start).expect("the extent was just seen");
            self.dirty_bytes -= bytes.len() as u64;
        }
        if let Some((start, bytes)) = self.extents.range_mut(..len).next_back() {
            let keep = (len - *start) as usize;
            if bytes.len() > keep {
                self.dirty_bytes -= (bytes.len() - keep) as u64;
                bytes.truncate(keep);
            }
        }
        self.size = len;
    }

    /// Reads up to `len` bytes at `offset` as readers see them (fewer at the end of the file).
    pub fn read(&self, backing: &impl Backing, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let len = (len as u64).min(self.size - offset) as usize;
        let end = offset + len as u64;
        let mut buf = vec![0u8; len];
        if offset < self.base_len {
            let from_backing = (self.base_len - offset).min(len as u64) as usize;
            // A backing file shorter than `base_len` (changed behind the filesystem's back)
            // reads as zeros past its end, like a hole.
            backing.read_at(&mut buf[..from_backing], offset)?;
        }
        for (start, bytes) in self.extents.range(..end).rev() {
            let extent_end = *start + bytes.len() as u64;
            if extent_end <= offset {
                break;
            }
            let from = (*start).max(offset);
            let to = extent_end.min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - *start) as usize..(to - *start) as usize]);
        }
        Ok(buf)
    }

    /// Writes the unsynced state through to `backing` and syncs it: afterwards the backing file
    /// holds exactly what readers saw, and this cache can be dropped.
    pub fn write_back(&self, backing: &impl Backing) -> io::Result<()> {
        let backing_len = backing.synced_len()?;
        let mut len = backing_len;
        if self.base_len < backing_len {
            backing.set_len(self.base_len)?;
            len = self.base_len;
        }
        for (start, bytes) in &self.extents {
            backing.write_at(bytes, *start)?;
            len = len.max(*start + bytes.len() as u64);
        }
        if len != self.size {
            backing.set_len(self.size)?;
        }
        backing.sync()
    }

    /// Whether the cache holds nothing the backing file of length `backing_len` lacks.
    pub fn is_clean(&self, backing_len: u64) -> bool {
        self.extents.is_empty() && self.base_len == backing_len && self.size == backing_len
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use proptest::prelude::*;

    use super::*;

    /// An in-memory backing file: its contents are what a power cut keeps.
    #[derive(Debug, Default)]
    pub(crate) struct MemFile {
        pub(crate) bytes: Mutex<Vec<u8>>,
        pub(crate) syncs: Mutex<u32>,
    }

    impl MemFile {
        pub(crate) fn with(bytes: &[u8]) -> Self {
            Self { bytes: Mutex::new(bytes.to_vec()), syncs: Mutex::new(0) }
        }

        pub(crate) fn contents(&self) -> Vec<u8> {
            self.bytes.lock().unwrap().clone()
        }
    }

    impl Backing for MemFile {
        fn synced_len(&self) -> io::Result<u64> {
            Ok(self.bytes.lock().unwrap().len() as u64)
        }

        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let bytes = self.bytes.lock().unwrap();
            let start = (offset as usize).min(bytes.len());
            let n = buf.len().min(bytes.len() - start);
            buf[..n].copy_from_slice(&bytes[start..start + n]);
            Ok(n)
        }

        fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
            let mut bytes = self.bytes.lock().unwrap();
            let end = offset as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[offset as usize..end].copy_from_slice(data);
            Ok(())
        }

        fn set_len(&self, len: u64) -> io::Result<()> {
            self.bytes.lock().unwrap().resize(len as usize, 0);
            Ok(())
        }

        fn sync(&self) -> io::Result<()> {
            *self.syncs.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn read_all(cache: &FileCache, backing: &MemFile) -> Vec<u8> {
        cache.read(backing, 0, usize::MAX >> 1).unwrap()
    }

    #[test]
    fn a_write_reads_back_and_stays_out_of_the_backing_file() {
        let backing = MemFile::with(b"hello world");
        let mut cache = FileCache::new(backing.synced_len().unwrap());
        cache.write(6, b"there, friend").unwrap();
        assert_eq!(read_all(&cache, &backing), b"hello there, friend");
        assert_eq!(cache.read(&backing, 4, 4).unwrap(), b"o th");
        assert_eq!(cache.size(), 19);
        assert_eq!(cache.dirty_bytes(), 13);
        assert_eq!(backing.contents(), b"hello world", "nothing reaches the backing file before a sync");
    }

    #[test]
    fn write_back_persists_exactly_what_readers_saw() {
        let backing = MemFile::with(b"0123456789");
        let mut cache = FileCache::new(10);
        cache.write(2, b"ab").unwrap();
        cache.write(12, b"xy").unwrap();
        let seen = read_all(&cache, &backing);
        assert_eq!(seen, b"01ab456789\0\0xy");
        cache.write_back(&backing).unwrap();
        assert_eq!(backing.contents(), seen);
        assert_eq!(*backing.syncs.lock().unwrap(), 1, "the backing file is synced");
    }

    #[test]
    fn a_power_cut_keeps_only_what_was_synced() {
        let backing = MemFile::with(b"");
        let mut cache = FileCache::new(0);
        cache.write(0, b"synced ").unwrap();
        cache.write_back(&backing).unwrap();
        // After a sync the filesystem starts a fresh cache over the new backing contents.
        let mut cache = FileCache::new(backing.synced_len().unwrap());
        cache.write(7, b"and lost").unwrap();
        assert_eq!(read_all(&cache, &backing), b"synced and lost");
        drop(cache); // the power cut
        assert_eq!(backing.contents(), b"synced ");
    }

    #[test]
    fn overlapping_and_touching_writes_merge() {
        let backing = MemFile::default();
        let mut cache = FileCache::new(0);
        cache.write(10, b"cccc").unwrap(); // [10, 14)
        cache.write(0, b"aaaa").unwrap(); // [0, 4)
        cache.write(4, b"bb").unwrap(); // touches the first: [0, 6)
        cache.write(12, b"DDDDDD").unwrap(); // overlaps the tail of [10, 14): [10, 18)
        cache.write(5, b"EEEEEE").unwrap(); // bridges [0, 6) and [10, 18): [0, 18)
        assert_eq!(read_all(&cache, &backing), b"aaaabEEEEEEcDDDDDD");
        assert_eq!(cache.extents.len(), 1, "one extent after the bridge");
        assert_eq!(cache.dirty_bytes(), 18);
        cache.write(2, b"zz").unwrap(); // inside the extent
        assert_eq!(&read_all(&cache, &backing)[..6], b"aazzbE");
        assert_eq!(cache.dirty_bytes(), 18);
    }

    #[test]
    fn truncate_hides_the_backing_bytes_past_it_until_synced() {
        let backing = MemFile::with(b"abcdefgh");
        let mut cache = FileCache::new(8);
        cache.write(6, b"GHIJ").unwrap();
        cache.truncate(3);
        assert_eq!(read_all(&cache, &backing), b"abc");
        assert_eq!(cache.dirty_bytes(), 0, "the write past the cut is gone");
        cache.truncate(6);
        assert_eq!(read_all(&cache, &backing), b"abc\0\0\0", "growing again reads zeros, not the old bytes");
        cache.write(4, b"x").unwrap();
        assert_eq!(read_all(&cache, &backing), b"abc\0x\0");
        assert_eq!(backing.contents(), b"abcdefgh", "the truncate is not on the backing file yet");
        cache.write_back(&backing).unwrap();
        assert_eq!(backing.contents(), b"abc\0x\0");
    }

    #[test]
    fn a_truncate_that_cuts_an_extent_keeps_its_head() {
        let backing = MemFile::default();
        let mut cache = FileCache::new(0);
        cache.write(0, b"0123456789").unwrap();
        cache.truncate(4);
        assert_eq!(cache.dirty_bytes(), 4);
        assert_eq!(read_all(&cache, &backing), b"0123");
        assert!(!cache.is_clean(0));
    }

    #[test]
    fn reads_past_the_end_are_empty_and_writes_past_u64_fail() {
        let backing = MemFile::with(b"abc");
        let mut cache = FileCache::new(3);
        assert!(cache.read(&backing, 3, 10).unwrap().is_empty());
        assert!(cache.write(u64::MAX - 1, b"xy").is_err());
        assert!(cache.is_clean(3));
    }

    /// One step of the model-based test.
    #[derive(Debug, Clone)]
    enum Step {
        Write { offset: u64, data: Vec<u8> },
        Truncate(u64),
        Sync,
        Cut,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u64..96, proptest::collection::vec(any::<u8>(), 0..24))
                .prop_map(|(offset, data)| Step::Write { offset, data }),
            1 => (0u64..96).prop_map(Step::Truncate),
            1 => Just(Step::Sync),
            1 => Just(Step::Cut),
        ]
    }

    proptest! {
        /// Against a model of two byte vectors, what readers see and what a power cut keeps:
        /// reads always equal the visible model, and after a cut the backing file equals what was
        /// visible at the last sync.
        #[test]
        fn matches_a_model_of_visible_and_durable_bytes(steps in proptest::collection::vec(step(), 1..40)) {
            let backing = MemFile::default();
            let mut cache = FileCache::new(0);
            let mut visible: Vec<u8> = Vec::new();
            let mut durable: Vec<u8> = Vec::new();
            for step in steps {
                match step {
                    Step::Write { offset, data } => {
                        cache.write(offset, &data).unwrap();
                        let end = offset as usize + data.len();
                        if !data.is_empty() {
                            if visible.len() < end {
                                visible.resize(end, 0);
                            }
                            visible[offset as usize..end].copy_from_slice(&data);
                        }
                    }
                    Step::Truncate(len) => {
                        cache.truncate(len);
                        visible.resize(len as usize, 0);
                    }
                    Step::Sync => {
                        cache.write_back(&backing).unwrap();
                        durable = visible.clone();
                        cache = FileCache::new(backing.synced_len().unwrap());
                    }
                    Step::Cut => {
                        prop_assert_eq!(backing.contents(), durable.clone());
                        cache = FileCache::new(backing.synced_len().unwrap());
                        visible = durable.clone();
                    }
                }
                prop_assert_eq!(read_all(&cache, &backing), visible.clone());
                prop_assert_eq!(cache.size(), visible.len() as u64);
                let held: u64 = cache.extents.values().map(|b| b.len() as u64).sum();
                prop_assert_eq!(cache.dirty_bytes(), held);
                let mut last_end = None;
                for (start, bytes) in &cache.extents {
                    prop_assert!(!bytes.is_empty());
                    prop_assert!(last_end.is_none_or(|e| e < *start), "extents neither overlap nor touch");
                    last_end = Some(start + bytes.len() as u64);
                }
            }
        }
    }
}
