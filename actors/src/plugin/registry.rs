//! `PluginRegistry`: the loaded plugins by package name; answers lookups and Admin
//! `message_plugin`, each inside the panic boundary.

use std::collections::BTreeMap;

use actix::prelude::*;
use serde_json::{Map, Value};

use super::boundary::guard;
use super::{PluginDescriptor, SharedPlugin};
use crate::api::{ApiError, ErrorCode};

/// The registry actor.
pub struct PluginRegistry {
    plugins: BTreeMap<&'static str, SharedPlugin>,
}

impl PluginRegistry {
    /// A registry of already initialized plugins.
    pub fn new(plugins: Vec<SharedPlugin>) -> Self {
        PluginRegistry { plugins: plugins.into_iter().map(|p| (p.descriptor().package, p)).collect() }
    }
}

impl Actor for PluginRegistry {
    type Context = Context<Self>;
}

/// Find a plugin by package.
#[derive(Message)]
#[rtype(result = "Option<SharedPlugin>")]
pub struct FindPlugin(pub String);

impl Handler<FindPlugin> for PluginRegistry {
    type Result = Option<SharedPlugin>;
    fn handle(&mut self, msg: FindPlugin, _: &mut Context<Self>) -> Self::Result {
        self.plugins.get(msg.0.as_str()).cloned()
    }
}

/// Every plugin's descriptor.
#[derive(Message)]
#[rtype(result = "Vec<PluginDescriptor>")]
pub struct ListPlugins;

impl Handler<ListPlugins> for PluginRegistry {
    type Result = Vec<PluginDescriptor>;
    fn handle(&mut self, _: ListPlugins, _: &mut Context<Self>) -> Self::Result {
        self.plugins.values().map(|p| p.descriptor().clone()).collect()
    }
}

/// Admin `message_plugin`.
#[derive(Message)]
#[rtype(result = "Result<Value, ApiError>")]
pub struct MessagePlugin {
    /// Package.
    pub plugin: String,
    /// The `request` object.
    pub request: Map<String, Value>,
}

impl Handler<MessagePlugin> for PluginRegistry {
    type Result = ResponseFuture<Result<Value, ApiError>>;
    fn handle(&mut self, msg: MessagePlugin, _: &mut Context<Self>) -> Self::Result {
        let Some(plugin) = self.plugins.get(msg.plugin.as_str()) else {
            return Box::pin(async { Err(ApiError::new(ErrorCode::PluginNotFound, "Invalid plugin")) });
        };
        match guard(|| plugin.handle_admin_message_later(msg.request)) {
            Ok(Some(later)) => Box::pin(async move { Ok(later.await) }),
            Ok(None) => Box::pin(async { Err(ApiError::unknown("Plugin doesn't support Admin API messages")) }),
            Err(panic) => {
                tracing::error!(plugin = %msg.plugin, panic = %panic.0, "plugin panicked in an Admin API message");
                Box::pin(async move { Err(ApiError::unknown(format!("Plugin error: {}", panic.0))) })
            }
        }
    }
}
