//! Processed-id stores: how a handler that may see a record twice (delivery is at-least-once)
//! makes its side effects happen once.
//!
//! Every event carries an id (the `ce_id` header by default, as in the CloudEvents Kafka
//! binding). The [`Processor`](super::Processor) skips a record whose id its store holds and
//! records the id once the handler succeeded. What remains is the window between a side effect
//! and the id's record: a crash there repeats the side effect on redelivery. Side effects that
//! must never repeat either write into the same store as the id, or pass the id on as an
//! idempotency key (a payment gateway's, a database's unique constraint).
//!
//! [`FileProcessedIds`] is the embedded, durable default: an append-only journal that is
//! fsynced before an id counts as recorded. [`MemoryProcessedIds`] forgets on restart.
//! Both keep the newest `capacity` ids.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::error::{ClientError, ClientResult};

/// Longest event id accepted, in bytes.
pub const EVENT_ID_BYTES_MAX: usize = 512;

/// Ids kept by default.
pub const CAPACITY_DEFAULT: usize = 1_000_000;

/// A set of processed event ids. Implementations must make [`insert`](Self::insert) durable
/// before it returns (as far as they promise durability at all) and must be safe to share
/// between handlers running at once.
pub trait ProcessedIds: Send + Sync + 'static {
    /// Whether `id` was recorded.
    fn contains<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ClientResult<bool>>;
    /// Records `id`.
    fn insert<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ClientResult<()>>;
}

/// Checks that `id` can be stored: not empty, at most [`EVENT_ID_BYTES_MAX`] bytes, no line breaks.
pub fn validate_event_id(id: &str) -> ClientResult<()> {
    if id.is_empty() || id.len() > EVENT_ID_BYTES_MAX || id.contains(['\n', '\r']) {
        return Err(ClientError::Invalid(format!(
            "an event id must be 1 to {EVENT_ID_BYTES_MAX} bytes without line breaks, not {id:?}"
        )));
    }
    Ok(())
}

/// Runs `effect` unless `id` was processed, then records `id`. `Ok(None)`: skipped as a
/// duplicate.
pub async fn once<T, E, Fut>(store: &dyn ProcessedIds, id: &str, effect: impl FnOnce() -> Fut) -> Result<Option<T>, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
    E: From<ClientError>,
{
    validate_event_id(id)?;
    if store.contains(id).await? {
        return Ok(None);
    }
    let value = effect().await?;
    store.insert(id).await?;
    Ok(Some(value))
}

/// The newest `capacity` ids, oldest first for eviction.
#[derive(Debug)]
struct Window {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Window {
    fn new(capacity: usize) -> Self {
        Self { ids: HashSet::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    fn insert(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// Processed ids in memory only: duplicates are caught while the process lives.
#[derive(Debug)]
pub struct MemoryProcessedIds {
    window: Mutex<Window>,
}

impl MemoryProcessedIds {
    pub fn new(capacity: usize) -> Self {
        Self { window: Mutex::new(Window::new(capacity)) }
    }
}

impl Default for MemoryProcessedIds {
    fn default() -> Self {
        Self::new(CAPACITY_DEFAULT)
    }
}

impl ProcessedIds for MemoryProcessedIds {
    fn contains<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ClientResult<bool>> {
        Box::pin(async move { Ok(self.window.lock().expect("ids lock").ids.contains(id)) })
    }

    fn insert<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ClientResult<()>> {
        Box::pin(async move {
            validate_event_id(id)?;
            self.window.lock().expect("ids lock").insert(id);
            Ok(())
        })
    }
}

/// Processed ids in an append-only journal file, one id per line, each fsynced before
/// [`insert`](ProcessedIds::insert) returns. A line cut short by a crash was never acknowledged
/// and is dropped on open. When the journal holds twice `capacity` lines, it is rewritten with
/// the newest `capacity` ids (to a temporary file, fsynced, then renamed over it).
#[derive(Debug, Clone)]
pub struct FileProcessedIds {
    inner: Arc<Mutex<Journal>>,
}

#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: File,
    window: Window,
    lines: usize,
}

fn store_error(path: &Path, what: &str, e: std::io::Error) -> ClientError {
    ClientError::Store(format!("{what} {}: {e}", path.display()))
}

impl FileProcessedIds {
    /// Opens (or creates) the journal at `path`, keeping the newest `capacity` ids.
    pub fn open(path: impl AsRef<Path>, capacity: usize) -> ClientResult<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| store_error(dir, "cannot create", e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| store_error(&path, "cannot open", e))?;
        let mut window = Window::new(capacity);
        let mut lines = 0;
        let mut good_bytes = 0u64;
        let mut reader = BufReader::new(&mut file);
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(|e| store_error(&path, "cannot read", e))?;
            if read == 0 || !line.ends_with('\n') {
                break;
            }
            good_bytes += read as u64;
            window.insert(line.trim_end_matches('\n'));
            lines += 1;
        }
        drop(reader);
        // A torn last line: cut it off so the next id starts on a line of its own.
        if file.seek(SeekFrom::End(0)).map_err(|e| store_error(&path, "cannot read", e))? != good_bytes {
            file.set_len(good_bytes).map_err(|e| store_error(&path, "cannot repair", e))?;
            file.sync_all().map_err(|e| store_error(&path, "cannot sync", e))?;
        }
        Ok(Self { inner: Arc::new(Mutex::new(Journal { path, file, window, lines })) })
    }

    /// The journal's path.
    pub fn path(&self) -> PathBuf {
        self.inner.lock().expect("journal lock").path.clone()
    }
}

impl Journal {
    fn append(&mut self, id: &str) -> ClientResult<()> {
        if self.window.ids.contains(id) {
            return Ok(());
        }
        let mut line = Vec::with_capacity(id.len() + 1);
        line.extend_from_slice(id.as_bytes());
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| store_error(&self.path, "cannot write", e))?;
        self.file.sync_data().map_err(|e| store_error(&self.path, "cannot sync", e))?;
        self.window.insert(id);
        self.lines += 1;
        if self.lines >= 2 * self.window.capacity {
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&mut self) -> ClientResult<()> {
        let temporary = self.path.with_extension("compacting");
        let mut out = File::create(&temporary).map_err(|e| store_error(&temporary, "cannot create", e))?;
        let mut text = String::new();
        for id in &self.window.order {
            text.push_str(id);
            text.push('\n');
        }
        out.write_all(text.as_bytes()).map_err(|e| store_error(&temporary, "cannot write", e))?;
        out.sync_all().map_err(|e| store_error(&temporary, "cannot sync", e))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| store_error(&self.path, "cannot replace", e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| store_error(dir, "cannot sync", e))?;
        }
        self.file =
            OpenOptions::new().append(true).open(&self.path).map_err(|e| store_error(&self.path, "cannot open", e))?;
        self.lines = self.window.order.len();
        Ok(())
    }
}

impl ProcessedIds for FileProcessedIds {
    fn contains<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ClientResult<bool>> {
        Box::pin(async move { Ok(self.inner.lock().expect("journal lock").window.ids.contains(id)) })
    }

    fn insert<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ClientResult<()>> {
        Box::pin(async move {
            validate_event_id(id)?;
            let inner = self.inner.clone();
            let id = id.to_string();
            tokio::task::spawn_blocking(move || inner.lock().expect("journal lock").append(&id))
                .await
                .map_err(|e| ClientError::Store(format!("journal writer failed: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("eddy-ids-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn ids_survive_reopening_and_a_torn_line_is_dropped() {
        let path = dir().join("processed");
        let store = FileProcessedIds::open(&path, 100).unwrap();
        store.insert("evt-1").await.unwrap();
        store.insert("evt-2").await.unwrap();
        drop(store);
        // A crash in the middle of writing a third id.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"evt-3").unwrap();
        let store = FileProcessedIds::open(&path, 100).unwrap();
        assert!(store.contains("evt-1").await.unwrap() && store.contains("evt-2").await.unwrap());
        assert!(!store.contains("evt-3").await.unwrap());
        store.insert("evt-4").await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "evt-1\nevt-2\nevt-4\n");
    }

    #[tokio::test]
    async fn the_journal_keeps_the_newest_ids_when_compacted() {
        let path = dir().join("processed");
        let store = FileProcessedIds::open(&path, 3).unwrap();
        for i in 0..7 {
            store.insert(&format!("e{i}")).await.unwrap();
        }
        // Compacted at six lines to e3, e4, e5; e6 appended after.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "e3\ne4\ne5\ne6\n");
        let reopened = FileProcessedIds::open(&path, 3).unwrap();
        assert!(!reopened.contains("e3").await.unwrap(), "only the newest three are kept");
        assert!(reopened.contains("e6").await.unwrap() && reopened.contains("e4").await.unwrap());
    }

    #[tokio::test]
    async fn once_runs_an_effect_once_per_id() {
        let store = MemoryProcessedIds::new(10);
        let mut runs = 0;
        for _ in 0..3 {
            let done: Result<Option<()>, ClientError> = once(&store, "order-7", || {
                runs += 1;
                async { Ok(()) }
            })
            .await;
            done.unwrap();
        }
        assert_eq!(runs, 1);
        // A failed effect is not recorded: the next delivery runs it again.
        let failed: Result<Option<()>, ClientError> =
            once(&store, "order-8", || async { Err(ClientError::Invalid("down".into())) }).await;
        assert!(failed.is_err());
        assert!(!store.contains("order-8").await.unwrap());
        let bad: Result<Option<()>, ClientError> = once(&store, "a\nb", || async { Ok(()) }).await;
        assert_eq!(bad.unwrap_err().reason(), "INVALID_ARGUMENT");
    }
}
