//! `portunus.plugin.faulty`: a test-only plugin that panics on demand, to prove the panic
//! boundary. Built only with the `fault-injection` feature.
//!
//! Body `{"panic": "message"}` panics in `handle_message`; `{"panic_in": "query"}` arms a panic
//! for the Admin API `handle_info`; anything else answers `{"faulty": "ok"}` synchronously.

use portunus_actors::plugin::{
    Plugin, PluginCtx, PluginDescriptor, PluginError, PluginMessage, PluginReply, PluginSession,
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

    fn create_session(&self, _ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        Ok(Box::new(FaultySession { panic_in_query: false }))
    }

    fn handle_admin_message(&self, request: Map<String, Value>) -> Option<Value> {
        if request.contains_key("panic") {
            panic!("faulty: admin panic requested");
        }
        Some(json!({"faulty": "ok"}))
    }
}

struct FaultySession {
    panic_in_query: bool,
}

impl PluginSession for FaultySession {
    fn handle_message(&mut self, msg: PluginMessage) -> PluginReply {
        if let Some(text) = msg.body.get("panic").and_then(Value::as_str) {
            panic!("faulty: {text}");
        }
        if msg.body.get("panic_in").and_then(Value::as_str) == Some("query") {
            self.panic_in_query = true;
        }
        PluginReply::Sync(json!({"faulty": "ok"}))
    }

    fn query(&self) -> Value {
        if self.panic_in_query {
            panic!("faulty: query panic requested");
        }
        json!({"armed": false})
    }
}
