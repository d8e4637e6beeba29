//! The crash filesystem on a real FUSE mount: what fsync keeps, what a power cut drops, that
//! every operation fails after the cut, and that RocksDB-style file switches (write a
//! temporary file, fsync it, rename it over the old one) survive the cut.
//!
//! These need /dev/fuse and the right to mount (root); without them they fail, saying so.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use eddy_crashfs::{CrashFsConfig, Mounted};

/// A backing directory and a mount point in a temporary directory.
struct Dirs {
    _dir: tempfile::TempDir,
    backing: PathBuf,
    mountpoint: PathBuf,
}

fn dirs() -> Dirs {
    let dir = tempfile::tempdir().expect("temp dir");
    let backing = dir.path().join("backing");
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mountpoint).unwrap();
    Dirs { _dir: dir, backing, mountpoint }
}

fn mount(dirs: &Dirs) -> Mounted {
    Mounted::mount(&dirs.backing, &dirs.mountpoint, CrashFsConfig::default())
        .unwrap_or_else(|e| panic!("the crash filesystem tests need FUSE: {e}"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn fsync_keeps_data_and_a_power_cut_drops_the_rest() {
    let dirs = dirs();
    let fs = mount(&dirs);
    let synced = dirs.mountpoint.join("synced");
    let unsynced = dirs.mountpoint.join("unsynced");
    let mut file = File::create(&synced).unwrap();
    file.write_all(b"durable").unwrap();
    file.sync_data().unwrap();
    file.write_all(b" and then not").unwrap();
    drop(file); // closing persists nothing
    std::fs::write(&unsynced, b"never synced").unwrap();
    assert_eq!(read(&synced), b"durable and then not", "reads see unsynced data");
    assert_eq!(read(&dirs.backing.join("synced")), b"durable", "the backing file holds only the synced part");
    assert_eq!(std::fs::metadata(&unsynced).unwrap().len(), 12, "sizes include unsynced data");

    let stats = fs.cut_power();
    assert_eq!(stats.dropped_bytes, 13 + 12);
    let error = std::fs::read(&synced).expect_err("every operation fails after the cut");
    assert_eq!(error.raw_os_error(), Some(nix::libc::EIO), "{error}");
    assert!(File::create(dirs.mountpoint.join("new")).is_err());
    fs.unmount().unwrap();

    let fs = mount(&dirs);
    assert_eq!(read(&synced), b"durable");
    assert_eq!(read(&unsynced), b"", "the name survives (metadata is passed through), the data does not");
    fs.unmount().unwrap();
}

#[test]
fn overwrites_truncates_and_holes_read_back_and_persist_on_fsync() {
    let dirs = dirs();
    let fs = mount(&dirs);
    let path = dirs.mountpoint.join("f");
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    file.write_all(b"0123456789").unwrap();
    file.sync_all().unwrap();
    file.seek(SeekFrom::Start(3)).unwrap();
    file.write_all(b"abc").unwrap();
    file.set_len(8).unwrap();
    file.seek(SeekFrom::Start(12)).unwrap();
    file.write_all(b"Z").unwrap();
    let expected = b"012abc67\0\0\0\0Z";
    let mut seen = Vec::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_end(&mut seen).unwrap();
    assert_eq!(seen, expected);
    assert_eq!(read(&dirs.backing.join("f")), b"0123456789");
    file.sync_data().unwrap();
    assert_eq!(read(&dirs.backing.join("f")), expected);
    drop(file);
    fs.cut_power();
    fs.unmount().unwrap();
    let fs = mount(&dirs);
    assert_eq!(read(&path), expected);
    fs.unmount().unwrap();
}

#[test]
fn a_synced_file_renamed_over_another_survives_the_cut() {
    let dirs = dirs();
    let fs = mount(&dirs);
    let current = dirs.mountpoint.join("CURRENT");
    std::fs::write(&current, b"MANIFEST-1\n").unwrap();
    File::open(&current).unwrap().sync_all().unwrap();
    // As RocksDB switches CURRENT: a temporary file, written and synced, renamed over it.
    let tmp = dirs.mountpoint.join("000002.dbtmp");
    let mut file = File::create(&tmp).unwrap();
    file.write_all(b"MANIFEST-2\n").unwrap();
    file.sync_data().unwrap();
    drop(file);
    std::fs::rename(&tmp, &current).unwrap();
    File::open(&dirs.mountpoint).unwrap().sync_all().unwrap();
    // And a switch whose data was never synced: the name moves, the data is lost.
    let options = dirs.mountpoint.join("OPTIONS");
    let tmp = dirs.mountpoint.join("OPTIONS.tmp");
    std::fs::write(&tmp, b"unsynced").unwrap();
    std::fs::rename(&tmp, &options).unwrap();
    assert_eq!(read(&options), b"unsynced", "the renamed file keeps its cached data while powered");
    let listed: Vec<String> =
        std::fs::read_dir(&dirs.mountpoint).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");

    fs.cut_power();
    fs.unmount().unwrap();
    let fs = mount(&dirs);
    assert_eq!(read(&current), b"MANIFEST-2\n");
    assert_eq!(read(&options), b"");
    fs.unmount().unwrap();
}

#[test]
fn a_deleted_file_stays_readable_while_open_and_its_data_is_freed() {
    let dirs = dirs();
    let fs = mount(&dirs);
    let path = dirs.mountpoint.join("doomed");
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    file.write_all(b"still here").unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut seen = String::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "still here");
    // A new file may get the same backing inode: it must not see the old file's data.
    std::fs::write(dirs.mountpoint.join("fresh"), b"new").unwrap();
    assert_eq!(read(&dirs.mountpoint.join("fresh")), b"new");
    drop(file);
    // The kernel sends the last release asynchronously: wait for the bytes to be freed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs.stats().dirty_bytes != 3 {
        assert!(std::time::Instant::now() < deadline, "unsynced bytes still held: {}", fs.stats());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    fs.unmount().unwrap();
}

#[test]
fn the_sync_all_command_writes_everything_back() {
    let dirs = dirs();
    let fs = mount(&dirs);
    std::fs::create_dir(dirs.mountpoint.join("d")).unwrap();
    std::fs::write(dirs.mountpoint.join("d/a"), b"aaa").unwrap();
    std::fs::write(dirs.mountpoint.join("b"), b"bb").unwrap();
    assert_eq!(fs.stats().dirty_files, 2);
    let reply = eddy_crashfs::control::answer(&fs.switch(), "sync");
    assert_eq!(reply, "ok");
    assert_eq!(read(&dirs.backing.join("d/a")), b"aaa");
    assert_eq!(read(&dirs.backing.join("b")), b"bb");
    let reply = eddy_crashfs::control::answer(&fs.switch(), "cut");
    assert!(reply.starts_with("ok ") && reply.contains("cuts=1"), "{reply}");
    assert!(eddy_crashfs::control::answer(&fs.switch(), "sync").starts_with("error "));
    fs.unmount().unwrap();
}
