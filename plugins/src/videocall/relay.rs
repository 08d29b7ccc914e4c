//! The media path of a call: what each side's m-lines are, how the two sides' mids pair up, and
//! the [`Leg`] sink that forwards one side's RTP straight to the other side's writers.
//!
//! A leg never touches signalling state: the call logic links two legs when a call is answered
//! and unlinks them when it ends. RTP runs on the media runtime and takes one read lock per
//! packet; it never waits for the plugin's directory lock.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};

use bytes::Bytes;
use portunus_actors::media::sdp::{Direction, SdpInfo};
use portunus_actors::media::{Feedback, MediaKind, MediaPort, MediaSink, OfferSpec, OfferTrack, RtpPacket};

use crate::simulcast::{simulcast_streams, KeyframeThrottle, Layering, Selector, SimulcastStream, Source};

/// Codecs we relay: the same the core answers with (`peer::answer`), so the callee is offered the
/// codec the caller's answer chose (the first of these the caller offered).
const AUDIO_CODECS: &[&str] = &["opus", "pcmu", "pcma"];
const VIDEO_CODECS: &[&str] = &["vp8", "h264", "vp9", "av1"];

/// The REMB Janus sends when no cap is set ("no limit").
pub const NO_CAP: u64 = 10_000_000;

/// One audio/video m-line of a description, as the pairing needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The mid (the m-line index when the SDP has none).
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The first codec of the m-line we can relay (offers only).
    pub codec: String,
    /// The writer of the SDP only sends on it.
    pub send_only: bool,
    /// Rejected (port 0).
    pub disabled: bool,
}

/// What an offer asks for: the tracks we relay (in m-line order) and whether it has data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// Audio/video m-lines with a codec we relay, neither rejected nor inactive.
    pub tracks: Vec<Section>,
    /// An `m=application` section.
    pub data: bool,
    /// The offerer encrypts its media end to end (JSEP `e2ee`): the other side is told so.
    pub e2ee: bool,
}

impl Offered {
    /// Summarizes an offer.
    pub fn from_sdp(info: &SdpInfo) -> Offered {
        let tracks = info
            .sections
            .iter()
            .filter(|s| !s.disabled && s.kind != MediaKind::Data && s.direction != Direction::Inactive)
            .filter_map(|s| {
                let wanted = if s.kind == MediaKind::Audio { AUDIO_CODECS } else { VIDEO_CODECS };
                let codec = s.codecs.iter().find(|c| wanted.contains(&c.name.as_str()))?;
                Some(Section {
                    mid: s.mid.clone().unwrap_or_else(|| s.mindex.to_string()),
                    kind: s.kind,
                    codec: codec.name.clone(),
                    send_only: s.direction == Direction::SendOnly,
                    disabled: false,
                })
            })
            .collect();
        let data = info.sections.iter().any(|s| s.kind == MediaKind::Data && !s.disabled);
        Offered { tracks, data, e2ee: false }
    }

    /// The offer the other side gets: the same tracks and codecs. `mids` maps the offerer's mids
    /// to the other side's, for the streams it already has (renegotiation).
    pub fn spec(&self, mids: &HashMap<String, String>) -> OfferSpec {
        let tracks = self
            .tracks
            .iter()
            .map(|t| OfferTrack {
                kind: t.kind,
                codec: t.codec.clone(),
                mid: mids.get(&t.mid).cloned(),
                send_only: t.send_only,
            })
            .collect();
        OfferSpec { tracks, data: self.data, ice_restart: false, e2ee: self.e2ee }
    }
}

/// The audio/video m-lines of an answer, in order.
pub fn answered(info: &SdpInfo) -> Vec<Section> {
    info.sections
        .iter()
        .filter(|s| s.kind != MediaKind::Data)
        .map(|s| Section {
            mid: s.mid.clone().unwrap_or_else(|| s.mindex.to_string()),
            kind: s.kind,
            codec: String::new(),
            send_only: s.direction == Direction::SendOnly,
            disabled: s.disabled,
        })
        .collect()
}

/// One stream relayed between the two sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MidPair {
    /// The mid on the side that offered.
    pub offerer: String,
    /// The mid on the side that answered.
    pub answerer: String,
    /// Audio or video.
    pub kind: MediaKind,
}

/// Pairs the offered tracks with the answer's m-lines: the n-th offered audio with the n-th
/// answered audio, likewise for video (the engine picks the answering side's mids, and our offer
/// lists the tracks in the offerer's order). Streams rejected on either side are left out.
pub fn pair_mids(offered: &[Section], answered: &[Section]) -> Vec<MidPair> {
    let mut pairs = Vec::new();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let ours = offered.iter().filter(|s| s.kind == kind);
        let theirs = answered.iter().filter(|s| s.kind == kind);
        for (o, a) in ours.zip(theirs) {
            if !o.disabled && !a.disabled {
                pairs.push(MidPair { offerer: o.mid.clone(), answerer: a.mid.clone(), kind });
            }
        }
    }
    pairs
}

/// Where one side's stream goes on the other side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The other side's mid.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
}

/// The other side of a call, as one leg sees it.
#[derive(Clone)]
struct Link {
    peer: MediaPort,
    /// Our mid -> the peer's.
    mids: HashMap<String, Target>,
    /// The peer's leg, for its choice of our simulcast layers (weak: the two legs link each
    /// other).
    peer_leg: Weak<Leg>,
}

/// Reports a change of received layer: `(videocodec, "substream" | "temporal", n)`.
pub type LayerNotice = Box<dyn Fn(&str, &'static str, usize) + Send + Sync>;

/// One side of a call: its forwarding switches and its link to the other side. Installed as the
/// handle's media sink for the handle's whole life.
pub struct Leg {
    audio: AtomicBool,
    video: AtomicBool,
    /// REMB cap for what this side sends (0: none).
    bitrate: AtomicU64,
    link: RwLock<Option<Link>>,
    /// Simulcast layers of the video we send, by our mid (from our offer's rids).
    send_layers: RwLock<HashMap<String, SimulcastStream>>,
    /// Which of the peer's simulcast layers we receive (`set` substream/temporal/fallback).
    pub receive: Selector,
    /// Tells this side its received layer changed: `(videocodec, "substream" | "temporal", n)`.
    notice: OnceLock<LayerNotice>,
    keyframes: KeyframeThrottle,
}

impl Default for Leg {
    fn default() -> Self {
        Leg {
            audio: AtomicBool::new(true),
            video: AtomicBool::new(true),
            bitrate: AtomicU64::new(0),
            link: RwLock::default(),
            send_layers: RwLock::default(),
            receive: Selector::default(),
            notice: OnceLock::new(),
            keyframes: KeyframeThrottle::default(),
        }
    }
}

impl Leg {
    /// Starts forwarding to `peer` (whose leg is `peer_leg`): `mids` maps our mids to the peer's.
    pub fn link(&self, peer: MediaPort, mids: HashMap<String, Target>, peer_leg: Weak<Leg>) {
        *self.link.write().unwrap_or_else(|e| e.into_inner()) = Some(Link { peer, mids, peer_leg });
    }

    /// How this side learns of layer changes in what it receives (set once).
    pub fn set_notice(&self, notice: LayerNotice) {
        let _ = self.notice.set(notice);
    }

    /// Our offer: which of our video m-lines are simulcast, with which layers and codec.
    pub fn set_send_layers(&self, offer: &SdpInfo) {
        *self.send_layers.write().unwrap_or_else(|e| e.into_inner()) = simulcast_streams(offer);
    }

    /// Janus compat (8.6): a `set` asking for the simulcast `substream` (or VP8 `temporal` layer)
    /// this side already receives is answered at once with the layer notice; a change is
    /// announced when it happens.
    pub fn notify_current_layers(&self, substream: Option<u64>, temporal: Option<u64>) {
        let (Some(notice), Some(peer)) = (self.notice.get(), self.peer_leg()) else { return };
        let codec = peer.send_layers.read().unwrap_or_else(|e| e.into_inner()).values().next().map(|(_, c)| c.clone());
        let Some(codec) = codec else { return };
        let (current_s, current_t) = self.receive.simulcast_layers();
        if let Some(n) = current_s.filter(|n| substream == Some(*n as u64)) {
            notice(&codec, "substream", n);
        }
        if let Some(t) = current_t.filter(|t| codec == "vp8" && temporal == Some(u64::from(*t))) {
            notice(&codec, "temporal", usize::from(t));
        }
    }

    fn ask_keyframe(&self, port: &MediaPort, mid: &str) {
        if self.keyframes.allow() {
            port.request_keyframe(mid);
        }
    }

    /// Stops forwarding (drops our reference to the peer's port).
    pub fn unlink(&self) {
        *self.link.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether a peer is linked.
    pub fn is_linked(&self) -> bool {
        self.link.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Relay our audio.
    pub fn audio(&self) -> bool {
        self.audio.load(Ordering::Relaxed)
    }

    /// Relay our video.
    pub fn video(&self) -> bool {
        self.video.load(Ordering::Relaxed)
    }

    /// Our REMB cap (0: none).
    pub fn bitrate(&self) -> u64 {
        self.bitrate.load(Ordering::Relaxed)
    }

    /// Turns relaying of our audio on or off.
    pub fn set_audio(&self, on: bool) {
        self.audio.store(on, Ordering::Relaxed);
    }

    /// Turns relaying of our video on or off; returns whether it was off before.
    pub fn set_video(&self, on: bool) -> bool {
        !self.video.swap(on, Ordering::Relaxed)
    }

    /// Sets our REMB cap.
    pub fn set_bitrate(&self, bitrate: u64) {
        self.bitrate.store(bitrate, Ordering::Relaxed);
    }

    /// Back to defaults (the PeerConnection went away).
    pub fn reset(&self) {
        self.set_audio(true);
        self.set_video(true);
        self.set_bitrate(0);
    }

    /// Our video mids that go to the peer.
    pub fn video_mids(&self) -> Vec<String> {
        let link = self.link.read().unwrap_or_else(|e| e.into_inner());
        link.iter()
            .flat_map(|l| l.mids.iter())
            .filter(|(_, t)| t.kind == MediaKind::Video)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Asks the peer for keyframes of every video stream it sends us.
    pub fn request_peer_keyframes(&self) {
        let link = self.link.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(l) = link {
            for t in l.mids.values().filter(|t| t.kind == MediaKind::Video) {
                l.peer.request_keyframe(&t.mid);
            }
        }
    }

    /// Relays a data-channel message to the peer (on its first channel: the peer's channels are
    /// its own, their labels need not match ours).
    pub fn relay_data(&self, data: Bytes, binary: bool) {
        let peer = self.link.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|l| l.peer.clone());
        if let Some(peer) = peer {
            peer.send_data(None, data, binary);
        }
    }

    fn peer_leg(&self) -> Option<Arc<Leg>> {
        self.link.read().unwrap_or_else(|e| e.into_inner()).as_ref()?.peer_leg.upgrade()
    }

    /// The peer's writer for our `mid`, looked up under the read lock (per packet: no clones).
    fn writer(&self, mid: &str) -> Option<portunus_actors::media::RtpWriter> {
        let link = self.link.read().unwrap_or_else(|e| e.into_inner());
        let l = link.as_ref()?;
        l.peer.writer(&l.mids.get(mid)?.mid)
    }

    /// The peer's port and mid for our `mid`.
    fn target(&self, mid: &str) -> Option<(MediaPort, String)> {
        let link = self.link.read().unwrap_or_else(|e| e.into_inner());
        let l = link.as_ref()?;
        let t = l.mids.get(mid)?;
        Some((l.peer.clone(), t.mid.clone()))
    }
}

#[async_trait::async_trait]
impl MediaSink for Leg {
    async fn rtp(&self, port: &MediaPort, mid: &str, kind: MediaKind, pkt: RtpPacket) {
        let on = match kind {
            MediaKind::Audio => self.audio(),
            MediaKind::Video => self.video(),
            MediaKind::Data => false,
        };
        if !on {
            return;
        }
        let Some(writer) = self.writer(mid) else { return };
        let simulcast = if pkt.rid.is_some() {
            self.send_layers.read().unwrap_or_else(|e| e.into_inner()).get(mid).cloned()
        } else {
            None
        };
        let Some((layers, codec)) = simulcast else {
            let _ = writer.write(pkt).await;
            return;
        };
        // Simulcast: one layer reaches the peer, the one its `set` asks for.
        let Some(layering) = Layering::of(&pkt, Some(&*layers), false) else { return };
        let Some(receiver) = self.peer_leg() else { return };
        let source = Source { kind, codec: &codec, layering };
        let notify = |notices: &[(&'static str, usize)]| {
            if let Some(notice) = receiver.notice.get() {
                for &(what, n) in notices {
                    notice(&codec, what, n);
                }
            }
        };
        let keyframe = || self.ask_keyframe(port, mid);
        if let Some(out) = receiver.receive.step(Cow::Owned(pkt), &source, &mut None, notify, keyframe) {
            let _ = writer.write(out).await;
        }
    }

    fn feedback(&self, port: &MediaPort, mid: &str, fb: Feedback) {
        match fb {
            // Our peer wants a keyframe of what we relay to it on `mid`: ask the other side.
            Feedback::Pli | Feedback::Fir => {
                if let Some((peer, their_mid)) = self.target(mid) {
                    peer.request_keyframe(&their_mid);
                }
            }
            // Janus compat (8.6): a REMB from a peer is answered with that peer's own cap.
            Feedback::Remb(_) => {
                let cap = self.bitrate();
                if cap > 0 {
                    port.send_remb(cap);
                }
            }
        }
    }
}

/// The two directions of a link from pairs oriented offerer -> answerer.
pub fn directions(pairs: &[MidPair]) -> (HashMap<String, Target>, HashMap<String, Target>) {
    let offerer = pairs.iter().map(|p| (p.offerer.clone(), Target { mid: p.answerer.clone(), kind: p.kind })).collect();
    let answerer =
        pairs.iter().map(|p| (p.answerer.clone(), Target { mid: p.offerer.clone(), kind: p.kind })).collect();
    (offerer, answerer)
}

#[cfg(test)]
mod tests {
    use portunus_actors::media::sdp;

    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:a0\r\na=sendrecv\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 97 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\na=sendonly\r\n\
a=rtpmap:97 H264/90000\r\na=rtpmap:96 VP8/90000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 100\r\nc=IN IP4 0.0.0.0\r\na=mid:v2\r\na=sendrecv\r\na=rtpmap:100 AV1/90000\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:d3\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v4\r\na=sendrecv\r\na=rtpmap:96 VP8/90000\r\n";

    fn sec(mid: &str, kind: MediaKind, disabled: bool) -> Section {
        Section { mid: mid.into(), kind, codec: String::new(), send_only: false, disabled }
    }

    #[test]
    fn offer_keeps_relayable_tracks_in_order() {
        let info = sdp::parse(OFFER).unwrap();
        let o = Offered::from_sdp(&info);
        let got: Vec<(&str, MediaKind, &str, bool)> =
            o.tracks.iter().map(|t| (t.mid.as_str(), t.kind, t.codec.as_str(), t.send_only)).collect();
        assert_eq!(
            got,
            vec![
                ("a0", MediaKind::Audio, "opus", false),
                ("v1", MediaKind::Video, "h264", true),
                ("v2", MediaKind::Video, "av1", false),
                ("v4", MediaKind::Video, "vp8", false),
            ]
        );
        assert!(o.data);
        let mids = HashMap::from([("a0".to_string(), "0".to_string())]);
        let spec = o.spec(&mids);
        assert_eq!(spec.tracks.len(), 4);
        assert_eq!(spec.tracks[0].mid.as_deref(), Some("0"));
        assert_eq!(spec.tracks[1].mid, None);
        assert!(spec.tracks[1].send_only && spec.data && !spec.ice_restart);
    }

    #[test]
    fn pairs_by_kind_and_order() {
        let offered = vec![
            sec("a", MediaKind::Audio, false),
            sec("v", MediaKind::Video, false),
            sec("w", MediaKind::Video, false),
        ];
        // The engine ordered the answerer's m-lines video first and rejected the second video.
        let answered = vec![
            sec("0", MediaKind::Video, false),
            sec("1", MediaKind::Audio, false),
            sec("2", MediaKind::Video, true),
        ];
        let pairs = pair_mids(&offered, &answered);
        assert_eq!(
            pairs,
            vec![
                MidPair { offerer: "a".into(), answerer: "1".into(), kind: MediaKind::Audio },
                MidPair { offerer: "v".into(), answerer: "0".into(), kind: MediaKind::Video },
            ]
        );
        let (there, back) = directions(&pairs);
        assert_eq!(there.get("v"), Some(&Target { mid: "0".into(), kind: MediaKind::Video }));
        assert_eq!(back.get("1"), Some(&Target { mid: "a".into(), kind: MediaKind::Audio }));
        // Fewer answered m-lines than offered: the extra tracks are not relayed.
        assert_eq!(pair_mids(&offered, &[]), vec![]);
    }

    #[test]
    fn answer_sections_skip_data() {
        let info = sdp::parse(OFFER).unwrap();
        let a = answered(&info);
        assert_eq!(a.iter().map(|s| s.mid.as_str()).collect::<Vec<_>>(), vec!["a0", "v1", "v2", "v4"]);
    }

    #[test]
    fn set_for_the_layer_received_is_answered_at_once() {
        use std::sync::Mutex;

        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n\
a=rtpmap:96 VP8/90000\r\na=rid:h send\r\na=rid:m send\r\na=rid:l send\r\na=simulcast:send h;m;l\r\n";
        let (sender, receiver) = (Arc::new(Leg::default()), Arc::new(Leg::default()));
        sender.set_send_layers(&sdp::parse(offer).unwrap());
        let mids = HashMap::from([("0".to_string(), Target { mid: "0".into(), kind: MediaKind::Video })]);
        receiver.link(MediaPort::default(), mids, Arc::downgrade(&sender));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        receiver.set_notice(Box::new(move |codec, what, n| log.lock().unwrap().push((codec.to_owned(), what, n))));
        // Nothing received yet: nothing to report.
        receiver.notify_current_layers(Some(0), Some(0));
        assert!(seen.lock().unwrap().is_empty());
        // The receiver gets the low layer (a VP8 keyframe without temporal layers).
        let (layers, _) = sender.send_layers.read().unwrap().get("0").cloned().unwrap();
        let pkt = RtpPacket {
            marker: true,
            payload_type: 96,
            sequence_number: 1,
            timestamp: 3000,
            ssrc: 7,
            extensions: vec![],
            rid: Some(Arc::from("l")),
            payload: Bytes::from_static(&[0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a]),
        };
        let layer = layers.observe(&pkt).unwrap();
        let verdict =
            receiver.receive.decide(&pkt, MediaKind::Video, "vp8", Some((&layers, layer)), &mut None, &mut Vec::new());
        assert!(matches!(verdict, crate::simulcast::Verdict::Forward { .. }));
        receiver.notify_current_layers(Some(2), None);
        assert!(seen.lock().unwrap().is_empty(), "substream 2 is a change, announced when it happens");
        receiver.notify_current_layers(Some(0), Some(0));
        assert_eq!(*seen.lock().unwrap(), vec![("vp8".to_string(), "substream", 0)]);
    }

    #[test]
    fn leg_switches_and_link() {
        let leg = Leg::default();
        assert!(leg.audio() && leg.video() && leg.bitrate() == 0 && !leg.is_linked());
        assert!(!leg.set_video(false));
        assert!(leg.set_video(true), "re-enabling reports it was off");
        leg.set_audio(false);
        leg.set_bitrate(64000);
        let mids = HashMap::from([("1".to_string(), Target { mid: "v".into(), kind: MediaKind::Video })]);
        leg.link(MediaPort::default(), mids, Weak::new());
        assert!(leg.is_linked());
        assert_eq!(leg.video_mids(), vec!["1".to_string()]);
        assert_eq!(leg.target("1").map(|(_, m)| m), Some("v".to_string()));
        assert!(leg.target("0").is_none());
        // No PeerConnection behind the port: these are no-ops, not panics.
        leg.request_peer_keyframes();
        leg.relay_data(Bytes::from_static(b"x"), false);
        leg.reset();
        leg.unlink();
        assert!(leg.audio() && leg.bitrate() == 0 && !leg.is_linked());
    }
}
