//! What the transports share of Admin `query_transport` and of transport events (type 128): the
//! `events` switch, and the `configure` / `connections` requests Janus's transports answer (MQTT
//! only `configure`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use portunus_actors::api::ConnectionId;
use portunus_actors::transport::TransportControl;
use portunus_actors::Core;
use serde_json::{json, Map, Value};

/// Janus's transport error codes (`JANUS_HTTP_ERROR_*`, `JANUS_WEBSOCKETS_ERROR_*`).
const INVALID_REQUEST: u32 = 411;
const MISSING_ELEMENT: u32 = 412;
const INVALID_ELEMENT: u32 = 413;

/// Adds a transport's counts to a `connections` answer.
type CountConnections = Box<dyn Fn(&mut Map<String, Value>) + Send + Sync>;

/// One transport's control: whether it reports transport events, and how to count its
/// connections for `query_transport`'s `connections`.
pub struct Control {
    package: &'static str,
    core: Core,
    events: AtomicBool,
    /// `None` for a transport that answers `configure` only.
    connections: Option<CountConnections>,
}

impl Control {
    /// A control for `package`, registered with the core; `events` is the transport's `events`
    /// setting, `connections` adds the counts to a `connections` answer.
    pub fn register(
        core: &Core,
        package: &'static str,
        events: bool,
        connections: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static,
    ) -> Arc<Control> {
        Self::register_with(core, package, events, Some(Box::new(connections)))
    }

    /// A control for a transport that has no connections to count (one broker link).
    pub fn register_configure_only(core: &Core, package: &'static str, events: bool) -> Arc<Control> {
        Self::register_with(core, package, events, None)
    }

    fn register_with(
        core: &Core,
        package: &'static str,
        events: bool,
        connections: Option<CountConnections>,
    ) -> Arc<Control> {
        let control = Arc::new(Control { package, core: core.clone(), events: AtomicBool::new(events), connections });
        core.register_transport_control(package, control.clone());
        control
    }

    /// Reports a transport event about `instance`, if event handlers listen and this transport's
    /// events are on. `data` is only built then.
    pub fn notify(&self, instance: ConnectionId, data: impl FnOnce() -> Value) {
        if self.events.load(Ordering::Relaxed) && self.core.events_enabled() {
            self.core.publish_transport_event(self.package, instance, data());
        }
    }

    fn configure(&self, request: &Map<String, Value>, response: &mut Map<String, Value>) -> Result<(), Value> {
        let events = match request.get("events") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(error(INVALID_ELEMENT, "Invalid element type (events should be a boolean)")),
        };
        let layout = match request.get("json") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(error(INVALID_ELEMENT, "Invalid element type (json should be a string)")),
        };
        let mut notes = Vec::new();
        if let Some(events) = events {
            if events && !self.core.events_enabled() {
                notes.push("Event handlers disabled at the core level");
            }
            self.events.store(events, Ordering::Relaxed);
        }
        // Replies on these transports are always compact JSON: "compact" and "plain" are what
        // they already do; indented output is not offered.
        if let Some(layout) = layout {
            if !(layout.eq_ignore_ascii_case("compact") || layout.eq_ignore_ascii_case("plain")) {
                notes.push("Ignored unsupported indentation format");
            }
        }
        response.insert("result".into(), json!(200));
        if !notes.is_empty() {
            response.insert("notes".into(), json!(notes));
        }
        Ok(())
    }
}

impl TransportControl for Control {
    fn query(&self, request: &Map<String, Value>) -> Value {
        let name = match request.get("request") {
            None => return error(MISSING_ELEMENT, "Missing mandatory element (request)"),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return error(INVALID_ELEMENT, "Invalid element type (request should be a string)"),
        };
        let mut response = Map::new();
        if name.eq_ignore_ascii_case("configure") {
            if let Err(e) = self.configure(request, &mut response) {
                return e;
            }
        } else if let Some(count) = self.connections.as_ref().filter(|_| name.eq_ignore_ascii_case("connections")) {
            response.insert("result".into(), json!(200));
            count(&mut response);
        } else {
            return error(INVALID_REQUEST, &format!("Unknown request '{name}'"));
        }
        Value::Object(response)
    }
}

fn error(code: u32, reason: &str) -> Value {
    json!({"error_code": code, "error": reason})
}
