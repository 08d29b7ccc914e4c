//! What SFU plugins need to know about a video payload without decoding it: whether a packet
//! starts a keyframe (VP8, VP9, H.264, AV1), its VP8 temporal layer, and the VP9 payload
//! descriptor's layering fields (RFC 9628) that SVC layer selection needs. AV1 layers are not in
//! the payload but in the Dependency Descriptor header extension
//! ([`super::dependency_descriptor`]).
//!
//! The VP9 descriptor is read by our own allocation-free parser ([`parse_vp9`]) rather than
//! `rtc`'s `Vp9Packet`: that one rejects a descriptor with three reference indices (P_DIFF), which
//! RFC 9628 allows, reads the scalability structure's G bit together with the reserved bits, and
//! allocates on every packet. The tests check both parsers agree on the packets they both accept.

use bytes::Bytes;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// A video packet's layering facts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VideoFrameInfo {
    /// The packet starts a keyframe.
    pub keyframe: bool,
    /// VP8 temporal layer id, when the sender marks it.
    pub temporal: Option<u8>,
    /// VP9 layer indices, when the descriptor carries them (L=1).
    pub vp9: Option<Vp9Layer>,
}

/// The layering facts of one VP9 packet (RFC 9628 section 4.2), for SVC layer selection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp9Layer {
    /// Spatial layer id (SID).
    pub spatial: u8,
    /// Temporal layer id (TID).
    pub temporal: u8,
    /// U: a switching-up point (higher temporal layers may be added from here).
    pub switching_up: bool,
    /// P: the layer frame is predicted from earlier pictures.
    pub inter_picture: bool,
    /// D: the layer frame is predicted from a lower spatial layer of the same picture.
    pub inter_layer: bool,
    /// B: the first packet of a layer frame.
    pub start: bool,
    /// E: the last packet of a layer frame.
    pub end: bool,
    /// F: flexible mode.
    pub flexible: bool,
    /// How many spatial layers the scalability structure announces (N_S + 1), when present.
    pub spatial_layers: Option<u8>,
}

/// A parsed VP9 payload descriptor (RFC 9628 section 4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp9Descriptor {
    /// P: inter-picture predicted layer frame.
    pub inter_picture: bool,
    /// F: flexible mode.
    pub flexible: bool,
    /// B: start of a layer frame.
    pub start: bool,
    /// E: end of a layer frame.
    pub end: bool,
    /// Z: not used as reference by upper spatial layers.
    pub not_reference: bool,
    /// Picture id (7 or 15 bits), when I=1.
    pub picture_id: Option<u16>,
    /// Layer indices: TID, U, SID, D, and TL0PICIDX in non-flexible mode.
    pub layer: Option<Vp9LayerIndices>,
    /// Spatial layers announced by the scalability structure (N_S + 1), when V=1.
    pub spatial_layers: Option<u8>,
    /// Resolution of the highest spatial layer, when the scalability structure has Y=1.
    pub top_resolution: Option<(u16, u16)>,
    /// Where the VP9 frame data starts in the payload.
    pub header_len: usize,
}

/// The descriptor's layer indices octet(s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp9LayerIndices {
    /// TID.
    pub temporal: u8,
    /// U.
    pub switching_up: bool,
    /// SID.
    pub spatial: u8,
    /// D.
    pub inter_layer: bool,
    /// TL0PICIDX (non-flexible mode only).
    pub tl0_pic_idx: Option<u8>,
}

/// Reads the VP9 payload descriptor at the start of `payload`; `None` when it is truncated or
/// malformed (never panics on any input).
pub fn parse_vp9(payload: &[u8]) -> Option<Vp9Descriptor> {
    let mut r = Reader { buf: payload, pos: 0 };
    let first = r.byte()?;
    let bit = |mask: u8| first & mask != 0;
    let mut d = Vp9Descriptor {
        inter_picture: bit(0x40),
        flexible: bit(0x10),
        start: bit(0x08),
        end: bit(0x04),
        not_reference: bit(0x01),
        ..Vp9Descriptor::default()
    };
    if bit(0x80) {
        let b = r.byte()?;
        d.picture_id =
            Some(if b & 0x80 != 0 { (u16::from(b & 0x7f) << 8) | u16::from(r.byte()?) } else { u16::from(b) });
    }
    if bit(0x20) {
        let b = r.byte()?;
        let tl0_pic_idx = if d.flexible { None } else { Some(r.byte()?) };
        d.layer = Some(Vp9LayerIndices {
            temporal: b >> 5,
            switching_up: b & 0x10 != 0,
            spatial: (b >> 1) & 0x07,
            inter_layer: b & 0x01 != 0,
            tl0_pic_idx,
        });
    }
    if d.flexible && d.inter_picture {
        // Up to three reference indices, each with a "more follow" bit (N).
        for i in 0.. {
            let more = r.byte()? & 0x01 != 0;
            if !more {
                break;
            }
            if i == 2 {
                return None;
            }
        }
    }
    if bit(0x02) {
        let b = r.byte()?;
        let layers = (b >> 5) + 1;
        d.spatial_layers = Some(layers);
        if b & 0x10 != 0 {
            for _ in 0..layers {
                let w = u16::from_be_bytes([r.byte()?, r.byte()?]);
                let h = u16::from_be_bytes([r.byte()?, r.byte()?]);
                d.top_resolution = Some((w, h));
            }
        }
        if b & 0x08 != 0 {
            let pictures = r.byte()?;
            for _ in 0..pictures {
                let refs = (r.byte()? >> 2) & 0x03;
                r.skip(usize::from(refs))?;
            }
        }
    }
    d.header_len = r.pos;
    Some(d)
}

/// Whether the VP9 frame at the start of `frame` is a key frame, from its uncompressed header
/// (frame_marker, profile, show_existing_frame, frame_type); `None` when it is not a frame header.
fn vp9_frame_is_key(frame: &[u8]) -> Option<bool> {
    let b = *frame.first()?;
    if b >> 6 != 0b10 {
        return None;
    }
    let profile = ((b >> 5) & 1) | (((b >> 4) & 1) << 1);
    // Bits after the profile: a reserved zero for profile 3, then show_existing_frame, frame_type.
    let mut next = if profile == 3 { 5 } else { 4 };
    let show_existing = (b >> (7 - next)) & 1 == 1;
    if show_existing {
        return Some(false);
    }
    next += 1;
    Some((b >> (7 - next)) & 1 == 0)
}

fn vp9_info(payload: &[u8]) -> VideoFrameInfo {
    let Some(d) = parse_vp9(payload) else { return VideoFrameInfo::default() };
    let base = d.layer.is_none_or(|l| l.spatial == 0);
    // A keyframe starts with the base layer's first packet of a picture predicted from nothing;
    // the frame header confirms it when it can be read.
    let keyframe =
        d.start && !d.inter_picture && base && payload.get(d.header_len..).and_then(vp9_frame_is_key).unwrap_or(true);
    VideoFrameInfo {
        keyframe,
        temporal: None,
        vp9: d.layer.map(|l| Vp9Layer {
            spatial: l.spatial,
            temporal: l.temporal,
            switching_up: l.switching_up,
            inter_picture: d.inter_picture,
            inter_layer: l.inter_layer,
            start: d.start,
            end: d.end,
            flexible: d.flexible,
            spatial_layers: d.spatial_layers,
        }),
    }
}

/// A bounds-checked cursor over a payload.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        (self.pos + n <= self.buf.len()).then(|| self.pos += n)
    }
}

/// Inspects a video payload of codec `codec` (`vp8`, `vp9`, `h264`, `av1`; others report
/// nothing).
pub fn inspect_video(codec: &str, payload: &Bytes) -> VideoFrameInfo {
    match codec {
        "vp8" => {
            let mut p = Vp8Packet::default();
            let Ok(frame) = p.depacketize(payload) else { return VideoFrameInfo::default() };
            VideoFrameInfo {
                // A keyframe's first partition starts with the inverse key-frame bit clear.
                keyframe: p.s == 1 && p.pid == 0 && frame.first().is_some_and(|b| b & 0x01 == 0),
                temporal: (p.t == 1).then_some(p.tid),
                vp9: None,
            }
        }
        "vp9" => vp9_info(payload),
        "h264" => VideoFrameInfo { keyframe: h264_keyframe(payload), temporal: None, vp9: None },
        "av1" => VideoFrameInfo { keyframe: av1_keyframe(payload), temporal: None, vp9: None },
        _ => VideoFrameInfo::default(),
    }
}

/// A new coded video sequence (a key frame) starts here: the AV1 aggregation header's N bit, or
/// a sequence header as the first whole OBU (senders that leave N clear), of the base spatial
/// layer when the OBU names its layer.
fn av1_keyframe(payload: &[u8]) -> bool {
    const Z: u8 = 0x80;
    const N: u8 = 0x08;
    const OBU_SEQUENCE_HEADER: u8 = 1;
    let mut r = Reader { buf: payload, pos: 0 };
    let Some(aggregation) = r.byte() else { return false };
    if aggregation & Z != 0 {
        return false;
    }
    // W = 1: one OBU element without a length; otherwise the first one has a leb128 length.
    if (aggregation >> 4) & 0x03 != 1 {
        for _ in 0..8 {
            match r.byte() {
                Some(b) if b & 0x80 != 0 => continue,
                Some(_) => break,
                None => return false,
            }
        }
    }
    let Some(obu) = r.byte() else { return false };
    let base_layer = obu & 0x04 == 0 || r.byte().is_some_and(|ext| (ext >> 3) & 0x03 == 0);
    let sequence_header = (obu >> 3) & 0x0f == OBU_SEQUENCE_HEADER;
    base_layer && (aggregation & N != 0 || sequence_header)
}

/// An IDR or SPS NAL unit starts here (single NAL, STAP-A, or the first FU-A fragment).
fn h264_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let Some(&first) = payload.first() else { return false };
    match first & 0x1f {
        IDR | SPS => true,
        // STAP-A: 2-byte sizes before each aggregated NAL.
        24 => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if matches!(rest[2] & 0x1f, IDR | SPS) {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or_default();
            }
            false
        }
        // FU-A: start bit and the fragmented NAL's type.
        28 => payload.get(1).is_some_and(|h| h & 0x80 != 0 && matches!(h & 0x1f, IDR | SPS)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_and_temporal_id() {
        // X=1, S=1, PID=0; extension byte with T=1; T byte with TID=2; keyframe header byte.
        let key = Bytes::from_static(&[0x90, 0x20, 0x80, 0x10, 0x02, 0x00]);
        assert_eq!(inspect_video("vp8", &key), VideoFrameInfo { keyframe: true, temporal: Some(2), vp9: None });
        let delta = Bytes::from_static(&[0x10, 0x01, 0x00]);
        assert_eq!(inspect_video("vp8", &delta), VideoFrameInfo { keyframe: false, temporal: None, vp9: None });
        let continuation = Bytes::from_static(&[0x00, 0x00, 0x00]);
        assert!(!inspect_video("vp8", &continuation).keyframe);
    }

    #[test]
    fn av1_keyframes() {
        // N=1, W=1: a sequence header OBU (type 1, no extension).
        assert!(av1_keyframe(&[0x18, 0x08, 0x00, 0x00]));
        // N=1, W=0: a leb128 length (two bytes) before the first OBU.
        assert!(av1_keyframe(&[0x08, 0x85, 0x01, 0x0a, 0x00]));
        // N=0 but a sequence header first (W=2).
        assert!(av1_keyframe(&[0x20, 0x0a, 0x08, 0x00]));
        // N=0, a frame OBU (type 6): a delta frame.
        assert!(!av1_keyframe(&[0x10, 0x32, 0x00]));
        // Z=1: a continuation, never the start of a keyframe.
        assert!(!av1_keyframe(&[0x98, 0x08, 0x00]));
        // A sequence header with an extension naming spatial layer 1: not the base layer.
        assert!(!av1_keyframe(&[0x18, 0x0c, 0x08, 0x00]));
        assert!(av1_keyframe(&[0x18, 0x0c, 0x20, 0x00]), "temporal 1, spatial 0");
        // Truncated or empty.
        assert!(!av1_keyframe(&[]) && !av1_keyframe(&[0x08]) && !av1_keyframe(&[0x08, 0x80]));
        assert!(inspect_video("av1", &Bytes::from_static(&[0x18, 0x08, 0x00])).keyframe);
    }

    #[test]
    fn h264_idr_in_all_packetizations() {
        assert!(h264_keyframe(&[0x65, 0x88]));
        assert!(!h264_keyframe(&[0x41, 0x9a]));
        assert!(h264_keyframe(&[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]));
        assert!(h264_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!h264_keyframe(&[0x7c, 0x05, 0x00]));
    }

    /// A non-flexible L3T3 key picture's first packet: I, L, B, V set; 15-bit picture id; TID 0,
    /// SID 0; TL0PICIDX; a scalability structure of three layers with resolutions and one
    /// picture group; then a VP9 key frame header (profile 0).
    const KEY_BASE: &[u8] = &[
        0xaa, 0x92, 0x34, 0x00, 0x05, 0x58, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0,
        0x01, 0x00, 0x82, 0x49, 0x83,
    ];

    /// A flexible-mode packet with three reference indices: P, L, F, B set; TID 2, U, SID 1, D.
    const FLEX_THREE_REFS: &[u8] = &[0xf8, 0x05, 0x53, 0x03, 0x05, 0x06, 0x86, 0x00];

    #[test]
    fn vp9_descriptor_fields() {
        let d = parse_vp9(KEY_BASE).unwrap();
        assert!(d.start && !d.end && !d.inter_picture && !d.flexible);
        assert_eq!(d.picture_id, Some(0x1234));
        let l = d.layer.unwrap();
        assert_eq!(
            (l.temporal, l.spatial, l.switching_up, l.inter_layer, l.tl0_pic_idx),
            (0, 0, false, false, Some(5))
        );
        assert_eq!(d.spatial_layers, Some(3));
        assert_eq!(d.top_resolution, Some((1280, 720)));
        assert_eq!(d.header_len, 20);

        let d = parse_vp9(FLEX_THREE_REFS).unwrap();
        assert!(d.flexible && d.inter_picture && d.start);
        let l = d.layer.unwrap();
        assert_eq!((l.temporal, l.spatial, l.switching_up, l.inter_layer, l.tl0_pic_idx), (2, 1, true, true, None));
        assert_eq!(d.header_len, 6);
        // A fourth reference index is malformed.
        assert_eq!(parse_vp9(&[0xf8, 0x05, 0x53, 0x03, 0x05, 0x07, 0x09, 0x86]), None);
    }

    #[test]
    fn vp9_keyframes_and_layers() {
        let info = inspect_video("vp9", &Bytes::from_static(KEY_BASE));
        assert!(info.keyframe);
        let l = info.vp9.unwrap();
        assert_eq!((l.spatial, l.temporal, l.start, l.spatial_layers), (0, 0, true, Some(3)));
        // Inter-picture predicted: not a keyframe.
        assert!(!inspect_video("vp9", &Bytes::from_static(FLEX_THREE_REFS)).keyframe);
        // The upper layer of a key picture is not itself the keyframe's start.
        let upper = Bytes::from_static(&[0xac, 0x92, 0x34, 0x03, 0x05, 0x86, 0x00]);
        let info = inspect_video("vp9", &upper);
        assert!(!info.keyframe);
        assert_eq!(info.vp9.map(|l| (l.spatial, l.inter_layer)), Some((1, true)));
        // P=0 but the frame header says inter frame (an intra-only frame): not a keyframe.
        let intra_only = Bytes::from_static(&[0x08, 0x86, 0x00]);
        assert!(!inspect_video("vp9", &intra_only).keyframe);
        // Without layer indices a non-layered keyframe is still found.
        assert!(inspect_video("vp9", &Bytes::from_static(&[0x08, 0x82, 0x49])).keyframe);
    }

    #[test]
    fn vp9_garbage_never_panics() {
        for len in 0..KEY_BASE.len() {
            let d = parse_vp9(&KEY_BASE[..len]);
            assert!(d.is_none_or(|d| d.header_len <= len), "prefix {len}");
            let _ = inspect_video("vp9", &Bytes::copy_from_slice(&KEY_BASE[..len]));
        }
        for seed in 0u32..2000 {
            let bytes: Vec<u8> =
                (0..(seed % 23)).map(|i| (seed.wrapping_mul(2654435761).rotate_left(i) & 0xff) as u8).collect();
            let _ = inspect_video("vp9", &Bytes::from(bytes));
        }
    }

    #[test]
    fn vp9_parser_agrees_with_rtc() {
        use rtc::rtp::codec::vp9::Vp9Packet;
        let one_ref: &[u8] = &[0xf8, 0x05, 0x53, 0x02, 0x86, 0x00];
        for pkt in [KEY_BASE, one_ref] {
            let ours = parse_vp9(pkt).unwrap();
            let mut theirs = Vp9Packet::default();
            let rest = theirs.depacketize(&Bytes::copy_from_slice(pkt)).unwrap();
            assert_eq!(ours.header_len, pkt.len() - rest.len());
            let l = ours.layer.unwrap();
            assert_eq!(
                (l.spatial, l.temporal, l.switching_up, l.inter_layer),
                (theirs.sid, theirs.tid, theirs.u, theirs.d)
            );
            assert_eq!((ours.start, ours.end, ours.inter_picture), (theirs.b, theirs.e, theirs.p));
        }
        // Where they differ: rtc refuses three reference indices.
        let mut theirs = Vp9Packet::default();
        assert!(theirs.depacketize(&Bytes::from_static(FLEX_THREE_REFS)).is_err());
        assert!(parse_vp9(FLEX_THREE_REFS).is_some());
    }
}
