//! `janus.plugin.textroom` (reference 8).

use portunus_actors::plugin::{Plugin, PluginCtx, PluginDescriptor, PluginError, PluginSession};

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
pub struct TextRoom;

impl Plugin for TextRoom {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn create_session(&self, _ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        Err(PluginError { code: 499, reason: "not implemented yet".into() })
    }
}
