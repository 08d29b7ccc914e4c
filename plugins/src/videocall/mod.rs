//! `janus.plugin.videocall` (reference 8.6): two registered users call each other through the
//! server.
//!
//! JSON API, every request asynchronous (`ack`, then `{"videocall":"event","result":{...}}` with
//! the request's transaction; errors `{"videocall":"event","error_code":N,"error":"..."}`):
//! `list` -> `{"list":[...]}`; `register {username}` -> `registered`; `call {username}` + offer ->
//! `calling`, the callee gets `incomingcall` + an offer; `accept` + answer -> `accepted` to both,
//! the caller with the answer; `set {audio, video, bitrate, record, filename, substream, temporal,
//! fallback, restart}` (+ JSEP to renegotiate: the peer gets `update`) -> `set`; `hangup
//! {reason?}` -> `hangup` to both.
//!
//! Media: the core answers the caller's offer and offers the callee the same tracks (first codec
//! of each m-line we relay), so each side has its own PeerConnection and its own mids. Each
//! handle's [`relay::Leg`] forwards RTP, keyframe requests and data straight to the other side's
//! media port, on the media runtime. Shared state (usernames, calls) is the
//! [`calls::Directory`] behind one mutex, which is never held across a call into the core: its
//! operations return effects the shell carries out afterwards (only linking legs, a few map
//! writes, happens under it, so links and unlinks can't be reordered between two handles).

pub mod api;
pub mod calls;
pub mod relay;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use portunus_actors::api::{HandleId, Jsep, SdpType, Transaction};
use portunus_actors::media::sdp;
use portunus_actors::plugin::{
    DataMessage, Plugin, PluginCtx, PluginDescriptor, PluginError, PluginMessage, PluginReply, PluginSession,
};
use serde_json::{json, Value};

use api::{Request, SetRequest, VcError, INVALID_ELEMENT};
use calls::{Attach, Directory, Effect, Negotiation, Sdp};
use relay::{answered, directions, Leg, Offered, NO_CAP};

const PACKAGE: &str = "janus.plugin.videocall";

const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    package: PACKAGE,
    name: "JANUS VideoCall plugin",
    author: "Meetecho s.r.l.",
    description:
        "This is a simple video call plugin for Janus, allowing two WebRTC peers to call each other through a server.",
    version_string: "0.0.6",
    version: 6,
};

/// The VideoCall plugin.
#[derive(Default)]
pub struct VideoCall {
    shared: Arc<Shared>,
}

impl Plugin for VideoCall {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn create_session(&self, ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        let leg = Arc::new(Leg::default());
        let notify = ctx.clone();
        leg.set_notice(Box::new(move |codec, what, n| {
            let mut result = json!({"event": "simulcast", "videocodec": codec});
            result[what] = json!(n);
            let _ = notify.push_event(None, json!({"videocall": "event", "result": result}), None);
        }));
        ctx.media().set_sink(leg.clone());
        let me = ctx.handle_id();
        {
            let mut state = self.shared.lock();
            state.dir.attach(me);
            state.ends.insert(me, Endpoint { ctx: ctx.clone(), leg: leg.clone() });
        }
        Ok(Box::new(CallSession { ctx, leg, shared: self.shared.clone(), layers: Layers::default(), gone: false }))
    }
}

/// The plugin's shared state.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    dir: Directory,
    /// Every live handle's context and leg, to act on the other side of a call.
    ends: HashMap<HandleId, Endpoint>,
}

#[derive(Clone)]
struct Endpoint {
    ctx: PluginCtx,
    leg: Arc<Leg>,
}

impl Shared {
    /// The state; a panic elsewhere while it was held must not take every call down with it.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one directory operation and carries out its effects: links under the lock, the rest
    /// (calls into the core) after it is released.
    fn run(&self, op: impl FnOnce(&mut Directory) -> Vec<Effect>) {
        let (effects, ends) = {
            let mut state = self.lock();
            let effects = op(&mut state.dir);
            for e in &effects {
                match e {
                    Effect::Link { a, b, pairs } => {
                        if let (Some(ea), Some(eb)) = (state.ends.get(a), state.ends.get(b)) {
                            let (there, back) = directions(pairs);
                            ea.leg.link(eb.ctx.media().clone(), there, Arc::downgrade(&eb.leg));
                            eb.leg.link(ea.ctx.media().clone(), back, Arc::downgrade(&ea.leg));
                        }
                    }
                    Effect::Unlink(a, b) => {
                        for h in [a, b] {
                            if let Some(end) = state.ends.get(h) {
                                end.leg.unlink();
                            }
                        }
                    }
                    _ => {}
                }
            }
            let ends: HashMap<HandleId, Endpoint> = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Event { to, .. } | Effect::ClosePc(to) | Effect::Notify { who: to, .. } => Some(*to),
                    _ => None,
                })
                .filter_map(|h| state.ends.get(&h).map(|e| (h, e.clone())))
                .collect();
            (effects, ends)
        };
        for e in effects {
            carry_out(e, &ends);
        }
    }
}

/// Does what an effect asks of the core (links were done under the lock).
fn carry_out(effect: Effect, ends: &HashMap<HandleId, Endpoint>) {
    let target = match &effect {
        Effect::Event { to, .. } | Effect::ClosePc(to) | Effect::Notify { who: to, .. } => *to,
        Effect::Link { .. } | Effect::Unlink(..) => return,
    };
    let Some(end) = ends.get(&target) else { return };
    let ctx = &end.ctx;
    let pushed = match effect {
        Effect::Event { tx, data, jsep, .. } => match jsep {
            Attach::Nothing => ctx.push_event(tx, data, None),
            Attach::Answer => ctx.push_event(tx, data, Some(Jsep::new(SdpType::Answer, String::new()))),
            Attach::Offer(spec) => ctx.push_offer(tx, data, spec),
        },
        Effect::ClosePc(_) => ctx.close_pc(),
        Effect::Notify { info, .. } => {
            if ctx.events_enabled() {
                ctx.notify_event(PACKAGE, info);
            }
            Ok(())
        }
        Effect::Link { .. } | Effect::Unlink(..) => Ok(()),
    };
    if let Err(e) = pushed {
        tracing::warn!(handle = %target, error = %e, "videocall: could not reach a handle");
    }
}

/// The simulcast choices last asked with `set`, kept for `query_session`; the leg's receive
/// selector is what applies them to the peer's simulcast video.
#[derive(Clone, Copy, Debug, Default)]
struct Layers {
    substream: Option<u64>,
    temporal: Option<u64>,
    fallback: Option<u64>,
}

/// One handle's VideoCall session.
struct CallSession {
    ctx: PluginCtx,
    leg: Arc<Leg>,
    shared: Arc<Shared>,
    layers: Layers,
    /// Cleaned up already (destroy ran).
    gone: bool,
}

impl CallSession {
    fn me(&self) -> HandleId {
        self.ctx.handle_id()
    }

    fn push(&self, tx: Transaction, data: Value) {
        if let Err(e) = self.ctx.push_event(Some(tx), data, None) {
            tracing::warn!(error = %e, "videocall: could not push event");
        }
    }

    /// The media side of `set`; the signalling side is the directory's.
    fn configure(&mut self, s: &SetRequest) -> Result<(), VcError> {
        if s.record == Some(true) {
            return Err(VcError::new(INVALID_ELEMENT, "Recording is not available in this build yet"));
        }
        if let Some(on) = s.audio {
            self.leg.set_audio(on);
        }
        if let Some(on) = s.video {
            // Just re-enabled: the peer needs a keyframe of our video to pick it up again.
            if self.leg.set_video(on) && on {
                for mid in self.leg.video_mids() {
                    self.ctx.media().request_keyframe(&mid);
                }
            }
        }
        if let Some(b) = s.bitrate {
            self.leg.set_bitrate(b);
            self.ctx.media().send_remb(if b > 0 { b } else { NO_CAP });
        }
        let receive = &self.leg.receive;
        if let Some(n) = s.substream {
            receive.substream.store(n.min(2) as u8, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(n) = s.temporal {
            receive.temporal.store(n.min(2) as u8, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(us) = s.fallback {
            receive.fallback_ms.store(us / 1000, std::sync::atomic::Ordering::Relaxed);
        }
        self.leg.notify_current_layers(s.substream, s.temporal);
        let l = &mut self.layers;
        l.substream = s.substream.or(l.substream);
        l.temporal = s.temporal.or(l.temporal);
        l.fallback = s.fallback.or(l.fallback);
        if self.ctx.events_enabled() {
            let info = json!({
                "event": "configured",
                "audio_active": self.leg.audio(),
                "video_active": self.leg.video(),
                "bitrate": self.leg.bitrate(),
            });
            self.ctx.notify_event(PACKAGE, info);
        }
        Ok(())
    }

    /// Releases everything this handle holds in the plugin; safe to call twice.
    fn cleanup(&mut self) {
        if self.gone {
            return;
        }
        self.gone = true;
        let me = self.me();
        self.shared.run(|d| d.detach(me));
        self.shared.lock().ends.remove(&me);
        self.leg.unlink();
        self.ctx.media().clear_sink();
    }
}

/// Summarizes the JSEP of a request (the core already applied it).
fn negotiation(jsep: Option<&Jsep>) -> Negotiation {
    let j = jsep?;
    Some(sdp::parse(&j.sdp).map_err(|e| e.to_string()).map(|info| match j.kind {
        SdpType::Offer => Sdp::Offer(Offered { e2ee: j.e2ee == Some(true), ..Offered::from_sdp(&info) }),
        SdpType::Answer => Sdp::Answer(answered(&info)),
    }))
}

impl PluginSession for CallSession {
    fn handle_message(&mut self, msg: PluginMessage) -> PluginReply {
        let me = self.me();
        let tx = msg.transaction.clone();
        let req = match Request::parse(&msg.body) {
            Ok(r) => r,
            Err(e) => {
                self.push(tx, e.to_json());
                return PluginReply::Async { hint: None };
            }
        };
        if let Some(j) = msg.jsep.as_ref().filter(|j| j.kind == SdpType::Offer) {
            if let Ok(info) = sdp::parse(&j.sdp) {
                self.leg.set_send_layers(&info);
            }
        }
        let jsep = || negotiation(msg.jsep.as_ref());
        match req {
            Request::List => self.shared.run(|d| d.list(me, tx)),
            Request::Register(name) => self.shared.run(|d| d.register(me, tx, name)),
            Request::Call(name) => self.shared.run(|d| d.call(me, tx, name, jsep())),
            Request::Accept => self.shared.run(|d| d.accept(me, tx, jsep())),
            Request::Set(s) => match self.configure(&s) {
                Ok(()) => self.shared.run(|d| d.set(me, tx, jsep())),
                Err(e) => self.push(tx, e.to_json()),
            },
            Request::Hangup { reason } => self.shared.run(|d| d.hangup(me, tx, reason)),
        }
        PluginReply::Async { hint: None }
    }

    fn setup_media(&mut self) {
        // Whatever the peer already sends us must start with a keyframe for our decoder.
        self.leg.request_peer_keyframes();
        let cap = self.leg.bitrate();
        if cap > 0 {
            self.ctx.media().send_remb(cap);
        }
    }

    fn incoming_data(&mut self, msg: DataMessage) {
        self.leg.relay_data(msg.data, msg.binary);
    }

    fn hangup_media(&mut self) {
        self.leg.reset();
        self.layers = Layers::default();
        let me = self.me();
        self.shared.run(|d| d.hangup_media(me));
    }

    fn destroy(&mut self) {
        self.cleanup();
    }

    fn query(&self) -> Value {
        let info = self.shared.lock().dir.info(self.me());
        let mut q = json!({
            "state": if info.in_call { "incall" } else { "idle" },
            "username": info.username,
        });
        if info.in_call {
            q["peer"] = json!(info.peer);
            q["audio_active"] = json!(self.leg.audio());
            q["video_active"] = json!(self.leg.video());
            q["bitrate"] = json!(self.leg.bitrate());
            q["relaying"] = json!(self.leg.is_linked());
        }
        let l = self.layers;
        if let Some(s) = l.substream {
            q["substream-target"] = json!(s);
        }
        if let Some(t) = l.temporal {
            q["temporal-layer-target"] = json!(t);
        }
        if let Some(f) = l.fallback {
            q["fallback"] = json!(f);
        }
        q["incall"] = json!(u8::from(info.in_call));
        q["hangingup"] = json!(0);
        q["destroyed"] = json!(u8::from(self.gone));
        q
    }
}

impl Drop for CallSession {
    /// A session dropped without `destroy` (its handle's plugin call panicked) still frees its
    /// username, ends its call and breaks the legs' references to each other's ports.
    fn drop(&mut self) {
        self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use portunus_actors::api::Transaction;

    use super::*;

    #[test]
    fn garbage_never_panics() {
        for sdp in ["", "garbage", "v=0\r\nm=audio", "v=0\r\nm=bogus 9 X 0\r\n", "v=0\r\nx\r\n"] {
            for kind in [SdpType::Offer, SdpType::Answer] {
                let n = negotiation(Some(&Jsep::new(kind, sdp.to_owned())));
                assert!(matches!(n, Some(Err(_))), "{sdp:?} parsed: {n:?}");
            }
        }
        assert_eq!(negotiation(None), None);
        let bodies = [
            json!({"request": null}),
            json!({"request": ["list"]}),
            json!({"request": "call", "username": {"a": 1}}),
            json!({"request": "set", "audio": 1, "video": null}),
            json!({"request": "set", "substream": -1}),
            json!({"request": "set", "fallback": 1.5}),
            json!({"request": "hangup", "reason": {"x": [1, 2]}}),
            json!({"request": "x".repeat(10_000)}),
        ];
        let mut dir = Directory::default();
        let me = HandleId(7);
        dir.attach(me);
        for b in bodies {
            let Value::Object(body) = b else { unreachable!() };
            let tx = Transaction::new("g");
            let fx = match Request::parse(&body) {
                Err(e) => {
                    assert!((470..=499).contains(&e.code));
                    continue;
                }
                Ok(Request::Call(u)) => dir.call(me, tx, u, Some(Err("bad".into()))),
                Ok(Request::Register(u)) => dir.register(me, tx, u),
                Ok(Request::Hangup { reason }) => dir.hangup(me, tx, reason),
                Ok(Request::Set(_)) => dir.set(me, tx, Some(Err("bad".into()))),
                Ok(Request::Accept) => dir.accept(me, tx, None),
                Ok(Request::List) => dir.list(me, tx),
            };
            assert!(!fx.is_empty());
        }
        // Requests for a handle the directory never saw answer normally.
        let fx = Directory::default().accept(HandleId(99), Transaction::new("t"), None);
        assert!(matches!(fx.as_slice(), [Effect::Event { .. }]));
    }

    #[test]
    fn poisoned_lock_is_recovered() {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = s.lock();
            panic!("poison the directory lock");
        })
        .join();
        assert!(shared.state.is_poisoned());
        let mut got = Vec::new();
        shared.run(|d| {
            d.attach(HandleId(1));
            got = d.register(HandleId(1), Transaction::new("t"), Ok("alice".into()));
            Vec::new()
        });
        assert_eq!(got.len(), 2);
        assert_eq!(shared.lock().dir.info(HandleId(1)).username.as_deref(), Some("alice"));
    }
}
