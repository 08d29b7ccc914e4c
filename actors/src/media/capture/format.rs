//! The two dump formats, as pure functions of one packet: the fake Ethernet/IPv4/UDP frame a
//! pcap record carries, and one line of Wireshark `text2pcap` input.
//!
//! What we write, and why:
//! - pcap: classic libpcap 2.4 files (the `pcap-file` crate writes the header and records),
//!   LINKTYPE_ETHERNET, microsecond timestamps, snaplen 65535. Each RTP/RTCP packet is wrapped in
//!   a made-up Ethernet + IPv4 + UDP header so Wireshark decodes it without help (as Janus does;
//!   "Decode As... RTP" on UDP 1000/2000, or the rtp_udp heuristic, shows the RTP). The addresses
//!   tell the directions apart: the peer is 10.1.1.1 port 1000 (MAC 02:00:00:00:00:01), we are
//!   10.2.2.2 port 2000 (MAC 02:00:00:00:00:02). Lengths in the IPv4 and UDP headers are those of
//!   the whole packet, so a truncated record still says how long the packet was; the IPv4
//!   checksum is valid, the UDP one is 0 ("none", allowed on IPv4).
//! - text2pcap: one line per packet, `I|O HH:MM:SS.ffffff 000000 80 60 ... RTP|RTCP`, time of
//!   day in UTC. Convert with
//!   `text2pcap -D -n -l 1 -i 17 -u 1000,2000 -t '%H:%M:%S.' dump.txt dump.pcapng`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of fake framing in front of every pcap record: Ethernet (14), IPv4 (20), UDP (8).
pub const FRAME_HEADER: usize = 14 + 20 + 8;

/// The longest packet a UDP datagram over IPv4 can carry; longer input is cut to it.
pub const MAX_PAYLOAD: usize = 65_535 - 20 - 8;

/// Fake address of the peer's side.
pub const PEER_IP: [u8; 4] = [10, 1, 1, 1];
/// Fake address of our side.
pub const SERVER_IP: [u8; 4] = [10, 2, 2, 2];
/// Fake UDP port of the peer's side.
pub const PEER_PORT: u16 = 1000;
/// Fake UDP port of our side.
pub const SERVER_PORT: u16 = 2000;

const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// The frame of one pcap record: fake headers for a packet of `full_len` bytes, then `kept` (the
/// packet's first bytes, after truncation).
pub fn frame(inbound: bool, kept: &[u8], full_len: usize) -> Vec<u8> {
    let full_len = full_len.min(MAX_PAYLOAD);
    let kept = &kept[..kept.len().min(full_len)];
    let (src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port) = if inbound {
        (PEER_MAC, SERVER_MAC, PEER_IP, SERVER_IP, PEER_PORT, SERVER_PORT)
    } else {
        (SERVER_MAC, PEER_MAC, SERVER_IP, PEER_IP, SERVER_PORT, PEER_PORT)
    };
    let mut out = Vec::with_capacity(FRAME_HEADER + kept.len());
    // Ethernet II, EtherType IPv4.
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    // IPv4: version 4, IHL 5, DF, TTL 64, UDP. MAX_PAYLOAD keeps the length within u16.
    let total = (20 + 8 + full_len) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src_ip);
    ip[16..20].copy_from_slice(&dst_ip);
    let checksum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    out.extend_from_slice(&ip);
    // UDP, no checksum.
    out.extend_from_slice(&src_port.to_be_bytes());
    out.extend_from_slice(&dst_port.to_be_bytes());
    out.extend_from_slice(&((8 + full_len) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(kept);
    out
}

/// One text2pcap line (with its newline) for a packet taken at `at`.
pub fn text_line(at: SystemTime, inbound: bool, rtcp: bool, kept: &[u8]) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let day = since.as_secs() % 86_400;
    let mut line = String::with_capacity(32 + kept.len() * 3);
    let _ = write!(
        line,
        "{} {:02}:{:02}:{:02}.{:06} 000000",
        if inbound { 'I' } else { 'O' },
        day / 3600,
        day / 60 % 60,
        day % 60,
        since.subsec_micros()
    );
    for b in kept {
        let _ = write!(line, " {b:02x}");
    }
    line.push_str(if rtcp { " RTCP\n" } else { " RTP\n" });
    line
}

/// The Internet checksum of an IPv4 header (checksum field zero).
fn ipv4_checksum(header: &[u8; 20]) -> u16 {
    let mut sum: u32 = header.chunks_exact(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 0x60, 0x12, 0x34, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        p.resize(len, 0xaa);
        p
    }

    #[test]
    fn inbound_frame_goes_from_the_peer_to_us() {
        let pkt = rtp(100);
        let f = frame(true, &pkt, pkt.len());
        assert_eq!(f.len(), FRAME_HEADER + 100);
        assert_eq!(&f[0..6], &SERVER_MAC);
        assert_eq!(&f[6..12], &PEER_MAC);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 128);
        assert_eq!(ip[9], 17);
        assert_eq!(&ip[12..16], &PEER_IP);
        assert_eq!(&ip[16..20], &SERVER_IP);
        // A valid header sums to 0xffff with its checksum in place.
        let sum: u32 = ip.chunks_exact(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
        let udp = &f[34..42];
        assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), PEER_PORT);
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), SERVER_PORT);
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 108);
        assert_eq!(&f[42..], &pkt[..]);
    }

    #[test]
    fn outbound_frame_swaps_the_ends() {
        let pkt = rtp(20);
        let f = frame(false, &pkt, pkt.len());
        assert_eq!(&f[26..30], &SERVER_IP);
        assert_eq!(&f[30..34], &PEER_IP);
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), SERVER_PORT);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), PEER_PORT);
    }

    #[test]
    fn truncated_frame_keeps_the_full_lengths() {
        let pkt = rtp(500);
        let f = frame(true, &pkt[..12], pkt.len());
        assert_eq!(f.len(), FRAME_HEADER + 12);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 528);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 508);
    }

    #[test]
    fn oversized_input_is_cut_not_wrapped() {
        let pkt = vec![0u8; 70_000];
        let f = frame(true, &pkt, pkt.len());
        assert_eq!(f.len(), FRAME_HEADER + MAX_PAYLOAD);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 65_535);
    }

    #[test]
    fn text_lines_carry_direction_time_bytes_and_kind() {
        let at = UNIX_EPOCH + Duration::from_micros(((13 * 3600 + 4 * 60 + 5) * 1_000_000 + 42) + 86_400 * 1_000_000);
        assert_eq!(text_line(at, true, false, &[0x80, 0x60, 0x0a]), "I 13:04:05.000042 000000 80 60 0a RTP\n");
        assert_eq!(text_line(at, false, true, &[0x81, 0xc9]), "O 13:04:05.000042 000000 81 c9 RTCP\n");
        assert_eq!(text_line(UNIX_EPOCH, true, false, &[]), "I 00:00:00.000000 000000 RTP\n");
    }
}
