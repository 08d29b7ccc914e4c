//! The media facade: everything WebRTC, behind our own types. Only this module names the
//! `webrtc`/`rtc` crates, so the engine can be replaced without touching plugins or transports.

pub mod sdp;
