//! `janus.plugin.textroom` (reference 8.5): text rooms over data channels.
//!
//! JSON API. Over the Janus API: `setup` (async; the plugin offers a PeerConnection with only a
//! data channel, `{"textroom":"event","result":"ok"}` + offer), `ack` (async; carries the client's
//! answer), `restart` (async; offer with an ICE restart), and synchronously `list`,
//! `listparticipants`, `exists`, `create`, `edit`, `announcement`, `allowed`, `kick`, `destroy`
//! (also through Admin `message_plugin`). Everything else happens on the data channel: JSON text
//! requests keyed by `textroom` with a `transaction` that the reply echoes (`join`, `leave`,
//! `message` with `to`/`tos` whispers and `ack`, and the management requests above).
//! Broadcasts (`join`, `leave`, `message`, `announcement`, `kicked`, `destroyed`) carry no
//! transaction. Errors: `{"textroom":"error","error_code":41x,"error":"..."}`; Janus API messages
//! the processor never saw (missing or unknown `request`) answer `"textroom":"event"` instead.
//!
//! Layout: [`api`] parses requests, [`rooms`] is the pure room state and request processor,
//! [`config`] reads the `[textroom]` section, [`date`] formats message dates. This file is the
//! shell: it owns the shared state behind one mutex, serializes and sends what the processor
//! decides, and drives the handle's negotiation.
//!
//! Public messages of rooms with a `post` URL are also POSTed there (as Janus does with libcurl),
//! one at a time from a bounded queue.

pub mod api;
mod backend;
pub mod config;
pub mod date;
pub mod rooms;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use portunus_actors::api::validate::Fields;
use portunus_actors::api::{HandleId, Transaction};
use portunus_actors::media::{MediaPort, OfferSpec};
use portunus_actors::plugin::{
    DataMessage, Plugin, PluginCtx, PluginDescriptor, PluginEnv, PluginError, PluginMessage, PluginReply, PluginSession,
};
use serde_json::{json, Map, Value};

use api::{Request, TrError, ALREADY_SETUP, INVALID_REQUEST, SYNC_REQUESTS, UNKNOWN_ERROR};
use config::{Config, JsonFormat};
use rooms::{Delivery, Origin, Outcome, Rooms, Via};

const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    package: "janus.plugin.textroom",
    name: "JANUS TextRoom plugin",
    author: "Meetecho s.r.l.",
    description: "This is a plugin implementing a text-only room for Janus, using DataChannels.",
    version_string: "0.0.2",
    version: 2,
};

/// The TextRoom plugin.
#[derive(Default)]
pub struct TextRoom {
    shared: Arc<Shared>,
}

/// State shared by every handle of the plugin.
#[derive(Default)]
struct Shared {
    /// One std mutex over everything: requests are short, never await, and deliveries are queued
    /// to the media runtime while holding it, so every recipient sees broadcasts in one order.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rooms: Rooms,
    /// Every live handle's media port, to reach its data channel.
    ports: HashMap<HandleId, MediaPort>,
    format: JsonFormat,
    events: bool,
    backend: backend::Backend,
    /// Where `permanent` rooms are kept.
    rooms_file: Option<std::path::PathBuf>,
}

impl Shared {
    /// The state; a panic elsewhere while holding the lock leaves it usable (every update keeps
    /// the room invariants step by step), so poisoning is ignored rather than spread.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Parses and runs request `name`, delivers its broadcasts, returns its reply (if one is due).
    fn run(
        &mut self,
        name: &str,
        body: &Map<String, Value>,
        from: Origin,
        ctx: Option<&PluginCtx>,
    ) -> Option<Result<Value, TrError>> {
        let req = match Request::parse(name, body, self.rooms.string_ids) {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let out = self.rooms.apply(req, from, &date::now());
        self.carry_out(out, ctx)
    }

    /// Sends the deliveries, tells the event handlers, hands the reply back.
    /// Rewrites the rooms file (write then rename); `false` when there is none or it failed.
    fn save_permanent(&self) -> bool {
        let Some(file) = &self.rooms_file else {
            tracing::warn!("TextRoom: permanent room requested but no rooms_file is configured");
            return false;
        };
        match crate::rooms_file::save(file, &self.rooms.permanent_blocks()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "TextRoom: rooms file not written");
                false
            }
        }
    }

    fn carry_out(&self, mut out: Outcome, ctx: Option<&PluginCtx>) -> Option<Result<Value, TrError>> {
        if out.persist && !self.save_permanent() {
            // Janus compat: a room that could not be saved is answered `permanent: false`.
            if let Some(Ok(reply)) = out.reply.as_mut() {
                reply["permanent"] = false.into();
            }
        }
        for Delivery { to, msg } in out.deliveries {
            let data = Bytes::from(self.format.to_string(&msg));
            for h in to {
                if let Some(port) = self.ports.get(&h) {
                    port.send_data(None, data.clone(), false);
                }
            }
        }
        for (url, msg) in out.posts {
            self.backend.post(url, Bytes::from(self.format.to_string(&msg)));
        }
        if let Some(ctx) = ctx.filter(|c| self.events && !out.notes.is_empty() && c.events_enabled()) {
            for note in out.notes {
                ctx.notify_event(DESCRIPTOR.package, note);
            }
        }
        out.reply
    }
}

impl Plugin for TextRoom {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn gauges(&self) -> Vec<(&'static str, u64)> {
        let state = self.shared.lock();
        vec![("rooms", state.rooms.count() as u64), ("participants", state.rooms.participant_count() as u64)]
    }

    fn init(&self, env: &PluginEnv) -> Result<(), PluginError> {
        let cfg = Config::parse(&env.config);
        let mut st = self.shared.lock();
        st.rooms = Rooms::new(cfg.settings.admin_key, cfg.settings.string_ids);
        st.format = cfg.settings.format;
        st.events = cfg.settings.events;
        for (id, settings) in cfg.rooms {
            tracing::debug!(room = %id, description = %settings.description, "TextRoom: room from the configuration");
            st.rooms.add(id, settings);
        }
        st.rooms_file = cfg.settings.rooms_file.map(std::path::PathBuf::from);
        if let Some(file) = &st.rooms_file {
            let saved = crate::rooms_file::load(file).map_err(|reason| PluginError { code: 499, reason })?;
            let string_ids = st.rooms.string_ids;
            for (id, settings) in Config::saved_rooms(&saved, string_ids) {
                st.rooms.add_permanent(id, settings);
            }
        }
        tracing::info!(rooms = st.rooms.count(), "TextRoom plugin initialized");
        Ok(())
    }

    fn create_session(&self, ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        self.shared.lock().ports.insert(ctx.handle_id(), ctx.media().clone());
        Ok(Box::new(TextRoomSession { ctx, shared: self.shared.clone(), setup: false }))
    }

    fn handle_admin_message(&self, request: Map<String, Value>) -> Option<Value> {
        let name = match request.req_str("request") {
            Ok(n) => n,
            Err(e) => return Some(TrError::from(e).to_json("event")),
        };
        if !is_sync(name) {
            return Some(unknown_request(name));
        }
        let from = Origin { via: Via::Admin, handle: None };
        let reply = self.shared.lock().run(name, &request, from, None);
        Some(api_reply(reply))
    }
}

/// One handle's TextRoom state.
struct TextRoomSession {
    ctx: PluginCtx,
    shared: Arc<Shared>,
    /// A `setup` offered a PeerConnection that has not gone away since.
    setup: bool,
}

impl TextRoomSession {
    /// `setup`, `ack`, `restart`: answered with an event (and an offer for setup/restart).
    fn negotiate(&mut self, request: &str, transaction: Transaction) {
        let tx = Some(transaction);
        let ok = json!({"textroom": "event", "result": "ok"});
        let error = |reason: &str| TrError::new(ALREADY_SETUP, reason).to_json("error");
        let pushed = match request {
            "setup" if self.setup => self.ctx.push_event(tx, error("PeerConnection already setup"), None),
            "setup" => {
                self.setup = true;
                self.ctx.push_offer(tx, ok, OfferSpec { data: true, ..Default::default() })
            }
            "restart" if !self.setup => self.ctx.push_event(tx, error("PeerConnection not setup"), None),
            "restart" => self.ctx.push_offer(tx, ok, OfferSpec { data: true, ice_restart: true, ..Default::default() }),
            // `ack`: the core already applied the answer it carries.
            _ => self.ctx.push_event(tx, ok, None),
        };
        if let Err(e) = pushed {
            tracing::warn!(error = %e, request, "TextRoom: could not push the event");
        }
    }

    /// One data-channel request; returns the reply to send back (with its transaction).
    fn data_request(&self, root: &Value) -> Option<Value> {
        let empty = Map::new();
        // Janus compat: a non-object reads as an object without fields (413 for `textroom`).
        let body = root.as_object().unwrap_or(&empty);
        let (name, transaction) = match (body.req_str("textroom"), body.req_str("transaction")) {
            (Ok(name), Ok(t)) => (name, t),
            (Err(e), _) | (_, Err(e)) => return Some(TrError::from(e).to_json("error")),
        };
        let from = Origin { via: Via::DataChannel, handle: Some(self.ctx.handle_id()) };
        let reply = self.shared.lock().run(name, body, from, Some(&self.ctx))?;
        let mut reply = reply.unwrap_or_else(|e| e.to_json("error"));
        if let Some(obj) = reply.as_object_mut() {
            obj.insert("transaction".into(), transaction.into());
        }
        Some(reply)
    }

    /// Leaves every room and drops the port (idempotent): on `destroy_session`, and on drop for
    /// a session the core discards without destroying it (after a panic).
    fn forget(&self) {
        self.leave_rooms();
        self.shared.lock().ports.remove(&self.ctx.handle_id());
    }

    /// Leaves every room (the others are told).
    fn leave_rooms(&self) {
        let mut st = self.shared.lock();
        let out = st.rooms.leave_all(self.ctx.handle_id());
        st.carry_out(out, Some(&self.ctx));
    }
}

impl PluginSession for TextRoomSession {
    fn handle_message(&mut self, msg: PluginMessage) -> PluginReply {
        let name = match msg.body.req_str("request") {
            Ok(n) => n.to_owned(),
            Err(e) => return PluginReply::Sync(TrError::from(e).to_json("event")),
        };
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "setup" | "ack" | "restart" => {
                self.negotiate(&lower, msg.transaction);
                PluginReply::Async { hint: None }
            }
            n if is_sync(n) => {
                let from = Origin { via: Via::JanusApi, handle: Some(self.ctx.handle_id()) };
                let reply = self.shared.lock().run(&name, &msg.body, from, Some(&self.ctx));
                PluginReply::Sync(api_reply(reply))
            }
            _ => PluginReply::Sync(unknown_request(&name)),
        }
    }

    fn incoming_data(&mut self, msg: DataMessage) {
        if msg.binary {
            // Janus compat: binary data is dropped.
            tracing::warn!(bytes = msg.data.len(), "TextRoom: binary data channel message dropped");
            return;
        }
        let root: Value = match serde_json::from_slice(&msg.data) {
            Ok(v) => v,
            Err(e) => {
                // Janus compat: unparsable text gets no answer.
                tracing::warn!(error = %e, "TextRoom: data channel message is not JSON; dropped");
                return;
            }
        };
        if let Some(reply) = self.data_request(&root) {
            let format = self.shared.lock().format;
            let data = Bytes::from(format.to_string(&reply));
            self.ctx.media().send_data(Some(&msg.label), data, false);
        }
    }

    fn hangup_media(&mut self) {
        // The PeerConnection is gone: out of every room, and ready for a new `setup`.
        self.setup = false;
        self.leave_rooms();
    }

    fn destroy(&mut self) {
        self.forget();
    }

    fn query(&self) -> Value {
        let rooms = self.shared.lock().rooms.memberships(self.ctx.handle_id());
        json!({"setup": self.setup, "rooms": rooms, "destroyed": 0})
    }
}

impl Drop for TextRoomSession {
    fn drop(&mut self) {
        self.forget();
    }
}

fn is_sync(name: &str) -> bool {
    SYNC_REQUESTS.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// A Janus/Admin API reply from the processor's answer.
fn api_reply(reply: Option<Result<Value, TrError>>) -> Value {
    match reply {
        Some(Ok(v)) => v,
        Some(Err(e)) => e.to_json("error"),
        None => TrError::new(UNKNOWN_ERROR, "Invalid response").to_json("error"),
    }
}

fn unknown_request(name: &str) -> Value {
    TrError::new(INVALID_REQUEST, format!("Unknown request '{name}'")).to_json("event")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn plugin() -> TextRoom {
        let p = TextRoom::default();
        let env = PluginEnv {
            config: obj(json!({"room-1234": {"description": "Demo Room", "secret": "adminpwd"}})),
            events_enabled: false,
        };
        p.init(&env).unwrap_or_default();
        p
    }

    #[test]
    fn admin_messages() {
        let p = plugin();
        let r = p.handle_admin_message(obj(json!({"request": "list"})));
        assert_eq!(
            r,
            Some(json!({"textroom": "success", "list": [
                {"room": 1234, "description": "Demo Room", "pin_required": false, "num_participants": 0, "history": 0}
            ]}))
        );
        let r = p.handle_admin_message(obj(json!({"request": "CREATE", "room": 5555})));
        assert_eq!(r, Some(json!({"textroom": "created", "room": 5555, "permanent": false})));
        let r = p.handle_admin_message(obj(json!({"request": "destroy", "room": 1234, "secret": "x"})));
        assert_eq!(r, Some(json!({"textroom": "error", "error_code": 419, "error": "Unauthorized (wrong secret)"})));
        let r = p.handle_admin_message(obj(json!({"request": "join", "room": 1234})));
        assert_eq!(r, Some(json!({"textroom": "event", "error_code": 415, "error": "Unknown request 'join'"})));
        let r = p.handle_admin_message(obj(json!({"request": 3})));
        assert_eq!(
            r,
            Some(
                json!({"textroom": "event", "error_code": 414, "error": "Invalid element type (request should be a string)"})
            )
        );
        let r = p.handle_admin_message(obj(json!({})));
        assert_eq!(
            r,
            Some(json!({"textroom": "event", "error_code": 413, "error": "Missing mandatory element (request)"}))
        );
    }

    #[test]
    fn poisoned_lock_is_survived() {
        let p = plugin();
        let shared = p.shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = shared.state.lock();
            panic!("poison");
        })
        .join();
        assert!(p.shared.state.is_poisoned());
        let r = p.handle_admin_message(obj(json!({"request": "exists", "room": 1234})));
        assert_eq!(r, Some(json!({"textroom": "success", "room": 1234, "exists": true})));
    }
}
