//! Plain RTP/RTCP on UDP, outside any PeerConnection: what VideoRoom remote publishers
//! (`add_remote_publisher`) receive and what their keyframe requests look like on the wire.
//!
//! Only parsing and building of single datagrams lives here; sockets and tasks belong to the
//! caller. Every function takes untrusted bytes and answers `None`/empty for anything malformed:
//! a panic here is always our bug.

use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::shared::marshal::{Marshal, Unmarshal};

use super::types::RtpPacket;

/// Whether `buf` looks like RTP (version 2, a payload type outside the RTCP range), as Janus's
/// `janus_is_rtp` decides.
pub fn is_rtp(buf: &[u8]) -> bool {
    buf.len() >= 12 && buf[0] >> 6 == 2 && !(64..96).contains(&(buf[1] & 0x7f))
}

/// Whether `buf` looks like RTCP (version 2, packet type 200..=207).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (200..=207).contains(&buf[1])
}

/// The SSRC of an RTP packet (readable before SRTP decryption: the header is in the clear).
pub fn rtp_ssrc(buf: &[u8]) -> Option<u32> {
    if !is_rtp(buf) {
        return None;
    }
    Some(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]))
}

/// Parses one (decrypted) RTP packet. `relayed` names the header extension ids the sender uses
/// for the extensions of [`super::RELAYED_EXTENSIONS`], so writers can relay them.
pub fn parse_rtp(buf: Bytes, relayed: &[(u8, &'static str)]) -> Option<RtpPacket> {
    if !is_rtp(&buf) {
        return None;
    }
    let mut b = buf;
    let pkt = rtc::rtp::Packet::unmarshal(&mut b).ok()?;
    Some(RtpPacket::from_rtp(pkt, relayed))
}

/// The payload of an RTP packet without parsing extensions (Janus relays data-channel messages
/// to remote publishers inside a bare 12-byte RTP header).
pub fn rtp_payload(buf: &[u8]) -> Option<&[u8]> {
    is_rtp(buf).then(|| &buf[12..])
}

/// An RTCP PLI from `sender_ssrc` asking the source of `media_ssrc` for a keyframe.
pub fn picture_loss(sender_ssrc: u32, media_ssrc: u32) -> Bytes {
    marshal(&PictureLossIndication { sender_ssrc, media_ssrc })
}

/// An empty RTCP receiver report from `ssrc`: sent to a remote publisher's RTCP port so that it
/// learns (latches) where to send its keyframe requests.
pub fn empty_receiver_report(ssrc: u32) -> Bytes {
    marshal(&ReceiverReport { ssrc, ..Default::default() })
}

fn marshal(packet: &impl Marshal) -> Bytes {
    // Both packets are fixed-size and always marshal; an empty datagram is harmless.
    packet.marshal().map(|b| b.freeze()).unwrap_or_default()
}

/// The media SSRCs a (possibly compound) RTCP packet asks keyframes for (PLI and FIR). A packet
/// that does not parse asks for nothing.
pub fn keyframe_requests(buf: &[u8]) -> Vec<u32> {
    let mut raw = buf;
    let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut raw) else { return Vec::new() };
    let mut out = Vec::new();
    for p in &packets {
        let any = p.as_any();
        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
            out.push(pli.media_ssrc);
        } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
            out.extend(fir.fir.iter().map(|e| e.ssrc));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_is_told_from_rtcp_and_parsed() {
        let rtp = [0x80, 96, 0, 7, 0, 0, 0, 9, 0, 0, 3, 0xe8, 0xaa, 0xbb];
        assert!(is_rtp(&rtp));
        assert!(!is_rtcp(&rtp));
        assert_eq!(rtp_ssrc(&rtp), Some(1000));
        let p = parse_rtp(Bytes::copy_from_slice(&rtp), &[]).expect("parsed");
        assert_eq!((p.sequence_number, p.timestamp, p.ssrc), (7, 9, 1000));
        assert_eq!(&p.payload[..], &[0xaa, 0xbb]);
        assert_eq!(rtp_payload(&rtp), Some(&[0xaa, 0xbb][..]));
        let pli = picture_loss(1, 1010);
        assert!(is_rtcp(&pli) && !is_rtp(&pli));
        assert_eq!(rtp_ssrc(&pli), None);
    }

    #[test]
    fn extensions_are_named_by_the_given_ids() {
        // One-byte header extension profile, id 1 length 1, then padding to a word.
        let rtp = [0x90, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 0xbe, 0xde, 0, 1, 0x10, 0x85, 0, 0, 0x42];
        let p = parse_rtp(Bytes::copy_from_slice(&rtp), &[(1, crate::media::RELAYED_EXTENSIONS[0])]).expect("parsed");
        assert_eq!(p.extensions.len(), 1);
        assert_eq!(p.extensions[0].uri, Some(crate::media::RELAYED_EXTENSIONS[0]));
        assert_eq!(&p.payload[..], &[0x42]);
    }

    #[test]
    fn keyframe_requests_in_compound_packets() {
        let mut compound = empty_receiver_report(5).to_vec();
        compound.extend_from_slice(&picture_loss(5, 1010));
        // FIR for two SSRCs.
        compound.extend_from_slice(&[0x84, 206, 0, 6, 0, 0, 0, 5, 0, 0, 0, 0]);
        compound.extend_from_slice(&[0, 0, 3, 0xf2, 1, 0, 0, 0, 0, 0, 4, 0x1a, 2, 0, 0, 0]);
        assert_eq!(keyframe_requests(&compound), vec![1010, 1010, 1050]);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for junk in [&[][..], &[0x80], &[0x80, 206, 0xff, 0xff, 1, 2], &[0x81, 206, 0, 0], &[0u8; 40]] {
            let _ = keyframe_requests(junk);
            let _ = rtp_ssrc(junk);
            let _ = parse_rtp(Bytes::copy_from_slice(junk), &[]);
        }
        assert!(parse_rtp(Bytes::from_static(&[0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]), &[]).is_none());
    }
}
