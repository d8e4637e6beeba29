//! The inode table: FUSE inode numbers for the files of the backing directory.
//!
//! Numbers are handed out from a counter and never reused, and are tied to the backing file's
//! identity (device, inode), not to its name: a renamed file keeps its number and its unsynced
//! data. A file whose last name is removed is detached from its identity at once, so a new file
//! that the backing filesystem gives the same inode number gets a fresh FUSE number rather than
//! the dead file's cached data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The FUSE inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// A backing file's identity: (device, inode).
pub type Identity = (u64, u64);

/// One inode the kernel knows.
#[derive(Debug)]
pub struct Node {
    /// The backing path; `None` once the file's last name was removed.
    pub path: Option<PathBuf>,
    identity: Option<Identity>,
    /// Lookups the kernel holds (each answered lookup adds one, `forget` removes them).
    lookups: u64,
    /// Open handles of it.
    pub open: u64,
}

/// Every inode the kernel holds, by number and by identity.
#[derive(Debug)]
pub struct Inodes {
    nodes: BTreeMap<u64, Node>,
    by_identity: BTreeMap<Identity, u64>,
    next: u64,
}

impl Inodes {
    /// A table holding the root, the backing directory `root` of identity `identity`.
    pub fn new(root: PathBuf, identity: Identity) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT_INO, Node { path: Some(root), identity: Some(identity), lookups: 1, open: 0 });
        Self { nodes, by_identity: BTreeMap::from([(identity, ROOT_INO)]), next: ROOT_INO + 1 }
    }

    /// Inode `ino`, if the kernel holds it.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    /// Inode `ino`, mutably.
    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    /// The backing path of inode `ino`, while it has one.
    pub fn path(&self, ino: u64) -> Option<&Path> {
        self.nodes.get(&ino)?.path.as_deref()
    }

    /// The number of the file at `path` of identity `identity`, counting one more lookup of it;
    /// numbers a file the kernel does not hold yet.
    pub fn looked_up(&mut self, path: PathBuf, identity: Identity) -> u64 {
        if let Some(&ino) = self.by_identity.get(&identity) {
            let node = self.nodes.get_mut(&ino).expect("every identity maps to a node");
            node.lookups += 1;
            // A hard link's other name, or a rename made behind the kernel's back.
            node.path = Some(path);
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, Node { path: Some(path), identity: Some(identity), lookups: 1, open: 0 });
        self.by_identity.insert(identity, ino);
        ino
    }

    /// The number already given to `identity`, without counting a lookup.
    pub fn known(&self, identity: Identity) -> Option<u64> {
        self.by_identity.get(&identity).copied()
    }

    /// The kernel dropped `count` lookups of `ino`. Returns true when the node is unused now
    /// (no lookups, nothing open), so its state may go; the caller removes it with
    /// [`Inodes::remove_if_unused`] once it holds no unsynced data either.
    pub fn forget(&mut self, ino: u64, count: u64) -> bool {
        let Some(node) = self.nodes.get_mut(&ino) else { return false };
        node.lookups = node.lookups.saturating_sub(count);
        ino != ROOT_INO && node.lookups == 0 && node.open == 0
    }

    /// Removes `ino` if the kernel holds no lookup of it and nothing has it open.
    pub fn remove_if_unused(&mut self, ino: u64) {
        let unused = self.nodes.get(&ino).is_some_and(|n| n.lookups == 0 && n.open == 0);
        if ino != ROOT_INO && unused {
            let node = self.nodes.remove(&ino).expect("checked above");
            if let Some(identity) = node.identity {
                self.by_identity.remove(&identity);
            }
        }
    }

    /// The file of `identity` lost its last name: it keeps its number while open, but the
    /// identity is free for a new file. Returns its number, if the kernel held it.
    pub fn detach(&mut self, identity: Identity) -> Option<u64> {
        let ino = self.by_identity.remove(&identity)?;
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.identity = None;
            node.path = None;
        }
        Some(ino)
    }

    /// `from` was renamed to `to`: every node at or under `from` moves.
    pub fn renamed(&mut self, from: &Path, to: &Path) {
        for node in self.nodes.values_mut() {
            let Some(path) = &node.path else { continue };
            if let Ok(rest) = path.strip_prefix(from) {
                node.path = Some(if rest.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rest) });
            }
        }
    }

    /// Inodes held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root is held.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_identity_across_renames_and_are_never_reused() {
        let mut inodes = Inodes::new("/b".into(), (1, 2));
        let a = inodes.looked_up("/b/d/a".into(), (1, 10));
        let d = inodes.looked_up("/b/d".into(), (1, 11));
        assert_eq!(inodes.looked_up("/b/d/a".into(), (1, 10)), a, "the same file, the same number");
        inodes.renamed(Path::new("/b/d"), Path::new("/b/e"));
        assert_eq!(inodes.path(a), Some(Path::new("/b/e/a")));
        assert_eq!(inodes.path(d), Some(Path::new("/b/e")));
        // The file is deleted while open; the backing filesystem reuses its inode number.
        inodes.get_mut(a).unwrap().open = 1;
        assert_eq!(inodes.detach((1, 10)), Some(a));
        assert_eq!(inodes.path(a), None);
        let b = inodes.looked_up("/b/e/b".into(), (1, 10));
        assert_ne!(b, a, "a new file never inherits a dead file's number");
        assert!(!inodes.forget(a, 2), "still open");
        inodes.get_mut(a).unwrap().open = 0;
        inodes.remove_if_unused(a);
        assert!(inodes.get(a).is_none());
        assert_eq!(inodes.known((1, 10)), Some(b), "removing the dead node leaves the new one mapped");
    }

    #[test]
    fn the_root_is_never_forgotten() {
        let mut inodes = Inodes::new("/b".into(), (1, 2));
        assert!(!inodes.forget(ROOT_INO, 5));
        inodes.remove_if_unused(ROOT_INO);
        assert_eq!(inodes.path(ROOT_INO), Some(Path::new("/b")));
    }
}
