//! The plugin API: what a plugin implements and what the core offers it.
//!
//! The contract is the size of Janus's `plugin.h`. [`Plugin`] is the plugin as a whole (identity,
//! admin messages, per-handle session factory); [`PluginSession`] is its state for one handle and
//! receives the per-handle calls (`handle_message`, `setup_media`, `incoming_data`, `hangup_media`,
//! ...). A plugin talks back only through its [`PluginCtx`]: it never sees sessions, transports or
//! ICE. Every call into plugin code runs inside the panic boundary in [`boundary`].

pub mod boundary;
mod ctx;
pub mod registry;

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::peer::answer::answer_codecs;
pub use ctx::{PluginCtx, PushError};
pub use registry::PluginRegistry;

use crate::api::{Jsep, Transaction};

/// Identity of a plugin, as listed in `server_info.plugins`.
#[derive(Clone, Debug, Serialize)]
pub struct PluginDescriptor {
    /// Package name, e.g. `janus.plugin.echotest`.
    #[serde(skip)]
    pub package: &'static str,
    /// Human readable name.
    pub name: &'static str,
    /// Author.
    pub author: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Version string, e.g. "0.0.7".
    pub version_string: &'static str,
    /// Numeric version.
    pub version: u32,
}

/// A plugin's answer to a `message`.
pub enum PluginReply {
    /// Answer now: becomes `success` with `plugindata`. Must be a JSON object.
    Sync(Value),
    /// A synchronous answer the plugin must first ask one of its own actors for (a room): the
    /// handle waits for it, then replies as for [`PluginReply::Sync`].
    Later(futures_util::future::BoxFuture<'static, Value>),
    /// Answer later with [`PluginCtx::push_event`]: becomes `ack` (with the optional hint).
    Async {
        /// Text for the `ack`'s `hint` field.
        hint: Option<String>,
    },
    /// The plugin refused the request outright: becomes core error 462 with this text.
    Error(String),
}

impl std::fmt::Debug for PluginReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginReply::Sync(v) => f.debug_tuple("Sync").field(v).finish(),
            PluginReply::Later(_) => f.write_str("Later(..)"),
            PluginReply::Async { hint } => f.debug_struct("Async").field("hint", hint).finish(),
            PluginReply::Error(e) => f.debug_tuple("Error").field(e).finish(),
        }
    }
}

/// An error from a plugin outside of message handling (attach, init).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("plugin error {code}: {reason}")]
pub struct PluginError {
    /// Plugin-defined numeric code (reported in `Couldn't attach to plugin: error '<n>'`).
    pub code: i32,
    /// Explanation for logs.
    pub reason: String,
}

/// A `message` delivered to a plugin session.
#[derive(Debug)]
pub struct PluginMessage {
    /// The request's transaction, to pass back to [`PluginCtx::push_event`].
    pub transaction: Transaction,
    /// The `body` object.
    pub body: Map<String, Value>,
    /// The JSEP, after the core processed it (anonymized SDP, `update` flag).
    pub jsep: Option<Jsep>,
}

/// A data-channel message received from the peer.
#[derive(Clone, Debug)]
pub struct DataMessage {
    /// Channel label.
    pub label: String,
    /// Sub-protocol, if any.
    pub protocol: Option<String>,
    /// Text or binary.
    pub binary: bool,
    /// Payload.
    pub data: bytes::Bytes,
}

/// The environment a plugin is initialized with.
#[derive(Clone, Debug, Default)]
pub struct PluginEnv {
    /// The plugin's section of the configuration (Janus `janus.plugin.<name>.jcfg`), as JSON.
    pub config: Map<String, Value>,
    /// Whether event handlers are on (`events_is_enabled`).
    pub events_enabled: bool,
}

/// A plugin: identity, configuration and a factory of per-handle sessions.
pub trait Plugin: Send + Sync + 'static {
    /// Who the plugin is.
    fn descriptor(&self) -> &PluginDescriptor;

    /// Called once at startup with the plugin's configuration.
    fn init(&self, _env: &PluginEnv) -> Result<(), PluginError> {
        Ok(())
    }

    /// A handle attached: create the plugin's state for it (`create_session`).
    fn create_session(&self, ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError>;

    /// An Admin API `message_plugin` request. `None` means the plugin has no Admin API hook
    /// (the core answers 490 `Plugin doesn't support Admin API messages`).
    fn handle_admin_message(&self, _request: Map<String, Value>) -> Option<Value> {
        None
    }

    /// An Admin API `message_plugin` request whose answer the plugin computes later (from one of
    /// its actors). By default, [`Plugin::handle_admin_message`]'s answer.
    fn handle_admin_message_later(
        &self,
        request: Map<String, Value>,
    ) -> Option<futures_util::future::BoxFuture<'static, Value>> {
        self.handle_admin_message(request).map(|v| Box::pin(futures_util::future::ready(v)) as _)
    }

    /// Gauges for `/metrics`, e.g. `("rooms", 3)`, `("participants", 12)`: exported as
    /// `portunus_plugin_<name>{plugin="<package>"}`.
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Called once at shutdown.
    fn destroy(&self) {}
}

/// A plugin's state for one handle. Calls arrive one at a time, in order, from the handle's actor.
pub trait PluginSession: Send + 'static {
    /// A `message` request (`handle_message`).
    fn handle_message(&mut self, msg: PluginMessage) -> PluginReply;

    /// The PeerConnection is up (`setup_media`).
    fn setup_media(&mut self) {}

    /// A data-channel message arrived (`incoming_data`).
    fn incoming_data(&mut self, _msg: DataMessage) {}

    /// The data channel can take more data (`data_ready`).
    fn data_ready(&mut self) {}

    /// Packet loss crossed the slow-link threshold (`slow_link`).
    fn slow_link(&mut self, _mid: &str, _video: bool, _uplink: bool) {}

    /// The PeerConnection went away (`hangup_media`).
    fn hangup_media(&mut self) {}

    /// The handle is being detached or its session destroyed (`destroy_session`).
    fn destroy(&mut self) {}

    /// State for the Admin API `handle_info.plugin_specific` (`query_session`).
    fn query(&self) -> Value {
        Value::Object(Map::new())
    }
}

/// A shared plugin.
pub type SharedPlugin = Arc<dyn Plugin>;
