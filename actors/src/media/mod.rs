//! The media facade: everything WebRTC, behind our own types. Only this module names the
//! `webrtc`/`rtc` crates, so the engine can be replaced (str0m is plan B) without touching
//! plugins or transports. Nothing here re-exports an engine type.

mod capture;
pub mod codec;
mod conn;
pub mod dependency_descriptor;
mod driver;
mod engine;
pub mod network;
mod peer;
pub mod plain;
mod port;
mod relay;
pub mod sdp;
pub mod srtp;
mod tap;
mod types;
mod writer;

pub use capture::{CaptureError, CaptureFormat, CaptureInfo, CaptureSpec};
pub use engine::{negotiable, twcc_period_ms, IceSettings, MediaEngine, PemCertificate};
pub use peer::{AnswerSpec, EventFn, OfferSpec, OfferTrack, Peer, SendTrack};
pub use port::{live_ports, MediaPort, MediaSink};
pub use types::{
    Feedback, HangupReason, LocalCandidate, LossSample, MediaCounters, MediaKind, PeerEvent, RtpExtension, RtpPacket,
    DEPENDENCY_DESCRIPTOR_URI, RELAYED_EXTENSIONS,
};
pub use writer::{RtpWriter, WriteError};

/// A media-engine failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The engine refused the SDP.
    #[error("{0}")]
    Sdp(String),
    /// A remote candidate could not be added.
    #[error("{0}")]
    Candidate(String),
    /// Anything else inside the engine.
    #[error("{0}")]
    Engine(String),
}
