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

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portunus_actors::api::SdpType;
use portunus_actors::media::{IceSettings, MediaEngine, MediaKind, MediaPort, OfferSpec, OfferTrack, Peer};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::janus::{Target, Transport};
use crate::media_peer::{
    jsep_sdp, plugin_data, rand_u16, CountingSink, CpuWindow, Group, KeyframeRequests, PcState, SendSpec, Snap, Tally,
    Vp8Sender, CONNECT_TIMEOUT,
};
use crate::procstat::check_pid;

const VIDEOROOM: &str = "janus.plugin.videoroom";

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

struct Subscriber {
    peer: Peer,
    sink: Arc<CountingSink>,
}

/// The publisher: its PeerConnection, its sender and the PLIs it got.
struct Publisher {
    peer: Peer,
    sender: Vp8Sender,
    keyframes: Arc<KeyframeRequests>,
}

async fn start_publisher(
    engine: &MediaEngine,
    g: &Group,
    room: u64,
    opts: &FanoutOptions,
) -> Result<(Publisher, u64), String> {
    let handle = g.attach(VIDEOROOM).await?;
    let port = MediaPort::default();
    let keyframes = KeyframeRequests::new();
    port.set_sink(keyframes.clone());
    let state = Arc::new(PcState::default());
    let peer = Peer::create(engine, port.clone(), state.events()).await.map_err(|e| format!("publisher: {e}"))?;
    let spec = OfferSpec {
        tracks: vec![OfferTrack { kind: MediaKind::Video, codec: "vp8".into(), mid: None, send_only: true }],
        data: false,
        ice_restart: false,
    };
    let offer = peer.offer(spec, false).await.map_err(|e| format!("publisher offer: {e}"))?;
    let body = json!({"request": "joinandconfigure", "room": room, "ptype": "publisher", "display": "fanout-bench"});
    let reply = g
        .message(handle, body, Some(json!({"type": "offer", "sdp": offer})))
        .await
        .map_err(|e| format!("publisher joinandconfigure: {e}"))?;
    let id = plugin_data(&reply).get("id").and_then(Value::as_u64).ok_or("joined without id")?;
    let answer = jsep_sdp(&reply, "answer")?;
    peer.set_remote(SdpType::Answer, answer).await.map_err(|e| format!("publisher answer: {e}"))?;
    state.wait_connected().await.map_err(|e| format!("publisher: {e}"))?;
    let writer = port.writer("0").ok_or("publisher has no writer for mid 0")?;
    let spec = SendSpec { rate: opts.rate, payload: opts.payload, keyframe_every: opts.keyframe_every };
    let sender = Vp8Sender::start(engine, writer, spec, keyframes.clone());
    Ok((Publisher { peer, sender, keyframes }, id))
}

async fn add_subscriber(engine: &MediaEngine, g: &Group, room: u64, feed: u64) -> Result<Subscriber, String> {
    let handle = g.attach(VIDEOROOM).await?;
    let port = MediaPort::default();
    let sink = CountingSink::new(None);
    port.set_sink(sink.clone());
    let state = Arc::new(PcState::default());
    let peer = Peer::create(engine, port, state.events()).await.map_err(|e| format!("subscriber: {e}"))?;
    let result = async {
        let body = json!({"request": "join", "room": room, "ptype": "subscriber", "streams": [{"feed": feed}]});
        let reply = g.message(handle, body, None).await.map_err(|e| format!("subscriber join: {e}"))?;
        let offer = jsep_sdp(&reply, "offer")?;
        peer.set_remote(SdpType::Offer, offer).await.map_err(|e| format!("subscriber offer: {e}"))?;
        let answer = peer.answer(vec![], false, false).await.map_err(|e| format!("subscriber answer: {e}"))?;
        let body = json!({"request": "start", "room": room});
        g.message(handle, body, Some(json!({"type": "answer", "sdp": answer})))
            .await
            .map_err(|e| format!("subscriber start: {e}"))?;
        state.wait_connected().await
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
        broker: None,
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
    let control = Group::open(&target).await?;
    let admin = control.attach(VIDEOROOM).await?;
    let room = opts.room.unwrap_or_else(|| 1_000_000 + (rand_u16() as u64) * 97);
    let create = json!({"request": "create", "room": room, "publishers": 1, "description": "portunus-bench fanout"});
    control.message(admin, create, None).await.map_err(|e| format!("create room {room}: {e}"))?;
    eprintln!("fanout: room {room} created");

    let outcome = measure(&engine, &target, &control, room, &opts).await;

    // Cleanup whatever happened.
    let _ = control.message(admin, json!({"request": "destroy", "room": room}), None).await;
    control.close().await;
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
                groups.push(Arc::new(Group::open(target).await?));
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
    publisher.sender.stop().await;
    let plis = publisher.keyframes.plis();
    publisher.peer.close().await;
    futures_util::future::join_all(subs.iter().map(|s| s.peer.close())).await;
    for g in &groups {
        g.close().await;
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
    let cpu = CpuWindow::start(opts.server_pid);
    let sent0 = publisher.sender.sent();
    let before: Vec<Snap> = subs.iter().map(|s| s.sink.snapshot()).collect();
    tokio::time::sleep(opts.duration).await;
    let after: Vec<Snap> = subs.iter().map(|s| s.sink.snapshot()).collect();
    let sent = publisher.sender.sent() - sent0;
    let cpu = cpu.finish();
    // Every subscriber should have received everything the publisher sent.
    let t = Tally::of(before.into_iter().zip(after).map(|(a, b)| (a, b, sent)));
    StepReport {
        subscribers: subs.len(),
        window_s: cpu.window_s,
        rate: opts.rate,
        sent,
        received: t.received,
        silent: t.silent,
        gap_lost: t.gap_lost,
        late: t.late,
        gap_loss_pct: t.gap_loss_pct,
        shortfall_pct: t.shortfall_pct,
        loss_pct: t.loss_pct,
        worst_sub_loss_pct: t.worst_loss_pct,
        jitter_mean_ms: t.jitter_mean_ms,
        jitter_max_ms: t.jitter_max_ms,
        server_cpu_s: cpu.server_cpu_s,
        client_cpu_s: cpu.client_cpu_s,
        cpus: cpu.cpus,
    }
}
