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

use std::sync::Arc;

use portunus_actors::api::SdpType;
use portunus_actors::media::{MediaEngine, MediaKind, MediaPort, OfferSpec, OfferTrack, Peer};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::janus::Target;
use crate::media_peer::{
    join_setups, jsep_sdp, largest_ok, log_setup, plugin_data, print_outcome, rand_u16, settle, CountingSink,
    CpuWindow, Group, KeyframeRequests, MediaOptions, PcState, Snap, StepWindow, Tally, Vp8Sender,
};
use crate::report::round;

const VIDEOROOM: &str = "janus.plugin.videoroom";

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
    opts: &MediaOptions,
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
        e2ee: false,
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
    let sender = Vp8Sender::start(engine, writer, opts.send, keyframes.clone());
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
        let answer = peer.answer(vec![], vec![], false, false).await.map_err(|e| format!("subscriber answer: {e}"))?;
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

/// The figures of one measured window; N counts subscribers.
pub struct StepReport {
    pub window: StepWindow,
    /// The publisher's packets per second.
    pub rate: f64,
}

impl StepReport {
    fn to_json(&self) -> Value {
        let w = &self.window;
        let t = &w.tally;
        let pct = |cpu: f64| round(w.pct(cpu), 1);
        json!({
            "subscribers": w.n,
            "window_s": round(w.cpu.window_s, 2),
            "rate_pps": self.rate,
            "sent": w.sent,
            "received": t.received,
            "forwarded_pps": round(t.received as f64 / w.cpu.window_s, 0),
            "silent_subscribers": t.silent,
            "gap_lost": t.gap_lost,
            "late": t.late,
            "gap_loss_pct": round(t.gap_loss_pct, 3),
            "shortfall_pct": round(t.shortfall_pct, 3),
            "loss_pct": round(t.loss_pct, 3),
            "worst_subscriber_loss_pct": round(t.worst_loss_pct, 3),
            "jitter_ms": {"mean": round(t.jitter_mean_ms, 3), "worst": round(t.jitter_max_ms, 3)},
            "server": w.cpu.server_cpu_s.map(|c| json!({
                "cpu_s": round(c, 3),
                "cpu_pct_of_one_core": pct(c),
                "us_per_forwarded_packet": w.server_us_per_packet().map(|v| round(v, 2)),
            })),
            "client": {
                "cpu_s": round(w.cpu.client_cpu_s, 3),
                "cpu_pct_of_one_core": pct(w.cpu.client_cpu_s),
                "us_per_received_packet": w.client_us_per_packet().map(|v| round(v, 2)),
            },
            "cpus": w.cpus_json(),
        })
    }

    fn describe(&self) -> String {
        let w = &self.window;
        let t = &w.tally;
        let mut s = format!(
            "N={:<5} sent {} pkts in {:.1} s, received {} ({:.0} pkts/s forwarded), loss {:.2}% (gaps {:.2}%, shortfall {:.2}%, worst subscriber {:.2}%), silent {}, late {}\n",
            w.n,
            w.sent,
            w.cpu.window_s,
            t.received,
            t.received as f64 / w.cpu.window_s,
            t.loss_pct,
            t.gap_loss_pct,
            t.shortfall_pct,
            t.worst_loss_pct,
            t.silent,
            t.late,
        );
        s.push_str(&format!(
            "        jitter mean {:.2} ms, worst subscriber {:.2} ms\n",
            t.jitter_mean_ms, t.jitter_max_ms
        ));
        match (w.cpu.server_cpu_s, w.server_us_per_packet()) {
            (Some(c), Some(us)) => s.push_str(&format!(
                "        server CPU {:.2} s ({:.0}% of one core), {:.2} us per forwarded packet\n",
                c,
                w.pct(c),
                us
            )),
            (Some(c), None) => s.push_str(&format!("        server CPU {:.2} s ({:.0}% of one core)\n", c, w.pct(c))),
            _ => s.push_str("        server CPU: not sampled (no --server-pid)\n"),
        }
        s.push_str(&format!(
            "        client CPU {:.2} s ({:.0}% of one core), {} us per received packet\n",
            w.cpu.client_cpu_s,
            w.pct(w.cpu.client_cpu_s),
            w.client_us_per_packet().map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
        ));
        s.push_str(&format!("        machine: {}", w.cpus_text()));
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
        largest_ok(self.steps.iter().map(|s| &s.window), self.max_loss_pct)
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
        let plis = format!("publisher PLIs received: {}", self.plis);
        print_outcome(self.largest_ok(), self.max_loss_pct, &plis, &self.setup_errors);
    }
}

/// Runs the scenario in room `room` (a random id if `None`).
pub async fn run(opts: MediaOptions, room: Option<u64>) -> Result<FanoutReport, String> {
    let (target, engine) = opts.start()?;

    // Control session: room and publisher.
    let control = Group::open(&target).await?;
    let admin = control.attach(VIDEOROOM).await?;
    let room = room.unwrap_or_else(|| 1_000_000 + (rand_u16() as u64) * 97);
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
    opts: &MediaOptions,
) -> Result<FanoutReport, String> {
    let (publisher, feed) = start_publisher(engine, control, room, opts).await?;
    eprintln!("fanout: publisher {feed} connected, sending {} pkts/s", opts.send.rate);

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
        join_setups(tasks, &mut subs, &mut setup_errors).await;
        log_setup("fanout", subs.len(), "subscribers", setup, setup_errors.len());
        if subs.len() < n {
            eprintln!("fanout: only {} of {n} subscribers could be set up; measuring those", subs.len());
        }
        // Wait until every subscriber receives, then settle.
        settle(subs.iter().map(|s| &*s.sink), opts.settle).await;

        let step = window(&subs, &publisher, opts).await;
        step.window.log("fanout");
        let stop = step.window.tally.loss_pct >= opts.max_loss_pct || subs.len() < n;
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
        rate: opts.send.rate,
        payload: opts.send.payload,
        setup_errors,
        plis,
        ramp: opts.steps.len() > 1,
    })
}

async fn window(subs: &[Subscriber], publisher: &Publisher, opts: &MediaOptions) -> StepReport {
    let cpu = CpuWindow::start(opts.server_pid);
    let sent0 = publisher.sender.sent();
    let before: Vec<Snap> = subs.iter().map(|s| s.sink.snapshot()).collect();
    tokio::time::sleep(opts.duration).await;
    let after: Vec<Snap> = subs.iter().map(|s| s.sink.snapshot()).collect();
    let sent = publisher.sender.sent() - sent0;
    let cpu = cpu.finish();
    // Every subscriber should have received everything the publisher sent.
    let t = Tally::of(before.into_iter().zip(after).map(|(a, b)| (a, b, sent)));
    StepReport { window: StepWindow { n: subs.len(), sent, tally: t, cpu }, rate: opts.send.rate }
}
