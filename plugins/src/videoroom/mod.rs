//! `janus.plugin.videoroom` (reference 8).

use portunus_actors::plugin::{Plugin, PluginCtx, PluginDescriptor, PluginError, PluginSession};

const DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    package: "janus.plugin.videoroom",
    name: "JANUS VideoRoom plugin",
    author: "Meetecho s.r.l.",
    description: "This is a plugin implementing a videoconferencing SFU (Selective Forwarding Unit) for Janus, that is an audio/video router.",
    version_string: "0.0.9",
    version: 9,
};

/// The VideoRoom plugin.
#[derive(Default)]
pub struct VideoRoom;

impl Plugin for VideoRoom {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn create_session(&self, _ctx: PluginCtx) -> Result<Box<dyn PluginSession>, PluginError> {
        Err(PluginError { code: 499, reason: "not implemented yet".into() })
    }
}
