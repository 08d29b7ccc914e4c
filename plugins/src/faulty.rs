//! `portunus.plugin.faulty`: a test-only plugin that panics on demand, to prove the panic
//! boundary. Built only with the `fault-injection` feature.
//!
//! Body `{"panic": "message"}` panics in `handle_message`; `{"panic_in": "query"}` arms a panic
//! for the Admin API `handle_info`; `{"offer": {"audio": bool, "video": bool, "data": bool}}`
//! makes the plugin offer (a plugin-initiated negotiation; media and data coming back on the
//! PeerConnection are echoed); `{"silent": true}` acknowledges and never answers (a stuck
//! plugin); anything else answers `{"faulty": "ok"}` synchronously.

use std::sync::Arc;

use portunus_actors::media::{MediaKind, MediaPort, MediaSink, OfferSpec, OfferTrack, RtpPacket};
use portunus_actors::plugin::{
    DataMessage, Plugin, PluginCtx, PluginDescriptor, PluginError, PluginMessage, PluginReply, PluginSession,
};
use serde_json::{json, Map, Value};

const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    package: "portunus.plugin.faulty",
    name: "Portunus fault-injection plugin",
    author: "Portunus",
    description: "Panics on demand (tests only).",
    version_string: "0.0.1",
    version: 1,
};

/// The plugin.
pub struct Faulty;

impl Plugin for Faulty {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn create_session(&self, ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        ctx.media().set_sink(Arc::new(Echo));
        Ok(Box::new(FaultySession { ctx, panic_in_query: false }))
    }

    fn handle_admin_message(&self, request: Map<String, Value>) -> Option<Value> {
        if request.contains_key("panic") {
            panic!("faulty: admin panic requested");
        }
        Some(json!({"faulty": "ok"}))
    }
}

struct FaultySession {
    ctx: PluginCtx,
    panic_in_query: bool,
}

/// Echoes RTP back on the stream with the same mid.
struct Echo;

#[async_trait::async_trait]
impl MediaSink for Echo {
    async fn rtp(&self, port: &MediaPort, mid: &str, _kind: MediaKind, pkt: RtpPacket) {
        if let Some(w) = port.writer(mid) {
            let _ = w.write(pkt).await;
        }
    }
}

impl PluginSession for FaultySession {
    fn handle_message(&mut self, msg: PluginMessage) -> PluginReply {
        if let Some(text) = msg.body.get("panic").and_then(Value::as_str) {
            panic!("faulty: {text}");
        }
        if msg.body.get("panic_in").and_then(Value::as_str) == Some("query") {
            self.panic_in_query = true;
        }
        if msg.body.get("silent").and_then(Value::as_bool) == Some(true) {
            return PluginReply::Async { hint: None };
        }
        if let Some(Value::Object(o)) = msg.body.get("offer") {
            let on = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
            let mut tracks = Vec::new();
            if on("audio") {
                tracks.push(OfferTrack { kind: MediaKind::Audio, codec: "opus".into(), mid: None, send_only: false });
            }
            if on("video") {
                tracks.push(OfferTrack { kind: MediaKind::Video, codec: "vp8".into(), mid: None, send_only: false });
            }
            let spec = OfferSpec { tracks, data: on("data"), ice_restart: on("ice_restart"), e2ee: false };
            let _ = self.ctx.push_offer(Some(msg.transaction), json!({"faulty": "offer"}), spec);
            return PluginReply::Async { hint: None };
        }
        PluginReply::Sync(json!({"faulty": "ok"}))
    }

    fn incoming_data(&mut self, msg: DataMessage) {
        self.ctx.media().send_data(Some(&msg.label), msg.data, msg.binary);
    }

    fn query(&self) -> Value {
        if self.panic_in_query {
            panic!("faulty: query panic requested");
        }
        json!({"armed": false})
    }
}
