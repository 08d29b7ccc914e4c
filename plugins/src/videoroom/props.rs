//! Room properties (reference 8.2): parsed from `create`, from `room-<id>` blocks of the plugin
//! configuration, changed by `edit`, reported by `list`.

use portunus_actors::api::validate::{FieldError, Fields};
use serde_json::{json, Map, Value};

use super::errors::{VrError, INVALID_ELEMENT};

/// Audio codecs a room may allow.
pub(super) const AUDIO_CODECS: &[&str] =
    &["opus", "g722", "pcmu", "pcma", "isac32", "isac16", "multiopus", "l16", "l16-48"];
/// Video codecs a room may allow.
pub(super) const VIDEO_CODECS: &[&str] = &["vp8", "vp9", "h264", "av1", "h265"];

/// A room's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomProps {
    pub description: String,
    pub is_private: bool,
    pub secret: Option<String>,
    pub pin: Option<String>,
    pub require_pvtid: bool,
    pub signed_tokens: bool,
    pub publishers: u64,
    pub bitrate: u64,
    pub bitrate_cap: bool,
    pub fir_freq: u64,
    pub audiocodec: Vec<String>,
    pub videocodec: Vec<String>,
    pub vp9_profile: Option<String>,
    pub h264_profile: Option<String>,
    pub opus_fec: bool,
    pub opus_dtx: bool,
    pub video_svc: bool,
    pub audiolevel_ext: bool,
    pub audiolevel_event: bool,
    pub audio_active_packets: u64,
    pub audio_level_average: u64,
    pub videoorient_ext: bool,
    pub playoutdelay_ext: bool,
    pub transport_wide_cc_ext: bool,
    pub record: bool,
    pub rec_dir: Option<String>,
    pub lock_record: bool,
    pub notify_joining: bool,
    pub require_e2ee: bool,
    pub dummy_publisher: bool,
    /// Token ACL; `None` when disabled.
    pub allowed: Option<Vec<String>>,
}

impl Default for RoomProps {
    fn default() -> Self {
        RoomProps {
            description: String::new(),
            is_private: false,
            secret: None,
            pin: None,
            require_pvtid: false,
            signed_tokens: false,
            publishers: 3,
            bitrate: 0,
            bitrate_cap: false,
            fir_freq: 0,
            audiocodec: vec!["opus".into()],
            videocodec: vec!["vp8".into()],
            vp9_profile: None,
            h264_profile: None,
            opus_fec: true,
            opus_dtx: false,
            video_svc: false,
            audiolevel_ext: true,
            audiolevel_event: false,
            audio_active_packets: 100,
            audio_level_average: 25,
            videoorient_ext: true,
            playoutdelay_ext: true,
            transport_wide_cc_ext: true,
            record: false,
            rec_dir: None,
            lock_record: false,
            notify_joining: false,
            require_e2ee: false,
            dummy_publisher: false,
            allowed: None,
        }
    }
}

/// Reads a boolean that configuration files may also write as a string ("yes", "true").
fn loose_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, FieldError> {
    match body.get(key) {
        Some(Value::String(s)) => Ok(Some(matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"))),
        _ => body.opt_bool(key),
    }
}

/// Reads a number that configuration files may also write as a string.
fn loose_u64(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, FieldError> {
    match body.get(key) {
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| FieldError::Type(key.into(), Kind::PositiveInteger)),
        _ => body.opt_u64(key),
    }
}

use portunus_actors::api::validate::Kind;

fn codec_list(body: &Map<String, Value>, key: &str, known: &[&str]) -> Result<Option<Vec<String>>, VrError> {
    let Some(text) = body.opt_str(key)? else { return Ok(None) };
    let list: Vec<String> = text.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()).collect();
    if list.is_empty() || list.iter().any(|c| !known.contains(&c.as_str())) {
        return Err(VrError::new(INVALID_ELEMENT, format!("Invalid element ({key})")));
    }
    Ok(Some(list))
}

impl RoomProps {
    /// Properties from a `create` body or a configuration block (unset keys keep defaults).
    pub fn parse(body: &Map<String, Value>) -> Result<RoomProps, VrError> {
        let mut p = RoomProps::default();
        let s = |k: &str| body.opt_str(k).map(|v| v.map(str::to_owned));
        if let Some(d) = s("description")? {
            p.description = d;
        }
        p.secret = s("secret")?;
        p.pin = s("pin")?;
        p.vp9_profile = s("vp9_profile")?;
        p.h264_profile = s("h264_profile")?;
        p.rec_dir = s("rec_dir")?;
        macro_rules! flags {
            ($($name:ident),*) => { $( if let Some(v) = loose_bool(body, stringify!($name))? { p.$name = v; } )* };
        }
        flags!(
            is_private,
            require_pvtid,
            signed_tokens,
            bitrate_cap,
            opus_fec,
            opus_dtx,
            video_svc,
            audiolevel_ext,
            audiolevel_event,
            videoorient_ext,
            playoutdelay_ext,
            transport_wide_cc_ext,
            record,
            lock_record,
            notify_joining,
            require_e2ee,
            dummy_publisher
        );
        macro_rules! numbers {
            ($($name:ident),*) => { $( if let Some(v) = loose_u64(body, stringify!($name))? { p.$name = v; } )* };
        }
        numbers!(publishers, bitrate, fir_freq, audio_active_packets, audio_level_average);
        if let Some(list) = codec_list(body, "audiocodec", AUDIO_CODECS)? {
            p.audiocodec = list;
        }
        if let Some(list) = codec_list(body, "videocodec", VIDEO_CODECS)? {
            p.videocodec = list;
        }
        if let Some(allowed) = body.opt_array("allowed")? {
            p.allowed = Some(tokens(allowed)?);
        }
        // Janus compat (8.2): SVC only in rooms whose one video codec is VP9; otherwise ignored.
        // Beyond Janus 1.1 (which only relays AV1's Dependency Descriptor), AV1-only rooms too.
        if p.video_svc && p.videocodec != ["vp9"] && p.videocodec != ["av1"] {
            tracing::warn!("video_svc needs videocodec vp9 or av1 alone: disabling it");
            p.video_svc = false;
        }
        Ok(p)
    }

    /// Applies `edit` (`new_*` keys).
    pub fn edit(&mut self, body: &Map<String, Value>) -> Result<(), VrError> {
        let s = |k: &str| body.opt_str(k).map(|v| v.map(str::to_owned));
        if let Some(d) = s("new_description")? {
            self.description = d;
        }
        if let Some(v) = s("new_secret")? {
            self.secret = Some(v);
        }
        if let Some(v) = s("new_pin")? {
            self.pin = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = body.opt_bool("new_is_private")? {
            self.is_private = v;
        }
        if let Some(v) = body.opt_bool("new_require_pvtid")? {
            self.require_pvtid = v;
        }
        if let Some(v) = body.opt_u64("new_bitrate")? {
            self.bitrate = v;
        }
        if let Some(v) = body.opt_u64("new_fir_freq")? {
            self.fir_freq = v;
        }
        if let Some(v) = body.opt_u64("new_publishers")? {
            self.publishers = v;
        }
        if let Some(v) = body.opt_bool("new_lock_record")? {
            self.lock_record = v;
        }
        if let Some(v) = s("new_rec_dir")? {
            self.rec_dir = Some(v);
        }
        Ok(())
    }

    /// The room as a configuration block (the keys [`RoomProps::parse`] reads), for permanent rooms.
    pub fn to_config(&self) -> Value {
        let mut v = json!({
            "description": self.description,
            "is_private": self.is_private,
            "require_pvtid": self.require_pvtid,
            "signed_tokens": self.signed_tokens,
            "publishers": self.publishers,
            "bitrate": self.bitrate,
            "bitrate_cap": self.bitrate_cap,
            "fir_freq": self.fir_freq,
            "audiocodec": self.audiocodec.join(","),
            "videocodec": self.videocodec.join(","),
            "opus_fec": self.opus_fec,
            "opus_dtx": self.opus_dtx,
            "video_svc": self.video_svc,
            "audiolevel_ext": self.audiolevel_ext,
            "audiolevel_event": self.audiolevel_event,
            "audio_active_packets": self.audio_active_packets,
            "audio_level_average": self.audio_level_average,
            "videoorient_ext": self.videoorient_ext,
            "playoutdelay_ext": self.playoutdelay_ext,
            "transport_wide_cc_ext": self.transport_wide_cc_ext,
            "record": self.record,
            "lock_record": self.lock_record,
            "notify_joining": self.notify_joining,
            "require_e2ee": self.require_e2ee,
            "dummy_publisher": self.dummy_publisher,
        });
        let obj = v.as_object_mut().expect("literal object");
        for (key, value) in [
            ("secret", &self.secret),
            ("pin", &self.pin),
            ("vp9_profile", &self.vp9_profile),
            ("h264_profile", &self.h264_profile),
            ("rec_dir", &self.rec_dir),
        ] {
            if let Some(value) = value {
                obj.insert(key.into(), json!(value));
            }
        }
        if let Some(allowed) = &self.allowed {
            obj.insert("allowed".into(), json!(allowed));
        }
        v
    }

    /// The room's entry in `list`.
    pub fn list_entry(&self, room: u64, participants: usize) -> Value {
        let mut v = json!({
            "room": room,
            "description": self.description,
            "pin_required": self.pin.is_some(),
            "is_private": self.is_private,
            "max_publishers": self.publishers,
            "bitrate": self.bitrate,
            "fir_freq": self.fir_freq,
            "require_pvtid": self.require_pvtid,
            "require_e2ee": self.require_e2ee,
            "dummy_publisher": self.dummy_publisher,
            "notify_joining": self.notify_joining,
            "audiocodec": self.audiocodec.join(","),
            "videocodec": self.videocodec.join(","),
            "opus_fec": self.opus_fec,
            "record": self.record,
            "lock_record": self.lock_record,
            "num_participants": participants,
            "audiolevel_ext": self.audiolevel_ext,
            "audiolevel_event": self.audiolevel_event,
            "videoorient_ext": self.videoorient_ext,
            "playoutdelay_ext": self.playoutdelay_ext,
            "transport_wide_cc_ext": self.transport_wide_cc_ext,
        });
        let obj = v.as_object_mut().expect("literal object");
        if self.bitrate_cap {
            obj.insert("bitrate_cap".into(), json!(true));
        }
        if self.opus_dtx {
            obj.insert("opus_dtx".into(), json!(true));
        }
        if self.video_svc {
            obj.insert("video_svc".into(), json!(true));
        }
        if self.audiolevel_event {
            obj.insert("audio_active_packets".into(), json!(self.audio_active_packets));
            obj.insert("audio_level_average".into(), json!(self.audio_level_average));
        }
        if let Some(dir) = &self.rec_dir {
            obj.insert("rec_dir".into(), json!(dir));
        }
        v
    }

    /// Whether `token` may join (the `allowed` ACL, when enabled).
    pub fn token_allowed(&self, token: Option<&str>) -> bool {
        match &self.allowed {
            None => true,
            Some(list) => token.is_some_and(|t| list.iter().any(|a| a == t)),
        }
    }
}

/// The strings of an `allowed` array.
pub fn tokens(list: &[Value]) -> Result<Vec<String>, VrError> {
    list.iter()
        .map(|t| {
            t.as_str().map(str::to_owned).ok_or_else(|| {
                VrError::new(INVALID_ELEMENT, "Invalid element type (allowed should be an array of strings)")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_match_janus() {
        let p = RoomProps::parse(&Map::new()).unwrap();
        assert_eq!(p.publishers, 3);
        assert_eq!(p.audiocodec, vec!["opus"]);
        assert_eq!(p.videocodec, vec!["vp8"]);
        assert!(p.opus_fec && !p.is_private);
    }

    #[test]
    fn config_strings_are_read_loosely() {
        let p =
            RoomProps::parse(&obj(json!({"publishers": "6", "is_private": "yes", "videocodec": "vp8,h264"}))).unwrap();
        assert_eq!(p.publishers, 6);
        assert!(p.is_private);
        assert_eq!(p.videocodec, vec!["vp8", "h264"]);
    }

    #[test]
    fn video_svc_needs_vp9_or_av1_alone() {
        assert!(RoomProps::parse(&obj(json!({"videocodec": "vp9", "video_svc": true}))).unwrap().video_svc);
        assert!(!RoomProps::parse(&obj(json!({"videocodec": "vp9,vp8", "video_svc": true}))).unwrap().video_svc);
        assert!(!RoomProps::parse(&obj(json!({"video_svc": true}))).unwrap().video_svc, "the default codec is vp8");
        assert!(RoomProps::parse(&obj(json!({"videocodec": "av1", "video_svc": true}))).unwrap().video_svc);
        assert!(!RoomProps::parse(&obj(json!({"videocodec": "av1,vp9", "video_svc": true}))).unwrap().video_svc);
    }

    #[test]
    fn unknown_codec_is_refused() {
        let e = RoomProps::parse(&obj(json!({"videocodec": "vp8,mpeg2"}))).unwrap_err();
        assert_eq!(e.code, INVALID_ELEMENT);
    }

    #[test]
    fn config_round_trip() {
        let p =
            RoomProps::parse(&obj(json!({"description": "d", "secret": "s", "publishers": 9, "videocodec": "h264",
            "allowed": ["t"], "notify_joining": true})))
            .unwrap();
        let back = RoomProps::parse(p.to_config().as_object().unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn edit_removes_pin_with_empty_string() {
        let mut p = RoomProps::parse(&obj(json!({"pin": "1"}))).unwrap();
        p.edit(&obj(json!({"new_pin": "", "new_description": "x"}))).unwrap();
        assert_eq!(p.pin, None);
        assert_eq!(p.description, "x");
    }
}
