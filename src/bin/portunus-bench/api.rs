//! The `api` scenario: K concurrent clients, each looping
//! create -> attach(echotest) -> message `{"audio":true}` (waiting for the
//! plugin's answer) -> detach -> destroy, for a warmup plus a measured
//! window. Reports throughput, cycle and per-step latency, errors, the
//! machine's per-CPU busy/steal shares and, with a server pid, the server's
//! CPU per cycle next to the bench's own.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::janus::{BenchError, Conn, Target, Transport, ECHOTEST};
use crate::procstat::{check_pid, CpuSample, Proc, SystemCpu};
use crate::report::{ApiReport, CpuUse, Errors, Latency};

/// Pause after a failed cycle, so a dead or refusing server produces a
/// bounded trickle of errors instead of a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

pub struct ApiOptions {
    pub target: Target,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
}

/// The steps of one cycle, in order; per-step latencies use this order.
pub const STEPS: [&str; 5] = ["create", "attach", "message", "detach", "destroy"];

/// What one client task observed.
#[derive(Default)]
struct ClientResult {
    latencies_us: Vec<u64>,
    /// Per-step latencies of the measured cycles, indexed like [`STEPS`].
    steps_us: [Vec<u64>; 5],
    warmup_cycles: u64,
    errors: Errors,
    warmup_errors: u64,
    connects: u64,
    poll_aborts: u64,
}

type StepError = (&'static str, BenchError);

pub async fn run(opts: ApiOptions) -> Result<ApiReport, String> {
    if let Some(pid) = opts.server_pid {
        check_pid(pid).map_err(|e| format!("cannot read /proc/{pid}: {e}"))?;
    }
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    eprintln!(
        "api: {} clients over {}, warmup {:.1} s, measuring {:.1} s",
        opts.clients,
        opts.target.transport.name(),
        opts.warmup.as_secs_f64(),
        opts.duration.as_secs_f64()
    );

    let tasks: Vec<_> =
        (0..opts.clients).map(|_| tokio::spawn(client(opts.target.clone(), measure_from, end))).collect();

    // Sample CPU exactly at the window edges; cycles are attributed to the
    // window by their completion time, so both sides use the same window.
    tokio::time::sleep_until(measure_from).await;
    let server_pid = opts.server_pid.map(Proc::Pid);
    let sample = |p: Option<Proc>| p.and_then(|p| CpuSample::take(p).ok());
    let machine0 = SystemCpu::take().ok();
    let (server0, bench0, t0) = (sample(server_pid), sample(Some(Proc::This)), Instant::now());
    tokio::time::sleep_until(end).await;
    let (server1, bench1, t1) = (sample(server_pid), sample(Some(Proc::This)), Instant::now());
    let (machine, machine_busy_s) = match (machine0, SystemCpu::take().ok()) {
        (Some(a), Some(b)) => (a.shares_until(&b), Some(a.process_busy_secs_until(&b))),
        _ => (Vec::new(), None),
    };
    let window_s = (t1 - t0).as_secs_f64();

    // Clients finish their current cycle; every request has a timeout, so
    // this is bounded, but cap it anyway in case a server misbehaves.
    let drain_limit = opts.target.timeout * 6 + Duration::from_secs(5);
    let mut total = ClientResult::default();
    let drain_deadline = Instant::now() + drain_limit;
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(drain_deadline, task).await {
            Ok(Ok(r)) => {
                total.latencies_us.extend(r.latencies_us);
                for (all, mine) in total.steps_us.iter_mut().zip(r.steps_us) {
                    all.extend(mine);
                }
                total.warmup_cycles += r.warmup_cycles;
                total.errors.merge(r.errors);
                total.warmup_errors += r.warmup_errors;
                total.connects += r.connects;
                total.poll_aborts += r.poll_aborts;
            }
            Ok(Err(e)) => total.errors.add("client", &BenchError::Protocol(e.to_string())),
            Err(_) => {
                abort.abort();
                total.errors.add("drain", &BenchError::Timeout);
            }
        }
    }

    let cycles = total.latencies_us.len() as u64;
    let cpu = |a: Option<CpuSample>, b: Option<CpuSample>| match (a, b) {
        (Some(a), Some(b)) => Some(CpuUse::new(a.secs_until(b), cycles)),
        _ => None,
    };
    let server = cpu(server0, server1);
    let bench = cpu(bench0, bench1);
    // CPU used by anything else on the machine (other builds, other
    // services): a large value means the figures are not trustworthy.
    let other_cpu_s = machine_busy_s.map(|busy| {
        let ours = server.map_or(0.0, |c| c.cpu_s) + bench.map_or(0.0, |c| c.cpu_s);
        (busy - ours).max(0.0)
    });
    Ok(ApiReport {
        transport: opts.target.transport.name(),
        url: opts.target.url.clone(),
        clients: opts.clients,
        warmup_s: opts.warmup.as_secs_f64(),
        window_s,
        cycles,
        warmup_cycles: total.warmup_cycles,
        latency: Latency::from_micros(&mut total.latencies_us),
        steps: STEPS
            .iter()
            .zip(total.steps_us.iter_mut())
            .filter_map(|(name, v)| Latency::from_micros(v).map(|l| (*name, l)))
            .collect(),
        machine,
        errors: total.errors,
        warmup_errors: total.warmup_errors,
        server_pid: opts.server_pid,
        server,
        bench,
        other_cpu_s,
        connects: total.connects,
        poll_aborts: total.poll_aborts,
    })
}

/// One client: one connection (janus.js style: a WebSocket, or keep-alive
/// HTTP with a long poll) reused across cycles until `end`.
async fn client(target: Target, measure_from: Instant, end: Instant) -> ClientResult {
    let mut res = ClientResult::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < end {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(&target).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    record_error(&mut res, measure_from, "connect", &e);
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        match cycle(c).await {
            Ok(t) if t.done < measure_from => res.warmup_cycles += 1,
            // Cycles completing after `end` are outside the CPU window.
            Ok(t) if t.done > end => {}
            Ok(t) => {
                res.latencies_us.push((t.done - started).as_micros() as u64);
                for (all, us) in res.steps_us.iter_mut().zip(t.steps_us) {
                    all.push(us);
                }
            }
            Err((step, e)) => {
                record_error(&mut res, measure_from, step, &e);
                // A closed WebSocket cannot be reused; HTTP reconnects on
                // its own.
                if target.transport == Transport::Ws && matches!(e, BenchError::Closed) {
                    if let Some(old) = conn.take() {
                        res.connects += old.connects();
                        old.close().await;
                    }
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    if let Some(c) = conn {
        res.connects += c.connects();
        res.poll_aborts += c.poll_aborts();
        c.close().await;
    }
    res
}

fn record_error(res: &mut ClientResult, measure_from: Instant, step: &str, e: &BenchError) {
    if Instant::now() < measure_from {
        res.warmup_errors += 1;
    } else {
        res.errors.add(step, e);
    }
}

/// Timing of one successful cycle.
struct Timing {
    /// When the destroy succeeded: the end of the cycle's latency
    /// (stopping the HTTP long poll afterwards is client housekeeping).
    done: Instant,
    steps_us: [u64; 5],
}

/// Microseconds since `*t`, advancing `*t` to now for the next step.
fn micros_since(t: &mut Instant) -> u64 {
    let now = Instant::now();
    let us = (now - *t).as_micros() as u64;
    *t = now;
    us
}

/// One full cycle. The session is destroyed even when a middle step
/// failed, so errors do not leak sessions on the server.
async fn cycle(c: &mut Conn) -> Result<Timing, StepError> {
    let mut t = Instant::now();
    let session = c.create_session().await.map_err(|e| ("create", e))?;
    let create_us = micros_since(&mut t);
    c.start_events(session);
    let body = handle_steps(c, session, &mut t).await;
    let destroyed = c.destroy(session).await;
    let destroy_us = micros_since(&mut t);
    c.stop_events().await;
    let [attach_us, message_us, detach_us] = body?;
    destroyed.map_err(|e| ("destroy", e))?;
    Ok(Timing { done: t, steps_us: [create_us, attach_us, message_us, detach_us, destroy_us] })
}

async fn handle_steps(c: &mut Conn, session: u64, t: &mut Instant) -> Result<[u64; 3], StepError> {
    let handle = c.attach(session, ECHOTEST).await.map_err(|e| ("attach", e))?;
    let attach_us = micros_since(t);
    c.message(session, handle, json!({ "audio": true })).await.map_err(|e| ("message", e))?;
    let message_us = micros_since(t);
    c.detach(session, handle).await.map_err(|e| ("detach", e))?;
    Ok([attach_us, message_us, micros_since(t)])
}
