//! Result types shared by the scenarios and their output: error tallies,
//! latency percentiles, and the per-scenario reports printed either as a
//! human-readable block or as one JSON object (`--json`) for scripts.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::janus::BenchError;
use crate::procstat::{CpuShare, MemSample};

/// Errors counted by `step: kind` (e.g. `attach: timeout`), so a report
/// says where things failed without flooding the output.
#[derive(Clone, Debug, Default)]
pub struct Errors {
    counts: BTreeMap<String, u64>,
    /// The first error message seen, kept verbatim to help diagnose.
    pub first: Option<String>,
}

impl Errors {
    pub fn add(&mut self, step: &str, err: &BenchError) {
        *self.counts.entry(format!("{step}: {}", err.kind())).or_default() += 1;
        if self.first.is_none() {
            self.first = Some(format!("{step}: {err}"));
        }
    }

    pub fn merge(&mut self, other: Errors) {
        for (k, n) in other.counts {
            *self.counts.entry(k).or_default() += n;
        }
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    fn to_json(&self) -> Value {
        json!({
            "total": self.total(),
            "by_kind": self.counts,
            "first": self.first,
        })
    }

    fn describe(&self) -> String {
        if self.counts.is_empty() {
            return "0".into();
        }
        let parts: Vec<String> = self.counts.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        let mut s = format!("{} ({})", self.total(), parts.join(", "));
        if let Some(first) = &self.first {
            s.push_str(&format!("\n  first error: {first}"));
        }
        s
    }
}

/// Cycle latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles over latencies given in microseconds.
    pub fn from_micros(samples: &mut [u64]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |p: f64| {
            let idx = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[idx.clamp(1, samples.len()) - 1] as f64 / 1000.0
        };
        let sum: u64 = samples.iter().sum();
        Some(Latency {
            mean_ms: sum as f64 / samples.len() as f64 / 1000.0,
            p50_ms: rank(50.0),
            p99_ms: rank(99.0),
            max_ms: samples[samples.len() - 1] as f64 / 1000.0,
        })
    }
}

/// CPU used by one process during the measured window.
#[derive(Clone, Copy, Debug)]
pub struct CpuUse {
    pub cpu_s: f64,
    /// `cpu_s` divided by completed cycles, in microseconds.
    pub us_per_cycle: Option<f64>,
}

impl CpuUse {
    pub fn new(cpu_s: f64, cycles: u64) -> CpuUse {
        CpuUse { cpu_s, us_per_cycle: (cycles > 0).then(|| cpu_s * 1e6 / cycles as f64) }
    }

    fn to_json(self) -> Value {
        json!({ "cpu_s": round(self.cpu_s, 3), "us_per_cycle": self.us_per_cycle.map(|v| round(v, 1)) })
    }

    fn describe(self, window_s: f64) -> String {
        let share = if window_s > 0.0 { self.cpu_s / window_s * 100.0 } else { 0.0 };
        match self.us_per_cycle {
            Some(us) => format!("{:.2} s ({share:.0}% of one core), {us:.0} us/cycle", self.cpu_s),
            None => format!("{:.2} s ({share:.0}% of one core)", self.cpu_s),
        }
    }
}

/// `v` rounded to `decimals` places, for JSON output.
pub fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Result of the `api` scenario.
#[derive(Debug)]
pub struct ApiReport {
    pub transport: &'static str,
    pub url: String,
    pub clients: usize,
    pub warmup_s: f64,
    /// Length of the measured window actually observed.
    pub window_s: f64,
    pub cycles: u64,
    pub warmup_cycles: u64,
    pub latency: Option<Latency>,
    /// Per-step latency (create, attach, ...) of the measured cycles.
    pub steps: Vec<(&'static str, Latency)>,
    /// How each CPU of the machine spent the measured window.
    pub machine: Vec<CpuShare>,
    /// Process CPU seconds used on the machine by anything other than the
    /// server and the bench during the window (softirq excluded).
    pub other_cpu_s: Option<f64>,
    pub errors: Errors,
    pub warmup_errors: u64,
    pub server_pid: Option<u32>,
    pub server: Option<CpuUse>,
    pub bench: Option<CpuUse>,
    pub connects: u64,
    pub poll_aborts: u64,
}

impl ApiReport {
    pub fn cycles_per_s(&self) -> f64 {
        if self.window_s > 0.0 {
            self.cycles as f64 / self.window_s
        } else {
            0.0
        }
    }

    pub fn print(&self, as_json: bool) {
        if as_json {
            let lat = self.latency.map(|l| {
                json!({
                    "mean": round(l.mean_ms, 3),
                    "p50": round(l.p50_ms, 3),
                    "p99": round(l.p99_ms, 3),
                    "max": round(l.max_ms, 3),
                })
            });
            let v = json!({
                "scenario": "api",
                "transport": self.transport,
                "url": self.url,
                "clients": self.clients,
                "warmup_s": self.warmup_s,
                "window_s": round(self.window_s, 3),
                "cycles": self.cycles,
                "cycles_per_s": round(self.cycles_per_s(), 1),
                "latency_ms": lat,
                "step_latency_ms": self.steps.iter().map(|(name, l)| {
                    (name.to_string(), json!({"p50": round(l.p50_ms, 3), "p99": round(l.p99_ms, 3)}))
                }).collect::<serde_json::Map<String, Value>>(),
                "other_cpu_s": self.other_cpu_s.map(|v| round(v, 2)),
                "machine_cpu": self.machine.iter().map(|c| json!({
                    "cpu": c.cpu,
                    "busy_pct": round(c.busy_pct, 1),
                    "softirq_pct": round(c.softirq_pct, 1),
                    "steal_pct": round(c.steal_pct, 1),
                })).collect::<Vec<_>>(),
                "errors": self.errors.to_json(),
                "warmup_cycles": self.warmup_cycles,
                "warmup_errors": self.warmup_errors,
                "server_pid": self.server_pid,
                "server_cpu": self.server.map(CpuUse::to_json),
                "bench_cpu": self.bench.map(CpuUse::to_json),
                "tcp_connects": self.connects,
                "abandoned_polls": self.poll_aborts,
            });
            println!("{v}");
            return;
        }
        println!("api  transport={} clients={} url={}", self.transport, self.clients, self.url);
        println!(
            "  window      {:.1} s after {:.1} s warmup ({} warmup cycles)",
            self.window_s, self.warmup_s, self.warmup_cycles
        );
        println!("  cycles      {} ({:.1}/s)", self.cycles, self.cycles_per_s());
        match self.latency {
            Some(l) => println!(
                "  latency ms  p50 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
                l.p50_ms, l.p99_ms, l.max_ms, l.mean_ms
            ),
            None => println!("  latency ms  (no completed cycles)"),
        }
        if !self.steps.is_empty() {
            let parts: Vec<String> =
                self.steps.iter().map(|(name, l)| format!("{name} {:.2}/{:.2}", l.p50_ms, l.p99_ms)).collect();
            println!("  steps ms    (p50/p99) {}", parts.join("  "));
        }
        println!("  errors      {}", self.errors.describe());
        if let Some(s) = self.server {
            println!("  server cpu  {} (pid {})", s.describe(self.window_s), self.server_pid.unwrap_or(0));
        }
        if let Some(b) = self.bench {
            println!("  bench cpu   {}", b.describe(self.window_s));
        }
        if !self.machine.is_empty() {
            let parts: Vec<String> = self
                .machine
                .iter()
                .map(|c| {
                    format!(
                        "{} busy {:.0}% (softirq {:.0}%) steal {:.0}%",
                        c.cpu, c.busy_pct, c.softirq_pct, c.steal_pct
                    )
                })
                .collect();
            println!("  machine     {}", parts.join(" | "));
        }
        if let Some(other) = self.other_cpu_s {
            println!("  other cpu   {other:.2} s used by other processes during the window");
        }
        println!("  tcp connects {}  abandoned long polls {}", self.connects, self.poll_aborts);
    }
}

/// Result of the `idle` scenario.
#[derive(Debug)]
pub struct IdleReport {
    pub transport: &'static str,
    pub url: String,
    pub sessions_requested: usize,
    /// Sessions that got their handle attached and were held.
    pub held: u64,
    pub client_connections: usize,
    pub setup_s: f64,
    pub hold_s: f64,
    pub keepalives: u64,
    pub server_pid: u32,
    pub baseline: MemSample,
    pub loaded: MemSample,
    pub after_cleanup: MemSample,
    pub errors: Errors,
}

impl IdleReport {
    /// Server RSS growth per held session+handle, in KB.
    pub fn kb_per_handle(&self) -> Option<f64> {
        (self.held > 0).then(|| (self.loaded.rss_kb as f64 - self.baseline.rss_kb as f64) / self.held as f64)
    }

    /// Server fd growth per held handle, counting the bench's own
    /// connections (each is one fd on the server too).
    pub fn fds_per_handle(&self) -> Option<f64> {
        (self.held > 0).then(|| (self.loaded.fds as f64 - self.baseline.fds as f64) / self.held as f64)
    }

    /// Same, with the bench's connections subtracted: what the sessions
    /// themselves cost in descriptors.
    pub fn fds_per_handle_excl_conns(&self) -> Option<f64> {
        (self.held > 0).then(|| {
            (self.loaded.fds as f64 - self.baseline.fds as f64 - self.client_connections as f64) / self.held as f64
        })
    }

    pub fn print(&self, as_json: bool) {
        let mem = |m: &MemSample| json!({"rss_kb": m.rss_kb, "fds": m.fds, "threads": m.threads});
        if as_json {
            let v = json!({
                "scenario": "idle",
                "transport": self.transport,
                "url": self.url,
                "sessions_requested": self.sessions_requested,
                "sessions_held": self.held,
                "client_connections": self.client_connections,
                "setup_s": round(self.setup_s, 3),
                "hold_s": self.hold_s,
                "keepalives": self.keepalives,
                "server_pid": self.server_pid,
                "baseline": mem(&self.baseline),
                "loaded": mem(&self.loaded),
                "after_cleanup": mem(&self.after_cleanup),
                "kb_per_handle": self.kb_per_handle().map(|v| round(v, 2)),
                "fds_per_handle": self.fds_per_handle().map(|v| round(v, 4)),
                "fds_per_handle_excl_client_conns": self.fds_per_handle_excl_conns().map(|v| round(v, 4)),
                "errors": self.errors.to_json(),
            });
            println!("{v}");
            return;
        }
        let line = |name: &str, m: &MemSample| {
            println!("  {name:<14} rss {:>9} KB  fds {:>6}  threads {:>4}", m.rss_kb, m.fds, m.threads)
        };
        println!(
            "idle transport={} sessions={} url={} (server pid {})",
            self.transport, self.sessions_requested, self.url, self.server_pid
        );
        println!(
            "  held {} session+handle pairs over {} client connection(s); setup {:.2} s, hold {:.1} s, {} keepalives",
            self.held, self.client_connections, self.setup_s, self.hold_s, self.keepalives
        );
        line("baseline", &self.baseline);
        line("loaded", &self.loaded);
        line("after cleanup", &self.after_cleanup);
        if let (Some(kb), Some(fds), Some(fds_x)) =
            (self.kb_per_handle(), self.fds_per_handle(), self.fds_per_handle_excl_conns())
        {
            println!("  per handle    {kb:.2} KB RSS, {fds:.4} fds ({fds_x:.4} excluding the bench's connections)");
        }
        println!("  errors        {}", self.errors.describe());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let l = Latency::from_micros(&mut v).unwrap();
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        assert!(Latency::from_micros(&mut []).is_none());
        let mut one = vec![1500];
        assert_eq!(Latency::from_micros(&mut one).unwrap().p99_ms, 1.5);
    }

    #[test]
    fn errors_merge_and_count() {
        let mut a = Errors::default();
        a.add("attach", &BenchError::Timeout);
        let mut b = Errors::default();
        b.add("attach", &BenchError::Timeout);
        b.add("create", &BenchError::Status(500));
        a.merge(b);
        assert_eq!(a.total(), 3);
        assert!(a.describe().contains("attach: timeout x2"));
    }

    #[test]
    fn cpu_per_cycle() {
        assert_eq!(CpuUse::new(1.0, 1000).us_per_cycle, Some(1000.0));
        assert_eq!(CpuUse::new(1.0, 0).us_per_cycle, None);
    }
}
