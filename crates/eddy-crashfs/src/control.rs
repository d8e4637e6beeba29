//! The binary's control socket: a Unix socket taking one command per line and answering one
//! line each, so a test written in any language can cut the power of a mounted filesystem.
//!
//! Commands: `cut` (the power cut; answers the counters), `sync` (write every dirty file back),
//! `stats`, and `unmount` (answers, then the binary unmounts and exits).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::error::CrashFsError;
use crate::mount::PowerSwitch;

/// The longest command line read; a longer one is refused.
pub const COMMAND_BYTES_MAX: u64 = 256;

/// Answers one command.
pub fn answer(switch: &PowerSwitch, command: &str) -> String {
    match command.trim() {
        "cut" => format!("ok {}", switch.cut()),
        "sync" => match switch.sync_all() {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error {e}"),
        },
        "stats" => format!("ok {}", switch.stats()),
        "unmount" => "ok unmounting".to_string(),
        other => format!("error unknown command {other:?} (cut, sync, stats, unmount)"),
    }
}

/// Listens at `path` (replacing a stale socket file) and serves connections one at a time on a
/// thread of its own; `on_unmount` runs after an `unmount` command is answered.
pub fn serve(
    path: &Path,
    switch: PowerSwitch,
    on_unmount: impl Fn() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, CrashFsError> {
    let error = |source| CrashFsError::Control { path: path.to_path_buf(), source };
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(error(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(error)?;
    std::thread::Builder::new()
        .name("crashfs-control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream.map(|s| serve_one(s, &switch)) {
                    Ok(Ok(true)) => on_unmount(),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) | Err(e) => tracing::warn!(error = %e, "control connection failed"),
                }
            }
        })
        .map_err(error)
}

/// Serves one connection; true when it asked to unmount.
fn serve_one(stream: UnixStream, switch: &PowerSwitch) -> std::io::Result<bool> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    loop {
        line.clear();
        if (&mut reader).take(COMMAND_BYTES_MAX).read_line(&mut line)? == 0 {
            return Ok(false);
        }
        if !line.ends_with('\n') && line.len() as u64 >= COMMAND_BYTES_MAX {
            writeln!(writer, "error command longer than {COMMAND_BYTES_MAX} bytes")?;
            return Ok(false);
        }
        writeln!(writer, "{}", answer(switch, &line))?;
        if line.trim() == "unmount" {
            return Ok(true);
        }
    }
}
