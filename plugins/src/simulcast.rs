//! Forwarding one video source to one receiver, shared by the plugins that relay media
//! (VideoRoom subscribers, VideoCall peers): which simulcast layer and VP8 temporal layer the
//! receiver gets, switched on keyframes, with sequence numbers and timestamps kept continuous
//! across every switch.
//!
//! A [`Layers`] describes a simulcast source (its rids, lowest quality first, and when each layer
//! was last heard); a [`Selector`] is one receiver's choice over it. The same selector picks the
//! layers of a VP9 or AV1 SVC source ([`Selector::decide_svc`], rules in [`crate::svc`]), so one
//! sequence rewriter serves a receiver whatever its source is.
//!
//! [`Selector::step`] is the per-packet forward step every relaying sink runs (EchoTest,
//! VideoRoom subscribers, VideoCall peers): decide, report layer changes, rewrite, or ask for a
//! keyframe. How notices reach the client, how keyframes are asked for and how the packet is
//! written stay with the caller.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use portunus_actors::media::codec::{inspect_video, VideoFrameInfo};
use portunus_actors::media::sdp::SdpInfo;
use portunus_actors::media::{MediaKind, RtpPacket};

use crate::svc::{Av1Layers, LayerInfo, SvcState, SvcTargets, SvcVerdict};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Keyframe requests to one sender are at most this frequent (ms): a burst of receivers joining
/// or switching layers costs the sender one keyframe, not one each.
const KEYFRAME_INTERVAL_MS: u64 = 500;

/// Rate limit for keyframe requests (PLI) to one sender, safe to share across threads.
#[derive(Debug, Default)]
pub struct KeyframeThrottle {
    last: AtomicU64,
}

impl KeyframeThrottle {
    /// Whether a request may go now (and, if so, it counts as sent).
    pub fn allow(&self) -> bool {
        let now = now_ms();
        let last = self.last.load(Ordering::Relaxed);
        now.saturating_sub(last) >= KEYFRAME_INTERVAL_MS
            && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// A simulcast source: its layers by rid, lowest quality first (index = Janus `substream`).
pub struct Layers {
    rids: Vec<Arc<str>>,
    seen: [AtomicU64; 3],
}

impl Layers {
    /// The layers of a sender's rids (`a=rid:<id> send`), or `None` without simulcast. Known
    /// schemes (`l/m/h`, `q/h/f`) are ordered by name, others highest first as browsers list them.
    pub fn from_rids(rids: &[String]) -> Option<Layers> {
        if rids.len() < 2 {
            return None;
        }
        let rank = |scheme: &[&str]| -> Option<Vec<Arc<str>>> {
            let mut ranked: Vec<(usize, &String)> =
                rids.iter().map(|r| Some((scheme.iter().position(|s| s == r)?, r))).collect::<Option<_>>()?;
            ranked.sort();
            Some(ranked.into_iter().map(|(_, r)| Arc::from(r.as_str())).collect())
        };
        let named =
            if rids.iter().any(|r| r == "q" || r == "f") { rank(&["q", "h", "f"]) } else { rank(&["l", "m", "h"]) };
        let mut rids = named.unwrap_or_else(|| rids.iter().rev().map(|r| Arc::from(r.as_str())).collect());
        rids.truncate(3);
        Some(Layers { rids, seen: Default::default() })
    }

    /// The rids, lowest quality first.
    pub fn rids(&self) -> &[Arc<str>] {
        &self.rids
    }

    /// How many layers.
    pub fn count(&self) -> usize {
        self.rids.len()
    }

    /// The layer of a packet, noting that the layer is alive.
    pub fn observe(&self, pkt: &RtpPacket) -> Option<usize> {
        let rid = pkt.rid.as_deref()?;
        let layer = self.rids.iter().position(|l| &**l == rid)?;
        self.seen[layer].store(now_ms(), Ordering::Relaxed);
        Some(layer)
    }

    fn alive(&self, layer: usize, within_ms: u64) -> bool {
        self.seen.get(layer).is_some_and(|t| now_ms().saturating_sub(t.load(Ordering::Relaxed)) <= within_ms)
    }
}

/// Video codecs whose keyframes we can find, in the engine's preference order.
const VIDEO_CODECS: &[&str] = &["vp8", "h264", "vp9", "av1"];

/// A sender's simulcast video m-line: its layers and the codec they carry.
pub type SimulcastStream = (Arc<Layers>, String);

/// The simulcast video m-lines of a sender's offer, by mid.
pub fn simulcast_streams(offer: &SdpInfo) -> HashMap<String, SimulcastStream> {
    offer
        .sections
        .iter()
        .filter(|s| s.kind == MediaKind::Video)
        .filter_map(|s| {
            let layers = Layers::from_rids(&s.rids)?;
            let codec = s.codecs.iter().find(|c| VIDEO_CODECS.contains(&c.name.as_str()))?.name.clone();
            Some((s.mid.clone().unwrap_or_else(|| s.mindex.to_string()), (Arc::new(layers), codec)))
        })
        .collect()
}

/// How one packet of a source is layered, as a receiver's forward step sees it.
#[derive(Clone, Copy)]
pub enum Layering<'a> {
    /// No layers to pick: sequence continuity (and VP8 temporal layers) only.
    Plain,
    /// Simulcast layer `.1` of `.0`.
    Simulcast(&'a Layers, usize),
    /// VP9 SVC: the layers are read from the payload.
    Svc,
}

impl<'a> Layering<'a> {
    /// The layering of `pkt` from a source with simulcast `layers` (the packet's layer is noted
    /// alive) and/or SVC; `None` when the packet belongs to none of the layers (it goes nowhere).
    pub fn of(pkt: &RtpPacket, layers: Option<&'a Layers>, svc: bool) -> Option<Self> {
        let simulcast = match layers {
            Some(layers) => Some((layers, layers.observe(pkt)?)),
            None => None,
        };
        Some(match simulcast {
            _ if svc => Layering::Svc,
            Some((layers, layer)) => Layering::Simulcast(layers, layer),
            None => Layering::Plain,
        })
    }
}

/// A source stream as its receivers' forward step sees one of its packets.
pub struct Source<'a> {
    /// Audio or video.
    pub kind: MediaKind,
    /// Codec name, to find keyframes and layers in the payload.
    pub codec: &'a str,
    /// How the packet is layered.
    pub layering: Layering<'a>,
}

/// What became of a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with these sequence number, timestamp and marker bit.
    Forward {
        /// Outgoing sequence number.
        seq: u16,
        /// Outgoing timestamp.
        ts: u32,
        /// Outgoing marker bit (SVC sets it where a receiver's picture ends).
        marker: bool,
    },
    /// Not for this receiver.
    Drop,
    /// Not yet: the receiver waits for a keyframe of a layer it should switch to (ask for one).
    NeedKeyframe,
}

/// One receiver's choice of layers, and its sequence continuity.
pub struct Selector {
    /// Wanted simulcast layer (0 lowest; Janus default 2).
    pub substream: AtomicU8,
    /// Wanted VP8 temporal layer (Janus default 2).
    pub temporal: AtomicU8,
    /// How long (ms) the current layer may be silent before a lower one is used.
    pub fallback_ms: AtomicU64,
    /// Wanted SVC spatial and temporal layers (Janus default 2 each).
    pub svc: SvcTargets,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rewrite: Rewriter,
    layer: Option<usize>,
    temporal: Option<u8>,
    svc: SvcState,
    /// The AV1 source's template structure, as this receiver last saw it.
    av1: Av1Layers,
    /// The SSRC the SVC state follows; another one starts it again.
    svc_source: Option<u32>,
    /// Video resumes after a pause: nothing goes until a keyframe.
    wait_keyframe: bool,
}

impl Default for Selector {
    fn default() -> Self {
        Selector {
            substream: AtomicU8::new(2),
            temporal: AtomicU8::new(2),
            fallback_ms: AtomicU64::new(250),
            svc: SvcTargets::default(),
            state: Mutex::new(State::default()),
        }
    }
}

impl Selector {
    /// The forward step of one packet to this receiver: decides on `pkt` of `source`; when it
    /// goes, the layer changes it brings (`("substream", n)`, `("temporal", n)`,
    /// `("spatial_layer", n)`, `("temporal_layer", n)`) are passed to `notify` (only when there
    /// are some) and the packet comes back with its outgoing sequence number, timestamp and marker
    /// for the caller to write. When the receiver waits for a keyframe, `keyframe` is called
    /// (the caller throttles). `info` caches the payload inspection across receivers of a packet.
    pub fn step(
        &self,
        pkt: Cow<'_, RtpPacket>,
        source: &Source<'_>,
        info: &mut Option<VideoFrameInfo>,
        notify: impl FnOnce(&[(&'static str, usize)]),
        keyframe: impl FnOnce(),
    ) -> Option<RtpPacket> {
        let mut notices = Vec::new();
        let verdict = match source.layering {
            Layering::Svc => self.decide_svc(&pkt, source.codec, info, &mut notices),
            Layering::Plain => self.decide(&pkt, source.kind, source.codec, None, info, &mut notices),
            Layering::Simulcast(layers, layer) => {
                self.decide(&pkt, source.kind, source.codec, Some((layers, layer)), info, &mut notices)
            }
        };
        match verdict {
            Verdict::Forward { seq, ts, marker } => {
                if !notices.is_empty() {
                    notify(&notices);
                }
                let mut out = pkt.into_owned();
                out.sequence_number = seq;
                out.timestamp = ts;
                out.marker = marker;
                Some(out)
            }
            Verdict::NeedKeyframe => {
                keyframe();
                None
            }
            Verdict::Drop => None,
        }
    }

    /// Decides on `pkt` of a source of `kind` in `codec`, from simulcast `layer` of `layers` if
    /// any. `info` caches the payload inspection across receivers of one packet; `notices` gets
    /// the layer changes to report (`("substream", n)`, `("temporal", n)`).
    pub fn decide(
        &self,
        pkt: &RtpPacket,
        kind: MediaKind,
        codec: &str,
        simulcast: Option<(&Layers, usize)>,
        info: &mut Option<VideoFrameInfo>,
        notices: &mut Vec<(&'static str, usize)>,
    ) -> Verdict {
        let mut inspect = || *info.get_or_insert_with(|| inspect_video(codec, &pkt.payload));
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((layers, layer)) = simulcast {
            if st.layer != Some(layer) {
                if !self.should_switch(&st, layers, layer) {
                    return Verdict::Drop;
                }
                if !inspect().keyframe {
                    return Verdict::NeedKeyframe;
                }
                st.layer = Some(layer);
                notices.push(("substream", layer));
            }
        }
        if kind == MediaKind::Video && st.wait_keyframe {
            if !inspect().keyframe {
                return Verdict::NeedKeyframe;
            }
            st.wait_keyframe = false;
        }
        if kind == MediaKind::Video {
            if let Some(tid) = inspect().temporal {
                let wanted = self.temporal.load(Ordering::Relaxed);
                if tid > wanted {
                    // Dropped: the next packet takes this one's sequence number.
                    st.rewrite.skip(pkt);
                    return Verdict::Drop;
                }
                if st.temporal != Some(wanted) && tid == wanted {
                    st.temporal = Some(wanted);
                    notices.push(("temporal", usize::from(wanted)));
                }
            }
        }
        let (seq, ts) = st.rewrite.rewrite(pkt, kind);
        Verdict::Forward { seq, ts, marker: pkt.marker }
    }

    /// Decides on video `pkt` of an SVC source in `codec` (VP9, or AV1 with the Dependency
    /// Descriptor; packets without layer indices or descriptor pass). `info` and `notices` as in
    /// [`Selector::decide`], with `("spatial_layer", n)` and `("temporal_layer", n)`.
    pub fn decide_svc(
        &self,
        pkt: &RtpPacket,
        codec: &str,
        info: &mut Option<VideoFrameInfo>,
        notices: &mut Vec<(&'static str, usize)>,
    ) -> Verdict {
        let info = *info.get_or_insert_with(|| inspect_video(codec, &pkt.payload));
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.svc_source != Some(pkt.ssrc) {
            st.svc.reset();
            st.av1.reset();
            st.svc_source = Some(pkt.ssrc);
        }
        let frame = match (info.vp9, codec) {
            (Some(layer), _) => LayerInfo::Frame((&layer).into(), info.keyframe),
            (None, "av1") => st.av1.frame(pkt),
            _ => LayerInfo::Unlayered,
        };
        let verdict = match frame {
            LayerInfo::Frame(layer, key) => {
                st.svc.decide(layer, info.keyframe || key, pkt.marker, self.svc.get(), notices)
            }
            LayerInfo::Unknown => SvcVerdict::NeedKeyframe,
            LayerInfo::Unlayered => SvcVerdict::Forward { marker: pkt.marker },
        };
        match verdict {
            SvcVerdict::Forward { marker } => {
                let (seq, ts) = st.rewrite.rewrite(pkt, MediaKind::Video);
                Verdict::Forward { seq, ts, marker }
            }
            SvcVerdict::Drop => {
                // Dropped: the next packet takes this one's sequence number.
                st.rewrite.skip(pkt);
                Verdict::Drop
            }
            SvcVerdict::NeedKeyframe => {
                st.rewrite.skip(pkt);
                Verdict::NeedKeyframe
            }
        }
    }

    /// The receiver gets packets again after some were held back from it (paused, `send:false`):
    /// its sequence numbers go on from the last packet it got, as after a source change, and
    /// its video waits for a keyframe, since what it would get first refers to frames it missed.
    pub fn restart(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.rewrite.source.is_none() {
            // It never got anything (held back before its first packet): it starts as usual.
            return;
        }
        st.rewrite.splice_next();
        st.wait_keyframe = true;
        st.svc.reset();
    }

    /// The simulcast layer and VP8 temporal layer the receiver was last told it gets.
    pub fn simulcast_layers(&self) -> (Option<usize>, Option<u8>) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.layer, st.temporal)
    }

    /// The SVC (spatial, temporal) layers the receiver was last told it gets.
    pub fn svc_layers(&self) -> (Option<u8>, Option<u8>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).svc.reported()
    }

    /// Whether a packet of `layer` should replace the layer being forwarded: it is not above the
    /// wanted one, and it is better than the current, or the current is above the wanted one or
    /// has gone silent.
    fn should_switch(&self, st: &State, layers: &Layers, layer: usize) -> bool {
        let wanted = usize::from(self.substream.load(Ordering::Relaxed)).min(layers.count().saturating_sub(1));
        if layer > wanted {
            return false;
        }
        match st.layer {
            None => true,
            Some(current) => {
                current > wanted || layer > current || !layers.alive(current, self.fallback_ms.load(Ordering::Relaxed))
            }
        }
    }
}

/// Keeps a receiver's sequence numbers and timestamps continuous when its source changes
/// (switch, re-publish, simulcast layer): a new source SSRC is spliced on right after the last
/// packet sent.
#[derive(Debug, Default)]
pub struct Rewriter {
    source: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    /// The next packet is spliced on as if from a new source.
    splice: bool,
}

impl Rewriter {
    /// `pkt` is dropped on purpose (a temporal layer the receiver does not get): close the gap it
    /// would leave so the receiver sees no loss.
    pub fn skip(&mut self, pkt: &RtpPacket) {
        if self.source == Some(pkt.ssrc) {
            let seq = pkt.sequence_number.wrapping_add(self.seq_offset);
            if (seq.wrapping_sub(self.last_seq) as i16) > 0 {
                self.seq_offset = self.seq_offset.wrapping_sub(1);
            }
        }
    }

    /// Splices the next packet on right after the last one sent, even from the same source
    /// (packets in between were held back).
    pub fn splice_next(&mut self) {
        self.splice = true;
    }

    /// The outgoing sequence number and timestamp for `pkt`.
    pub fn rewrite(&mut self, pkt: &RtpPacket, kind: MediaKind) -> (u16, u32) {
        if self.source != Some(pkt.ssrc) || std::mem::take(&mut self.splice) {
            if self.source.is_some() {
                // One frame later than the last packet: 20 ms of audio, one 30 fps video frame.
                let step = if kind == MediaKind::Audio { 960 } else { 3000 };
                self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(pkt.sequence_number);
                self.ts_offset = self.last_ts.wrapping_add(step).wrapping_sub(pkt.timestamp);
            }
            self.source = Some(pkt.ssrc);
            self.last_seq = pkt.sequence_number.wrapping_add(self.seq_offset).wrapping_sub(1);
        }
        let seq = pkt.sequence_number.wrapping_add(self.seq_offset);
        let ts = pkt.timestamp.wrapping_add(self.ts_offset);
        // Only newer packets move the splice point; retransmitted or reordered ones do not.
        if (seq.wrapping_sub(self.last_seq) as i16) > 0 {
            self.last_seq = seq;
            self.last_ts = ts;
        }
        (seq, ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(ssrc: u32, seq: u16, ts: u32) -> RtpPacket {
        RtpPacket {
            marker: false,
            payload_type: 96,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            extensions: vec![],
            rid: None,
            payload: Bytes::new(),
        }
    }

    fn vp8(ssrc: u32, seq: u16, rid: &str, keyframe: bool) -> RtpPacket {
        // S=1, PID=0, then the VP8 header's inverse key-frame bit.
        let payload = Bytes::from(vec![0x10, if keyframe { 0x00 } else { 0x01 }, 0x00, 0x9d, 0x01, 0x2a]);
        RtpPacket { rid: Some(Arc::from(rid)), payload, ..pkt(ssrc, seq, u32::from(seq) * 3000) }
    }

    fn layers(rids: &[&str]) -> Vec<String> {
        let owned: Vec<String> = rids.iter().map(|r| r.to_string()).collect();
        Layers::from_rids(&owned).map(|l| l.rids.iter().map(|r| r.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn layers_lowest_first() {
        assert_eq!(layers(&["h", "m", "l"]), ["l", "m", "h"]);
        assert_eq!(layers(&["q", "h", "f"]), ["q", "h", "f"]);
        assert_eq!(layers(&["f", "h"]), ["h", "f"]);
        assert_eq!(layers(&["hi", "lo"]), ["lo", "hi"]);
        assert!(layers(&["only"]).is_empty());
    }

    #[test]
    fn switches_layers_on_keyframes_only() {
        let l = Layers::from_rids(&["h".into(), "m".into(), "l".into()]).unwrap();
        let s = Selector::default();
        let mut notices = Vec::new();
        let mut decide = |p: RtpPacket| {
            let layer = l.observe(&p).unwrap();
            s.decide(&p, MediaKind::Video, "vp8", Some((&l, layer)), &mut None, &mut notices)
        };
        // The low layer starts on its keyframe; the high one waits for its own keyframe.
        assert_eq!(decide(vp8(1, 10, "l", false)), Verdict::NeedKeyframe);
        assert_eq!(decide(vp8(1, 11, "l", true)), Verdict::Forward { seq: 11, ts: 33000, marker: false });
        assert_eq!(decide(vp8(3, 500, "h", false)), Verdict::NeedKeyframe);
        assert_eq!(decide(vp8(1, 12, "l", false)), Verdict::Forward { seq: 12, ts: 36000, marker: false });
        assert!(matches!(decide(vp8(3, 501, "h", true)), Verdict::Forward { seq: 13, .. }));
        assert_eq!(decide(vp8(1, 13, "l", false)), Verdict::Drop);
        assert_eq!(notices, vec![("substream", 0), ("substream", 2)]);
        // Asking for the lowest layer: the switch down waits for its keyframe too.
        s.substream.store(0, Ordering::Relaxed);
        let mut notices = Vec::new();
        let p = vp8(1, 14, "l", true);
        assert!(matches!(
            s.decide(&p, MediaKind::Video, "vp8", Some((&l, 0)), &mut None, &mut notices),
            Verdict::Forward { seq: 14, .. }
        ));
        assert_eq!(notices, vec![("substream", 0)]);
    }

    #[test]
    fn step_notifies_rewrites_or_asks_for_a_keyframe() {
        let l = Layers::from_rids(&["h".into(), "m".into(), "l".into()]).unwrap();
        let s = Selector::default();
        let (mut notified, mut keyframes) = (Vec::new(), 0);
        let mut step = |p: RtpPacket| {
            let layering = Layering::of(&p, Some(&l), false).unwrap();
            let source = Source { kind: MediaKind::Video, codec: "vp8", layering };
            s.step(Cow::Borrowed(&p), &source, &mut None, |n| notified.push(n.to_vec()), || keyframes += 1)
        };
        assert_eq!(step(vp8(1, 10, "l", false)), None);
        let out = step(vp8(1, 11, "l", true)).expect("the keyframe goes");
        assert_eq!((out.sequence_number, out.timestamp, out.rid.as_deref()), (11, 33000, Some("l")));
        assert!(step(vp8(1, 12, "l", false)).is_some());
        assert_eq!(notified, vec![vec![("substream", 0)]], "one call per change, none without");
        assert_eq!(keyframes, 1);
        // A packet of no known layer goes nowhere.
        assert!(Layering::of(&vp8(1, 13, "x", false), Some(&l), false).is_none());
        assert!(matches!(Layering::of(&vp8(1, 13, "x", false), None, true), Some(Layering::Svc)));
    }

    #[test]
    fn keyframe_requests_are_throttled() {
        let t = KeyframeThrottle::default();
        assert!(t.allow());
        assert!(!t.allow(), "a second request right away is held back");
    }

    #[test]
    fn first_source_passes_through() {
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(&pkt(1, 100, 5000), MediaKind::Video), (100, 5000));
        assert_eq!(r.rewrite(&pkt(1, 101, 8000), MediaKind::Video), (101, 8000));
    }

    #[test]
    fn new_source_continues_the_sequence() {
        let mut r = Rewriter::default();
        r.rewrite(&pkt(1, 65535, 1000), MediaKind::Video);
        // Switch to a source with unrelated numbering: the sequence goes on from the last one.
        assert_eq!(r.rewrite(&pkt(2, 20, 900_000), MediaKind::Video), (0, 4000));
        assert_eq!(r.rewrite(&pkt(2, 21, 903_000), MediaKind::Video), (1, 7000));
    }

    #[test]
    fn restart_closes_the_gap_and_waits_for_a_keyframe() {
        let s = Selector::default();
        let mut notices = Vec::new();
        let mut decide = |p: RtpPacket| s.decide(&p, MediaKind::Video, "vp8", None, &mut None, &mut notices);
        let plain = |seq: u16, key: bool| RtpPacket { rid: None, ..vp8(1, seq, "l", key) };
        assert_eq!(decide(plain(10, false)), Verdict::Forward { seq: 10, ts: 30000, marker: false });
        // Packets 11-19 were held back; then the receiver gets media again.
        s.restart();
        let mut decide = |p: RtpPacket| s.decide(&p, MediaKind::Video, "vp8", None, &mut None, &mut notices);
        assert_eq!(decide(plain(20, false)), Verdict::NeedKeyframe);
        assert_eq!(decide(plain(21, true)), Verdict::Forward { seq: 11, ts: 33000, marker: false });
        assert_eq!(decide(plain(22, false)), Verdict::Forward { seq: 12, ts: 36000, marker: false });
        // Audio has no keyframes: only the numbering is spliced.
        let a = Selector::default();
        assert!(matches!(
            a.decide(&pkt(2, 100, 0), MediaKind::Audio, "opus", None, &mut None, &mut notices),
            Verdict::Forward { seq: 100, .. }
        ));
        a.restart();
        assert_eq!(
            a.decide(&pkt(2, 150, 48000), MediaKind::Audio, "opus", None, &mut None, &mut notices),
            Verdict::Forward { seq: 101, ts: 960, marker: false }
        );
    }

    #[test]
    fn late_packets_do_not_move_the_splice_point() {
        let mut r = Rewriter::default();
        r.rewrite(&pkt(1, 10, 100), MediaKind::Audio);
        r.rewrite(&pkt(1, 12, 1060), MediaKind::Audio);
        assert_eq!(r.rewrite(&pkt(1, 11, 580), MediaKind::Audio), (11, 580));
        assert_eq!(r.rewrite(&pkt(2, 500, 0), MediaKind::Audio), (13, 2020));
    }

    #[test]
    fn skipped_packets_leave_no_gap() {
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(&pkt(1, 1, 0), MediaKind::Video), (1, 0));
        r.skip(&pkt(1, 2, 0));
        assert_eq!(r.rewrite(&pkt(1, 3, 0), MediaKind::Video), (2, 0));
    }

    /// A VP9 packet of spatial layer `sid` (of three), temporal layer `tid` (non-flexible,
    /// TL0PICIDX 0), first (`b`) and/or last (`e`) of its layer frame; a key picture when `key`.
    /// The sender marks the end of the top layer's frame.
    fn vp9(seq: u16, pic: u32, sid: u8, tid: u8, b: bool, e: bool, key: bool) -> RtpPacket {
        let marker = e && sid == 2;
        let mut d = 0x20 | if b { 0x08 } else { 0 } | if e { 0x04 } else { 0 } | if key { 0 } else { 0x40 };
        if key && sid == 0 && b {
            d |= 0x02;
        }
        let mut payload = vec![d, (tid << 5) | (u8::from(tid > 0) << 4) | (sid << 1) | u8::from(sid > 0), 0];
        if d & 0x02 != 0 {
            payload.push(0x40); // SS: three layers, no resolutions, no picture group.
        }
        payload.extend_from_slice(&[if key && sid == 0 { 0x82 } else { 0x86 }, 0xaa]);
        RtpPacket { marker, payload: Bytes::from(payload), ..pkt(7, seq, pic * 3000) }
    }

    /// One L3 picture, two packets per layer: its packets in order.
    fn vp9_picture(first_seq: u16, pic: u32, tid: u8, key: bool) -> Vec<RtpPacket> {
        let mut out = Vec::new();
        for sid in 0..3u8 {
            let seq = first_seq + u16::from(sid) * 2;
            out.push(vp9(seq, pic, sid, tid, true, false, key));
            out.push(vp9(seq + 1, pic, sid, tid, false, true, key));
        }
        out
    }

    #[test]
    fn svc_drops_layers_marks_ends_and_keeps_sequences_continuous() {
        let s = Selector::default();
        let mut notices = Vec::new();
        let mut sent = Vec::new();
        // What went out, as (sequence number, spatial layer, marker); 9 for a keyframe request.
        let run = |s: &Selector, pkts: Vec<RtpPacket>, notices: &mut Vec<(&'static str, usize)>| {
            let mut out = Vec::new();
            for p in pkts {
                match s.decide_svc(&p, "vp9", &mut None, notices) {
                    Verdict::Forward { seq, marker, .. } => out.push((seq, (p.payload[1] >> 1) & 7, marker)),
                    Verdict::NeedKeyframe => out.push((0, 9, false)),
                    Verdict::Drop => {}
                }
            }
            out
        };
        // Before a keyframe: nothing but keyframe requests.
        sent.extend(run(&s, vp9_picture(100, 0, 0, false), &mut notices));
        assert!(sent.iter().all(|&(_, sid, _)| sid == 9));
        sent.clear();
        sent.extend(run(&s, vp9_picture(106, 1, 0, true), &mut notices));
        sent.extend(run(&s, vp9_picture(112, 2, 2, false), &mut notices));
        assert_eq!(sent.len(), 12);
        assert_eq!(sent.iter().map(|x| x.0).collect::<Vec<_>>(), (106..118).collect::<Vec<_>>());
        assert!(sent.iter().all(|&(seq, _, m)| m == (seq == 111 || seq == 117)));
        sent.clear();

        // Spatial layer 0: two packets a picture, the second marked, numbered on without gaps.
        s.svc.spatial.store(0, Ordering::Relaxed);
        sent.extend(run(&s, vp9_picture(118, 3, 1, false), &mut notices));
        sent.extend(run(&s, vp9_picture(124, 4, 2, false), &mut notices));
        assert_eq!(sent, vec![(118, 0, false), (119, 0, true), (120, 0, false), (121, 0, true)]);
        sent.clear();

        // Temporal layer 0 as well: the T1 and T2 pictures go entirely, still without gaps.
        s.svc.temporal.store(0, Ordering::Relaxed);
        sent.extend(run(&s, vp9_picture(130, 5, 2, false), &mut notices));
        sent.extend(run(&s, vp9_picture(136, 6, 1, false), &mut notices));
        sent.extend(run(&s, vp9_picture(142, 7, 0, false), &mut notices));
        assert_eq!(sent, vec![(122, 0, false), (123, 0, true)]);
        assert_eq!(s.svc_layers(), (Some(0), Some(0)));
        sent.clear();

        // Back to everything: spatial waits for a keyframe, which restores all layers.
        s.svc.spatial.store(2, Ordering::Relaxed);
        s.svc.temporal.store(2, Ordering::Relaxed);
        // Meanwhile the upper layers' packets ask for that keyframe.
        sent.extend(run(&s, vp9_picture(148, 8, 0, false), &mut notices));
        let ask = (0, 9, false);
        assert_eq!(sent, vec![(124, 0, false), (125, 0, true), ask, ask, ask, ask]);
        sent.clear();
        sent.extend(run(&s, vp9_picture(154, 9, 0, true), &mut notices));
        assert_eq!(sent.iter().map(|x| x.0).collect::<Vec<_>>(), (126..132).collect::<Vec<_>>());
        assert_eq!(
            notices,
            vec![
                ("spatial_layer", 2),
                ("temporal_layer", 2),
                ("spatial_layer", 0),
                ("temporal_layer", 0),
                ("spatial_layer", 2),
                ("temporal_layer", 2)
            ]
        );
    }
}
