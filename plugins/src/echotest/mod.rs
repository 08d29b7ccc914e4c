//! `janus.plugin.echotest` (reference 8.1).
//!
//! JSON API: a single, always-asynchronous request whose body holds any of `audio`, `video`,
//! `data`, `bitrate`, `record`, `filename`, `substream`, `temporal`, `fallback`, `spatial_layer`,
//! `temporal_layer`, `audiocodec`, `videocodec`, `videoprofile`, `opusred`, `min_delay`,
//! `max_delay`, optionally with a JSEP offer. The `ack` carries the hint "I'm taking my time!";
//! the answer comes as `{"echotest":"event","result":"ok"}` (with the JSEP answer when one was
//! offered). Errors: `{"echotest":"event","error_code":41x,"error":"..."}`. When the PeerConnection
//! goes away: `{"echotest":"event","result":"done"}`.

pub mod api;

use portunus_actors::plugin::{
    Plugin, PluginCtx, PluginDescriptor, PluginError, PluginMessage, PluginReply, PluginSession,
};
use serde_json::{json, Value};

use api::{Configure, ERROR_INVALID_ELEMENT};

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
        Ok(Box::new(EchoSession { ctx, state: EchoState::default() }))
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
    ctx: PluginCtx,
    state: EchoState,
}

impl EchoSession {
    fn error(code: u16, error: impl Into<String>) -> Value {
        json!({"echotest": "event", "error_code": code, "error": error.into()})
    }

    /// Applies a request; returns the event to push.
    fn apply(&mut self, msg: &PluginMessage) -> Value {
        let req = match Configure::parse(&msg.body) {
            Ok(r) => r,
            Err(e) => return Self::error(ERROR_INVALID_ELEMENT, e.to_string()),
        };
        if req.is_empty() && msg.jsep.is_none() {
            return Self::error(ERROR_INVALID_ELEMENT, "Message error: no supported attributes found");
        }
        if req.record == Some(true) {
            return Self::error(ERROR_INVALID_ELEMENT, "Recording is not available in this build yet");
        }
        let s = &mut self.state;
        if let Some(v) = req.audio {
            s.audio = v;
        }
        if let Some(v) = req.video {
            s.video = v;
        }
        if let Some(v) = req.data {
            s.data = v;
        }
        if let Some(v) = req.bitrate {
            s.bitrate = v;
        }
        if req.substream.is_some() {
            s.substream = req.substream;
        }
        if req.temporal.is_some() {
            s.temporal = req.temporal;
        }
        json!({"echotest": "event", "result": "ok"})
    }
}

impl PluginSession for EchoSession {
    fn handle_message(&mut self, msg: PluginMessage) -> PluginReply {
        let event = self.apply(&msg);
        if let Err(e) = self.ctx.push_event(Some(msg.transaction.clone()), event, None) {
            tracing::warn!(error = %e, "echotest: could not push event");
        }
        PluginReply::Async { hint: Some(HINT.to_owned()) }
    }

    fn hangup_media(&mut self) {
        let _ = self.ctx.push_event(None, json!({"echotest": "event", "result": "done"}), None);
        self.state = EchoState::default();
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
