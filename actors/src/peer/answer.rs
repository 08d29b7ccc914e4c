//! The codec an answer uses on each m-line: the one place that chooses it. The PeerConnection
//! answers with [`send_plan`]; a plugin that must know the outcome before the answer exists (the
//! VideoRoom tells the room which codec a new publisher sends) asks [`answer_codecs`], which is
//! the same choice.

use std::collections::HashMap;

use crate::media::sdp::{fmtp_param, CodecInfo, Direction, MediaKind, SdpInfo};
use crate::media::{negotiable, AnswerSpec, SendTrack};

/// Codecs we can send, in preference order, per kind.
const AUDIO_CODECS: &[&str] = &["opus", "pcmu", "pcma"];
const VIDEO_CODECS: &[&str] = &["vp8", "h264", "vp9"];

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
