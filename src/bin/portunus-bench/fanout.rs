//! The `fanout` scenario: one WebRTC publisher to N receive-only WebRTC
//! subscribers through the VideoRoom plugin (an SFU), over the Janus
//! WebSocket API.
//!
//! Both ends use Portunus's own media facade (`portunus_actors::media`), so
//! every packet really traverses the server: the publisher's SRTP is
//! decrypted there, and re-encrypted once per subscriber. The publisher
//! sends synthetic VP8 RTP (one packet per frame, a keyframe every
//! `keyframe_every` packets or when a PLI arrives) at a fixed rate.
//! Subscribers never decode: their sink sees packets already decrypted by
//! the engine and only counts them, tracks sequence gaps (loss) and the
//! RFC 3550 interarrival jitter.
//!
//! Figures come from a measured window after every subscriber receives:
//! server CPU (utime+stime of `--server-pid`) per packet delivered to a
//! subscriber, the bench's own CPU per received packet (to show the client
//! was not the bottleneck), loss and jitter. A ramp adds subscribers step
//! by step to the same room and reports the largest count with loss below
//! `--max-loss`.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portunus_actors::api::SdpType;
use portunus_actors::media::{
    Feedback, IceSettings, MediaEngine, MediaKind, MediaPort, MediaSink, OfferSpec, OfferTrack, Peer, PeerEvent,
    RtpPacket,
};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::janus::{BenchError, Target, Transport, Want};
use crate::procstat::{check_pid, CpuSample, Proc, SystemCpu};
use crate::ws_client::WsJanus;

const VIDEOROOM: &str = "janus.plugin.videoroom";
/// VP8's RTP clock.
const CLOCK: f64 = 90_000.0;
/// How long to wait for a PeerConnection to connect (ICE + DTLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Keepalive period for every session (Janus times sessions out after 60 s).
const KEEPALIVE: Duration = Duration::from_secs(20);

pub struct FanoutOptions {
    pub url: String,
    pub apisecret: Option<String>,
    pub timeout: Duration,
    /// Subscriber counts to measure, increasing; one entry without a ramp.
    pub steps: Vec<usize>,
    /// Publisher packets per second.
    pub rate: f64,
    /// RTP payload bytes per packet.
    pub payload: usize,
    /// A keyframe every this many packets (0 = only on PLI).
    pub keyframe_every: u64,
    pub duration: Duration,
    /// Time between all subscribers receiving and the measured window.
    pub settle: Duration,
    pub server_pid: Option<u32>,
    /// Subscriber handles per WebSocket (one session per socket).
    pub per_socket: usize,
    /// Subscribers set up in parallel.
    pub concurrency: usize,
    /// Worker threads of the bench's media runtime.
    pub media_threads: usize,
    /// A ramp stops at the first step whose loss reaches this (percent).
    pub max_loss_pct: f64,
    pub room: Option<u64>,
    /// Address the bench's own ICE host candidates use.
    pub ice_ip: IpAddr,
}

/// Per-subscriber receive statistics, updated by the engine's track reader.
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

/// Counts what one subscriber receives; never decodes.
struct CountingSink {
    stats: Mutex<RxStats>,
    t0: std::time::Instant,
}

impl CountingSink {
    fn snapshot(&self) -> Snap {
        let s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        Snap { received: s.received, gap_lost: s.gap_lost, late: s.late, jitter_ms: s.jitter / CLOCK * 1000.0 }
    }
}

#[derive(Clone, Copy, Default)]
struct Snap {
    received: u64,
    gap_lost: u64,
    late: u64,
    jitter_ms: f64,
}

// `MediaSink` is declared with `async_trait`; this is its expansion,
// written out so the bench needs no extra dependency. The work is done
// synchronously, the returned future is already complete.
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
}

/// The publisher's sink: it receives nothing, but a PLI from the server
/// (a subscriber joined) makes the next packet a keyframe.
struct PliSink {
    want_keyframe: Arc<AtomicBool>,
    plis: Arc<AtomicU64>,
}

impl MediaSink for PliSink {
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
        if matches!(fb, Feedback::Pli | Feedback::Fir) {
            self.plis.fetch_add(1, Ordering::Relaxed);
            self.want_keyframe.store(true, Ordering::Relaxed);
        }
    }
}

/// Connection state of one PeerConnection, from its events.
#[derive(Default)]
struct PcState {
    connected: AtomicBool,
    failed: AtomicBool,
}

fn events_for(state: &Arc<PcState>) -> portunus_actors::media::EventFn {
    let state = state.clone();
    Arc::new(move |ev| match ev {
        PeerEvent::Connected => state.connected.store(true, Ordering::Relaxed),
        PeerEvent::Failed(_) => state.failed.store(true, Ordering::Relaxed),
        _ => {}
    })
}

async fn wait_connected(state: &PcState) -> Result<(), String> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        if state.connected.load(Ordering::Relaxed) {
            return Ok(());
        }
        if state.failed.load(Ordering::Relaxed) {
            return Err("PeerConnection failed".into());
        }
        if Instant::now() > deadline {
            return Err("PeerConnection did not connect in time".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Subscriber {
    peer: Peer,
    sink: Arc<CountingSink>,
}

/// One WebSocket carrying one session with up to `per_socket` subscribers.
struct Group {
    ws: Arc<WsJanus>,
    session: u64,
    keepalive: JoinHandle<()>,
}

fn plugin_data(msg: &Value) -> &Value {
    msg.get("plugindata").and_then(|p| p.get("data")).unwrap_or(&Value::Null)
}

fn jsep_sdp(msg: &Value, kind: &str) -> Result<String, String> {
    let jsep = msg.get("jsep").ok_or("reply without jsep")?;
    if jsep.get("type").and_then(Value::as_str) != Some(kind) {
        return Err(format!("expected a jsep {kind}, got {jsep}"));
    }
    jsep.get("sdp").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| "jsep without sdp".into())
}

async fn open_session(target: &Target) -> Result<Group, String> {
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

async fn attach(g: &Group) -> Result<u64, String> {
    let reply =
        g.ws.call(Some(g.session), None, "attach", Some(json!({ "plugin": VIDEOROOM })), Want::Success)
            .await
            .map_err(|e| format!("attach: {e}"))?;
    crate::janus::data_id(&reply).map_err(|e| e.to_string())
}

async fn message(g: &Group, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value, BenchError> {
    let mut extra = json!({ "body": body });
    if let Some(j) = jsep {
        extra["jsep"] = j;
    }
    g.ws.call(Some(g.session), Some(handle), "message", Some(extra), Want::PluginAnswer).await
}

/// The publisher's packet schedule: sends until `stop`, counting packets.
struct Publisher {
    peer: Peer,
    sent: Arc<AtomicU64>,
    plis: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
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

async fn start_publisher(
    engine: &MediaEngine,
    g: &Group,
    room: u64,
    opts: &FanoutOptions,
) -> Result<(Publisher, u64), String> {
    let handle = attach(g).await?;
    let port = MediaPort::default();
    let want_keyframe = Arc::new(AtomicBool::new(true));
    let plis = Arc::new(AtomicU64::new(0));
    port.set_sink(Arc::new(PliSink { want_keyframe: want_keyframe.clone(), plis: plis.clone() }));
    let state = Arc::new(PcState::default());
    let peer = Peer::create(engine, port.clone(), events_for(&state)).await.map_err(|e| format!("publisher: {e}"))?;
    let spec = OfferSpec {
        tracks: vec![OfferTrack { kind: MediaKind::Video, codec: "vp8".into(), mid: None, send_only: true }],
        data: false,
        ice_restart: false,
    };
    let offer = peer.offer(spec, false).await.map_err(|e| format!("publisher offer: {e}"))?;
    let body = json!({"request": "joinandconfigure", "room": room, "ptype": "publisher", "display": "fanout-bench"});
    let reply = message(g, handle, body, Some(json!({"type": "offer", "sdp": offer})))
        .await
        .map_err(|e| format!("publisher joinandconfigure: {e}"))?;
    let id = plugin_data(&reply).get("id").and_then(Value::as_u64).ok_or("joined without id")?;
    let answer = jsep_sdp(&reply, "answer")?;
    peer.set_remote(SdpType::Answer, answer).await.map_err(|e| format!("publisher answer: {e}"))?;
    wait_connected(&state).await.map_err(|e| format!("publisher: {e}"))?;
    let writer = port.writer("0").ok_or("publisher has no writer for mid 0")?;

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
        payload: vp8_payload(opts.payload, true).into(),
    };
    let delta = RtpPacket { payload: vp8_payload(opts.payload, false).into(), ..key.clone() };
    let period = Duration::from_secs_f64(1.0 / opts.rate);
    let every = opts.keyframe_every;
    let task = {
        let (sent, stop) = (sent.clone(), stop.clone());
        // On the media runtime, like any engine write.
        engine.runtime().spawn(async move {
            let start = Instant::now();
            let mut seq: u16 = rand_u16();
            let ts0 = rand_u16() as u32 * 65_537;
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let next = start + period.mul_f64(n as f64);
                tokio::time::sleep_until(next).await;
                let keyframe = want_keyframe.swap(false, Ordering::Relaxed) || (every > 0 && n.is_multiple_of(every));
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
    Ok((Publisher { peer, sent, plis, stop, task }, id))
}

fn rand_u16() -> u16 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}

async fn add_subscriber(engine: &MediaEngine, g: &Group, room: u64, feed: u64) -> Result<Subscriber, String> {
    let handle = attach(g).await?;
    let port = MediaPort::default();
    let sink = Arc::new(CountingSink { stats: Mutex::default(), t0: std::time::Instant::now() });
    port.set_sink(sink.clone());
    let state = Arc::new(PcState::default());
    let peer = Peer::create(engine, port, events_for(&state)).await.map_err(|e| format!("subscriber: {e}"))?;
    let result = async {
        let body = json!({"request": "join", "room": room, "ptype": "subscriber", "streams": [{"feed": feed}]});
        let reply = message(g, handle, body, None).await.map_err(|e| format!("subscriber join: {e}"))?;
        let offer = jsep_sdp(&reply, "offer")?;
        peer.set_remote(SdpType::Offer, offer).await.map_err(|e| format!("subscriber offer: {e}"))?;
        let answer = peer.answer(vec![], false, false).await.map_err(|e| format!("subscriber answer: {e}"))?;
        let body = json!({"request": "start", "room": room});
        message(g, handle, body, Some(json!({"type": "answer", "sdp": answer})))
            .await
            .map_err(|e| format!("subscriber start: {e}"))?;
        wait_connected(&state).await
    }
    .await;
    match result {
        Ok(()) => Ok(Subscriber { peer, sink }),
        Err(e) => {
            peer.close().await;
            Err(e)
        }
    }
}

/// The figures of one measured window with `subscribers` subscribers.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub subscribers: usize,
    pub window_s: f64,
    pub rate: f64,
    /// Packets the publisher sent in the window.
    pub sent: u64,
    /// Packets all subscribers received in the window (= forwarded).
    pub received: u64,
    /// Subscribers that received nothing in the window.
    pub silent: usize,
    pub gap_lost: u64,
    pub late: u64,
    /// Loss from sequence gaps, percent of expected packets.
    pub gap_loss_pct: f64,
    /// Shortfall against `sent * subscribers`, percent.
    pub shortfall_pct: f64,
    /// The larger of the two: what the ramp compares with `--max-loss`.
    pub loss_pct: f64,
    pub worst_sub_loss_pct: f64,
    pub jitter_mean_ms: f64,
    pub jitter_max_ms: f64,
    pub server_cpu_s: Option<f64>,
    pub client_cpu_s: f64,
    /// Busy share of every CPU in the window (user+system+irq+softirq).
    pub cpus: Vec<(String, f64, f64)>,
}

impl StepReport {
    fn per_packet_us(&self, cpu_s: f64) -> Option<f64> {
        (self.received > 0).then(|| cpu_s * 1e6 / self.received as f64)
    }

    pub fn server_us_per_packet(&self) -> Option<f64> {
        self.server_cpu_s.and_then(|c| self.per_packet_us(c))
    }

    pub fn client_us_per_packet(&self) -> Option<f64> {
        self.per_packet_us(self.client_cpu_s)
    }

    fn to_json(&self) -> Value {
        let pct = |cpu: f64| round(cpu / self.window_s * 100.0, 1);
        json!({
            "subscribers": self.subscribers,
            "window_s": round(self.window_s, 2),
            "rate_pps": self.rate,
            "sent": self.sent,
            "received": self.received,
            "forwarded_pps": round(self.received as f64 / self.window_s, 0),
            "silent_subscribers": self.silent,
            "gap_lost": self.gap_lost,
            "late": self.late,
            "gap_loss_pct": round(self.gap_loss_pct, 3),
            "shortfall_pct": round(self.shortfall_pct, 3),
            "loss_pct": round(self.loss_pct, 3),
            "worst_subscriber_loss_pct": round(self.worst_sub_loss_pct, 3),
            "jitter_ms": {"mean": round(self.jitter_mean_ms, 3), "worst": round(self.jitter_max_ms, 3)},
            "server": self.server_cpu_s.map(|c| json!({
                "cpu_s": round(c, 3),
                "cpu_pct_of_one_core": pct(c),
                "us_per_forwarded_packet": self.server_us_per_packet().map(|v| round(v, 2)),
            })),
            "client": {
                "cpu_s": round(self.client_cpu_s, 3),
                "cpu_pct_of_one_core": pct(self.client_cpu_s),
                "us_per_received_packet": self.client_us_per_packet().map(|v| round(v, 2)),
            },
            "cpus": self.cpus.iter().map(|(n, busy, soft)| json!({"cpu": n, "busy_pct": round(*busy, 1), "softirq_pct": round(*soft, 1)})).collect::<Vec<_>>(),
        })
    }

    fn describe(&self) -> String {
        let pct = |cpu: f64| cpu / self.window_s * 100.0;
        let mut s = format!(
            "N={:<5} sent {} pkts in {:.1} s, received {} ({:.0} pkts/s forwarded), loss {:.2}% (gaps {:.2}%, shortfall {:.2}%, worst subscriber {:.2}%), silent {}, late {}\n",
            self.subscribers,
            self.sent,
            self.window_s,
            self.received,
            self.received as f64 / self.window_s,
            self.loss_pct,
            self.gap_loss_pct,
            self.shortfall_pct,
            self.worst_sub_loss_pct,
            self.silent,
            self.late,
        );
        s.push_str(&format!(
            "        jitter mean {:.2} ms, worst subscriber {:.2} ms\n",
            self.jitter_mean_ms, self.jitter_max_ms
        ));
        match (self.server_cpu_s, self.server_us_per_packet()) {
            (Some(c), Some(us)) => s.push_str(&format!(
                "        server CPU {:.2} s ({:.0}% of one core), {:.2} us per forwarded packet\n",
                c,
                pct(c),
                us
            )),
            (Some(c), None) => s.push_str(&format!("        server CPU {:.2} s ({:.0}% of one core)\n", c, pct(c))),
            _ => s.push_str("        server CPU: not sampled (no --server-pid)\n"),
        }
        s.push_str(&format!(
            "        client CPU {:.2} s ({:.0}% of one core), {} us per received packet\n",
            self.client_cpu_s,
            pct(self.client_cpu_s),
            self.client_us_per_packet().map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
        ));
        let cpus: Vec<String> =
            self.cpus.iter().map(|(n, busy, soft)| format!("{n} {busy:.0}% (softirq {soft:.0}%)")).collect();
        s.push_str(&format!("        machine: {}", cpus.join(", ")));
        s
    }
}

pub struct FanoutReport {
    pub steps: Vec<StepReport>,
    pub max_loss_pct: f64,
    pub rate: f64,
    pub payload: usize,
    pub setup_errors: Vec<String>,
    pub plis: u64,
    pub ramp: bool,
}

impl FanoutReport {
    /// The largest measured N whose loss stayed below the threshold.
    pub fn largest_ok(&self) -> Option<usize> {
        self.steps.iter().filter(|s| s.loss_pct < self.max_loss_pct && s.silent == 0).map(|s| s.subscribers).max()
    }

    pub fn print(&self, as_json: bool) {
        if as_json {
            let v = json!({
                "scenario": "fanout",
                "rate_pps": self.rate,
                "payload_bytes": self.payload,
                "max_loss_pct": self.max_loss_pct,
                "ramp": self.ramp,
                "largest_n_below_max_loss": self.largest_ok(),
                "publisher_plis": self.plis,
                "setup_errors": self.setup_errors,
                "steps": self.steps.iter().map(StepReport::to_json).collect::<Vec<_>>(),
            });
            println!("{v}");
            return;
        }
        println!(
            "fanout: 1 VP8 publisher at {} pkts/s x {} bytes -> N receive-only subscribers (VideoRoom)",
            self.rate, self.payload
        );
        for s in &self.steps {
            println!("{}", s.describe());
        }
        match self.largest_ok() {
            Some(n) => println!("largest N with loss < {}%: {n}", self.max_loss_pct),
            None => println!("no step had loss < {}%", self.max_loss_pct),
        }
        println!("publisher PLIs received: {}", self.plis);
        if !self.setup_errors.is_empty() {
            println!("setup errors: {} (first: {})", self.setup_errors.len(), self.setup_errors[0]);
        }
    }
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

pub async fn run(opts: FanoutOptions) -> Result<FanoutReport, String> {
    if let Some(pid) = opts.server_pid {
        check_pid(pid).map_err(|e| format!("cannot read /proc/{pid}: {e}"))?;
    }
    let target = Target {
        transport: Transport::Ws,
        url: opts.url.clone(),
        apisecret: opts.apisecret.clone(),
        timeout: opts.timeout,
    };
    let settings = IceSettings {
        ips: vec![opts.ice_ip],
        // No `receiving:false` timers: the bench only counts.
        no_media_timer: 0,
        threads: opts.media_threads.max(1),
        ..IceSettings::default()
    };
    let engine = MediaEngine::start(settings, None).map_err(|e| format!("media engine: {e}"))?;

    // Control session: room and publisher.
    let control = open_session(&target).await?;
    let admin = attach(&control).await?;
    let room = opts.room.unwrap_or_else(|| 1_000_000 + (rand_u16() as u64) * 97);
    let create = json!({"request": "create", "room": room, "publishers": 1, "description": "portunus-bench fanout"});
    message(&control, admin, create, None).await.map_err(|e| format!("create room {room}: {e}"))?;
    eprintln!("fanout: room {room} created");

    let outcome = measure(&engine, &target, &control, room, &opts).await;

    // Cleanup whatever happened.
    let _ = message(&control, admin, json!({"request": "destroy", "room": room}), None).await;
    let _ = control.ws.call(Some(control.session), None, "destroy", None, Want::Success).await;
    control.keepalive.abort();
    outcome
}

async fn measure(
    engine: &MediaEngine,
    target: &Target,
    control: &Group,
    room: u64,
    opts: &FanoutOptions,
) -> Result<FanoutReport, String> {
    let (publisher, feed) = start_publisher(engine, control, room, opts).await?;
    eprintln!("fanout: publisher {feed} connected, sending {} pkts/s", opts.rate);

    let mut groups: Vec<Arc<Group>> = Vec::new();
    let mut subs: Vec<Subscriber> = Vec::new();
    let mut setup_errors: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    let semaphore = Arc::new(Semaphore::new(opts.concurrency.max(1)));

    for &n in &opts.steps {
        // Add subscribers up to n (earlier steps' subscribers stay).
        let setup = Instant::now();
        let want = n.saturating_sub(subs.len());
        let mut tasks = Vec::with_capacity(want);
        for i in subs.len()..n {
            let gi = i / opts.per_socket.max(1);
            while groups.len() <= gi {
                groups.push(Arc::new(open_session(target).await?));
            }
            let g = groups[gi].clone();
            let engine = engine.clone();
            let permit = semaphore.clone();
            tasks.push(tokio::spawn(async move {
                let _p = permit.acquire_owned().await;
                add_subscriber(&engine, &g, room, feed).await
            }));
        }
        for t in tasks {
            match t.await {
                Ok(Ok(s)) => subs.push(s),
                Ok(Err(e)) => setup_errors.push(e),
                Err(e) => setup_errors.push(format!("task: {e}")),
            }
        }
        eprintln!(
            "fanout: {} subscribers up in {:.1} s ({} setup errors so far)",
            subs.len(),
            setup.elapsed().as_secs_f64(),
            setup_errors.len()
        );
        if subs.len() < n {
            eprintln!("fanout: only {} of {n} subscribers could be set up; measuring those", subs.len());
        }
        // Wait until every subscriber receives, then settle.
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while subs.iter().any(|s| s.sink.snapshot().received == 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(opts.settle).await;

        let step = window(&subs, &publisher, opts).await;
        eprintln!(
            "fanout: N={} loss {:.2}% server {} us/pkt client {} us/pkt",
            step.subscribers,
            step.loss_pct,
            step.server_us_per_packet().map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
            step.client_us_per_packet().map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
        );
        let stop = step.loss_pct >= opts.max_loss_pct || subs.len() < n;
        steps.push(step);
        if stop {
            break;
        }
    }

    // Teardown: stop sending, close every PeerConnection, destroy sessions.
    publisher.stop.store(true, Ordering::Relaxed);
    let _ = publisher.task.await;
    let plis = publisher.plis.load(Ordering::Relaxed);
    publisher.peer.close().await;
    futures_util::future::join_all(subs.iter().map(|s| s.peer.close())).await;
    for g in &groups {
        let _ = g.ws.call(Some(g.session), None, "destroy", None, Want::Success).await;
        g.keepalive.abort();
    }
    Ok(FanoutReport {
        steps,
        max_loss_pct: opts.max_loss_pct,
        rate: opts.rate,
        payload: opts.payload,
        setup_errors,
        plis,
        ramp: opts.steps.len() > 1,
    })
}

async fn window(subs: &[Subscriber], publisher: &Publisher, opts: &FanoutOptions) -> StepReport {
    let server = opts.server_pid.and_then(|pid| CpuSample::take(Proc::Pid(pid)).ok());
    let client = CpuSample::take(Proc::This).ok();
    let sys = SystemCpu::take().ok();
    let sent0 = publisher.sent.load(Ordering::Relaxed);
    let before: Vec<Snap> = subs.iter().map(|s| s.sink.snapshot()).collect();
    let t0 = Instant::now();
    tokio::time::sleep(opts.duration).await;
    let window_s = t0.elapsed().as_secs_f64();
    let after: Vec<Snap> = subs.iter().map(|s| s.sink.snapshot()).collect();
    let sent = publisher.sent.load(Ordering::Relaxed) - sent0;
    let server_cpu_s = match (opts.server_pid, server) {
        (Some(pid), Some(a)) => CpuSample::take(Proc::Pid(pid)).ok().map(|b| a.secs_until(b)),
        _ => None,
    };
    let client_cpu_s = match (client, CpuSample::take(Proc::This).ok()) {
        (Some(a), Some(b)) => a.secs_until(b),
        _ => 0.0,
    };
    let cpus = match (sys, SystemCpu::take().ok()) {
        (Some(a), Some(b)) => a.shares_until(&b).into_iter().map(|c| (c.cpu, c.busy_pct, c.softirq_pct)).collect(),
        _ => Vec::new(),
    };

    let mut received = 0u64;
    let mut gap_lost = 0u64;
    let mut late = 0u64;
    let mut silent = 0usize;
    let mut worst = 0f64;
    let mut jitters = Vec::with_capacity(subs.len());
    for (a, b) in before.iter().zip(&after) {
        let r = b.received - a.received;
        let g = b.gap_lost.saturating_sub(a.gap_lost);
        received += r;
        gap_lost += g;
        late += b.late - a.late;
        if r == 0 {
            silent += 1;
        }
        let expected = (r + g).max(sent);
        let loss = if expected > 0 { expected.saturating_sub(r) as f64 * 100.0 / expected as f64 } else { 0.0 };
        worst = worst.max(loss);
        jitters.push(b.jitter_ms);
    }
    let n = subs.len();
    let gap_loss_pct =
        if received + gap_lost > 0 { gap_lost as f64 * 100.0 / (received + gap_lost) as f64 } else { 0.0 };
    let expected = sent * n as u64;
    let shortfall_pct =
        if expected > 0 { expected.saturating_sub(received) as f64 * 100.0 / expected as f64 } else { 0.0 };
    let jitter_mean_ms = if jitters.is_empty() { 0.0 } else { jitters.iter().sum::<f64>() / jitters.len() as f64 };
    let jitter_max_ms = jitters.iter().copied().fold(0.0, f64::max);
    StepReport {
        subscribers: n,
        window_s,
        rate: opts.rate,
        sent,
        received,
        silent,
        gap_lost,
        late,
        gap_loss_pct,
        shortfall_pct,
        loss_pct: gap_loss_pct.max(shortfall_pct),
        worst_sub_loss_pct: worst,
        jitter_mean_ms,
        jitter_max_ms,
        server_cpu_s,
        client_cpu_s,
        cpus,
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
}
