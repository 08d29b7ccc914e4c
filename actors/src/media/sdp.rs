//! SDP handling the core does itself: Janus-worded validation (errors 465), a summary of the
//! media sections for plugins (`SdpInfo`), and the "anonymized" SDP plugins receive (ICE/DTLS
//! attributes and candidates removed, reference 1.3). Parsing uses `rtc-sdp`.

use std::io::Cursor;

use rtc_sdp::description::session::SessionDescription;

/// Kind of an m-line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `m=audio`
    Audio,
    /// `m=video`
    Video,
    /// `m=application` (data channels)
    Data,
}

impl MediaKind {
    /// "audio", "video" or "data", as Janus names them in events.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Data => "data",
        }
    }
}

/// Direction of an m-line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `sendrecv`
    SendRecv,
    /// `sendonly`
    SendOnly,
    /// `recvonly`
    RecvOnly,
    /// `inactive`
    Inactive,
}

impl Direction {
    /// Whether the side that wrote this SDP sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side that wrote this SDP receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One codec of an m-line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecInfo {
    /// Payload type.
    pub pt: u8,
    /// Lowercase name (`opus`, `vp8`, `h264`, ...).
    pub name: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// `a=fmtp` parameters.
    pub fmtp: String,
}

/// One m-line, as plugins see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// Index of the m-line.
    pub mindex: usize,
    /// `a=mid`.
    pub mid: Option<String>,
    /// Kind.
    pub kind: MediaKind,
    /// Direction as written.
    pub direction: Direction,
    /// Port 0: rejected/removed section.
    pub disabled: bool,
    /// Codecs in preference order (audio/video only).
    pub codecs: Vec<CodecInfo>,
    /// Simulcast rids (`a=rid:<id> send`).
    pub rids: Vec<String>,
    /// `a=ssrc` ids.
    pub ssrcs: Vec<u32>,
    /// Header extensions (`a=extmap:<id> <uri>`).
    pub extmaps: Vec<(u8, String)>,
}

/// A parsed description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpInfo {
    /// The m-lines.
    pub sections: Vec<SectionInfo>,
    /// ICE credentials present (session or every m-line).
    pub has_ice_credentials: bool,
    /// DTLS fingerprint present.
    pub has_fingerprint: bool,
}

/// Why an SDP was refused, in Janus's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SdpError(pub String);

/// Parses and summarizes an SDP, with Janus's wording for the first structural errors.
pub fn parse(sdp: &str) -> Result<SdpInfo, SdpError> {
    if !sdp.starts_with("v=") {
        return Err(SdpError("Invalid SDP (doesn't start with v=)".into()));
    }
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        if line.as_bytes().get(1) != Some(&b'=') {
            return Err(SdpError(format!("Invalid line (2nd char is not '='): {line}")));
        }
    }
    let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| SdpError(format!("Invalid SDP ({e})")))?;
    let session_ice = desc.has_attribute("ice-ufrag") && desc.has_attribute("ice-pwd");
    let session_fp = desc.has_attribute("fingerprint");
    let mut all_ice = !desc.media_descriptions.is_empty();
    let mut all_fp = !desc.media_descriptions.is_empty();
    let mut sections = Vec::new();
    for (mindex, md) in desc.media_descriptions.iter().enumerate() {
        let kind = match md.media_name.media.as_str() {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "application" => MediaKind::Data,
            other => return Err(SdpError(format!("Invalid SDP (unsupported media '{other}')"))),
        };
        all_ice &= session_ice || (md.has_attribute("ice-ufrag") && md.has_attribute("ice-pwd"));
        all_fp &= session_fp || md.has_attribute("fingerprint");
        let direction = if md.has_attribute("inactive") {
            Direction::Inactive
        } else if md.has_attribute("sendonly") {
            Direction::SendOnly
        } else if md.has_attribute("recvonly") {
            Direction::RecvOnly
        } else {
            Direction::SendRecv
        };
        let mut codecs: Vec<CodecInfo> = Vec::new();
        if kind != MediaKind::Data {
            let table = md.codecs();
            for fmt in &md.media_name.formats {
                let Ok(pt) = fmt.parse::<u8>() else { continue };
                if let Some(c) = table.get(&pt) {
                    codecs.push(CodecInfo {
                        pt,
                        name: c.name.to_ascii_lowercase(),
                        clock_rate: c.clock_rate,
                        fmtp: c.fmtp.clone(),
                    });
                }
            }
        }
        let mut rids = Vec::new();
        let mut ssrcs = Vec::new();
        let mut extmaps = Vec::new();
        for a in &md.attributes {
            match (a.key.as_str(), a.value.as_deref()) {
                ("extmap", Some(v)) => {
                    let mut parts = v.split_whitespace();
                    let id = parts.next().and_then(|id| id.split('/').next()).and_then(|id| id.parse::<u8>().ok());
                    if let (Some(id), Some(uri)) = (id, parts.next()) {
                        extmaps.push((id, uri.to_owned()));
                    }
                }
                ("rid", Some(v)) => {
                    let mut parts = v.split_whitespace();
                    if let (Some(id), Some("send")) = (parts.next(), parts.next()) {
                        rids.push(id.to_owned());
                    }
                }
                ("ssrc", Some(v)) => {
                    if let Some(Ok(ssrc)) = v.split_whitespace().next().map(str::parse::<u32>) {
                        if !ssrcs.contains(&ssrc) {
                            ssrcs.push(ssrc);
                        }
                    }
                }
                _ => {}
            }
        }
        sections.push(SectionInfo {
            mindex,
            mid: md.attribute("mid").flatten().map(str::to_owned),
            kind,
            direction,
            disabled: md.media_name.port.value == 0,
            codecs,
            rids,
            ssrcs,
            extmaps,
        });
    }
    Ok(SdpInfo { sections, has_ice_credentials: all_ice, has_fingerprint: all_fp })
}

/// Checks that a peer's SDP can set up a WebRTC transport.
pub fn require_transport(info: &SdpInfo) -> Result<(), SdpError> {
    if info.sections.is_empty() {
        return Err(SdpError("Invalid SDP (no media sections)".into()));
    }
    if !info.has_ice_credentials {
        return Err(SdpError("Invalid SDP (missing ICE credentials)".into()));
    }
    if !info.has_fingerprint {
        return Err(SdpError("Invalid SDP (missing DTLS fingerprint)".into()));
    }
    Ok(())
}

/// The SDP a plugin sees: transport attributes removed (Janus compat 1.3, "anonymized").
pub fn anonymize(sdp: &str) -> String {
    const DROP: &[&str] = &[
        "a=ice-ufrag:",
        "a=ice-pwd:",
        "a=ice-options:",
        "a=ice-lite",
        "a=fingerprint:",
        "a=setup:",
        "a=candidate:",
        "a=end-of-candidates",
        "a=rtcp:",
        "a=tls-id:",
    ];
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() || DROP.iter().any(|p| line.starts_with(p)) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// Rewrites the address of every host candidate to `public` (1:1 NAT mapping).
pub fn rewrite_host_candidates(sdp: &str, public: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        match line.strip_prefix("a=") {
            Some(attr) if attr.starts_with("candidate:") => {
                out.push_str("a=");
                out.push_str(&public_host_candidate(attr, public));
            }
            _ => out.push_str(line),
        }
        out.push_str("\r\n");
    }
    out
}

/// Drops the engine's RTCP-component copies of its candidates (`a=candidate:<f> 2 ...`): every
/// m-line is bundled and muxes RTCP (or is SCTP), so component 2 is never used, and Janus lists
/// component 1 only.
pub fn drop_rtcp_component_candidates(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        let rtcp = line.strip_prefix("a=candidate:").is_some_and(|c| c.split(' ').nth(1) == Some("2"));
        if !rtcp {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

/// One candidate (`candidate:...`, as in trickle events) with its address replaced by `public`
/// when it is a host candidate; any other candidate unchanged.
pub fn public_host_candidate(candidate: &str, public: &str) -> String {
    let mut parts: Vec<&str> = candidate.split(' ').collect();
    let host = parts.windows(2).any(|w| w == ["typ", "host"]);
    if host && parts.len() > 4 {
        parts[4] = public;
    }
    parts.join(" ")
}

/// One parameter of an `a=fmtp` line (`key=value;key=value`), the key compared without case.
pub fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
a=fingerprint:sha-256 AA:BB\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
a=sendrecv\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\na=ssrc:1234 cname:x\r\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
a=recvonly\r\na=rtpmap:96 VP8/90000\r\na=rid:h send\r\na=rid:l send\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=sctp-port:5000\r\n";

    #[test]
    fn summary() {
        let info = parse(OFFER).unwrap();
        assert!(info.has_ice_credentials && info.has_fingerprint);
        assert_eq!(info.sections.len(), 3);
        let a = &info.sections[0];
        assert_eq!((a.kind, a.mid.as_deref(), a.direction), (MediaKind::Audio, Some("0"), Direction::SendRecv));
        assert_eq!(a.codecs[0].name, "opus");
        assert_eq!(a.codecs[0].fmtp, "useinbandfec=1");
        assert_eq!(a.ssrcs, vec![1234]);
        let v = &info.sections[1];
        assert_eq!((v.kind, v.direction), (MediaKind::Video, Direction::RecvOnly));
        assert_eq!(v.rids, vec!["h", "l"]);
        assert_eq!(info.sections[2].kind, MediaKind::Data);
        require_transport(&info).unwrap();
    }

    #[test]
    fn janus_wording() {
        assert_eq!(parse("garbage").unwrap_err().0, "Invalid SDP (doesn't start with v=)");
        assert_eq!(parse("v=0\r\nxyz\r\n").unwrap_err().0, "Invalid line (2nd char is not '='): xyz");
        let no_ice = OFFER.replace("a=ice-ufrag:abcd\r\n", "");
        assert_eq!(require_transport(&parse(&no_ice).unwrap()).unwrap_err().0, "Invalid SDP (missing ICE credentials)");
        let no_fp = OFFER.replace("a=fingerprint:sha-256 AA:BB\r\n", "");
        assert_eq!(require_transport(&parse(&no_fp).unwrap()).unwrap_err().0, "Invalid SDP (missing DTLS fingerprint)");
    }

    #[test]
    fn anonymized() {
        let a = anonymize(OFFER);
        assert!(!a.contains("ice-ufrag") && !a.contains("candidate") && !a.contains("fingerprint"));
        assert!(a.contains("a=rtpmap:111 opus/48000/2"));
    }

    #[test]
    fn nat_rewrite() {
        let out = rewrite_host_candidates(OFFER, "203.0.113.7");
        assert!(out.contains("a=candidate:1 1 udp 2130706431 203.0.113.7 5000 typ host"));
        let srflx = "candidate:2 1 udp 1694498815 198.51.100.1 6000 typ srflx raddr 127.0.0.1 rport 5000";
        assert_eq!(public_host_candidate(srflx, "203.0.113.7"), srflx, "only host candidates");
        assert_eq!(
            public_host_candidate("candidate:1 1 udp 2130706431 10.0.0.5 5000 typ host", "203.0.113.7"),
            "candidate:1 1 udp 2130706431 203.0.113.7 5000 typ host"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u64;
        for n in 0..2000 {
            let len = (n % 200) + 1;
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    const ALPHABET: &[u8] = b"v=mao0123 \r\n:/a=";
                    ALPHABET[(seed % ALPHABET.len() as u64) as usize] as char
                })
                .collect();
            let _ = parse(&s);
            let _ = parse(&format!("v=0\r\n{s}"));
        }
    }

    #[test]
    fn rtcp_component_candidates_are_dropped() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n\
                   a=candidate:1 2 udp 2130706431 127.0.0.1 40000 typ host\r\n\
                   a=candidate:2 1 udp 1694498815 192.0.2.7 40000 typ srflx raddr 127.0.0.1 rport 40000\r\n\
                   a=end-of-candidates\r\n";
        let out = drop_rtcp_component_candidates(sdp);
        let candidates: Vec<&str> = out.lines().filter(|l| l.starts_with("a=candidate:")).collect();
        assert_eq!(candidates.len(), 2, "{out}");
        assert!(candidates.iter().all(|c| c.split(' ').nth(1) == Some("1")));
        assert!(out.starts_with("v=0\r\nm=audio") && out.ends_with("a=end-of-candidates\r\n"));
    }
}
