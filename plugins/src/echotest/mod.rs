//! `janus.plugin.echotest` (reference 8.1).
//!
//! JSON API: a single, always-asynchronous request whose body holds any of `audio`, `video`,
//! `data`, `bitrate`, `record`, `filename`, `substream`, `temporal`, `fallback`, `svc`,
//! `spatial_layer`, `temporal_layer`, `audiocodec`, `videocodec`, `videoprofile`, `opusred`,
//! `min_delay`, `max_delay`, optionally with a JSEP offer. SVC layer selection (VP9, AV1) is on
//! when the offer's JSEP carries `svc` hints (janus.js adds them for a track with an `svc` mode)
//! or the body says `svc: true`; layer changes are pushed as
//! `{"echotest":"event","videocodec":"vp9","spatial_layer":n,"temporal_layer":n}`, simulcast
//! ones as `{"echotest":"event","videocodec":"vp8","substream":n}` (likewise `temporal`), at once
//! when the layer asked for is the one already echoed. The `ack` carries the hint "I'm taking my
//! time!"; the answer comes as `{"echotest":"event","result":"ok"}` (with the JSEP answer when
//! one was offered). Errors:
//! `{"echotest":"event","error_code":41x,"error":"..."}`. When the PeerConnection goes away:
//! `{"echotest":"event","result":"done"}`.

pub mod api;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use portunus_actors::api::SdpType;
use portunus_actors::media::{sdp, AnswerSpec, Feedback, MediaKind, MediaPort, MediaSink, RtpPacket};
use portunus_actors::plugin::{
    DataMessage, Plugin, PluginCtx, PluginDescriptor, PluginError, PluginMessage, PluginReply, PluginSession,
};
use serde_json::{json, Value};

use api::{Configure, ERROR_INVALID_ELEMENT};

use crate::simulcast::{simulcast_streams, KeyframeThrottle, Layering, Layers, Selector, SimulcastStream, Source};
use crate::svc::DEFAULT_LAYER;

const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    package: "janus.plugin.echotest",
    name: "JANUS EchoTest plugin",
    author: "Meetecho s.r.l.",
    description: "This is a trivial EchoTest plugin for Janus, just used to showcase the plugin interface.",
    version_string: "0.0.7",
    version: 7,
};

/// Janus compat (13): the EchoTest ack hint.
const HINT: &str = "I'm taking my time!";

/// The EchoTest plugin.
#[derive(Default)]
pub struct EchoTest;

impl Plugin for EchoTest {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn create_session(&self, ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        let echo = Arc::new(Echo::new(ctx));
        echo.ctx.media().set_sink(echo.clone());
        Ok(Box::new(EchoSession { state: EchoState::default(), echo }))
    }
}

/// What the echo currently does for one handle.
#[derive(Clone, Debug)]
struct EchoState {
    audio: bool,
    video: bool,
    data: bool,
    bitrate: u64,
    substream: Option<u64>,
    temporal: Option<u64>,
}

impl Default for EchoState {
    fn default() -> Self {
        EchoState { audio: true, video: true, data: true, bitrate: 0, substream: None, temporal: None }
    }
}

struct EchoSession {
    state: EchoState,
    echo: Arc<Echo>,
}

/// The media path: RTP comes in on the media runtime and goes straight back out.
struct Echo {
    audio: AtomicBool,
    video: AtomicBool,
    /// The sender's simulcast video by mid (from its offer's rids), with the codec.
    simulcast: RwLock<HashMap<String, SimulcastStream>>,
    /// Which layer is echoed back (`substream`/`temporal`/`fallback`, `spatial_layer`/`temporal_layer`).
    selector: Selector,
    /// Video mids whose SVC layers are chosen, with the offer's payload types and codec names.
    svc: RwLock<HashMap<String, Vec<(u8, String)>>>,
    /// The SVC video echoed last was AV1 (else VP9): the codec SVC events name.
    svc_av1: AtomicBool,
    /// Tells the client the echoed layer changed.
    ctx: PluginCtx,
    keyframes: KeyframeThrottle,
}

impl Echo {
    fn new(ctx: PluginCtx) -> Self {
        Echo {
            audio: AtomicBool::new(true),
            video: AtomicBool::new(true),
            simulcast: RwLock::default(),
            selector: Selector::default(),
            svc: RwLock::default(),
            svc_av1: AtomicBool::new(false),
            ctx,
            keyframes: KeyframeThrottle::default(),
        }
    }

    /// The codec of `pt` on `mid` when the sender's SVC layers are chosen there (VP9, AV1).
    fn svc_codec(&self, mid: &str, pt: u8) -> Option<&'static str> {
        let svc = self.svc.read().unwrap_or_else(|e| e.into_inner());
        let (_, codec) = svc.get(mid)?.iter().find(|(p, _)| *p == pt)?;
        ["vp9", "av1"].into_iter().find(|c| c == codec)
    }

    /// How `pkt` on `mid` is layered, with its codec: SVC (no simulcast layers) or simulcast;
    /// `None` when it is echoed as it came.
    fn layered(&self, mid: &str, kind: MediaKind, pkt: &RtpPacket) -> Option<(Option<Arc<Layers>>, String)> {
        if kind == MediaKind::Video {
            if let Some(codec) = self.svc_codec(mid, pkt.payload_type) {
                self.svc_av1.store(codec == "av1", Ordering::Relaxed);
                return Some((None, codec.to_owned()));
            }
        }
        pkt.rid.as_ref()?;
        let (layers, codec) = self.simulcast.read().unwrap_or_else(|e| e.into_inner()).get(mid).cloned()?;
        Some((Some(layers), codec))
    }

    /// Janus compat (8.1): the SVC event names the codec and both current layers (`both`), or
    /// only the spatial one when answering a request for the layer already echoed.
    fn svc_event(&self, codec: &str, both: bool) {
        let (spatial, temporal) = self.selector.svc_layers();
        let mut ev = json!({"echotest": "event", "videocodec": codec, "spatial_layer": spatial});
        if both {
            ev["temporal_layer"] = json!(temporal);
        }
        let _ = self.ctx.push_event(None, ev, None);
    }

    /// Janus compat (8.1): asking for the simulcast `substream` or `temporal` layer already
    /// echoed is answered at once with the layer event (a change is announced when it happens).
    fn notify_current_layers(&self, substream: Option<u64>, temporal: Option<u64>) {
        let codec = self.simulcast.read().unwrap_or_else(|e| e.into_inner()).values().next().map(|(_, c)| c.clone());
        let Some(codec) = codec else { return };
        let (current_s, current_t) = self.selector.simulcast_layers();
        let current = [("substream", substream, current_s), ("temporal", temporal, current_t.map(usize::from))];
        for (key, asked, now) in current {
            if let Some(n) = now.filter(|n| asked == Some(*n as u64)) {
                let _ = self.ctx.push_event(None, json!({"echotest": "event", "videocodec": codec, key: n}), None);
            }
        }
    }

    /// Keyframe requests while waiting for a layer: at most two a second.
    fn ask_keyframe(&self, port: &MediaPort, mid: &str) {
        if self.keyframes.allow() {
            port.request_keyframe(mid);
        }
    }
}

#[async_trait::async_trait]
impl MediaSink for Echo {
    async fn rtp(&self, port: &MediaPort, mid: &str, kind: MediaKind, pkt: RtpPacket) {
        let on = match kind {
            MediaKind::Audio => self.audio.load(Ordering::Relaxed),
            MediaKind::Video => self.video.load(Ordering::Relaxed),
            MediaKind::Data => false,
        };
        if !on {
            return;
        }
        let Some(writer) = port.writer(mid) else { return };
        // SVC video: the layers `spatial_layer`/`temporal_layer` ask for; simulcast: the layer
        // `substream` asks for; anything else is echoed as it came.
        let Some((layers, codec)) = self.layered(mid, kind, &pkt) else {
            let _ = writer.write(pkt).await;
            return;
        };
        let svc = layers.is_none();
        let Some(layering) = Layering::of(&pkt, layers.as_deref(), svc) else { return };
        let source = Source { kind, codec: &codec, layering };
        let notify = |notices: &[(&'static str, usize)]| {
            if svc {
                self.svc_event(&codec, true);
                return;
            }
            for &(what, n) in notices {
                let mut ev = json!({"echotest": "event", "videocodec": codec});
                ev[what] = json!(n);
                let _ = self.ctx.push_event(None, ev, None);
            }
        };
        let keyframe = || self.ask_keyframe(port, mid);
        if let Some(out) = self.selector.step(Cow::Owned(pkt), &source, &mut None, notify, keyframe) {
            let _ = writer.write(out).await;
        }
    }

    fn feedback(&self, port: &MediaPort, mid: &str, fb: Feedback) {
        // The peer wants a keyframe of what we echo: ask it for one of what it sends.
        if matches!(fb, Feedback::Pli | Feedback::Fir) {
            port.request_keyframe(mid);
        }
    }
}

impl EchoSession {
    fn error(code: u16, error: impl Into<String>) -> Value {
        json!({"echotest": "event", "error_code": code, "error": error.into()})
    }

    /// Applies a request; returns the event to push.
    fn apply(&mut self, req: &Configure, msg: &PluginMessage) -> Value {
        if req.is_empty() && msg.jsep.is_none() {
            return Self::error(ERROR_INVALID_ELEMENT, "Message error: no supported attributes found");
        }
        if req.record == Some(true) {
            return Self::error(ERROR_INVALID_ELEMENT, "Recording is not available in this build yet");
        }
        // Janus compat (8.1): layers are checked before anything is applied, in Janus's order.
        let layers = [
            ("substream", req.substream),
            ("temporal", req.temporal),
            ("spatial_layer", req.spatial_layer),
            ("temporal_layer", req.temporal_layer),
        ];
        for (key, value) in layers {
            if value.is_some_and(|n| n > u64::from(DEFAULT_LAYER)) {
                return Self::error(ERROR_INVALID_ELEMENT, format!("Invalid value ({key} should be 0, 1 or 2)"));
            }
        }
        let s = &mut self.state;
        if let Some(v) = req.audio {
            s.audio = v;
            self.echo.audio.store(v, Ordering::Relaxed);
        }
        if let Some(v) = req.video {
            s.video = v;
            self.echo.video.store(v, Ordering::Relaxed);
        }
        if let Some(v) = req.data {
            s.data = v;
        }
        if let Some(v) = req.bitrate {
            s.bitrate = v;
            if v > 0 {
                self.echo.ctx.media().send_remb(v);
            }
        }
        if let Some(n) = req.substream {
            s.substream = Some(n);
            self.echo.selector.substream.store(n.min(2) as u8, Ordering::Relaxed);
        }
        if let Some(n) = req.temporal {
            s.temporal = Some(n);
            self.echo.selector.temporal.store(n.min(2) as u8, Ordering::Relaxed);
        }
        self.echo.notify_current_layers(req.substream, req.temporal);
        if let Some(us) = req.fallback {
            self.echo.selector.fallback_ms.store(us / 1000, Ordering::Relaxed);
        }
        self.apply_svc_layers(req);
        // The sender's simulcast layers, from its offer; its SVC video when it says it sends SVC.
        let offer = msg.jsep.as_ref().filter(|j| j.kind == SdpType::Offer);
        if let Some(info) = offer.and_then(|j| sdp::parse(&j.sdp).ok()) {
            *self.echo.simulcast.write().unwrap_or_else(|e| e.into_inner()) = simulcast_streams(&info);
            let hinted = offer.and_then(|j| j.svc.as_ref()).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
            let svc = if hinted || req.svc == Some(true) { svc_streams(&info) } else { HashMap::new() };
            *self.echo.svc.write().unwrap_or_else(|e| e.into_inner()) = svc;
        } else if req.svc == Some(false) {
            self.echo.svc.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
        json!({"echotest": "event", "result": "ok"})
    }
}

impl EchoSession {
    /// `spatial_layer`/`temporal_layer`: the new wanted layers. Janus compat (8.1): asking for
    /// the spatial layer already echoed is answered with an event at once; any other change asks
    /// the sender for a keyframe, where the switch can happen.
    fn apply_svc_layers(&self, req: &Configure) {
        let targets = &self.echo.selector.svc;
        let (current_s, current_t) = self.echo.selector.svc_layers();
        if let Some(n) = req.spatial_layer {
            targets.spatial.store(n as u8, Ordering::Relaxed);
            if current_s == Some(n as u8) {
                let codec = if self.echo.svc_av1.load(Ordering::Relaxed) { "av1" } else { "vp9" };
                self.echo.svc_event(codec, false);
            }
        }
        if let Some(n) = req.temporal_layer {
            targets.temporal.store(n as u8, Ordering::Relaxed);
        }
        let changed = req.spatial_layer.is_some_and(|n| current_s != Some(n as u8))
            || req.temporal_layer.is_some_and(|n| current_t != Some(n as u8));
        if changed {
            for (mid, _) in self.echo.svc.read().unwrap_or_else(|e| e.into_inner()).iter() {
                self.echo.ctx.media().request_keyframe(mid);
            }
        }
    }
}

/// The video m-lines of an offer, by mid, with their payload types and codec names: where SVC
/// layers are chosen when the sender says it sends SVC.
fn svc_streams(offer: &sdp::SdpInfo) -> HashMap<String, Vec<(u8, String)>> {
    offer
        .sections
        .iter()
        .filter(|s| s.kind == MediaKind::Video && !s.disabled)
        .map(|s| {
            let mid = s.mid.clone().unwrap_or_else(|| s.mindex.to_string());
            (mid, s.codecs.iter().map(|c| (c.pt, c.name.to_ascii_lowercase())).collect())
        })
        .collect()
}

/// The answer with the codecs the client asked for (`audiocodec`, `videocodec`, comma lists,
/// and `videoprofile`), used when its offer has them.
fn answer_spec(req: Configure) -> AnswerSpec {
    let list = |v: Option<String>| -> Vec<String> {
        v.map(|v| v.split(',').map(|c| c.trim().to_ascii_lowercase()).collect()).unwrap_or_default()
    };
    AnswerSpec {
        audio_codecs: list(req.audiocodec),
        video_codecs: list(req.videocodec),
        video_profile: req.videoprofile,
        ..AnswerSpec::default()
    }
}

impl PluginSession for EchoSession {
    fn slow_link(&mut self, _mid: &str, video: bool, _uplink: bool) {
        let media = if video { "video" } else { "audio" };
        let mut event = json!({"echotest": "event", "event": "slow_link", "media": media});
        if self.state.bitrate > 0 {
            event["current-bitrate"] = json!(self.state.bitrate);
        }
        let _ = self.echo.ctx.push_event(None, event, None);
    }

    fn handle_message(&mut self, msg: PluginMessage) -> PluginReply {
        let (event, spec) = match Configure::parse(&msg.body) {
            Ok(req) => (self.apply(&req, &msg), answer_spec(req)),
            Err(e) => (Self::error(ERROR_INVALID_ELEMENT, e.to_string()), AnswerSpec::default()),
        };
        let ok = event.get("error_code").is_none();
        let tx = Some(msg.transaction.clone());
        // An offer is answered in kind (the core builds the answer SDP).
        let pushed = match &msg.jsep {
            Some(j) if ok && j.kind == SdpType::Offer => self.echo.ctx.push_answer(tx, event, spec),
            _ => self.echo.ctx.push_event(tx, event, None),
        };
        if let Err(e) = pushed {
            tracing::warn!(error = %e, "echotest: could not push event");
        }
        PluginReply::Async { hint: Some(HINT.to_owned()) }
    }

    fn setup_media(&mut self) {
        for (mid, w) in self.echo.ctx.media().writers() {
            if w.kind() == MediaKind::Video {
                self.echo.ctx.media().request_keyframe(&mid);
            }
        }
        if self.state.bitrate > 0 {
            self.echo.ctx.media().send_remb(self.state.bitrate);
        }
    }

    fn incoming_data(&mut self, msg: DataMessage) {
        if self.state.data {
            self.echo.ctx.media().send_data(Some(&msg.label), msg.data, msg.binary);
        }
    }

    fn hangup_media(&mut self) {
        let _ = self.echo.ctx.push_event(None, json!({"echotest": "event", "result": "done"}), None);
        self.state = EchoState::default();
        self.echo.audio.store(true, Ordering::Relaxed);
        self.echo.video.store(true, Ordering::Relaxed);
        self.echo.svc.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn query(&self) -> Value {
        let s = &self.state;
        json!({
            "audio_active": s.audio,
            "video_active": s.video,
            "data_active": s.data,
            "bitrate": s.bitrate,
            "substream": s.substream,
            "temporal": s.temporal,
        })
    }
}
