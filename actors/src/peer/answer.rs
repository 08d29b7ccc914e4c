//! The codec an answer uses on each m-line: the one place that chooses it. The PeerConnection
//! answers with [`send_plan`]; a plugin that must know the outcome before the answer exists (the
//! VideoRoom tells the room which codec a new publisher sends) asks [`answer_codecs`], which is
//! the same choice.

use std::collections::HashMap;

use crate::media::sdp::{fmtp_param, CodecInfo, Direction, MediaKind, SdpInfo};
use crate::media::{negotiable, AnswerSpec, SendTrack};

/// Codecs we can send, in preference order, per kind.
const AUDIO_CODECS: &[&str] = &["opus", "pcmu", "pcma"];
const VIDEO_CODECS: &[&str] = &["vp8", "h264", "vp9", "av1"];

/// The codec name the answer to `offer` made as `spec` says uses, by mid (the m-line index when
/// the offer has no mid), for the audio and video m-lines it answers with a codec. An m-line it
/// leaves out has no codec we can send or receive.
pub fn answer_codecs(offer: &SdpInfo, spec: &AnswerSpec) -> HashMap<String, String> {
    send_plan(offer, spec).into_iter().map(|t| (t.mid, t.codec.name)).collect()
}

/// The tracks of an answer: on every m-line the peer wants to receive (or, for a receive-only
/// answer, sends on), the plugin's preferred codec when the peer offered it, else the first
/// offered codec we can send (Janus compat: EchoTest and the calls answer in kind).
pub(crate) fn send_plan(info: &SdpInfo, spec: &AnswerSpec) -> Vec<SendTrack> {
    info.sections
        .iter()
        .filter(|s| {
            let wanted = if spec.recv_only { Direction::SendOnly } else { Direction::RecvOnly };
            !s.disabled
                && s.kind != MediaKind::Data
                && matches!(s.direction, d if d == Direction::SendRecv || d == wanted)
        })
        .filter_map(|s| {
            let (supported, preferred, profile) = match s.kind {
                MediaKind::Audio => (AUDIO_CODECS, &spec.audio_codecs, None),
                _ => (VIDEO_CODECS, &spec.video_codecs, spec.video_profile.as_deref()),
            };
            // Offered variants the engine negotiates (an H.264 profile it lacks would be answered
            // with a payload type it then refuses to receive).
            let usable = |c: &&CodecInfo| supported.contains(&c.name.as_str()) && negotiable(s.kind, &c.name, &c.fmtp);
            let offered = |name: &str| {
                let mut variants = s.codecs.iter().filter(usable).filter(move |c| c.name == name);
                match profile {
                    Some(p) => variants.find(|c| has_profile(&c.fmtp, p)),
                    None => variants.next(),
                }
            };
            let chosen = preferred.iter().find_map(|n| offered(n)).or_else(|| s.codecs.iter().find(usable))?;
            Some(SendTrack {
                mid: s.mid.clone().unwrap_or_else(|| s.mindex.to_string()),
                kind: s.kind,
                codec: chosen.clone(),
            })
        })
        .collect()
}

/// Whether a codec's `a=fmtp` names `profile`: H.264 `profile-level-id` (compared without case)
/// or VP9 `profile-id`.
fn has_profile(fmtp: &str, profile: &str) -> bool {
    ["profile-level-id", "profile-id"]
        .iter()
        .any(|key| fmtp_param(fmtp, key).is_some_and(|v| v.eq_ignore_ascii_case(profile)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::sdp;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:a\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 98\r\nc=IN IP4 0.0.0.0\r\na=mid:v\r\na=sendrecv\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 100\r\nc=IN IP4 0.0.0.0\r\na=mid:x\r\na=sendonly\r\na=rtpmap:100 AV1X/90000\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:d\r\n";

    fn codecs(spec: &AnswerSpec) -> Vec<(String, String)> {
        let mut v: Vec<_> = answer_codecs(&sdp::parse(OFFER).unwrap(), spec).into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn preferred_codec_when_offered_else_the_first_we_can_send() {
        let pair = |m: &str, c: &str| (m.to_owned(), c.to_owned());
        // Receive-only (SFU publisher): every m-line the peer sends on; nothing for a codec we
        // cannot handle, nothing for data.
        let spec = AnswerSpec {
            recv_only: true,
            audio_codecs: vec!["pcmu".into()],
            video_codecs: vec!["vp9".into(), "vp8".into()],
            ..AnswerSpec::default()
        };
        assert_eq!(codecs(&spec), vec![pair("a", "pcmu"), pair("v", "vp9")]);
        let spec = AnswerSpec { recv_only: true, ..AnswerSpec::default() };
        assert_eq!(codecs(&spec), vec![pair("a", "opus"), pair("v", "vp8")]);
        // Answering in kind: only m-lines the peer also receives on.
        assert_eq!(codecs(&AnswerSpec::default()), vec![pair("v", "vp8")]);
    }
}
