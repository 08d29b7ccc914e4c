//! `janus.plugin.videocall` (reference 8).

use portunus_actors::plugin::{Plugin, PluginCtx, PluginDescriptor, PluginError, PluginSession};

const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    package: "janus.plugin.videocall",
    name: "JANUS VideoCall plugin",
    author: "Meetecho s.r.l.",
    description:
        "This is a simple video call plugin for Janus, allowing two WebRTC peers to call each other through a server.",
    version_string: "0.0.6",
    version: 6,
};

/// The VideoCall plugin.
#[derive(Default)]
pub struct VideoCall;

impl Plugin for VideoCall {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn create_session(&self, _ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        Err(PluginError { code: 499, reason: "not implemented yet".into() })
    }
}
