//! What SFU plugins need to know about a video payload without decoding it: whether a packet
//! starts a keyframe, and its VP8 temporal layer.

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
}

/// Inspects a video payload of codec `codec` (`vp8`, `h264`; others report nothing).
pub fn inspect_video(codec: &str, payload: &Bytes) -> VideoFrameInfo {
    match codec {
        "vp8" => {
            let mut p = Vp8Packet::default();
            let Ok(frame) = p.depacketize(payload) else { return VideoFrameInfo::default() };
            VideoFrameInfo {
                // A keyframe's first partition starts with the inverse key-frame bit clear.
                keyframe: p.s == 1 && p.pid == 0 && frame.first().is_some_and(|b| b & 0x01 == 0),
                temporal: (p.t == 1).then_some(p.tid),
            }
        }
        "h264" => VideoFrameInfo { keyframe: h264_keyframe(payload), temporal: None },
        _ => VideoFrameInfo::default(),
    }
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
        assert_eq!(inspect_video("vp8", &key), VideoFrameInfo { keyframe: true, temporal: Some(2) });
        let delta = Bytes::from_static(&[0x10, 0x01, 0x00]);
        assert_eq!(inspect_video("vp8", &delta), VideoFrameInfo { keyframe: false, temporal: None });
        let continuation = Bytes::from_static(&[0x00, 0x00, 0x00]);
        assert!(!inspect_video("vp8", &continuation).keyframe);
    }

    #[test]
    fn h264_idr_in_all_packetizations() {
        assert!(h264_keyframe(&[0x65, 0x88]));
        assert!(!h264_keyframe(&[0x41, 0x9a]));
        assert!(h264_keyframe(&[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]));
        assert!(h264_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!h264_keyframe(&[0x7c, 0x05, 0x00]));
    }
}
