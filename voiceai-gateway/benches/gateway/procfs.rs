//! A process's CPU time and memory, from /proc (Linux).

use std::time::Duration;

/// USER_HZ: the unit of the times in `/proc/*/stat`.
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// utime + stime of `pid` (all its threads), or `None` when it is gone.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command: state is field 3, utime 14, stime 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / CLOCK_TICKS_PER_SECOND,
    ))
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Threads of `pid`.
pub(crate) fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:")?.trim().parse().ok())
}

/// CPU use of a process over an interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMark {
    cpu: Duration,
    at: std::time::Instant,
}

impl CpuMark {
    pub(crate) fn now(pid: u32) -> Option<CpuMark> {
        Some(CpuMark {
            cpu: cpu_time(pid)?,
            at: std::time::Instant::now(),
        })
    }

    /// Cores used on average since `self` (1.0 = one core busy).
    pub(crate) fn cores_until(&self, later: &CpuMark) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        later.cpu.saturating_sub(self.cpu).as_secs_f64() / wall
    }
}

/// The whole machine's CPU use: its cores minus their idle time (`/proc/uptime`'s second
/// field, which the kernel keeps exactly). `/proc/stat`'s busy counters are sampled at
/// the scheduler tick, which a tickless idle CPU skips: on this kind of machine they
/// missed most of a bursty load (a gateway waking every 20 ms per call).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MachineMark {
    idle_seconds: f64,
    at: std::time::Instant,
}

impl MachineMark {
    pub(crate) fn now() -> Option<MachineMark> {
        let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
        let idle_seconds = uptime.split_whitespace().nth(1)?.parse().ok()?;
        Some(MachineMark {
            idle_seconds,
            at: std::time::Instant::now(),
        })
    }

    /// Cores busy on average since `self`, out of `cores`.
    pub(crate) fn cores_until(&self, later: &MachineMark, cores: usize) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        let idle = (later.idle_seconds - self.idle_seconds).max(0.0) / wall;
        (cores as f64 - idle).max(0.0)
    }
}
