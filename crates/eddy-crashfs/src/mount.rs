//! Mounting and unmounting, and the power switch a test drives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, MountOption};

use crate::config::CrashFsConfig;
use crate::error::CrashFsError;
use crate::fs::CrashFs;
use crate::inodes::Inodes;
use crate::page_cache::PageCache;
use crate::state::{Shared, State, identity};
use crate::stats::Stats;

/// The control of one mounted filesystem's power and page cache; cheap to clone, usable from
/// any thread (the binary's control socket holds one).
#[derive(Debug, Clone)]
pub struct PowerSwitch {
    shared: Arc<Shared>,
}

impl PowerSwitch {
    /// Cuts the power: every unsynced byte is dropped, and from now on every operation fails
    /// with EIO until the filesystem is unmounted. The backing directory holds exactly what
    /// was synced. Cutting again does nothing more. Returns the counters after the cut.
    pub fn cut(&self) -> Stats {
        let mut state = self.shared.lock();
        if state.powered {
            state.powered = false;
            let (files, bytes) = state.cache.cut();
            tracing::info!(root = %state.root().display(), files, bytes, "power cut: unsynced data dropped");
        }
        state.cache.stats()
    }

    /// Whether the power is on.
    pub fn is_on(&self) -> bool {
        self.shared.lock().powered
    }

    /// sync(2): writes every file's unsynced state back, as a kernel's periodic writeback
    /// eventually would.
    pub fn sync_all(&self) -> Result<(), CrashFsError> {
        let mut state = self.shared.lock();
        if !state.powered {
            return Err(CrashFsError::PoweredOff);
        }
        state.cache.sync_all().map_err(CrashFsError::WriteBack)
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.lock().cache.stats()
    }
}

/// The error for an unusable directory.
fn directory<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CrashFsError + 'a {
    move |source| CrashFsError::Directory { what, path: path.to_path_buf(), source }
}

/// A mounted crash filesystem: `mountpoint` shows `backing` through the page cache. Dropping it
/// unmounts (lazily, if something still has a file open).
#[derive(Debug)]
pub struct Mounted {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    switch: PowerSwitch,
}

impl Mounted {
    /// Mounts a crash filesystem over `backing` at `mountpoint` (both existing directories).
    pub fn mount(backing: &Path, mountpoint: &Path, config: CrashFsConfig) -> Result<Mounted, CrashFsError> {
        config.validate()?;
        if !Path::new("/dev/fuse").exists() {
            return Err(CrashFsError::NoFuseDevice);
        }
        let root = backing.canonicalize().map_err(directory("backing directory", backing))?;
        let meta = std::fs::metadata(&root).map_err(directory("backing directory", backing))?;
        let mountpoint = mountpoint.canonicalize().map_err(directory("mount point", mountpoint))?;
        for (what, path) in [("backing directory", &root), ("mount point", &mountpoint)] {
            if !path.is_dir() {
                return Err(CrashFsError::Directory {
                    what,
                    path: path.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
                });
            }
        }
        let state = State {
            powered: true,
            inodes: Inodes::new(root.clone(), identity(&meta)),
            cache: PageCache::new(config.dirty_bytes_max),
            handles: Default::default(),
            next_fh: 0,
            open_handles_max: config.open_handles_max,
            root: root.clone(),
        };
        let shared = Arc::new(Shared::new(state));
        let mut options = fuser::Config::default();
        options.mount_options = vec![
            MountOption::FSName(format!("eddy-crashfs:{}", root.display())),
            MountOption::Subtype("eddy-crashfs".into()),
            // The kernel checks permissions from the attributes, as on a disk filesystem.
            MountOption::DefaultPermissions,
        ];
        options.n_threads = Some(config.threads);
        let filesystem = CrashFs::new(shared.clone(), config.attr_ttl());
        let session = fuser::spawn_mount(filesystem, &mountpoint, &options)
            .map_err(|source| CrashFsError::Mount { mountpoint: mountpoint.clone(), source })?;
        tracing::info!(backing = %root.display(), mountpoint = %mountpoint.display(), "crash filesystem mounted");
        Ok(Mounted { session: Some(session), mountpoint, switch: PowerSwitch { shared } })
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The power switch.
    pub fn switch(&self) -> PowerSwitch {
        self.switch.clone()
    }

    /// See [`PowerSwitch::cut`].
    pub fn cut_power(&self) -> Stats {
        self.switch.cut()
    }

    /// See [`PowerSwitch::sync_all`].
    pub fn sync_all(&self) -> Result<(), CrashFsError> {
        self.switch.sync_all()
    }

    /// See [`PowerSwitch::stats`].
    pub fn stats(&self) -> Stats {
        self.switch.stats()
    }

    /// Unmounts. Unsynced data still held is dropped, as at a power cut: only a sync makes
    /// anything durable. Processes using the filesystem should be gone first; if a file is
    /// still open the mount is detached lazily (the mount point is free at once, and the
    /// kernel ends the session when the last file closes).
    pub fn unmount(mut self) -> Result<(), CrashFsError> {
        self.unmount_now()
    }

    fn unmount_now(&mut self) -> Result<(), CrashFsError> {
        let Some(session) = self.session.take() else { return Ok(()) };
        let Err(error) = session.umount_and_join() else { return Ok(()) };
        match nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => {
                tracing::warn!(mountpoint = %self.mountpoint.display(), %error, "unmount failed; detached lazily");
                Ok(())
            }
            // Not mounted any more: the unmount happened and the error came from the session.
            Err(nix::errno::Errno::EINVAL) => {
                tracing::warn!(mountpoint = %self.mountpoint.display(), %error, "the FUSE session ended with an error");
                Ok(())
            }
            Err(detach) => Err(CrashFsError::Unmount { mountpoint: self.mountpoint.clone(), source: detach.into() }),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_now() {
            tracing::error!(error = %e, "unmounting the crash filesystem failed");
        }
    }
}
