//! Request metrics: counts by API, request name and result code, and a latency histogram per
//! request name, for the Prometheus exposition on the admin HTTP port.
//!
//! Process-wide and lock-free: a fixed table of request names (anything else counts as
//! `other`), one slot per error code 400..=499, and fixed latency buckets, all atomics. Recording
//! is a short scan of the name table and three relaxed increments.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which API a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiKind {
    /// The Janus API.
    Janus,
    /// The Admin API.
    Admin,
}

/// Records one answered request. `error` is the Janus error code of the reply, if it failed.
pub fn record(api: ApiKind, name: &str, error: Option<u16>, elapsed: Duration) {
    let table: &[Series] = match api {
        ApiKind::Janus => &JANUS,
        ApiKind::Admin => &ADMIN,
    };
    let names = match api {
        ApiKind::Janus => JANUS_NAMES,
        ApiKind::Admin => ADMIN_NAMES,
    };
    // The last slot is `other`.
    let i = names.iter().position(|n| n.eq_ignore_ascii_case(name)).unwrap_or(names.len() - 1);
    table[i].record(error, elapsed);
}

/// Appends the request series in Prometheus text format.
pub fn render(out: &mut String) {
    out.push_str("# HELP portunus_requests_total Requests answered, by API, request and result code (0 = success).\n");
    out.push_str("# TYPE portunus_requests_total counter\n");
    for (api, names, table) in [("janus", JANUS_NAMES, &JANUS[..]), ("admin", ADMIN_NAMES, &ADMIN[..])] {
        for (name, s) in names.iter().zip(table.iter()) {
            let ok = s.ok.load(Ordering::Relaxed);
            if ok > 0 {
                let _ = writeln!(out, "portunus_requests_total{{api=\"{api}\",request=\"{name}\",code=\"0\"}} {ok}");
            }
            for (k, e) in s.errors.iter().enumerate() {
                let n = e.load(Ordering::Relaxed);
                if n > 0 {
                    let code = 400 + k;
                    let _ = writeln!(
                        out,
                        "portunus_requests_total{{api=\"{api}\",request=\"{name}\",code=\"{code}\"}} {n}"
                    );
                }
            }
        }
    }
    out.push_str("# HELP portunus_request_duration_seconds Time to answer a request, by API and request.\n");
    out.push_str("# TYPE portunus_request_duration_seconds histogram\n");
    for (api, names, table) in [("janus", JANUS_NAMES, &JANUS[..]), ("admin", ADMIN_NAMES, &ADMIN[..])] {
        for (name, s) in names.iter().zip(table.iter()) {
            let count = s.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let labels = format!("api=\"{api}\",request=\"{name}\"");
            let mut cumulative = 0;
            for (b, le) in s.buckets.iter().zip(BUCKETS_US) {
                cumulative += b.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "portunus_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {cumulative}",
                    le as f64 / 1e6
                );
            }
            let _ = writeln!(out, "portunus_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let sum = s.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "portunus_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "portunus_request_duration_seconds_count{{{labels}}} {count}");
        }
    }
}

/// Upper bounds of the latency buckets in µs (a final `+Inf` bucket is implied).
const BUCKETS_US: [u64; 10] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000, 1_000_000];

const JANUS_NAMES: &[&str] = &[
    "info",
    "ping",
    "create",
    "attach",
    "destroy",
    "keepalive",
    "claim",
    "message",
    "trickle",
    "detach",
    "hangup",
    "other",
];

const ADMIN_NAMES: &[&str] = &[
    "info",
    "ping",
    "get_status",
    "set_session_timeout",
    "set_log_level",
    "set_locking_debug",
    "set_refcount_debug",
    "set_log_timestamps",
    "set_log_colors",
    "set_libnice_debug",
    "set_min_nack_queue",
    "set_nack_optimizations",
    "set_no_media_timer",
    "set_slowlink_threshold",
    "accept_new_sessions",
    "list_sessions",
    "message_plugin",
    "query_transport",
    "query_eventhandler",
    "query_logger",
    "custom_event",
    "custom_logline",
    "add_token",
    "allow_token",
    "disallow_token",
    "list_tokens",
    "remove_token",
    "resolve_address",
    "test_stun",
    "loops_info",
    "list_handles",
    "destroy_session",
    "handle_info",
    "start_pcap",
    "stop_pcap",
    "start_text2pcap",
    "stop_text2pcap",
    "hangup_webrtc",
    "detach_handle",
    "other",
];

struct Series {
    ok: AtomicU64,
    errors: [AtomicU64; 100],
    count: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS_US.len()],
}

impl Series {
    const fn new() -> Self {
        Series {
            ok: AtomicU64::new(0),
            errors: [const { AtomicU64::new(0) }; 100],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; BUCKETS_US.len()],
        }
    }

    fn record(&self, error: Option<u16>, elapsed: Duration) {
        match error {
            None => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            // Codes outside 400..=499 do not exist in Janus; they count as 490 (unknown).
            Some(code) => {
                let slot = code.checked_sub(400).map(usize::from).filter(|s| *s < 100).unwrap_or(90);
                self.errors[slot].fetch_add(1, Ordering::Relaxed);
            }
        }
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        if let Some(b) = BUCKETS_US.iter().position(|le| us <= *le) {
            self.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
    }
}

static JANUS: [Series; 12] = [const { Series::new() }; 12];
static ADMIN: [Series; 40] = [const { Series::new() }; 40];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_names() {
        assert_eq!(JANUS.len(), JANUS_NAMES.len());
        assert_eq!(ADMIN.len(), ADMIN_NAMES.len());
    }

    #[test]
    fn records_and_renders() {
        record(ApiKind::Admin, "test_stun", None, Duration::from_micros(300));
        record(ApiKind::Admin, "TEST_STUN", Some(490), Duration::from_millis(2));
        record(ApiKind::Admin, "no_such_request_here", Some(457), Duration::from_secs(5));
        let mut out = String::new();
        render(&mut out);
        assert!(out.contains("portunus_requests_total{api=\"admin\",request=\"test_stun\",code=\"0\"}"));
        assert!(out.contains("portunus_requests_total{api=\"admin\",request=\"test_stun\",code=\"490\"}"));
        assert!(out.contains("portunus_requests_total{api=\"admin\",request=\"other\",code=\"457\"}"));
        assert!(
            out.contains("portunus_request_duration_seconds_bucket{api=\"admin\",request=\"test_stun\",le=\"0.0005\"}")
        );
    }
}
