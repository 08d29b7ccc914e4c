//! Reads process resource figures from Linux `/proc`: CPU time (utime +
//! stime of all threads, from `/proc/PID/stat`), resident memory and thread
//! count (`/proc/PID/status`) and open file descriptors (`/proc/PID/fd`).
//! Used both for the server under test and for the bench itself, so a
//! reader can check the client was not the bottleneck. Also reads per-CPU
//! time from `/proc/stat`, because on a virtual machine the hypervisor may
//! steal CPU time, and loopback network work runs as softirq time that is
//! charged to no process: both explain run-to-run variance.

use std::fs;
use std::io;

/// Which process to sample.
#[derive(Clone, Copy, Debug)]
pub enum Proc {
    This,
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Proc::This => format!("/proc/self/{file}"),
            Proc::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }
}

/// Clock ticks per second, the unit of utime/stime in `/proc/PID/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a system constant; it has no memory
    // side effects and _SC_CLK_TCK is always a valid name on Linux.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux has used 100 for USER_HZ on every architecture for decades;
    // fall back to it only if sysconf somehow fails.
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// utime + stime in clock ticks, summed over all threads of the process.
pub fn cpu_ticks(p: Proc) -> io::Result<u64> {
    let stat = fs::read_to_string(p.path("stat"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| io::Error::other("unparsable /proc/PID/stat"))
}

/// Field 2 (comm) is parenthesised and may contain spaces or ')', so split
/// after the *last* ')'. What follows starts at field 3 (state); utime and
/// stime are fields 14 and 15, i.e. indices 11 and 12 from there.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A CPU reading with the tick rate needed to turn it into seconds.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    pub ticks: u64,
}

impl CpuSample {
    pub fn take(p: Proc) -> io::Result<CpuSample> {
        Ok(CpuSample { ticks: cpu_ticks(p)? })
    }

    /// CPU seconds spent between `self` and the later sample `end`.
    pub fn secs_until(self, end: CpuSample) -> f64 {
        end.ticks.saturating_sub(self.ticks) as f64 / clock_ticks_per_sec() as f64
    }
}

/// Memory and descriptor usage of a process at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemSample {
    pub rss_kb: u64,
    pub fds: u64,
    pub threads: u64,
}

impl MemSample {
    pub fn take(p: Proc) -> io::Result<MemSample> {
        let status = fs::read_to_string(p.path("status"))?;
        let fds = fs::read_dir(p.path("fd"))?.count() as u64;
        Ok(MemSample {
            rss_kb: status_field(&status, "VmRSS:").unwrap_or(0),
            threads: status_field(&status, "Threads:").unwrap_or(0),
            fds,
        })
    }
}

/// Reads the first number after `key` in `/proc/PID/status` (VmRSS is in
/// kB, Threads is a count).
fn status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Cumulative per-CPU times from `/proc/stat`, in clock ticks.
#[derive(Clone, Debug, Default)]
pub struct SystemCpu {
    /// (name such as `cpu0`, [user nice system idle iowait irq softirq steal])
    cpus: Vec<(String, [u64; 8])>,
}

/// How one CPU spent a window, in percent of the window's ticks.
#[derive(Clone, Debug)]
pub struct CpuShare {
    pub cpu: String,
    /// user + nice + system + irq + softirq.
    pub busy_pct: f64,
    pub softirq_pct: f64,
    pub steal_pct: f64,
}

impl SystemCpu {
    pub fn take() -> io::Result<SystemCpu> {
        Ok(parse_system_cpu(&fs::read_to_string("/proc/stat")?))
    }

    /// Seconds all CPUs together spent busy outside softirq between `self`
    /// and `end`: process time of everything running on the machine.
    pub fn process_busy_secs_until(&self, end: &SystemCpu) -> f64 {
        let mut ticks = 0;
        for (name, a) in &self.cpus {
            if let Some((_, b)) = end.cpus.iter().find(|(n, _)| n == name) {
                // user + nice + system + irq
                for i in [0, 1, 2, 5] {
                    ticks += b[i].saturating_sub(a[i]);
                }
            }
        }
        ticks as f64 / clock_ticks_per_sec() as f64
    }

    /// Per-CPU shares between `self` and the later sample `end`.
    pub fn shares_until(&self, end: &SystemCpu) -> Vec<CpuShare> {
        let mut out = Vec::new();
        for (name, a) in &self.cpus {
            let Some((_, b)) = end.cpus.iter().find(|(n, _)| n == name) else {
                continue;
            };
            let d: Vec<u64> = a.iter().zip(b).map(|(x, y)| y.saturating_sub(*x)).collect();
            let total: u64 = d.iter().sum();
            if total == 0 {
                continue;
            }
            let pct = |v: u64| v as f64 * 100.0 / total as f64;
            out.push(CpuShare {
                cpu: name.clone(),
                busy_pct: pct(d[0] + d[1] + d[2] + d[5] + d[6]),
                softirq_pct: pct(d[6]),
                steal_pct: pct(d[7]),
            });
        }
        out
    }
}

/// Keeps only the per-CPU lines (`cpuN ...`), not the `cpu` total. guest
/// time is already included in user, so only the first 8 fields count.
fn parse_system_cpu(stat: &str) -> SystemCpu {
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?.to_string();
            let mut v = [0u64; 8];
            for slot in &mut v {
                *slot = it.next()?.parse().ok()?;
            }
            Some((name, v))
        })
        .collect();
    SystemCpu { cpus }
}

/// Fails early, with a clear message, if `pid` cannot be sampled.
pub fn check_pid(pid: u32) -> io::Result<()> {
    cpu_ticks(Proc::Pid(pid))?;
    MemSample::take(Proc::Pid(pid))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let stat = "42 (we ird) x) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(333));
    }

    #[test]
    fn reads_own_process() {
        assert!(cpu_ticks(Proc::This).is_ok());
        let m = MemSample::take(Proc::This).unwrap();
        assert!(m.rss_kb > 0 && m.fds > 0 && m.threads > 0);
        assert!(clock_ticks_per_sec() > 0);
    }

    #[test]
    fn system_cpu_shares() {
        let a = parse_system_cpu("cpu 9 9 9 9 9 9 9 9 0 0\ncpu0 10 0 10 100 0 0 5 5 0 0\n");
        let b = parse_system_cpu("cpu 9 9 9 9 9 9 9 9 0 0\ncpu0 40 0 30 130 0 0 15 15 0 0\n");
        let s = a.shares_until(&b);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].cpu, "cpu0");
        assert_eq!(s[0].busy_pct, 60.0);
        assert_eq!(s[0].softirq_pct, 10.0);
        assert_eq!(s[0].steal_pct, 10.0);
        let secs = a.process_busy_secs_until(&b);
        assert!((secs - 50.0 / clock_ticks_per_sec() as f64).abs() < 1e-9);
        assert!(SystemCpu::take().is_ok());
    }

    #[test]
    fn status_field_parses() {
        let s = "Name:\tjanus\nVmRSS:\t   22288 kB\nThreads:\t13\n";
        assert_eq!(status_field(s, "VmRSS:"), Some(22288));
        assert_eq!(status_field(s, "Threads:"), Some(13));
        assert_eq!(status_field(s, "VmHWM:"), None);
    }
}
