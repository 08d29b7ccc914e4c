//! Media types of the facade: what plugins and the core see instead of engine types.

use bytes::Bytes;

pub use super::sdp::MediaKind;

/// One RTP header extension element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpExtension {
    /// Negotiated id (the sender's).
    pub id: u8,
    /// What it is, when it is one of [`RELAYED_EXTENSIONS`]: writers then send it on with their
    /// own negotiated id. Anything else stays with the connection it came from.
    pub uri: Option<&'static str>,
    /// Raw value.
    pub value: Bytes,
}

/// Header extensions that describe the media itself and so travel with it from a sender to the
/// receivers it is relayed to (Janus does the same): audio level, video orientation, playout
/// delay, the AV1 Dependency Descriptor. Transport ones (mid, rid, abs-send-time, transport-cc)
/// belong to each connection and the engine writes its own.
pub const RELAYED_EXTENSIONS: [&str; 4] = [
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "urn:3gpp:video-orientation",
    "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
    DEPENDENCY_DESCRIPTOR_URI,
];

/// The AV1 RTP spec's Dependency Descriptor (appendix A): each packet's frame, its spatial and
/// temporal layer (through a template structure sent on keyframes) and its dependencies.
pub const DEPENDENCY_DESCRIPTOR_URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

/// The relayed extension named `uri`, as the static string writers match on.
pub(crate) fn relayed_extension(uri: &str) -> Option<&'static str> {
    RELAYED_EXTENSIONS.iter().copied().find(|u| *u == uri)
}

/// An RTP packet: header fields plus the payload (shared, never copied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Header extensions as received.
    pub extensions: Vec<RtpExtension>,
    /// The simulcast layer's RTP stream id (`a=rid`), when the sender uses simulcast.
    pub rid: Option<std::sync::Arc<str>>,
    /// Payload.
    pub payload: Bytes,
}

/// Feedback about a stream we send (from the peer) or to send about a stream we receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// Picture loss: a keyframe is wanted.
    Pli,
    /// Full intra request: a keyframe is wanted.
    Fir,
    /// Receiver-estimated maximum bitrate in bps.
    Remb(u64),
}

/// A local ICE candidate, as sent in `trickle` events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalCandidate {
    /// `candidate:...` line.
    pub candidate: String,
    /// Media id.
    pub sdp_mid: Option<String>,
    /// M-line index.
    pub sdp_mline_index: Option<u16>,
}

/// Why a PeerConnection went down (the `hangup` reasons of reference 1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangupReason {
    /// `hangup` request.
    JanusApi,
    /// Admin `hangup_webrtc`.
    AdminApi,
    /// The plugin closed it.
    ClosePc,
    /// ICE failed.
    IceFailed,
    /// DTLS failed or the peer sent an alert/close.
    DtlsAlert,
}

impl HangupReason {
    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            HangupReason::JanusApi => "Janus API",
            HangupReason::AdminApi => "Admin API",
            HangupReason::ClosePc => "Close PC",
            HangupReason::IceFailed => "ICE failed",
            HangupReason::DtlsAlert => "DTLS alert",
        }
    }
}

/// What the engine reports about one PeerConnection (delivered to its owner, in order).
#[derive(Clone, Debug)]
pub enum PeerEvent {
    /// A local candidate was gathered (full trickle).
    LocalCandidate(LocalCandidate),
    /// Gathering finished.
    GatheringDone,
    /// ICE + DTLS are up.
    Connected,
    /// The connection failed or the peer went away.
    Failed(HangupReason),
    /// Media started or stopped flowing on a mid.
    Media {
        /// Media id.
        mid: String,
        /// Kind.
        kind: MediaKind,
        /// Flowing now.
        receiving: bool,
    },
    /// A data channel opened.
    DataOpen {
        /// Label.
        label: String,
    },
    /// A data-channel message.
    Data(crate::plugin::DataMessage),
    /// Packet loss on a stream crossed `slowlink_threshold` (lost packets in the last second).
    SlowLink {
        /// Media id.
        mid: String,
        /// Kind.
        kind: MediaKind,
        /// Media we send is being lost (reported by the peer); else media the peer sends.
        uplink: bool,
        /// Packets lost since the previous check.
        lost: u64,
    },
}

/// Cumulative packet loss of one stream direction, as the engine's statistics report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LossSample {
    /// Media id.
    pub mid: String,
    /// Kind.
    pub kind: MediaKind,
    /// Loss of what we send (from the peer's receiver reports); else of what we receive.
    pub uplink: bool,
    /// Packets lost since the stream started.
    pub lost: u64,
}

/// Media-plane totals since start, for `/metrics` (relaxed atomics: one add per packet).
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// RTP packets received from peers.
    pub rtp_in_packets: std::sync::atomic::AtomicU64,
    /// RTP payload bytes received from peers.
    pub rtp_in_bytes: std::sync::atomic::AtomicU64,
    /// RTP packets sent to peers.
    pub rtp_out_packets: std::sync::atomic::AtomicU64,
    /// RTP payload bytes sent to peers.
    pub rtp_out_bytes: std::sync::atomic::AtomicU64,
    /// RTP packets a fan-out dropped because the receiver's queue was full.
    pub rtp_out_dropped: std::sync::atomic::AtomicU64,
    /// Keyframe requests (PLI/FIR) received from peers.
    pub keyframe_requests_in: std::sync::atomic::AtomicU64,
    /// Keyframe requests (PLI) sent to peers.
    pub keyframe_requests_out: std::sync::atomic::AtomicU64,
    /// REMB messages sent to peers.
    pub remb_out: std::sync::atomic::AtomicU64,
    /// Packets peers asked us to retransmit (NACKed sequence numbers).
    pub nacks_in: std::sync::atomic::AtomicU64,
    /// Packets we asked peers to retransmit.
    pub nacks_out: std::sync::atomic::AtomicU64,
    /// Packets we retransmitted.
    pub retransmissions_out: std::sync::atomic::AtomicU64,
}
