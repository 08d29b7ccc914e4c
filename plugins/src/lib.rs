//! Portunus plugins. Each plugin is its own module and sees only the plugin API of
//! `portunus_actors::plugin`; none imports a transport.

pub mod echotest;
#[cfg(feature = "fault-injection")]
pub mod faulty;
pub mod rooms_file;
pub mod simulcast;
pub mod svc;
pub mod textroom;
pub mod videocall;
pub mod videoroom;

use std::sync::Arc;

use portunus_actors::plugin::SharedPlugin;

/// Every built-in plugin, keyed by the short name of its configuration section.
pub fn builtin() -> Vec<(&'static str, SharedPlugin)> {
    #[allow(unused_mut)]
    let mut list: Vec<(&'static str, SharedPlugin)> = vec![
        ("echotest", Arc::new(echotest::EchoTest)),
        ("videoroom", Arc::new(videoroom::VideoRoom::default())),
        ("textroom", Arc::new(textroom::TextRoom::default())),
        ("videocall", Arc::new(videocall::VideoCall::default())),
    ];
    #[cfg(feature = "fault-injection")]
    list.push(("faulty", Arc::new(faulty::Faulty)));
    list
}
