//! The `echo` scenario: N WebRTC sessions with the EchoTest plugin, each
//! sending synthetic VP8 RTP at a fixed rate on one `sendrecv` video track
//! and counting what the server sends back, over the Janus WebSocket API.
//!
//! The peers are the ones of the `fanout` scenario (`media_peer`): every
//! packet is SRTP-decrypted by the server, handed to EchoTest and encrypted
//! again on its way back, so the server's CPU per echoed packet is the cost
//! of one relayed packet (in and out). Sessions are added step by step
//! (`--ramp`), each step measured after every session receives its echo;
//! figures are server CPU per relayed packet, the bench's own CPU, loss
//! (sequence gaps, or the shortfall against what each session sent) and
//! RFC 3550 jitter of the echoed stream.

use std::sync::Arc;

use portunus_actors::api::SdpType;
use portunus_actors::media::{MediaEngine, MediaKind, MediaPort, OfferSpec, OfferTrack, Peer};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::janus::ECHOTEST;
use crate::media_peer::{
    join_setups, jsep_sdp, largest_ok, log_setup, print_outcome, settle, CountingSink, CpuWindow, Group,
    KeyframeRequests, MediaOptions, PcState, SendSpec, Snap, StepWindow, Tally, Vp8Sender,
};
use crate::report::round;

/// One EchoTest handle with its PeerConnection.
struct EchoPeer {
    peer: Peer,
    sink: Arc<CountingSink>,
    sender: Vp8Sender,
    keyframes: Arc<KeyframeRequests>,
}

async fn add_echo(engine: &MediaEngine, g: &Group, send: SendSpec) -> Result<EchoPeer, String> {
    let handle = g.attach(ECHOTEST).await?;
    let port = MediaPort::default();
    let keyframes = KeyframeRequests::new();
    // The echo sink also hears the server's PLIs for what this peer sends.
    let sink = CountingSink::new(Some(keyframes.clone()));
    port.set_sink(sink.clone());
    let state = Arc::new(PcState::default());
    let peer = Peer::create(engine, port.clone(), state.events()).await.map_err(|e| format!("echo peer: {e}"))?;
    let result = async {
        let spec = OfferSpec {
            tracks: vec![OfferTrack { kind: MediaKind::Video, codec: "vp8".into(), mid: None, send_only: false }],
            data: false,
            ice_restart: false,
            e2ee: false,
        };
        let offer = peer.offer(spec, false).await.map_err(|e| format!("echo offer: {e}"))?;
        let body = json!({"audio": true, "video": true});
        let reply = g
            .message(handle, body, Some(json!({"type": "offer", "sdp": offer})))
            .await
            .map_err(|e| format!("echotest offer: {e}"))?;
        let answer = jsep_sdp(&reply, "answer")?;
        peer.set_remote(SdpType::Answer, answer).await.map_err(|e| format!("echo answer: {e}"))?;
        state.wait_connected().await?;
        port.writer("0").ok_or_else(|| "echo peer has no writer for mid 0".to_string())
    }
    .await;
    match result {
        Ok(writer) => {
            let sender = Vp8Sender::start(engine, writer, send, keyframes.clone());
            Ok(EchoPeer { peer, sink, sender, keyframes })
        }
        Err(e) => {
            peer.close().await;
            Err(e)
        }
    }
}

/// The figures of one measured window; N counts echo sessions.
pub struct EchoStep {
    pub window: StepWindow,
}

impl EchoStep {
    fn to_json(&self) -> Value {
        let w = &self.window;
        let t = &w.tally;
        json!({
            "sessions": w.n,
            "window_s": round(w.cpu.window_s, 2),
            "sent": w.sent,
            "echoed": t.received,
            "echoed_pps": round(t.received as f64 / w.cpu.window_s, 0),
            "silent_sessions": t.silent,
            "gap_lost": t.gap_lost,
            "late": t.late,
            "gap_loss_pct": round(t.gap_loss_pct, 3),
            "shortfall_pct": round(t.shortfall_pct, 3),
            "loss_pct": round(t.loss_pct, 3),
            "worst_session_loss_pct": round(t.worst_loss_pct, 3),
            "jitter_ms": {"mean": round(t.jitter_mean_ms, 3), "worst": round(t.jitter_max_ms, 3)},
            "server": w.cpu.server_cpu_s.map(|c| json!({
                "cpu_s": round(c, 3),
                "cpu_pct_of_one_core": round(w.pct(c), 1),
                "us_per_relayed_packet": w.server_us_per_packet().map(|v| round(v, 2)),
            })),
            "client": {
                "cpu_s": round(w.cpu.client_cpu_s, 3),
                "cpu_pct_of_one_core": round(w.pct(w.cpu.client_cpu_s), 1),
                "us_per_relayed_packet": w.client_us_per_packet().map(|v| round(v, 2)),
            },
            "cpus": w.cpus_json(),
        })
    }

    fn describe(&self) -> String {
        let w = &self.window;
        let t = &w.tally;
        let us = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        let server = match w.cpu.server_cpu_s {
            Some(c) => format!(
                "server CPU {c:.2} s ({:.0}% of one core), {} us per relayed packet",
                w.pct(c),
                us(w.server_us_per_packet())
            ),
            None => "server CPU: not sampled (no --server-pid)".into(),
        };
        format!(
            "N={:<5} sent {} pkts in {:.1} s, echoed {} ({:.0} pkts/s), loss {:.2}% (gaps {:.2}%, shortfall {:.2}%, worst session {:.2}%), silent {}, late {}\n        jitter mean {:.2} ms, worst session {:.2} ms\n        {server}\n        client CPU {:.2} s ({:.0}% of one core), {} us per relayed packet\n        machine: {}",
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
            t.jitter_mean_ms,
            t.jitter_max_ms,
            w.cpu.client_cpu_s,
            w.pct(w.cpu.client_cpu_s),
            us(w.client_us_per_packet()),
            w.cpus_text(),
        )
    }
}

pub struct EchoReport {
    pub steps: Vec<EchoStep>,
    pub send: SendSpec,
    pub max_loss_pct: f64,
    pub setup_errors: Vec<String>,
    pub plis: u64,
}

impl EchoReport {
    /// The largest measured N whose loss stayed below the threshold.
    pub fn largest_ok(&self) -> Option<usize> {
        largest_ok(self.steps.iter().map(|s| &s.window), self.max_loss_pct)
    }

    pub fn print(&self, as_json: bool) {
        if as_json {
            let v = json!({
                "scenario": "echo",
                "rate_pps": self.send.rate,
                "payload_bytes": self.send.payload,
                "max_loss_pct": self.max_loss_pct,
                "largest_n_below_max_loss": self.largest_ok(),
                "plis": self.plis,
                "setup_errors": self.setup_errors,
                "steps": self.steps.iter().map(EchoStep::to_json).collect::<Vec<_>>(),
            });
            println!("{v}");
            return;
        }
        println!(
            "echo: N EchoTest sessions, each sending VP8 at {} pkts/s x {} bytes and receiving it back",
            self.send.rate, self.send.payload
        );
        for s in &self.steps {
            println!("{}", s.describe());
        }
        let plis = format!("PLIs received: {}", self.plis);
        print_outcome(self.largest_ok(), self.max_loss_pct, &plis, &self.setup_errors);
    }
}

pub async fn run(opts: MediaOptions) -> Result<EchoReport, String> {
    let (target, engine) = opts.start()?;

    let mut groups: Vec<Arc<Group>> = Vec::new();
    let mut peers: Vec<EchoPeer> = Vec::new();
    let mut setup_errors: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    let semaphore = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut failure = None;

    for &n in &opts.steps {
        let setup = Instant::now();
        let mut tasks = Vec::with_capacity(n.saturating_sub(peers.len()));
        for i in peers.len()..n {
            let gi = i / opts.per_socket.max(1);
            while groups.len() <= gi {
                match Group::open(&target).await {
                    Ok(g) => groups.push(Arc::new(g)),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let Some(g) = groups.get(gi).cloned() else { break };
            let (engine, permit, send) = (engine.clone(), semaphore.clone(), opts.send);
            tasks.push(tokio::spawn(async move {
                let _p = permit.acquire_owned().await;
                add_echo(&engine, &g, send).await
            }));
        }
        join_setups(tasks, &mut peers, &mut setup_errors).await;
        log_setup("echo", peers.len(), "sessions", setup, setup_errors.len());
        if failure.is_some() || peers.is_empty() {
            break;
        }
        // Wait until every session hears its echo, then settle.
        settle(peers.iter().map(|p| &*p.sink), opts.settle).await;

        let step = window(&peers, &opts).await;
        step.window.log("echo");
        let stop = step.window.tally.loss_pct >= opts.max_loss_pct || peers.len() < n;
        steps.push(step);
        if stop {
            break;
        }
    }

    // Teardown: stop sending, close every PeerConnection, destroy sessions.
    let plis = peers.iter().map(|p| p.keyframes.plis()).sum();
    let (pcs, senders): (Vec<Peer>, Vec<Vp8Sender>) = peers.into_iter().map(|p| (p.peer, p.sender)).unzip();
    futures_util::future::join_all(senders.into_iter().map(Vp8Sender::stop)).await;
    futures_util::future::join_all(pcs.iter().map(Peer::close)).await;
    futures_util::future::join_all(groups.iter().map(|g| g.close())).await;
    if let Some(e) = failure {
        if steps.is_empty() {
            return Err(e);
        }
        setup_errors.push(e);
    }
    Ok(EchoReport { steps, send: opts.send, max_loss_pct: opts.max_loss_pct, setup_errors, plis })
}

async fn window(peers: &[EchoPeer], opts: &MediaOptions) -> EchoStep {
    let cpu = CpuWindow::start(opts.server_pid);
    let before: Vec<(Snap, u64)> = peers.iter().map(|p| (p.sink.snapshot(), p.sender.sent())).collect();
    tokio::time::sleep(opts.duration).await;
    let after: Vec<(Snap, u64)> = peers.iter().map(|p| (p.sink.snapshot(), p.sender.sent())).collect();
    let cpu = cpu.finish();
    let sent: u64 = before.iter().zip(&after).map(|(a, b)| b.1 - a.1).sum();
    // Each session should get back what it sent itself.
    let tally = Tally::of(before.into_iter().zip(after).map(|((a, s0), (b, s1))| (a, b, s1 - s0)));
    EchoStep { window: StepWindow { n: peers.len(), sent, tally, cpu } }
}
