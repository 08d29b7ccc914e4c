//! `RtpWriter`: sends RTP on one negotiated outgoing stream of a PeerConnection.

use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::conn::Conn;
use super::types::{MediaKind, RtpExtension, RtpPacket};

/// A writer for one outgoing stream. Rewrites SSRC and payload type to the negotiated ones.
/// Encrypts and sends on the caller's thread (weakly held: a writer in some room's fan-out list
/// does not keep a closed PeerConnection's sockets open).
#[derive(Clone)]
pub struct RtpWriter {
    pub(crate) conn: Weak<Conn>,
    pub(crate) sender: RTCRtpSenderId,
    pub(crate) ssrc: u32,
    pub(crate) payload_type: u8,
    pub(crate) kind: MediaKind,
    pub(crate) counters: Arc<super::types::MediaCounters>,
    /// Our negotiated ids of the relayed header extensions (by URI).
    pub(crate) extensions: Arc<[(&'static str, u8)]>,
}

/// The stream can't take the packet (closed PeerConnection, not negotiated yet).
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot write RTP: {0}")]
pub struct WriteError(pub String);

impl RtpWriter {
    /// The SSRC we send with.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The payload type negotiated for this stream.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Writes a packet; SSRC and payload type are set to this stream's. Of the source's header
    /// extensions, the relayed ones (audio level, video orientation, playout delay, AV1
    /// Dependency Descriptor) go on with the ids this stream negotiated; the rest are dropped
    /// (their ids belong to the source's negotiation).
    pub async fn write(&self, pkt: RtpPacket) -> Result<(), WriteError> {
        let mut header = rtp::Header {
            version: 2,
            marker: pkt.marker,
            payload_type: self.payload_type,
            sequence_number: pkt.sequence_number,
            timestamp: pkt.timestamp,
            ssrc: self.ssrc,
            ..Default::default()
        };
        set_extensions(&mut header, &pkt.extensions, |ext| {
            let uri = ext.uri?;
            self.extensions.iter().find(|(u, _)| *u == uri).map(|&(_, id)| id)
        });
        let bytes = pkt.payload.len() as u64;
        let conn = self.conn.upgrade().ok_or_else(|| WriteError("the PeerConnection is closed".into()))?;
        let packet = rtp::Packet { header, payload: pkt.payload };
        conn.write_one(|core| match core.rtp_sender(self.sender) {
            Some(mut sender) => sender.write_rtp(Instant::now(), packet).map_err(|e| WriteError(e.to_string())),
            None => Err(WriteError("no such stream".into())),
        })?;
        self.counters.rtp_out_packets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.counters.rtp_out_bytes.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Writes a packet without waiting: for fan-out, where one slow receiver must not hold the
    /// packet back from every other one. A socket that cannot take it drops it (counted by the
    /// kernel, as any UDP loss).
    pub fn try_write(&self, pkt: RtpPacket) -> Result<(), WriteError> {
        use futures_util::FutureExt;
        match self.write(pkt).now_or_never() {
            Some(r) => r,
            None => {
                self.counters.rtp_out_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(WriteError("the stream cannot take the packet now; dropped".into()))
            }
        }
    }
}

impl RtpPacket {
    /// A packet the engine parsed (from a PeerConnection or a plain socket). `relayed` names the
    /// sender's ids of the extensions in [`super::RELAYED_EXTENSIONS`], so writers can relay them.
    pub(crate) fn from_rtp(pkt: rtp::Packet, relayed: &[(u8, &'static str)]) -> RtpPacket {
        let h = pkt.header;
        let uri = |id: u8| relayed.iter().find(|(i, _)| *i == id).map(|(_, u)| *u);
        RtpPacket {
            marker: h.marker,
            payload_type: h.payload_type,
            sequence_number: h.sequence_number,
            timestamp: h.timestamp,
            ssrc: h.ssrc,
            extensions: h
                .extensions
                .into_iter()
                .map(|e| RtpExtension { id: e.id, uri: uri(e.id), value: e.payload })
                .collect(),
            rid: None,
            payload: pkt.payload,
        }
    }

    /// The packet as plain RTP bytes with `ssrc` and `payload_type` (RTP forwarders, remote
    /// publishing). Header extensions go on with the source's own ids, as Janus forwards them:
    /// a receiver that cares learns those ids out of band (`add_remote_publisher`'s
    /// `audiolevel_ext_id` and the like).
    pub fn to_bytes(&self, ssrc: u32, payload_type: u8) -> Option<Bytes> {
        use rtc::shared::marshal::Marshal;
        let mut header = rtp::Header {
            version: 2,
            marker: self.marker,
            payload_type,
            sequence_number: self.sequence_number,
            timestamp: self.timestamp,
            ssrc,
            ..Default::default()
        };
        set_extensions(&mut header, &self.extensions, |ext| Some(ext.id));
        rtp::Packet { header, payload: self.payload.clone() }.marshal().ok().map(|b| b.freeze())
    }
}

/// Puts `extensions` on `header` with the ids `id` gives (`None`: left out). The first one set
/// picks the header's form: one-byte elements carry at most 16 bytes, so longer ones (an AV1
/// Dependency Descriptor with its template structure) go first and make it two-byte (RFC 8285;
/// both ends allow mixing, a=extmap-allow-mixed). A value the header cannot carry is dropped,
/// not the packet.
fn set_extensions(header: &mut rtp::Header, extensions: &[RtpExtension], id: impl Fn(&RtpExtension) -> Option<u8>) {
    for long in [true, false] {
        for ext in extensions.iter().filter(|e| (e.value.len() > 16) == long) {
            if let Some(id) = id(ext) {
                let _ = header.set_extension(id, ext.value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rtc::shared::marshal::Unmarshal;

    use super::*;
    use crate::media::{DEPENDENCY_DESCRIPTOR_URI, RELAYED_EXTENSIONS};

    #[test]
    fn a_long_extension_makes_the_header_two_byte() {
        let ext = |id, uri, len: usize| RtpExtension { id, uri: Some(uri), value: Bytes::from(vec![0xab; len]) };
        let orientation = ext(3, RELAYED_EXTENSIONS[1], 1);
        let structure = ext(13, DEPENDENCY_DESCRIPTOR_URI, 40);
        let pkt = RtpPacket {
            marker: true,
            payload_type: 45,
            sequence_number: 7,
            timestamp: 9000,
            ssrc: 1,
            extensions: vec![orientation.clone(), structure.clone()],
            rid: None,
            payload: Bytes::from_static(&[0x10, 0x32]),
        };
        let bytes = pkt.to_bytes(2, 45).unwrap();
        let back = rtp::Packet::unmarshal(&mut bytes.clone()).unwrap();
        assert_eq!(back.header.extension_profile, rtp::header::EXTENSION_PROFILE_TWO_BYTE);
        assert_eq!(back.header.get_extension(13), Some(structure.value.clone()));
        assert_eq!(back.header.get_extension(3), Some(orientation.value.clone()));
        assert_eq!(&back.payload[..], &[0x10, 0x32]);
        // Short ones only: one-byte.
        let short = RtpPacket { extensions: vec![orientation, ext(13, DEPENDENCY_DESCRIPTOR_URI, 3)], ..pkt };
        let back = rtp::Packet::unmarshal(&mut short.to_bytes(2, 45).unwrap()).unwrap();
        assert_eq!(back.header.extension_profile, rtp::header::EXTENSION_PROFILE_ONE_BYTE);
        assert_eq!(back.header.get_extension(13).map(|v| v.len()), Some(3));
    }
}
