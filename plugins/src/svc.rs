//! SVC layer selection for one receiver (VideoRoom subscribers, the EchoTest): which spatial and
//! temporal layers of a scalable VP9 or AV1 stream it gets (Janus `spatial_layer` and
//! `temporal_layer`).
//!
//! An SVC source sends every layer in one RTP stream, and each packet names its spatial and
//! temporal layer: VP9 in its payload descriptor (SID, TID; RFC 9628), AV1 in the Dependency
//! Descriptor header extension, whose template id is looked up in the template structure the
//! sender puts on keyframes ([`Av1Layers`]). A receiver gets the packets with
//! spatial <= its spatial layer and temporal <= its temporal layer; the rest are dropped (the
//! caller closes the sequence-number gap they leave, see [`crate::simulcast::Rewriter::skip`]).
//! The sender marks only the last packet of a whole picture, which is dropped when upper spatial
//! layers are, so the last packet of the highest forwarded layer frame gets the RTP marker bit:
//! without it the receiver's jitter buffer never completes the frame.
//!
//! Switching is only done where the receiver can decode what follows:
//! - down (either dimension): spatial at the start of a layer frame the receiver keeps, temporal
//!   at the start of a picture, so every picture it gets is whole;
//! - spatial up: on a keyframe only, straight to the wanted layer (as Janus). Upper layers the
//!   sender adds later (browsers add them as their bandwidth estimate grows) start with frames not
//!   predicted from earlier pictures, so they are forwarded as they come. Stepping up at such a
//!   frame mid-stream would need the lower layer's end-of-frame marker we already set undone;
//! - temporal up: on a keyframe, or at a picture that is a switching point to a higher wanted
//!   layer: VP9, a frame of that layer with U=1 (as Janus checks) or the picture after one with
//!   U=1 (the RFC's reading of U); AV1, a frame with a switch indication for the decode target of
//!   its spatial layer at that temporal layer.
//!
//! An AV1 receiver that starts mid-stream cannot read the layers until a keyframe brings the
//! structure (nor can its browser, which gets the descriptors relayed), so it waits for one.
//!
//! Changes are reported when the picture that shows them went out: the spatial layer is the one
//! whose frame ended the picture for this receiver (what it really gets, even when the sender
//! sends fewer layers than wanted; a top layer the sender skips now and then is not reported as
//! a change), the temporal layer the one being forwarded.
//!
//! This module is pure: no clock, no locks, no I/O. [`crate::simulcast::Selector`] holds a
//! receiver's [`SvcState`] next to its sequence rewriter.

use std::sync::atomic::{AtomicU8, Ordering};

use portunus_actors::media::codec::Vp9Layer;
use portunus_actors::media::dependency_descriptor::{self as dd, FrameDependencyStructure};
use portunus_actors::media::{RtpPacket, DEPENDENCY_DESCRIPTOR_URI};

/// Janus's default: the highest layers (it validates targets as 0, 1 or 2).
pub const DEFAULT_LAYER: u8 = 2;

/// Pictures in a row without the reported top spatial layer before a lower one is reported.
const LOWER_PICTURES: u8 = 8;

/// What a receiver asks for; written by its plugin's request handler, read per packet.
#[derive(Debug)]
pub struct SvcTargets {
    /// Wanted spatial layer (`spatial_layer`).
    pub spatial: AtomicU8,
    /// Wanted temporal layer (`temporal_layer`).
    pub temporal: AtomicU8,
}

impl Default for SvcTargets {
    fn default() -> Self {
        SvcTargets { spatial: AtomicU8::new(DEFAULT_LAYER), temporal: AtomicU8::new(DEFAULT_LAYER) }
    }
}

impl SvcTargets {
    /// The wanted (spatial, temporal) layers now.
    pub fn get(&self) -> (u8, u8) {
        (self.spatial.load(Ordering::Relaxed), self.temporal.load(Ordering::Relaxed))
    }
}

/// The layering of one packet, whatever the codec: what selection needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvcFrame {
    /// Spatial layer id.
    pub spatial: u8,
    /// Temporal layer id.
    pub temporal: u8,
    /// The first packet of its layer frame.
    pub start: bool,
    /// The last packet of its layer frame.
    pub end: bool,
    /// VP9 U: the picture is a switching-up point (the next one may add higher temporal layers).
    pub switching_up: bool,
    /// The temporal layers (bit t) a receiver may switch up to at this frame.
    pub switch_to: u8,
}

impl From<&Vp9Layer> for SvcFrame {
    fn from(l: &Vp9Layer) -> Self {
        SvcFrame {
            spatial: l.spatial,
            temporal: l.temporal,
            start: l.start,
            end: l.end,
            switching_up: l.switching_up,
            // U on a frame of layer TID: switching up to TID can happen here.
            switch_to: if l.switching_up { 1u8.checked_shl(u32::from(l.temporal)).unwrap_or(0) } else { 0 },
        }
    }
}

/// What a packet of an SVC source says about its layers.
#[derive(Debug, PartialEq, Eq)]
pub enum LayerInfo {
    /// Nothing (no VP9 layer indices; no AV1 Dependency Descriptor, as when it is not negotiated
    /// or the sender does not layer): the packet passes as it is.
    Unlayered,
    /// An AV1 descriptor whose template is in no structure this receiver has: wait for a keyframe.
    Unknown,
    /// The packet's frame; `true` when the packet starts a keyframe.
    Frame(SvcFrame, bool),
}

/// Reads AV1 packets' layers for one receiver from their Dependency Descriptors, keeping the
/// sender's latest template structure.
#[derive(Debug, Default)]
pub struct Av1Layers {
    structure: Option<FrameDependencyStructure>,
}

impl Av1Layers {
    /// The layering of `pkt`.
    pub fn frame(&mut self, pkt: &RtpPacket) -> LayerInfo {
        let Some(ext) = pkt.extensions.iter().find(|e| e.uri == Some(DEPENDENCY_DESCRIPTOR_URI)) else {
            return LayerInfo::Unlayered;
        };
        let Some(desc) = dd::parse(&ext.value, self.structure.as_ref()) else { return LayerInfo::Unknown };
        let fresh = desc.structure.is_some();
        if let Some(s) = &desc.structure {
            self.structure = Some(s.clone());
        }
        let Some(structure) = self.structure.as_ref() else { return LayerInfo::Unknown };
        let Some(layers) = desc.layers(Some(structure)) else { return LayerInfo::Unknown };
        let (_, max_t) = structure.max_layers();
        let switch_to = (0..=max_t.min(7))
            .filter(|&t| {
                structure
                    .decode_target(layers.spatial, t)
                    .is_some_and(|target| dd::dti(layers.dtis, target) == dd::DTI_SWITCH)
            })
            .fold(0u8, |mask, t| mask | (1 << t));
        let frame = SvcFrame {
            spatial: layers.spatial,
            temporal: layers.temporal,
            start: desc.start_of_frame,
            end: desc.end_of_frame,
            switching_up: false,
            switch_to,
        };
        LayerInfo::Frame(frame, fresh && desc.start_of_frame)
    }

    /// Forgets the structure (the source changed).
    pub fn reset(&mut self) {
        self.structure = None;
    }
}

/// What becomes of one packet of an SVC source for one receiver.
#[derive(Debug, PartialEq, Eq)]
pub enum SvcVerdict {
    /// Send it, with this marker bit.
    Forward {
        /// The marker bit to send: the sender's, or set where this receiver's picture ends.
        marker: bool,
    },
    /// Not for this receiver (a layer above its choice).
    Drop,
    /// Not yet: the receiver has not started, or wants a spatial layer the sender sends above
    /// the one it gets, and waits for a keyframe (ask for one).
    NeedKeyframe,
}

/// Where one receiver is in an SVC stream.
#[derive(Debug, Default)]
pub struct SvcState {
    spatial: Option<u8>,
    temporal: Option<u8>,
    /// The last picture forwarded was a temporal switching-up point.
    up_switch: bool,
    /// The layers last reported to the client.
    reported: (Option<u8>, Option<u8>),
    /// Pictures in a row that ended below the reported spatial layer without us asking for less.
    lower_run: u8,
}

impl SvcState {
    /// The (spatial, temporal) layers being forwarded, once started.
    pub fn current(&self) -> (Option<u8>, Option<u8>) {
        (self.spatial, self.temporal)
    }

    /// The spatial layer to report when a picture ended with layer `top` and the receiver's layer
    /// is `cur_s`, if it changed. Up at once; down at once when the receiver asked for less, but
    /// when the sender left its top layer out (an encoder may skip an upper layer frame when short
    /// of bits) only after [`LOWER_PICTURES`] pictures in a row, so a busy sender causes no flood
    /// of events.
    fn spatial_change(&mut self, top: u8, cur_s: u8) -> Option<u8> {
        let Some(shown) = self.reported.0 else { return Some(top) };
        if top >= shown {
            self.lower_run = 0;
            return (top > shown).then_some(top);
        }
        self.lower_run = self.lower_run.saturating_add(1);
        (cur_s < shown || self.lower_run >= LOWER_PICTURES).then(|| {
            self.lower_run = 0;
            top
        })
    }

    /// The (spatial, temporal) layers the receiver was last told it gets.
    pub fn reported(&self) -> (Option<u8>, Option<u8>) {
        self.reported
    }

    /// Forgets where the receiver was (its source changed): it starts again on a keyframe.
    pub fn reset(&mut self) {
        *self = SvcState { reported: self.reported, ..SvcState::default() };
    }

    /// Decides on a packet of `layer` (a [`Vp9Layer`] or an [`SvcFrame`]; its RTP marker bit is
    /// `marker`; `keyframe` when it starts a keyframe) for a receiver that wants `target` =
    /// (spatial, temporal). Layer changes to report are pushed to `notices` as
    /// `("spatial_layer", n)` / `("temporal_layer", n)`.
    pub fn decide(
        &mut self,
        layer: impl Into<SvcFrame>,
        keyframe: bool,
        marker: bool,
        target: (u8, u8),
        notices: &mut Vec<(&'static str, usize)>,
    ) -> SvcVerdict {
        let layer: SvcFrame = layer.into();
        let (want_s, want_t) = target;
        let (sid, tid) = (layer.spatial, layer.temporal);
        let (mut cur_s, mut cur_t) = match (self.spatial, self.temporal) {
            (Some(s), Some(t)) => (s, t),
            _ if keyframe => (want_s, want_t),
            _ => return SvcVerdict::NeedKeyframe,
        };
        if keyframe {
            // Nothing after a keyframe depends on what came before it.
            cur_s = cur_s.max(want_s);
            cur_t = cur_t.max(want_t);
        }
        if layer.start && sid == 0 {
            // A new picture: may the receiver get more temporal layers, or must it get fewer?
            let up_switch = std::mem::take(&mut self.up_switch);
            // The highest wanted layer above the current one this frame is a switching point to.
            let switch = (cur_t.saturating_add(1)..=want_t.min(7)).rev().find(|t| layer.switch_to & (1 << t) != 0);
            if want_t > cur_t && up_switch {
                cur_t = want_t;
            } else if let Some(t) = switch {
                cur_t = t;
            } else if want_t < cur_t {
                cur_t = want_t;
            }
        }
        if want_s < cur_s && layer.start && sid <= want_s {
            cur_s = want_s;
        }
        (self.spatial, self.temporal) = (Some(cur_s), Some(cur_t));
        if tid > cur_t || sid > cur_s {
            // A wanted layer above the current one is being sent: going up needs a keyframe, and
            // the one asked for when the receiver chose the layer may have been throttled or lost.
            if sid > cur_s && sid <= want_s && tid <= cur_t {
                return SvcVerdict::NeedKeyframe;
            }
            return SvcVerdict::Drop;
        }
        if layer.start && sid == 0 && layer.switching_up {
            self.up_switch = true;
        }
        // The sender marks the end of the whole picture; ours ends with the top forwarded layer.
        let marker = marker || (layer.end && sid == cur_s);
        if marker {
            if let Some(sid) = self.spatial_change(sid, cur_s) {
                self.reported.0 = Some(sid);
                notices.push(("spatial_layer", usize::from(sid)));
            }
            if self.reported.1 != Some(cur_t) {
                self.reported.1 = Some(cur_t);
                notices.push(("temporal_layer", usize::from(cur_t)));
            }
        }
        SvcVerdict::Forward { marker }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One packet of a picture: spatial layer `s`, temporal `t`, first/last of its layer frame.
    fn layer(s: u8, t: u8, start: bool, end: bool, inter_picture: bool) -> Vp9Layer {
        Vp9Layer {
            spatial: s,
            temporal: t,
            switching_up: t > 0,
            inter_picture,
            inter_layer: s > 0,
            start,
            end,
            flexible: false,
            spatial_layers: None,
        }
    }

    /// The packets of one L3 picture at temporal layer `t`, two per layer frame: (layer, marker).
    fn picture(t: u8, key: bool) -> Vec<(Vp9Layer, bool)> {
        let mut out = Vec::new();
        for s in 0..3 {
            out.push((layer(s, t, true, false, !key), false));
            out.push((layer(s, t, false, true, !key), s == 2));
        }
        out
    }

    struct Run {
        state: SvcState,
        notices: Vec<(&'static str, usize)>,
    }

    impl Run {
        fn new() -> Self {
            Run { state: SvcState::default(), notices: Vec::new() }
        }

        /// Feeds a picture; returns what went out as (spatial layer, marker).
        fn picture(&mut self, t: u8, key: bool, target: (u8, u8)) -> Vec<(u8, bool)> {
            let mut sent = Vec::new();
            for (i, (l, marker)) in picture(t, key).into_iter().enumerate() {
                let keyframe = key && i == 0;
                if let SvcVerdict::Forward { marker } =
                    self.state.decide(&l, keyframe, marker, target, &mut self.notices)
                {
                    sent.push((l.spatial, marker));
                }
            }
            sent
        }
    }

    const ALL: [(u8, bool); 6] = [(0, false), (0, false), (1, false), (1, false), (2, false), (2, true)];

    #[test]
    fn starts_on_a_keyframe_with_every_layer() {
        let mut r = Run::new();
        assert_eq!(
            r.state.decide(&layer(0, 0, true, false, true), false, false, (2, 2), &mut r.notices),
            SvcVerdict::NeedKeyframe
        );
        assert!(r.picture(1, false, (2, 2)).is_empty());
        assert_eq!(r.picture(0, true, (2, 2)), ALL);
        // One report for the whole key picture.
        assert_eq!(r.notices, vec![("spatial_layer", 2), ("temporal_layer", 2)]);
        assert_eq!(r.picture(2, false, (2, 2)), ALL);
        assert_eq!(r.notices.len(), 2);
    }

    #[test]
    fn lower_spatial_layer_gets_the_marker() {
        let mut r = Run::new();
        r.picture(0, true, (2, 2));
        r.notices.clear();
        // Down to layer 0: the next picture stops at its base layer, whose end is marked.
        assert_eq!(r.picture(2, false, (0, 2)), vec![(0, false), (0, true)]);
        assert_eq!(r.notices, vec![("spatial_layer", 0)]);
        // Layer 1: up on the next keyframe only; then its end carries the marker.
        assert_eq!(r.picture(1, false, (1, 2)), vec![(0, false), (0, true)], "no upswitch without a keyframe");
        // Meanwhile the layer 1 packets ask for that keyframe; the layer 2 ones, not wanted, do not.
        let asks: Vec<bool> = picture(1, false)
            .iter()
            .map(|(l, m)| r.state.decide(l, false, *m, (1, 2), &mut Vec::new()) == SvcVerdict::NeedKeyframe)
            .collect();
        assert_eq!(asks, vec![false, false, true, true, false, false]);
        assert_eq!(r.picture(0, true, (1, 2)), vec![(0, false), (0, false), (1, false), (1, true)]);
        assert_eq!(r.picture(2, false, (1, 2)), vec![(0, false), (0, false), (1, false), (1, true)]);
        assert_eq!(r.notices, vec![("spatial_layer", 0), ("spatial_layer", 1)]);
    }

    #[test]
    fn switching_down_mid_picture_keeps_the_picture_whole() {
        let mut r = Run::new();
        r.picture(0, true, (2, 2));
        let mut notices = Vec::new();
        let pkts = picture(1, false);
        // The base layer went out for layer 2; then the receiver asks for layer 1.
        for (l, m) in &pkts[..2] {
            assert!(matches!(
                r.state.decide(l, false, *m, (2, 2), &mut notices),
                SvcVerdict::Forward { marker: false }
            ));
        }
        let out: Vec<SvcVerdict> =
            pkts[2..].iter().map(|(l, m)| r.state.decide(l, false, *m, (1, 2), &mut notices)).collect();
        assert_eq!(
            out,
            vec![
                SvcVerdict::Forward { marker: false },
                SvcVerdict::Forward { marker: true },
                SvcVerdict::Drop,
                SvcVerdict::Drop
            ]
        );
    }

    #[test]
    fn temporal_layers_drop_and_return_at_switching_points() {
        let mut r = Run::new();
        r.picture(0, true, (2, 2));
        r.notices.clear();
        // T0 only: pictures of layers 1 and 2 are dropped whole.
        assert!(r.picture(2, false, (2, 0)).is_empty(), "a T2 picture");
        assert_eq!(r.picture(0, false, (2, 0)), ALL);
        assert!(r.picture(1, false, (2, 0)).is_empty());
        assert_eq!(r.notices, vec![("temporal_layer", 0)]);
        // Back up: the next T1 picture is a switching-up point (U=1 on T1 and T2 here).
        assert_eq!(r.picture(2, false, (2, 1)).len(), 0, "T2 is above the new target");
        assert_eq!(r.picture(1, false, (2, 1)), ALL);
        assert_eq!(r.picture(2, false, (2, 1)).len(), 0);
        assert_eq!(r.notices, vec![("temporal_layer", 0), ("temporal_layer", 1)]);
    }

    #[test]
    fn temporal_upswitch_waits_for_a_switching_point() {
        let mut s = SvcState::default();
        let mut notices = Vec::new();
        let key = layer(0, 0, true, true, false);
        s.decide(&key, true, true, (0, 0), &mut notices);
        let no_u = Vp9Layer { switching_up: false, ..layer(0, 1, true, true, true) };
        assert_eq!(s.decide(&no_u, false, true, (0, 1), &mut notices), SvcVerdict::Drop);
        // A T0 picture marked as a switching-up point: the following T1 picture may go.
        let t0_u = Vp9Layer { switching_up: true, ..layer(0, 0, true, true, true) };
        assert!(matches!(s.decide(&t0_u, false, true, (0, 1), &mut notices), SvcVerdict::Forward { .. }));
        assert!(matches!(s.decide(&no_u, false, true, (0, 1), &mut notices), SvcVerdict::Forward { .. }));
        assert_eq!(s.current(), (Some(0), Some(1)));
    }

    #[test]
    fn layers_the_sender_adds_later_are_forwarded_and_reported() {
        // The sender starts with its base layer only (its bandwidth estimate is low), then adds
        // layer 1 with a frame predicted from the base layer only (P=0, D=1).
        let mut s = SvcState::default();
        let mut notices = Vec::new();
        let key = layer(0, 0, true, true, false);
        assert_eq!(s.decide(&key, true, true, (2, 2), &mut notices), SvcVerdict::Forward { marker: true });
        assert_eq!(notices, vec![("spatial_layer", 0), ("temporal_layer", 2)]);
        let base = layer(0, 0, true, true, true);
        assert_eq!(s.decide(&base, false, false, (2, 2), &mut notices), SvcVerdict::Forward { marker: false });
        let added = layer(1, 0, true, true, false);
        assert_eq!(s.decide(&added, false, true, (2, 2), &mut notices), SvcVerdict::Forward { marker: true });
        assert_eq!(notices[2..], [("spatial_layer", 1)]);
    }

    #[test]
    fn a_top_layer_skipped_now_and_then_is_not_reported() {
        let mut r = Run::new();
        r.picture(0, true, (2, 2));
        // One picture without layer 2 (the encoder skipped it): no event.
        let two_layers = |t: u8| {
            let mut p = picture(t, false);
            p.truncate(4);
            p[3].1 = true;
            p
        };
        for (l, m) in two_layers(1) {
            r.state.decide(&l, false, m, (2, 2), &mut r.notices);
        }
        r.picture(2, false, (2, 2));
        assert_eq!(r.notices, vec![("spatial_layer", 2), ("temporal_layer", 2)]);
        // Layer 2 gone for good: reported once, after a few pictures; back at once.
        for _ in 0..LOWER_PICTURES + 2 {
            for (l, m) in two_layers(2) {
                r.state.decide(&l, false, m, (2, 2), &mut r.notices);
            }
        }
        r.picture(1, false, (2, 2));
        assert_eq!(r.notices[2..], [("spatial_layer", 1), ("spatial_layer", 2)]);
    }

    #[test]
    fn a_new_source_starts_again_on_a_keyframe() {
        let mut s = SvcState::default();
        let mut notices = Vec::new();
        s.decide(&layer(0, 0, true, true, false), true, true, (2, 2), &mut notices);
        s.reset();
        assert_eq!(
            s.decide(&layer(0, 0, true, true, true), false, true, (2, 2), &mut notices),
            SvcVerdict::NeedKeyframe
        );
        assert_eq!(s.current(), (None, None));
    }

    /// AV1 with Dependency Descriptors: an L2T2 structure (decode targets S0T0, S0T1, S1T0,
    /// S1T1) and packets that point into it.
    mod av1 {
        use bytes::Bytes;
        use portunus_actors::media::{RtpExtension, RtpPacket, DEPENDENCY_DESCRIPTOR_URI};

        use super::super::*;
        use crate::simulcast::{Selector, Verdict};

        /// Big-endian bits, for crafting descriptors.
        fn bits(fields: &[(u32, u32)]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut n = 0;
            for &(width, value) in fields {
                for i in (0..width).rev() {
                    if n % 8 == 0 {
                        out.push(0);
                    }
                    if (value >> i) & 1 == 1 {
                        *out.last_mut().unwrap() |= 0x80 >> (n % 8);
                    }
                    n += 1;
                }
            }
            out
        }

        /// The descriptor of a frame of template `tpl` (0 S0T0, 1 S0T1, 2 S1T0, 3 S1T1), with the
        /// structure when `key`.
        fn descriptor(tpl: u32, start: bool, end: bool, frame: u32, key: bool) -> Vec<u8> {
            let mut f = vec![(1, u32::from(start)), (1, u32::from(end)), (6, tpl), (16, frame)];
            if key {
                // Structure present; offset 0, four decode targets; layers S0T0 S0T1 S1T0 S1T1.
                f.extend([(5, 0b10000), (6, 0), (5, 3), (2, 1), (2, 2), (2, 1), (2, 3)]);
                // DTIs per template, target 0 first: S=2, R=3, D=1, -=0.
                for dtis in [[2, 2, 2, 2], [0, 1, 0, 3], [0, 0, 2, 2], [0, 0, 0, 1]] {
                    f.extend(dtis.map(|d| (2, d)));
                }
                // No frame differences, no chains (ns(5) = 0), no resolutions.
                f.extend([(1, 0), (1, 0), (1, 0), (1, 0), (2, 0), (1, 0)]);
            }
            bits(&f)
        }

        fn packet(seq: u16, tpl: u32, start: bool, end: bool, marker: bool, key: bool) -> RtpPacket {
            let frame = u32::from(seq);
            // Aggregation header: N on a keyframe's first packet.
            let payload = vec![if key && start && tpl == 0 { 0x18 } else { 0x10 }, 0x32, 0x00];
            RtpPacket {
                marker,
                payload_type: 45,
                sequence_number: seq,
                timestamp: u32::from(seq / 4) * 3000,
                ssrc: 5,
                extensions: vec![RtpExtension {
                    id: 13,
                    uri: Some(DEPENDENCY_DESCRIPTOR_URI),
                    value: Bytes::from(descriptor(tpl, start, end, frame, key && start && tpl == 0)),
                }],
                rid: None,
                payload: Bytes::from(payload),
            }
        }

        /// One picture at temporal layer `t`: two packets per spatial layer, marked at the end.
        fn picture(first_seq: u16, t: u32, key: bool) -> Vec<RtpPacket> {
            let mut out = Vec::new();
            for s in 0..2u32 {
                let (tpl, seq) = (s * 2 + t, first_seq + 2 * s as u16);
                out.push(packet(seq, tpl, true, false, false, key));
                out.push(packet(seq + 1, tpl, false, true, s == 1, key));
            }
            out
        }

        /// What went out: (sequence number, template, marker); `(0, 9, false)` for a keyframe
        /// request.
        fn run(s: &Selector, pkts: Vec<RtpPacket>, notices: &mut Vec<(&'static str, usize)>) -> Vec<(u16, u8, bool)> {
            let mut out = Vec::new();
            for p in pkts {
                let tpl = p.extensions[0].value[0] & 0x3f;
                match s.decide_svc(&p, "av1", &mut None, notices) {
                    Verdict::Forward { seq, marker, .. } => out.push((seq, tpl, marker)),
                    Verdict::NeedKeyframe => out.push((0, 9, false)),
                    Verdict::Drop => {}
                }
            }
            out
        }

        #[test]
        fn layers_come_from_the_structure() {
            let mut a = Av1Layers::default();
            // Before the structure: unknown layers.
            assert_eq!(a.frame(&packet(1, 3, true, true, true, false)), LayerInfo::Unknown);
            let key = packet(4, 0, true, false, false, true);
            let LayerInfo::Frame(f, true) = a.frame(&key) else { panic!("a keyframe with its structure") };
            assert_eq!((f.spatial, f.temporal, f.start, f.end), (0, 0, true, false));
            assert_eq!(f.switch_to, 0b11, "S0T0 is a switch point to both temporal layers");
            let LayerInfo::Frame(f, false) = a.frame(&packet(9, 1, true, true, false, false)) else { panic!() };
            assert_eq!((f.spatial, f.temporal, f.switch_to), (0, 1, 0));
            let LayerInfo::Frame(f, false) = a.frame(&packet(10, 2, true, true, false, false)) else { panic!() };
            assert_eq!((f.spatial, f.temporal, f.switch_to), (1, 0, 0b11));
            // No descriptor: unlayered; a broken one: unknown.
            let bare = RtpPacket { extensions: vec![], ..packet(11, 0, true, true, true, false) };
            assert_eq!(a.frame(&bare), LayerInfo::Unlayered);
            let mut broken = packet(12, 0, true, true, true, false);
            broken.extensions[0].value = Bytes::from_static(&[0x80]);
            assert_eq!(a.frame(&broken), LayerInfo::Unknown);
            a.reset();
            assert_eq!(a.frame(&packet(13, 2, true, true, false, false)), LayerInfo::Unknown);
        }

        #[test]
        fn selection_drops_marks_and_keeps_sequences_continuous() {
            let s = Selector::default();
            let mut notices = Vec::new();
            // Mid-stream start: keyframe requests until the structure comes.
            assert!(run(&s, picture(100, 1, false), &mut notices).iter().all(|p| p.1 == 9));
            let out = run(&s, picture(104, 0, true), &mut notices);
            assert_eq!(out, vec![(104, 0, false), (105, 0, false), (106, 2, false), (107, 2, true)]);
            assert_eq!(run(&s, picture(108, 1, false), &mut notices).len(), 4);
            assert_eq!(notices, vec![("spatial_layer", 1), ("temporal_layer", 2)]);
            notices.clear();

            // Spatial layer 0: the base layer frame's end gets the marker; no gaps.
            s.svc.spatial.store(0, Ordering::Relaxed);
            let out = run(&s, picture(112, 0, false), &mut notices);
            assert_eq!(out, vec![(112, 0, false), (113, 0, true)]);
            assert_eq!(run(&s, picture(116, 1, false), &mut notices), vec![(114, 1, false), (115, 1, true)]);
            assert_eq!(notices, vec![("spatial_layer", 0)]);

            // Temporal layer 0: T1 pictures go; back to 1 at the next T0 picture (a switch point).
            s.svc.temporal.store(0, Ordering::Relaxed);
            assert_eq!(run(&s, picture(120, 0, false), &mut notices), vec![(116, 0, false), (117, 0, true)]);
            assert!(run(&s, picture(124, 1, false), &mut notices).is_empty());
            s.svc.temporal.store(1, Ordering::Relaxed);
            assert!(run(&s, picture(128, 1, false), &mut notices).is_empty(), "no switch point yet");
            assert_eq!(run(&s, picture(132, 0, false), &mut notices), vec![(118, 0, false), (119, 0, true)]);
            assert_eq!(run(&s, picture(136, 1, false), &mut notices), vec![(120, 1, false), (121, 1, true)]);
            assert_eq!(notices[1..], [("temporal_layer", 0), ("temporal_layer", 1)]);

            // Spatial up waits for a keyframe, which the layer 1 packets ask for meanwhile.
            s.svc.spatial.store(1, Ordering::Relaxed);
            let out = run(&s, picture(140, 0, false), &mut notices);
            assert_eq!(out, vec![(122, 0, false), (123, 0, true), (0, 9, false), (0, 9, false)]);
            let out = run(&s, picture(144, 0, true), &mut notices);
            assert_eq!(out, vec![(124, 0, false), (125, 0, false), (126, 2, false), (127, 2, true)]);
            assert_eq!(s.svc_layers(), (Some(1), Some(1)));
        }
    }
}
