//! `eddy-crashfs`: mounts a crash filesystem until stopped (SIGINT, SIGTERM, SIGHUP, or the
//! control socket's `unmount`); `cut` on the control socket cuts its power.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use eddy_crashfs::{CrashFsConfig, Mounted};
use nix::sys::signal::{SigSet, Signal};

/// Shows BACKING at MOUNTPOINT through a page cache that only fsync writes back; `cut` on the
/// control socket drops every unsynced byte and fails every later operation with EIO.
#[derive(Debug, Parser)]
#[command(name = "eddy-crashfs", version)]
struct Args {
    /// Directory holding what was synced.
    #[arg(long)]
    backing: PathBuf,
    /// Empty directory to mount at.
    #[arg(long)]
    mountpoint: PathBuf,
    /// Unix socket taking commands, one per line: cut, sync, stats, unmount.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Unsynced bytes held at most; a write past it first writes every dirty file back.
    #[arg(long, default_value_t = CrashFsConfig::default().dirty_bytes_max)]
    dirty_bytes_max: u64,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        .init();
    // Blocked here, before any thread starts, the stop signals stay blocked in every thread
    // (threads inherit the mask), so the main thread alone takes them, with sigwait.
    let mut stop = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stop.add(signal);
    }
    if let Err(e) = stop.thread_block() {
        eprintln!("eddy-crashfs: cannot block the stop signals: {e}");
        return ExitCode::FAILURE;
    }
    let config = CrashFsConfig { dirty_bytes_max: args.dirty_bytes_max, ..CrashFsConfig::default() };
    let mounted = match Mounted::mount(&args.backing, &args.mountpoint, config) {
        Ok(mounted) => mounted,
        Err(e) => {
            eprintln!("eddy-crashfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.control {
        let unmount = || {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGTERM);
        };
        if let Err(e) = eddy_crashfs::control::serve(path, mounted.switch(), unmount) {
            eprintln!("eddy-crashfs: {e}");
            return ExitCode::FAILURE;
        }
    }
    match stop.wait() {
        Ok(signal) => tracing::info!(%signal, "stopping"),
        Err(e) => tracing::error!(error = %e, "waiting for a stop signal failed"),
    }
    match mounted.unmount() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eddy-crashfs: {e}");
            ExitCode::FAILURE
        }
    }
}
