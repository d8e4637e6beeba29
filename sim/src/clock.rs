//! Simulated wall and monotonic clocks for everything in the process that reads the time
//! directly, not through tokio.
//!
//! turmoil simulates tokio's clock, but some libraries read `std::time::Instant` and
//! `SystemTime` themselves: h2 times out locally reset streams against `Instant::now()`, and
//! hyper stamps a `date` header from `SystemTime::now()`. Read from the real clock, those make a
//! run depend on how fast the machine is. So while a run is in progress, its thread reads
//! simulated time instead: every binary that runs the simulation installs
//! [`virtual_clock!`](crate::virtual_clock), which interposes libc's `clock_gettime` and answers
//! from [`now_nanos`] when the calling thread has a simulation running.
//!
//! This is the one technique the simulation borrows from madsim (see docs/testing.md).

use std::cell::Cell;

thread_local! {
    /// Simulated nanoseconds since the start of the run on this thread, if one is running.
    static NOW_NANOS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Where the simulated monotonic clock starts: far from zero, like a machine's uptime.
const MONOTONIC_BASE_NANOS: u64 = 1_000_000 * 1_000_000_000;

/// Simulated wall time at the start of a run: 2026-01-01T00:00:00Z.
pub const EPOCH_MILLIS: u64 = 1_767_225_600_000;

/// Sets (or, with `None`, clears) this thread's simulated time.
pub fn set_now(elapsed: Option<std::time::Duration>) {
    NOW_NANOS.with(|now| now.set(elapsed.map(|d| d.as_nanos() as u64)));
}

/// Whether this thread's time is simulated now.
pub fn is_simulated() -> bool {
    NOW_NANOS.with(Cell::get).is_some()
}

/// The simulated reading of `clock` (a libc clock id) in nanoseconds, or `None` when the thread
/// runs no simulation (then the real clock answers). Monotonic clocks count from a fixed base,
/// wall clocks from [`EPOCH_MILLIS`].
pub fn now_nanos(clock: i32) -> Option<u64> {
    let elapsed = NOW_NANOS.with(Cell::get)?;
    match clock {
        // CLOCK_REALTIME, CLOCK_REALTIME_COARSE, CLOCK_TAI
        0 | 5 | 11 => Some(EPOCH_MILLIS * 1_000_000 + elapsed),
        // Every other clock: monotonic, boot time, CPU time.
        _ => Some(MONOTONIC_BASE_NANOS + elapsed),
    }
}

/// Resets the thread's simulated time when a run ends, however it ends.
pub(crate) struct Guard;

impl Guard {
    pub(crate) fn start() -> Self {
        set_now(Some(std::time::Duration::ZERO));
        Guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        set_now(None);
    }
}

/// Interposes libc's `clock_gettime` in the binary that invokes it, so `Instant::now()` and
/// `SystemTime::now()` read [`now_nanos`] on threads that run a simulation. Invoke it once at
/// the top level of the simulation binary and of every test binary that calls [`crate::run`];
/// [`crate::run`] refuses to start without it.
#[macro_export]
macro_rules! virtual_clock {
    () => {
        /// Simulated time for the simulation's threads, the real clock for every other thread.
        ///
        /// # Safety
        /// `tp` must point to a writable `timespec`, as libc's contract requires.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn clock_gettime(clock: $crate::clock::ClockId, tp: *mut $crate::clock::Timespec) -> i32 {
            if let Some(nanos) = $crate::clock::now_nanos(clock) {
                // SAFETY: the caller passes a valid timespec pointer (libc's contract).
                unsafe {
                    (*tp).tv_sec = (nanos / 1_000_000_000) as _;
                    (*tp).tv_nsec = (nanos % 1_000_000_000) as _;
                }
                return 0;
            }
            // SAFETY: the raw system call has clock_gettime's contract, which the caller meets.
            unsafe { $crate::clock::real_clock_gettime(clock, tp) }
        }

        /// Seeded bytes instead of the kernel's randomness: std's `HashMap` keys (and anything
        /// else that asks) are then the same in every run, so iteration order cannot make two
        /// runs of a seed differ. The simulation binary needs no unpredictable randomness.
        ///
        /// # Safety
        /// `buf` must point to `len` writable bytes, as libc's contract requires.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn getrandom(buf: *mut u8, len: usize, _flags: u32) -> isize {
            // SAFETY: the caller passes `len` writable bytes (libc's contract).
            let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
            $crate::clock::fill_seeded(out);
            len as isize
        }

        #[used]
        static _EDDY_SIM_VIRTUAL_CLOCK: unsafe extern "C" fn(
            $crate::clock::ClockId,
            *mut $crate::clock::Timespec,
        ) -> i32 = clock_gettime;
    };
}

/// Fills `out` from a fixed-seed generator: the interposed `getrandom` of the simulation binary.
pub fn fill_seeded(out: &mut [u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x005e_ed0f_edd7);
    for chunk in out.chunks_mut(8) {
        let z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let z = eddy_raft::group_seed(z, 0);
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

/// libc's clock id type.
pub type ClockId = libc::clockid_t;
/// libc's timespec.
pub type Timespec = libc::timespec;

/// The real `clock_gettime`, as a raw system call (the interposed symbol cannot call libc's).
///
/// # Safety
/// `tp` must point to a writable `timespec`.
#[allow(unsafe_code)]
pub unsafe fn real_clock_gettime(clock: ClockId, tp: *mut Timespec) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { libc::syscall(libc::SYS_clock_gettime, clock, tp) as i32 }
}

/// Whether this binary routes the clock through [`now_nanos`]: true once
/// [`virtual_clock!`](crate::virtual_clock) is installed.
pub fn is_installed() -> bool {
    set_now(Some(std::time::Duration::from_secs(1)));
    let simulated = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .is_ok_and(|d| d.as_millis() as u64 == EPOCH_MILLIS + 1_000);
    set_now(None);
    simulated
}
