//! What the media scenarios (`fanout`, `echo`) share: the bench's WebRTC
//! peers built on Portunus's own media facade (`portunus_actors::media`),
//! the synthetic VP8 RTP sender, the packet-counting sink (loss by sequence
//! gaps, RFC 3550 jitter), the Janus sessions they run in (one WebSocket
//! and one session per group of handles, kept alive), and the measured
//! window's CPU sampling and loss tally, the options both take and the
//! pieces of their ramp loop and reports.
//!
//! Nothing here decodes media: sinks see packets already decrypted by the
//! engine and only count them, so the bench stays cheap per packet.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portunus_actors::media::{
    EventFn, Feedback, IceSettings, MediaEngine, MediaKind, MediaPort, MediaSink, PeerEvent, RtpPacket, RtpWriter,
};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::janus::{BenchError, RoutedTransport, Target, Transport, Want};
use crate::procstat::{check_pid, CpuSample, Proc, SystemCpu};
use crate::report::round;
use crate::ws_client::WsJanus;

/// VP8's RTP clock.
pub const CLOCK: f64 = 90_000.0;
/// How long to wait for a PeerConnection to connect (ICE + DTLS), and for
/// every receiver's first packet.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Keepalive period for every session (Janus times sessions out after 60 s).
const KEEPALIVE: Duration = Duration::from_secs(20);

/// What a media scenario's run takes from the command line.
pub struct MediaOptions {
    pub url: String,
    pub apisecret: Option<String>,
    pub timeout: Duration,
    /// Receiver counts to measure, increasing; one entry without a ramp.
    pub steps: Vec<usize>,
    /// What every sender sends.
    pub send: SendSpec,
    pub duration: Duration,
    /// Time between every receiver receiving and the measured window.
    pub settle: Duration,
    pub server_pid: Option<u32>,
    /// Handles per WebSocket (one Janus session per socket).
    pub per_socket: usize,
    /// Peers set up in parallel.
    pub concurrency: usize,
    /// Worker threads of the bench's media runtime.
    pub media_threads: usize,
    /// A ramp stops at the first step whose loss reaches this (percent).
    pub max_loss_pct: f64,
    /// Address the bench's own ICE host candidates use.
    pub ice_ip: IpAddr,
}

impl MediaOptions {
    /// The start of a run: checks that `--server-pid` can be read, then
    /// starts the bench's media engine. Returns the WebSocket target too.
    pub fn start(&self) -> Result<(Target, MediaEngine), String> {
        if let Some(pid) = self.server_pid {
            check_pid(pid).map_err(|e| format!("cannot read /proc/{pid}: {e}"))?;
        }
        let target = Target {
            transport: Transport::Ws,
            url: self.url.clone(),
            apisecret: self.apisecret.clone(),
            timeout: self.timeout,
            broker: None,
        };
        let settings = IceSettings {
            ips: vec![self.ice_ip],
            // No `receiving:false` timers: the bench only counts.
            no_media_timer: 0,
            threads: self.media_threads.max(1),
            ..IceSettings::default()
        };
        let engine = MediaEngine::start(settings, None).map_err(|e| format!("media engine: {e}"))?;
        Ok((target, engine))
    }
}

/// Per-receiver statistics, updated by the engine's track reader.
#[derive(Default)]
struct RxStats {
    received: u64,
    /// Packets at or below the highest sequence seen (retransmissions,
    /// duplicates, reordering).
    late: u64,
    /// Sequence numbers skipped by in-order arrivals, minus late fills.
    gap_lost: u64,
    highest: Option<u64>,
    last_seq: u16,
    /// Arrival time and RTP timestamp of the highest packet, for jitter.
    last_arrival: f64,
    last_ts: u32,
    /// RFC 3550 interarrival jitter, in RTP clock units.
    jitter: f64,
}

impl RxStats {
    fn on_packet(&mut self, seq: u16, ts: u32, arrival_s: f64) {
        self.received += 1;
        let Some(highest) = self.highest else {
            self.highest = Some(seq as u64);
            self.last_seq = seq;
            self.last_arrival = arrival_s;
            self.last_ts = ts;
            return;
        };
        let delta = seq.wrapping_sub(self.last_seq) as i16 as i64;
        if delta > 0 {
            self.gap_lost += (delta - 1) as u64;
            self.highest = Some(highest + delta as u64);
            self.last_seq = seq;
            // D(i-1,i) = (Rj - Ri) - (Sj - Si), in clock units.
            let d = (arrival_s - self.last_arrival) * CLOCK - ts.wrapping_sub(self.last_ts) as i32 as f64;
            self.jitter += (d.abs() - self.jitter) / 16.0;
            self.last_arrival = arrival_s;
            self.last_ts = ts;
        } else {
            self.late += 1;
            self.gap_lost = self.gap_lost.saturating_sub(1);
        }
    }
}

/// A sender's keyframe trigger: a PLI or FIR from the server makes the
/// next packet a keyframe. Also usable as the sink of a send-only peer.
pub struct KeyframeRequests {
    want: AtomicBool,
    plis: AtomicU64,
}

impl KeyframeRequests {
    /// The first packet is a keyframe.
    pub fn new() -> Arc<KeyframeRequests> {
        Arc::new(KeyframeRequests { want: AtomicBool::new(true), plis: AtomicU64::new(0) })
    }

    /// PLIs and FIRs received so far.
    pub fn plis(&self) -> u64 {
        self.plis.load(Ordering::Relaxed)
    }

    fn on_feedback(&self, fb: Feedback) {
        if matches!(fb, Feedback::Pli | Feedback::Fir) {
            self.plis.fetch_add(1, Ordering::Relaxed);
            self.want.store(true, Ordering::Relaxed);
        }
    }
}

// `MediaSink` is declared with `async_trait`; these are its expansion,
// written out so the bench needs no extra dependency. The work is done
// synchronously, the returned futures are already complete.
impl MediaSink for KeyframeRequests {
    fn rtp<'a, 'b, 'c, 'async_trait>(
        &'a self,
        _port: &'b MediaPort,
        _mid: &'c str,
        _kind: MediaKind,
        _pkt: RtpPacket,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'async_trait>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(()))
    }

    fn feedback(&self, _port: &MediaPort, _mid: &str, fb: Feedback) {
        self.on_feedback(fb);
    }
}

/// Counts what one peer receives; never decodes. With `keyframes`, it also
/// passes the server's PLIs on to that peer's sender (echo peers both send
/// and receive).
pub struct CountingSink {
    stats: Mutex<RxStats>,
    t0: std::time::Instant,
    keyframes: Option<Arc<KeyframeRequests>>,
}

impl CountingSink {
    pub fn new(keyframes: Option<Arc<KeyframeRequests>>) -> Arc<CountingSink> {
        Arc::new(CountingSink { stats: Mutex::default(), t0: std::time::Instant::now(), keyframes })
    }

    pub fn snapshot(&self) -> Snap {
        let s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        Snap { received: s.received, gap_lost: s.gap_lost, late: s.late, jitter_ms: s.jitter / CLOCK * 1000.0 }
    }
}

impl MediaSink for CountingSink {
    fn rtp<'a, 'b, 'c, 'async_trait>(
        &'a self,
        _port: &'b MediaPort,
        _mid: &'c str,
        _kind: MediaKind,
        pkt: RtpPacket,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'async_trait>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        Self: 'async_trait,
    {
        let arrival = self.t0.elapsed().as_secs_f64();
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).on_packet(pkt.sequence_number, pkt.timestamp, arrival);
        Box::pin(std::future::ready(()))
    }

    fn feedback(&self, _port: &MediaPort, _mid: &str, fb: Feedback) {
        if let Some(k) = &self.keyframes {
            k.on_feedback(fb);
        }
    }
}

/// A receiver's counters at one instant.
#[derive(Clone, Copy, Default)]
pub struct Snap {
    pub received: u64,
    pub gap_lost: u64,
    pub late: u64,
    pub jitter_ms: f64,
}

/// Connection state of one PeerConnection, from its events.
#[derive(Default)]
pub struct PcState {
    connected: AtomicBool,
    failed: AtomicBool,
}

impl PcState {
    /// The event callback for `Peer::create` that keeps this state.
    pub fn events(self: &Arc<Self>) -> EventFn {
        let state = self.clone();
        Arc::new(move |ev| match ev {
            PeerEvent::Connected => state.connected.store(true, Ordering::Relaxed),
            PeerEvent::Failed(_) => state.failed.store(true, Ordering::Relaxed),
            _ => {}
        })
    }

    pub async fn wait_connected(&self) -> Result<(), String> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if self.connected.load(Ordering::Relaxed) {
                return Ok(());
            }
            if self.failed.load(Ordering::Relaxed) {
                return Err("PeerConnection failed".into());
            }
            if Instant::now() > deadline {
                return Err("PeerConnection did not connect in time".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One WebSocket carrying one Janus session, with any number of handles,
/// kept alive until [`Group::close`].
pub struct Group {
    pub ws: Arc<WsJanus>,
    pub session: u64,
    keepalive: JoinHandle<()>,
}

impl Group {
    pub async fn open(target: &Target) -> Result<Group, String> {
        let ws = Arc::new(WsJanus::connect(target).await.map_err(|e| format!("connect: {e}"))?);
        let reply = ws.call(None, None, "create", None, Want::Success).await.map_err(|e| format!("create: {e}"))?;
        let session = crate::janus::data_id(&reply).map_err(|e| e.to_string())?;
        let keepalive = {
            let ws = ws.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(KEEPALIVE).await;
                    if let Err(BenchError::Closed) =
                        ws.call(Some(session), None, "keepalive", None, Want::AckOrSuccess).await
                    {
                        return;
                    }
                }
            })
        };
        Ok(Group { ws, session, keepalive })
    }

    pub async fn attach(&self, plugin: &str) -> Result<u64, String> {
        let reply = self
            .ws
            .call(Some(self.session), None, "attach", Some(json!({ "plugin": plugin })), Want::Success)
            .await
            .map_err(|e| format!("attach: {e}"))?;
        crate::janus::data_id(&reply).map_err(|e| e.to_string())
    }

    /// A plugin message; returns the plugin's answer (event or success).
    pub async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value, BenchError> {
        let mut extra = json!({ "body": body });
        if let Some(j) = jsep {
            extra["jsep"] = j;
        }
        self.ws.call(Some(self.session), Some(handle), "message", Some(extra), Want::PluginAnswer).await
    }

    /// Destroys the session (best effort) and stops its keepalives.
    pub async fn close(&self) {
        let _ = self.ws.call(Some(self.session), None, "destroy", None, Want::Success).await;
        self.keepalive.abort();
    }
}

pub fn plugin_data(msg: &Value) -> &Value {
    msg.get("plugindata").and_then(|p| p.get("data")).unwrap_or(&Value::Null)
}

/// The SDP of the reply's `jsep`, which must be of type `kind`.
pub fn jsep_sdp(msg: &Value, kind: &str) -> Result<String, String> {
    let jsep = msg.get("jsep").ok_or("reply without jsep")?;
    if jsep.get("type").and_then(Value::as_str) != Some(kind) {
        return Err(format!("expected a jsep {kind}, got {jsep}"));
    }
    jsep.get("sdp").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| "jsep without sdp".into())
}

/// What a synthetic VP8 sender sends.
#[derive(Clone, Copy, Debug)]
pub struct SendSpec {
    /// Packets per second (one VP8 frame per packet).
    pub rate: f64,
    /// RTP payload bytes per packet.
    pub payload: usize,
    /// A keyframe every this many packets (0 = only on PLI).
    pub keyframe_every: u64,
}

/// A task sending synthetic VP8 RTP at a fixed rate until stopped.
pub struct Vp8Sender {
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Vp8Sender {
    /// Starts sending on `writer` (on the media runtime, like any engine
    /// write); `keyframes` turns the next packet into a keyframe.
    pub fn start(
        engine: &MediaEngine,
        writer: RtpWriter,
        spec: SendSpec,
        keyframes: Arc<KeyframeRequests>,
    ) -> Vp8Sender {
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let key = RtpPacket {
            marker: true,
            payload_type: writer.payload_type(),
            sequence_number: 0,
            timestamp: 0,
            ssrc: writer.ssrc(),
            extensions: Vec::new(),
            rid: None,
            payload: vp8_payload(spec.payload, true).into(),
        };
        let delta = RtpPacket { payload: vp8_payload(spec.payload, false).into(), ..key.clone() };
        let period = Duration::from_secs_f64(1.0 / spec.rate);
        let every = spec.keyframe_every;
        let task = {
            let (sent, stop) = (sent.clone(), stop.clone());
            engine.runtime().spawn(async move {
                let start = Instant::now();
                let mut seq: u16 = rand_u16();
                let ts0 = rand_u16() as u32 * 65_537;
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let next = start + period.mul_f64(n as f64);
                    tokio::time::sleep_until(next).await;
                    let keyframe =
                        keyframes.want.swap(false, Ordering::Relaxed) || (every > 0 && n.is_multiple_of(every));
                    let mut pkt = if keyframe { key.clone() } else { delta.clone() };
                    pkt.sequence_number = seq;
                    // The real send time, so jitter measures the path, not
                    // this task's scheduling.
                    pkt.timestamp = ts0.wrapping_add((start.elapsed().as_secs_f64() * CLOCK) as u32);
                    if writer.write(pkt).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    seq = seq.wrapping_add(1);
                    n += 1;
                }
            })
        };
        Vp8Sender { sent, stop, task }
    }

    /// Packets written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops after the current packet and waits for the task.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// A plausible VP8 RTP payload: payload descriptor (S=1, PID 0), then the
/// VP8 payload header (P=0 and a start code with 640x480 for a keyframe),
/// padded with a pattern to `size` bytes.
fn vp8_payload(size: usize, keyframe: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(size.max(16));
    p.push(0x10);
    if keyframe {
        p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    } else {
        p.extend_from_slice(&[0x11, 0x02, 0x00]);
    }
    let mut x = 0x5au8;
    while p.len() < size.max(16) {
        x = x.wrapping_mul(31).wrapping_add(7);
        p.push(x);
    }
    p
}

/// A cheap non-cryptographic random number (sequence and timestamp
/// starts, room ids).
pub fn rand_u16() -> u16 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}

/// CPU readings at the start of a measured window.
pub struct CpuWindow {
    server_pid: Option<u32>,
    server: Option<CpuSample>,
    client: Option<CpuSample>,
    sys: Option<SystemCpu>,
    t0: Instant,
}

/// CPU used during a measured window.
pub struct WindowCpu {
    pub window_s: f64,
    /// utime+stime of the server process, if a pid was given.
    pub server_cpu_s: Option<f64>,
    /// This process (the bench).
    pub client_cpu_s: f64,
    /// Busy and softirq share of every CPU: (name, busy %, softirq %).
    pub cpus: Vec<(String, f64, f64)>,
}

impl CpuWindow {
    pub fn start(server_pid: Option<u32>) -> CpuWindow {
        CpuWindow {
            server_pid,
            server: server_pid.and_then(|pid| CpuSample::take(Proc::Pid(pid)).ok()),
            client: CpuSample::take(Proc::This).ok(),
            sys: SystemCpu::take().ok(),
            t0: Instant::now(),
        }
    }

    pub fn finish(self) -> WindowCpu {
        let window_s = self.t0.elapsed().as_secs_f64();
        let server_cpu_s = match (self.server_pid, self.server) {
            (Some(pid), Some(a)) => CpuSample::take(Proc::Pid(pid)).ok().map(|b| a.secs_until(b)),
            _ => None,
        };
        let client_cpu_s = match (self.client, CpuSample::take(Proc::This).ok()) {
            (Some(a), Some(b)) => a.secs_until(b),
            _ => 0.0,
        };
        let cpus = match (self.sys, SystemCpu::take().ok()) {
            (Some(a), Some(b)) => a.shares_until(&b).into_iter().map(|c| (c.cpu, c.busy_pct, c.softirq_pct)).collect(),
            _ => Vec::new(),
        };
        WindowCpu { window_s, server_cpu_s, client_cpu_s, cpus }
    }
}

/// Loss and jitter over all receivers of one window.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub received: u64,
    /// Receivers that got nothing in the window.
    pub silent: usize,
    pub gap_lost: u64,
    pub late: u64,
    /// Loss from sequence gaps, percent of expected packets.
    pub gap_loss_pct: f64,
    /// Shortfall against what was sent towards every receiver, percent.
    pub shortfall_pct: f64,
    /// The larger of the two.
    pub loss_pct: f64,
    pub worst_loss_pct: f64,
    pub jitter_mean_ms: f64,
    pub jitter_max_ms: f64,
}

impl Tally {
    /// From each receiver's counters at the window's start and end, and the
    /// packets sent towards it in the window. Packets still in flight at
    /// the end count as lost, so a short window overstates loss slightly.
    pub fn of(receivers: impl IntoIterator<Item = (Snap, Snap, u64)>) -> Tally {
        let mut t = Tally::default();
        let mut expected_all = 0u64;
        let mut jitters = Vec::new();
        for (a, b, sent) in receivers {
            let r = b.received - a.received;
            let g = b.gap_lost.saturating_sub(a.gap_lost);
            t.received += r;
            t.gap_lost += g;
            t.late += b.late - a.late;
            if r == 0 {
                t.silent += 1;
            }
            let expected = (r + g).max(sent);
            let loss = if expected > 0 { expected.saturating_sub(r) as f64 * 100.0 / expected as f64 } else { 0.0 };
            t.worst_loss_pct = t.worst_loss_pct.max(loss);
            expected_all += sent;
            jitters.push(b.jitter_ms);
        }
        t.gap_loss_pct = if t.received + t.gap_lost > 0 {
            t.gap_lost as f64 * 100.0 / (t.received + t.gap_lost) as f64
        } else {
            0.0
        };
        t.shortfall_pct = if expected_all > 0 {
            expected_all.saturating_sub(t.received) as f64 * 100.0 / expected_all as f64
        } else {
            0.0
        };
        t.loss_pct = t.gap_loss_pct.max(t.shortfall_pct);
        t.jitter_mean_ms = if jitters.is_empty() { 0.0 } else { jitters.iter().sum::<f64>() / jitters.len() as f64 };
        t.jitter_max_ms = jitters.iter().copied().fold(0.0, f64::max);
        t
    }
}

/// Collects the peers that setup tasks produced, and the errors of those
/// that failed.
pub async fn join_setups<P>(
    tasks: Vec<JoinHandle<Result<P, String>>>,
    peers: &mut Vec<P>,
    setup_errors: &mut Vec<String>,
) {
    for t in tasks {
        match t.await {
            Ok(Ok(p)) => peers.push(p),
            Ok(Err(e)) => setup_errors.push(e),
            Err(e) => setup_errors.push(format!("task: {e}")),
        }
    }
}

/// Waits until every sink has received something (or
/// [`CONNECT_TIMEOUT`]), then for `settle`.
pub async fn settle<'a>(sinks: impl Iterator<Item = &'a CountingSink> + Clone, settle: Duration) {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while sinks.clone().any(|s| s.snapshot().received == 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(settle).await;
}

/// The progress line after a ramp step's setup, on stderr.
pub fn log_setup(scenario: &str, up: usize, what: &str, setup: Instant, setup_errors: usize) {
    eprintln!(
        "{scenario}: {up} {what} up in {:.1} s ({setup_errors} setup errors so far)",
        setup.elapsed().as_secs_f64()
    );
}

/// The figures of one measured window with `n` receivers.
pub struct StepWindow {
    pub n: usize,
    /// Packets sent in the window (by the publisher, or by all sessions).
    pub sent: u64,
    pub tally: Tally,
    pub cpu: WindowCpu,
}

impl StepWindow {
    /// CPU microseconds per packet received by the bench.
    fn per_packet_us(&self, cpu_s: f64) -> Option<f64> {
        (self.tally.received > 0).then(|| cpu_s * 1e6 / self.tally.received as f64)
    }

    pub fn server_us_per_packet(&self) -> Option<f64> {
        self.cpu.server_cpu_s.and_then(|c| self.per_packet_us(c))
    }

    pub fn client_us_per_packet(&self) -> Option<f64> {
        self.per_packet_us(self.cpu.client_cpu_s)
    }

    /// `cpu_s` as a percentage of one core over the window.
    pub fn pct(&self, cpu_s: f64) -> f64 {
        cpu_s / self.cpu.window_s * 100.0
    }

    /// The progress line after a measured window, on stderr.
    pub fn log(&self, scenario: &str) {
        let us = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        eprintln!(
            "{scenario}: N={} loss {:.2}% server {} us/pkt client {} us/pkt",
            self.n,
            self.tally.loss_pct,
            us(self.server_us_per_packet()),
            us(self.client_us_per_packet()),
        );
    }

    /// Every CPU's busy and softirq share, for `--json`.
    pub fn cpus_json(&self) -> Value {
        let cpus = self.cpu.cpus.iter();
        cpus.map(|(n, busy, soft)| json!({"cpu": n, "busy_pct": round(*busy, 1), "softirq_pct": round(*soft, 1)}))
            .collect()
    }

    /// Every CPU's busy and softirq share, for the text report.
    pub fn cpus_text(&self) -> String {
        let cpus: Vec<String> =
            self.cpu.cpus.iter().map(|(n, busy, soft)| format!("{n} {busy:.0}% (softirq {soft:.0}%)")).collect();
        cpus.join(", ")
    }
}

/// The largest measured N whose loss stayed below `max_loss_pct` with
/// no silent receiver.
pub fn largest_ok<'a>(steps: impl Iterator<Item = &'a StepWindow>, max_loss_pct: f64) -> Option<usize> {
    steps.filter(|s| s.tally.loss_pct < max_loss_pct && s.tally.silent == 0).map(|s| s.n).max()
}

/// The report lines after the steps: the ramp's outcome and, between
/// the two, the scenario's PLI count.
pub fn print_outcome(largest: Option<usize>, max_loss_pct: f64, plis: &str, setup_errors: &[String]) {
    match largest {
        Some(n) => println!("largest N with loss < {max_loss_pct}%: {n}"),
        None => println!("no step had loss < {max_loss_pct}%"),
    }
    println!("{plis}");
    if let Some(first) = setup_errors.first() {
        println!("setup errors: {} (first: {first})", setup_errors.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_stats_counts_gaps_wraps_and_late() {
        let mut s = RxStats::default();
        for (i, seq) in [65534u16, 65535, 0, 2, 3].iter().enumerate() {
            s.on_packet(*seq, i as u32 * 1800, i as f64 * 0.02);
        }
        assert_eq!(s.received, 5);
        assert_eq!(s.gap_lost, 1);
        assert_eq!(s.highest, Some(65534 + 5));
        // Perfectly paced: no jitter.
        assert!(s.jitter.abs() < 1e-6);
        s.on_packet(1, 3 * 1800, 0.1);
        assert_eq!((s.late, s.gap_lost), (1, 0));
    }

    #[test]
    fn rx_stats_jitter_grows_with_irregular_arrival() {
        let mut s = RxStats::default();
        for i in 0..100u32 {
            let wobble = if i % 2 == 0 { 0.005 } else { 0.0 };
            s.on_packet(i as u16, i * 1800, i as f64 * 0.02 + wobble);
        }
        // |D| alternates around 5 ms = 450 clock units.
        assert!(s.jitter > 300.0 && s.jitter < 460.0, "jitter {}", s.jitter);
    }

    #[test]
    fn vp8_payloads_look_like_vp8() {
        let k = vp8_payload(1000, true);
        assert_eq!(k.len(), 1000);
        assert_eq!(k[0], 0x10);
        assert_eq!(k[1] & 1, 0);
        assert_eq!(&k[4..7], &[0x9d, 0x01, 0x2a]);
        let d = vp8_payload(1000, false);
        assert_eq!(d[1] & 1, 1);
    }

    #[test]
    fn tally_sums_receivers_and_keeps_the_worst() {
        let snap = |received, gap_lost| Snap { received, gap_lost, late: 0, jitter_ms: 1.0 };
        let t = Tally::of([
            (snap(0, 0), snap(100, 0), 100),
            (snap(10, 0), snap(100, 10), 100),
            (snap(5, 0), snap(5, 0), 100),
        ]);
        assert_eq!((t.received, t.gap_lost, t.silent), (190, 10, 1));
        assert!((t.shortfall_pct - 110.0 / 3.0).abs() < 1e-9);
        assert!((t.worst_loss_pct - 100.0).abs() < 1e-9);
        assert_eq!(t.loss_pct, t.shortfall_pct);
        assert!(Tally::of([]).loss_pct == 0.0);
    }
}
