//! CPU time from /proc: of the servers (by pid), of this process (the client), and of the whole
//! machine, so a run can say what each side cost and whether something else ran meanwhile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{BenchError, BenchResult};

/// A server process the run accounts for (and may kill): its name as the system calls it
/// (Eddy node id, NATS server name) and its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPid {
    pub name: String,
    pub pid: i32,
}

impl std::str::FromStr for ServerPid {
    type Err = String;

    /// Parses `NAME=PID`.
    fn from_str(s: &str) -> Result<ServerPid, String> {
        let (name, pid) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=PID"))?;
        let pid = pid.parse::<i32>().map_err(|_| format!("{s:?}: {pid:?} is not a pid"))?;
        if name.is_empty() || pid <= 0 {
            return Err(format!("{s:?} is not NAME=PID"));
        }
        Ok(ServerPid { name: name.to_string(), pid })
    }
}

/// Least CPU time of other processes that can flag a run: /proc counts in ticks (10 ms), so in
/// a phase shorter than a second a tick or two would otherwise look like a busy core.
const CONTENDED_OTHER_MIN_S: f64 = 0.05;

/// Clock ticks per second of the times /proc reports.
fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        // USER_HZ is 100 on every architecture Linux exposes /proc times for.
        _ => 100.0,
    }
}

fn read(path: &Path) -> BenchResult<String> {
    std::fs::read_to_string(path).map_err(|e| BenchError::Proc { path: path.to_path_buf(), reason: e.to_string() })
}

/// utime + stime of a process, in ticks, from /proc/<pid>/stat.
fn process_ticks(path: &Path) -> BenchResult<u64> {
    let text = read(path)?;
    let bad = |reason: &str| BenchError::Proc { path: path.to_path_buf(), reason: reason.to_string() };
    // The command name (field 2) may hold spaces and parentheses: fields after it start past
    // its last ')'. Counting from field 3 (state) as index 0, utime is field 14, stime 15.
    let rest = text.rsplit_once(')').ok_or_else(|| bad("no ')' after the command name"))?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| bad("short line"));
    Ok(field(11)? + field(12)?)
}

/// The machine's CPU time by kind, in ticks, from the first line of /proc/stat.
#[derive(Debug, Clone, Copy, Default)]
struct MachineTicks {
    /// user + nice + system: what processes ran.
    processes: u64,
    /// irq + softirq (loopback networking and disk completions land here).
    interrupts: u64,
    /// Time the hypervisor gave to another guest.
    steal: u64,
}

fn machine_ticks() -> BenchResult<MachineTicks> {
    let path = Path::new("/proc/stat");
    let text = read(path)?;
    let line = text.lines().next().unwrap_or_default();
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    if !line.starts_with("cpu ") || v.len() < 8 {
        return Err(BenchError::Proc { path: path.to_path_buf(), reason: format!("unexpected first line {line:?}") });
    }
    // user nice system idle iowait irq softirq steal ...
    Ok(MachineTicks { processes: v[0] + v[1] + v[2], interrupts: v[5] + v[6], steal: v[7] })
}

/// CPU use over one measured phase of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuReport {
    /// CPU seconds of all the given server processes.
    pub servers_s: f64,
    /// CPU seconds of this process (the benchmark client).
    pub client_s: f64,
    /// Server CPU seconds per million records.
    pub servers_s_per_million: f64,
    /// Client CPU seconds per million records.
    pub client_s_per_million: f64,
    /// CPU seconds every process of the machine used.
    pub machine_processes_s: f64,
    /// Of those, what neither the servers nor the client used.
    pub other_s: f64,
    /// `other_s` as cores busy on average over the phase.
    pub other_cores: f64,
    /// Interrupt handling (irq + softirq) as cores; not counted in any process.
    pub interrupt_cores: f64,
    /// Time the hypervisor gave to other guests, as cores.
    pub steal_cores: f64,
    /// Whether another process (or guest) used more than the threshold: the figures of this
    /// run are suspect.
    pub contended: bool,
}

/// Measures CPU time from its start to [`CpuMeter::finish`].
#[derive(Debug)]
pub struct CpuMeter {
    servers: Vec<ServerPid>,
    /// Ticks of each server at the start.
    start: BTreeMap<i32, u64>,
    /// The latest ticks read of each server: a server killed during the run keeps its last
    /// reading.
    latest: BTreeMap<i32, u64>,
    client_start: u64,
    machine_start: MachineTicks,
    at: Instant,
}

fn stat_path(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/stat"))
}

impl CpuMeter {
    /// Starts measuring; every server pid must be a running process.
    pub fn start(servers: &[ServerPid]) -> BenchResult<CpuMeter> {
        let mut start = BTreeMap::new();
        for server in servers {
            start.insert(server.pid, process_ticks(&stat_path(server.pid))?);
        }
        Ok(CpuMeter {
            servers: servers.to_vec(),
            latest: start.clone(),
            start,
            client_start: process_ticks(Path::new("/proc/self/stat"))?,
            machine_start: machine_ticks()?,
            at: Instant::now(),
        })
    }

    /// Reads the servers' times now (call it just before killing one).
    pub fn refresh(&mut self) {
        for server in &self.servers {
            if let Ok(ticks) = process_ticks(&stat_path(server.pid)) {
                self.latest.insert(server.pid, ticks);
            }
        }
    }

    /// CPU use since the start, for `records` records; `contention_cores` is the most other
    /// processes may use (as cores, on average) before the run is flagged.
    pub fn finish(mut self, records: u64, contention_cores: f64) -> BenchResult<CpuReport> {
        self.refresh();
        let client = process_ticks(Path::new("/proc/self/stat"))?;
        let machine = machine_ticks()?;
        let elapsed = self.at.elapsed().as_secs_f64().max(f64::EPSILON);
        let hz = ticks_per_second();
        let seconds = |ticks: u64| ticks as f64 / hz;
        let servers_ticks: u64 = self.start.iter().map(|(pid, start)| self.latest[pid].saturating_sub(*start)).sum();
        let servers_s = seconds(servers_ticks);
        let client_s = seconds(client.saturating_sub(self.client_start));
        let machine_processes_s = seconds(machine.processes.saturating_sub(self.machine_start.processes));
        let other_s = (machine_processes_s - servers_s - client_s).max(0.0);
        let per_million = |s: f64| if records == 0 { 0.0 } else { s / records as f64 * 1e6 };
        let other_cores = other_s / elapsed;
        let steal_cores = seconds(machine.steal.saturating_sub(self.machine_start.steal)) / elapsed;
        Ok(CpuReport {
            servers_s,
            client_s,
            servers_s_per_million: per_million(servers_s),
            client_s_per_million: per_million(client_s),
            machine_processes_s,
            other_s,
            other_cores,
            interrupt_cores: seconds(machine.interrupts.saturating_sub(self.machine_start.interrupts)) / elapsed,
            steal_cores,
            contended: (other_cores > contention_cores && other_s >= CONTENDED_OTHER_MIN_S)
                || steal_cores > contention_cores,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_pid_flags() {
        assert_eq!("n1=42".parse::<ServerPid>(), Ok(ServerPid { name: "n1".into(), pid: 42 }));
        assert!("n1".parse::<ServerPid>().is_err());
        assert!("=4".parse::<ServerPid>().is_err());
        assert!("n1=x".parse::<ServerPid>().is_err());
    }

    #[test]
    fn measures_this_process() {
        let me = ServerPid { name: "me".into(), pid: std::process::id() as i32 };
        let meter = CpuMeter::start(&[me]).expect("start");
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed().as_millis() < 200 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let report = meter.finish(1_000_000, 10.0).expect("finish");
        assert!(x > 0);
        assert!(report.client_s >= 0.1, "{report:?}");
        assert!((report.servers_s - report.client_s).abs() < 0.05, "the 'server' is this process: {report:?}");
        assert!((report.client_s_per_million - report.client_s).abs() < 1e-9);
    }

    #[test]
    fn a_missing_server_is_an_error() {
        let ghost = ServerPid { name: "ghost".into(), pid: i32::MAX };
        assert!(matches!(CpuMeter::start(&[ghost]), Err(BenchError::Proc { .. })));
    }
}
