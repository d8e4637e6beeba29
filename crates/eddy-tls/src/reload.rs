//! A configuration built from files, rebuilt when their contents change.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::{RELOAD_INTERVAL_MS, TlsError, files};

type Build<C> = Box<dyn Fn() -> Result<C, TlsError> + Send + Sync>;

pub(crate) struct Reloadable<C> {
    current: RwLock<Arc<C>>,
    /// The files' contents the current configuration was built from.
    seen: Mutex<Vec<Vec<u8>>>,
    paths: Vec<PathBuf>,
    build: Build<C>,
}

impl<C> Reloadable<C> {
    pub(crate) fn new(paths: Vec<PathBuf>, build: Build<C>) -> Result<Self, TlsError> {
        let seen = files::fingerprint(paths.iter().map(PathBuf::as_path));
        let current = build()?;
        Ok(Self { current: RwLock::new(Arc::new(current)), seen: Mutex::new(seen), paths, build })
    }

    pub(crate) fn current(&self) -> Arc<C> {
        self.current.read().expect("TLS config lock").clone()
    }

    /// Rebuilds the configuration if the files changed since it was built. `Ok(true)`: it was
    /// replaced. On an error the previous configuration stays (a half-written certificate must
    /// not take a listener down), and the next change is tried again.
    pub(crate) fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = files::fingerprint(self.paths.iter().map(PathBuf::as_path));
        let mut seen = self.seen.lock().expect("TLS fingerprint lock");
        if *seen == now {
            return Ok(false);
        }
        *seen = now;
        let config = (self.build)()?;
        *self.current.write().expect("TLS config lock") = Arc::new(config);
        Ok(true)
    }

    /// Reloads whenever the files change, until `stopping` turns true.
    pub(crate) async fn watch(&self, what: &str, mut stopping: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                biased;
                _ = stopping.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(Duration::from_millis(RELOAD_INTERVAL_MS)) => {}
            }
            match self.reload_if_changed() {
                Ok(true) => tracing::info!(what, "TLS files reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(what, error = %e, "TLS files changed but cannot be used; keeping the previous ones")
                }
            }
        }
    }
}
