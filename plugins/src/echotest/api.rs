//! EchoTest requests (reference 8.1): one unnamed request whose keys are all optional.

use portunus_actors::api::validate::{FieldError, Fields};
use serde_json::{Map, Value};

/// `413 INVALID_ELEMENT` (also "no supported attributes found").
pub const ERROR_INVALID_ELEMENT: u16 = 413;
/// `412 INVALID_JSON`.
pub const ERROR_INVALID_JSON: u16 = 412;
/// `411 NO_MESSAGE`.
pub const ERROR_NO_MESSAGE: u16 = 411;

/// A parsed EchoTest request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Configure {
    /// Echo audio.
    pub audio: Option<bool>,
    /// Echo video.
    pub video: Option<bool>,
    /// Echo data.
    pub data: Option<bool>,
    /// REMB cap in bps.
    pub bitrate: Option<u64>,
    /// Start/stop recording.
    pub record: Option<bool>,
    /// Recording base path.
    pub filename: Option<String>,
    /// Simulcast substream to send back.
    pub substream: Option<u64>,
    /// Simulcast temporal layer to send back.
    pub temporal: Option<u64>,
    /// Simulcast fallback (µs without packets before going down a layer).
    pub fallback: Option<u64>,
    /// Choose SVC layers of the sender's VP9 video (also on with the offer's `svc` hints).
    pub svc: Option<bool>,
    /// SVC spatial layer.
    pub spatial_layer: Option<u64>,
    /// SVC temporal layer.
    pub temporal_layer: Option<u64>,
    /// Preferred audio codec (negotiation only).
    pub audiocodec: Option<String>,
    /// Preferred video codec (negotiation only).
    pub videocodec: Option<String>,
    /// Video profile (negotiation only).
    pub videoprofile: Option<String>,
    /// Opus RED.
    pub opusred: Option<bool>,
    /// Playout-delay minimum.
    pub min_delay: Option<i64>,
    /// Playout-delay maximum.
    pub max_delay: Option<i64>,
}

impl Configure {
    /// Parses a body with the core's wording; the caller wraps errors in code 413.
    pub fn parse(body: &Map<String, Value>) -> Result<Self, FieldError> {
        let s = |k: &str| body.opt_str(k).map(|v| v.map(str::to_owned));
        Ok(Configure {
            audio: body.opt_bool("audio")?,
            video: body.opt_bool("video")?,
            data: body.opt_bool("data")?,
            bitrate: body.opt_u64("bitrate")?,
            record: body.opt_bool("record")?,
            filename: s("filename")?,
            substream: body.opt_u64("substream")?,
            temporal: body.opt_u64("temporal")?,
            fallback: body.opt_u64("fallback")?,
            svc: body.opt_bool("svc")?,
            spatial_layer: body.opt_u64("spatial_layer")?,
            temporal_layer: body.opt_u64("temporal_layer")?,
            audiocodec: s("audiocodec")?,
            videocodec: s("videocodec")?,
            videoprofile: s("videoprofile")?,
            opusred: body.opt_bool("opusred")?,
            min_delay: body.opt_i64("min_delay")?,
            max_delay: body.opt_i64("max_delay")?,
        })
    }

    /// Whether nothing the plugin understands was given.
    pub fn is_empty(&self) -> bool {
        *self == Configure::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parse_and_empty() {
        let Value::Object(m) = json!({"audio": true, "bitrate": 128000}) else { unreachable!() };
        let c = Configure::parse(&m).unwrap();
        assert_eq!((c.audio, c.bitrate), (Some(true), Some(128000)));
        let Value::Object(m) = json!({"foo": true}) else { unreachable!() };
        assert!(Configure::parse(&m).unwrap().is_empty());
        let Value::Object(m) = json!({"audio": "yes"}) else { unreachable!() };
        assert_eq!(Configure::parse(&m).unwrap_err().to_string(), "Invalid element type (audio should be a boolean)");
    }
}
