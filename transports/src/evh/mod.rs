//! Event handlers (reference section 7): sinks on the core's event bus that forward events to an
//! HTTP webhook (`sampleevh`), a WebSocket server (`wsevh`), RabbitMQ (`rabbitmqevh`) or MQTT
//! (`mqttevh`).
//!
//! Each handler is a supervised [`EvhActor`] subscribed to the bus plus one sender task. The
//! actor filters by the handler's mask and pushes into a bounded queue; a full queue drops the
//! event and counts it, so a dead or stalled receiver costs a counter, never memory. The sender
//! takes events in batches (up to [`MAX_BATCH`] with `grouping`, else one at a time) and delivers
//! them its own way, retrying as its settings say. Envelopes carry the bus's per-instance `seq`,
//! so receivers can see gaps.
//!
//! Admin `query_eventhandler` reaches the actor: `{"request":"tweak", ...}` changes any setting
//! of the handler's section at runtime (same key names as the configuration), and
//! `{"request":"status"}` reports queue depth, drops, deliveries and failures.

pub mod mqtt;
pub mod rabbitmq;
pub mod webhook;
pub mod ws;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use portunus_actors::events::{parse_mask, Deliver, Event, QueryHandler, Subscribe};
use portunus_actors::Core;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};

use crate::lanes::JsonStyle;
use crate::metrics::{HandlerStats, Observability};

/// Most events in one grouped delivery (Janus's sample handler batches up to 100).
pub const MAX_BATCH: usize = 100;

/// The keys every handler section shares.
pub trait HandlerSettings: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// `events`: the mask string.
    fn events(&self) -> &str;
    /// `grouping`: deliver arrays of events.
    fn grouping(&self) -> bool;
    /// `json`: layout of what is sent.
    fn json(&self) -> &str;
    /// Events the handler's queue holds before dropping.
    fn queue_size(&self) -> usize;
}

/// What a sender task gets.
pub struct SenderParts<S> {
    /// Batches of events, in order.
    pub queue: mpsc::Receiver<Arc<Event>>,
    /// The current settings (changed by `tweak`).
    pub settings: watch::Receiver<S>,
    /// Counters.
    pub stats: Arc<HandlerStats>,
}

impl<S: HandlerSettings> SenderParts<S> {
    /// Waits for the next batch: up to [`MAX_BATCH`] events with `grouping`, else one. `None`
    /// when the handler is gone.
    pub async fn next_batch(&mut self, buf: &mut Vec<Arc<Event>>) -> Option<()> {
        buf.clear();
        let limit = if self.settings.borrow().grouping() { MAX_BATCH } else { 1 };
        let n = self.queue.recv_many(buf, limit).await;
        self.stats.depth.fetch_sub(n as u64, Ordering::Relaxed);
        (n > 0).then_some(())
    }

    /// The batch as JSON: an array with `grouping`, else the one object.
    pub fn render(&self, batch: &[Arc<Event>]) -> String {
        let s = self.settings.borrow();
        let json = if s.grouping() {
            serde_json::to_string(batch)
        } else {
            batch.first().map(serde_json::to_string).unwrap_or_else(|| Ok("{}".into()))
        };
        JsonStyle::parse(s.json()).apply(json.unwrap_or_default())
    }
}

/// The bus-facing actor of one handler.
pub struct EvhActor<S: HandlerSettings> {
    package: &'static str,
    mask: Arc<AtomicU32>,
    queue: mpsc::Sender<Arc<Event>>,
    settings: watch::Sender<S>,
    stats: Arc<HandlerStats>,
    warned_full: Arc<AtomicBool>,
}

impl<S: HandlerSettings> Actor for EvhActor<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl<S: HandlerSettings> Supervised for EvhActor<S> {}

impl<S: HandlerSettings> Handler<Deliver> for EvhActor<S> {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        if self.mask.load(Ordering::Relaxed) & msg.0.kind == 0 {
            return;
        }
        match self.queue.try_send(msg.0) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                self.stats.depth.fetch_add(1, Ordering::Relaxed);
                self.warned_full.store(false, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(handler = self.package, "event handler queue full: dropping events");
                }
            }
        }
    }
}

impl<S: HandlerSettings> Handler<QueryHandler> for EvhActor<S> {
    type Result = MessageResult<QueryHandler>;

    fn handle(&mut self, msg: QueryHandler, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.query(msg.0))
    }
}

impl<S: HandlerSettings> EvhActor<S> {
    fn apply_tweak(&mut self, next: Result<S, String>) -> Value {
        match next {
            Ok(next) => {
                self.mask.store(parse_mask(next.events()), Ordering::Relaxed);
                self.settings.send_replace(next);
                json!({"result": 200})
            }
            Err(e) => json!({"error_code": 413, "error": e}),
        }
    }

    fn query(&mut self, request: Map<String, Value>) -> Value {
        match request.get("request").and_then(Value::as_str) {
            Some("tweak") => {
                // The watch guard must be gone before send_replace takes the write side.
                let next = tweak(&*self.settings.borrow(), &request);
                self.apply_tweak(next)
            }
            Some("status") => {
                let st = &self.stats;
                json!({
                    "result": 200,
                    "queue_depth": st.depth.load(Ordering::Relaxed),
                    "queue_size": self.queue.max_capacity(),
                    "queued": st.queued.load(Ordering::Relaxed),
                    "dropped": st.dropped.load(Ordering::Relaxed),
                    "sent": st.sent.load(Ordering::Relaxed),
                    "failed": st.failed.load(Ordering::Relaxed),
                    "settings": redacted(&*self.settings.borrow()),
                })
            }
            Some(other) => json!({"error_code": 412, "error": format!("Unsupported request {other}")}),
            None => json!({"error_code": 411, "error": "Missing mandatory element (request)"}),
        }
    }
}

/// The current settings with the request's keys laid over them (`request` itself ignored).
fn tweak<S: HandlerSettings>(current: &S, request: &Map<String, Value>) -> Result<S, String> {
    let Value::Object(mut merged) = serde_json::to_value(current).map_err(|e| e.to_string())? else {
        return Err("settings are not an object".into());
    };
    for (k, v) in request {
        if k == "request" {
            continue;
        }
        if !merged.contains_key(k) {
            return Err(format!("Unknown setting {k}"));
        }
        merged.insert(k.clone(), v.clone());
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| format!("Invalid element type ({e})"))
}

/// Settings for `status`, with secrets masked.
fn redacted<S: Serialize>(s: &S) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for (k, val) in m.iter_mut() {
            let secret = ["pwd", "password", "secret"].iter().any(|w| k.contains(w));
            if secret && !val.is_null() {
                *val = Value::String("********".into());
            }
        }
    }
    v
}

/// Subscribes a handler to the bus and returns what its sender task needs. `None` when event
/// broadcasting is off (`events.broadcast = false`), which is logged.
pub fn subscribe<S: HandlerSettings>(
    core: &Core,
    obs: &Observability,
    package: &'static str,
    settings: S,
) -> Option<SenderParts<S>> {
    let Some(bus) = core.state().events.bus() else {
        tracing::warn!(handler = package, "event handler enabled but events.broadcast is false: not started");
        return None;
    };
    let stats = HandlerStats::new(package);
    obs.add_handler(stats.clone());
    let (tx, rx) = mpsc::channel(settings.queue_size().max(1));
    let mask = Arc::new(AtomicU32::new(parse_mask(settings.events())));
    let (settings_tx, settings_rx) = watch::channel(settings);
    let actor_stats = stats.clone();
    let addr = actix::Supervisor::start(move |_| EvhActor {
        package,
        mask,
        queue: tx,
        settings: settings_tx,
        stats: actor_stats,
        warned_full: Arc::new(AtomicBool::new(false)),
    });
    // Every type goes to the actor; it filters by its own (tweakable) mask.
    bus.do_send(Subscribe { package, mask: 0x1FF, sink: addr.clone().recipient(), query: Some(addr.recipient()) });
    tracing::info!(handler = package, "event handler started");
    Some(SenderParts { queue: rx, settings: settings_rx, stats })
}

/// The `subtype`-free name of an event type, as Janus's MQTT handler puts it in topics.
pub fn type_name(kind: u32) -> &'static str {
    match kind {
        1 => "sessions",
        2 => "handles",
        4 => "external",
        8 => "jsep",
        16 => "webrtc",
        32 => "media",
        64 => "plugins",
        128 => "transports",
        256 => "core",
        _ => "unknown",
    }
}

/// Starts every enabled handler.
pub fn start_all(core: &Core, obs: &Observability, s: &EvhSettings) {
    if s.sampleevh.enabled {
        if let Some(parts) = subscribe(core, obs, webhook::PACKAGE, s.sampleevh.clone()) {
            actix_rt::spawn(webhook::run(parts));
        }
    }
    if s.wsevh.enabled {
        if let Some(parts) = subscribe(core, obs, ws::PACKAGE, s.wsevh.clone()) {
            actix_rt::spawn(ws::run(parts));
        }
    }
    if s.rabbitmqevh.enabled {
        if let Some(parts) = subscribe(core, obs, rabbitmq::PACKAGE, s.rabbitmqevh.clone()) {
            let link = crate::metrics::LinkState::new(rabbitmq::PACKAGE);
            obs.add_link(link.clone());
            actix_rt::spawn(rabbitmq::run(parts, link));
        }
    }
    if s.mqttevh.enabled {
        if let Some(parts) = subscribe(core, obs, mqtt::PACKAGE, s.mqttevh.clone()) {
            let link = crate::metrics::LinkState::new(mqtt::PACKAGE);
            obs.add_link(link.clone());
            actix_rt::spawn(mqtt::run(parts, link));
        }
    }
}

/// The handler sections.
#[derive(Clone, Debug, Default)]
pub struct EvhSettings {
    /// `[sampleevh]`
    pub sampleevh: webhook::WebhookSettings,
    /// `[wsevh]`
    pub wsevh: ws::WsEvhSettings,
    /// `[rabbitmqevh]`
    pub rabbitmqevh: rabbitmq::RabbitEvhSettings,
    /// `[mqttevh]`
    pub mqttevh: mqtt::MqttEvhSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tweak_overlays_known_keys() {
        let s = webhook::WebhookSettings::default();
        let mut req = Map::new();
        req.insert("request".into(), json!("tweak"));
        req.insert("max_retransmissions".into(), json!(9));
        req.insert("events".into(), json!("sessions"));
        let next = tweak(&s, &req).unwrap();
        assert_eq!(next.max_retransmissions, 9);
        assert_eq!(next.events, "sessions");
        req.insert("nonsense".into(), json!(1));
        assert!(tweak(&s, &req).is_err());
        let mut bad = Map::new();
        bad.insert("max_retransmissions".into(), json!("many"));
        assert!(tweak(&s, &bad).is_err());
    }

    #[test]
    fn secrets_are_masked() {
        let s = webhook::WebhookSettings { backend_pwd: Some("x".into()), ..Default::default() };
        let v = redacted(&s);
        assert_eq!(v["backend_pwd"], "********");
        assert_eq!(v["backend_user"], Value::Null);
    }
}
