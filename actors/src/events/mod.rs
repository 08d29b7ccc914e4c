//! The event bus: core, session, handle, plugin and transport events in the Janus event-handler
//! envelope (reference section 7), fanned out to event handlers.
//!
//! Publishing is a non-blocking `try_send` into the bus's bounded mailbox; when handlers are off
//! it costs one branch. Sinks (webhook, WebSocket, brokers) subscribe with a type mask.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::api::{HandleId, SessionId};

/// Event types and their mask bits (reference 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[repr(u32)]
pub enum EventType {
    /// 1: session created/destroyed/timeout.
    Session = 1,
    /// 2: handle attached/detached.
    Handle = 2,
    /// 4: Admin `custom_event`.
    External = 4,
    /// 8: SDP exchanged.
    Jsep = 8,
    /// 16: ICE/DTLS/PC state.
    Webrtc = 16,
    /// 32: media state, slow link, stats.
    Media = 32,
    /// 64: plugin-defined.
    Plugin = 64,
    /// 128: transport-defined.
    Transport = 128,
    /// 256: server started/shutdown/status.
    Core = 256,
}

/// One event in the Janus envelope.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// `server_name`.
    pub emitter: Arc<str>,
    /// Type number.
    #[serde(rename = "type")]
    pub kind: u32,
    /// Subtype, only when > 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtype: Option<u32>,
    /// Real-time µs.
    pub timestamp: u64,
    /// Session, when relevant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Handle, when relevant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<HandleId>,
    /// Opaque id of the handle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque_id: Option<Arc<str>>,
    /// Per-instance sequence number, so receivers can see gaps.
    pub seq: u64,
    /// Type-specific body.
    pub event: Value,
}

/// Fan-out target: receives every event whose type is in its mask.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver(pub Arc<Event>);

/// Publish one event.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

/// Add a handler.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    /// The handler's package, e.g. `janus.eventhandler.sampleevh` (for `query_eventhandler`).
    pub package: &'static str,
    /// Mask of [`EventType`] bits.
    pub mask: u32,
    /// Where to send events.
    pub sink: Recipient<Deliver>,
    /// Where Admin `query_eventhandler` requests go, if the handler answers them.
    pub query: Option<Recipient<QueryHandler>>,
}

/// Admin `query_eventhandler` for one handler: the `request` object in, the `response` out.
/// Errors use the module codes of reference 2.2 (`{"error_code":411..499,"error":...}`) inside
/// the response, so the result is always a JSON object.
#[derive(Message)]
#[rtype(result = "serde_json::Value")]
pub struct QueryHandler(pub serde_json::Map<String, Value>);

/// Admin `query_eventhandler`: route to the named handler. `None` when there is no such handler.
#[derive(Message)]
#[rtype(result = "Option<Recipient<QueryHandler>>")]
pub struct FindHandler(pub String);

/// Mask bits from a Janus `events` string (`all`, `none`, or a comma list of labels).
pub fn parse_mask(s: &str) -> u32 {
    let mut mask = 0;
    for label in s.split(',').map(|l| l.trim().to_ascii_lowercase()) {
        mask |= match label.as_str() {
            "all" => 0x1FF,
            "none" | "" => 0,
            "sessions" => EventType::Session as u32,
            "handles" => EventType::Handle as u32,
            "external" => EventType::External as u32,
            "jsep" => EventType::Jsep as u32,
            "webrtc" => EventType::Webrtc as u32,
            "media" => EventType::Media as u32,
            "plugins" => EventType::Plugin as u32,
            "transports" => EventType::Transport as u32,
            "core" => EventType::Core as u32,
            _ => 0,
        };
    }
    mask
}

struct Subscriber {
    package: &'static str,
    mask: u32,
    sink: Recipient<Deliver>,
    query: Option<Recipient<QueryHandler>>,
}

/// The bus actor.
#[derive(Default)]
pub struct EventBus {
    sinks: Vec<Subscriber>,
    dropped: u64,
}

impl Actor for EventBus {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<Publish> for EventBus {
    type Result = ();
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let event = Arc::new(msg.0);
        for s in &self.sinks {
            if s.mask & event.kind != 0 && s.sink.try_send(Deliver(event.clone())).is_err() {
                self.dropped += 1;
            }
        }
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.sinks.push(Subscriber { package: msg.package, mask: msg.mask, sink: msg.sink, query: msg.query });
    }
}

impl Handler<FindHandler> for EventBus {
    type Result = Option<Recipient<QueryHandler>>;
    fn handle(&mut self, msg: FindHandler, _: &mut Context<Self>) -> Self::Result {
        self.sinks.iter().find(|s| s.package == msg.0).and_then(|s| s.query.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(parse_mask("all"), 0x1FF);
        assert_eq!(parse_mask("sessions, handles"), 3);
        assert_eq!(parse_mask("none"), 0);
        assert_eq!(parse_mask("Core,media"), 256 | 32);
    }
}

/// Cheap, cloneable publisher handed to actors and plugins.
#[derive(Clone)]
pub struct EventPublisher {
    bus: Option<Addr<EventBus>>,
    emitter: Arc<str>,
    seq: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl EventPublisher {
    /// A publisher into `bus`; `None` when event handlers are off.
    pub fn new(bus: Option<Addr<EventBus>>, emitter: &str) -> Self {
        EventPublisher { bus, emitter: Arc::from(emitter), seq: Arc::default(), dropped: Arc::default() }
    }

    /// The bus, to subscribe handlers (`None` when `events.broadcast` is off).
    pub fn bus(&self) -> Option<&Addr<EventBus>> {
        self.bus.as_ref()
    }

    /// Whether anyone listens (`events_is_enabled`).
    pub fn enabled(&self) -> bool {
        self.bus.is_some()
    }

    /// Events lost because the bus was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Publishes an event; never blocks.
    pub fn publish(
        &self,
        kind: EventType,
        subtype: Option<u32>,
        session_id: Option<SessionId>,
        handle_id: Option<HandleId>,
        opaque_id: Option<Arc<str>>,
        event: Value,
    ) {
        let Some(bus) = &self.bus else { return };
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let e = Event {
            emitter: self.emitter.clone(),
            kind: kind as u32,
            subtype: subtype.filter(|s| *s > 0),
            timestamp,
            session_id,
            handle_id,
            opaque_id,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            event,
        };
        if bus.try_send(Publish(e)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
