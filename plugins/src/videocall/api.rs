//! VideoCall requests, errors and event bodies (reference 8.6), with Janus's wording.
//!
//! Parsing turns a `body` into a [`Request`]; what Janus checks only later (the `username` of
//! `register`/`call`, after "already registered" or "register first") stays a `Result` inside the
//! request, so the call logic reports errors in Janus's order.

use portunus_actors::api::validate::{FieldError, Fields};
use serde_json::{json, Map, Value};

/// `470 NO_MESSAGE`.
pub const NO_MESSAGE: u16 = 470;
/// `471 INVALID_JSON`.
pub const INVALID_JSON: u16 = 471;
/// `472 INVALID_REQUEST`: unknown request.
pub const INVALID_REQUEST: u16 = 472;
/// `473 REGISTER_FIRST`.
pub const REGISTER_FIRST: u16 = 473;
/// `474 INVALID_ELEMENT`.
pub const INVALID_ELEMENT: u16 = 474;
/// `475 MISSING_ELEMENT`.
pub const MISSING_ELEMENT: u16 = 475;
/// `476 USERNAME_TAKEN`.
pub const USERNAME_TAKEN: u16 = 476;
/// `477 ALREADY_REGISTERED`.
pub const ALREADY_REGISTERED: u16 = 477;
/// `478 NO_SUCH_USERNAME`.
pub const NO_SUCH_USERNAME: u16 = 478;
/// `479 USE_ECHO_TEST`: calling yourself.
pub const USE_ECHO_TEST: u16 = 479;
/// `480 ALREADY_IN_CALL`.
pub const ALREADY_IN_CALL: u16 = 480;
/// `481 NO_CALL`.
pub const NO_CALL: u16 = 481;
/// `482 MISSING_SDP`.
pub const MISSING_SDP: u16 = 482;
/// `483 INVALID_SDP`.
pub const INVALID_SDP: u16 = 483;
/// `499 UNKNOWN_ERROR`.
pub const UNKNOWN_ERROR: u16 = 499;

/// A VideoCall error: `{"videocall":"event","error_code":N,"error":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcError {
    /// Janus error code (470..483, 499).
    pub code: u16,
    /// Janus error text.
    pub error: String,
}

impl VcError {
    /// An error with code and text.
    pub fn new(code: u16, error: impl Into<String>) -> Self {
        VcError { code, error: error.into() }
    }

    /// The error event.
    pub fn to_json(&self) -> Value {
        json!({"videocall": "event", "error_code": self.code, "error": self.error})
    }
}

impl From<FieldError> for VcError {
    fn from(e: FieldError) -> Self {
        let code = match e {
            FieldError::Missing(_) => MISSING_ELEMENT,
            FieldError::Type(..) => INVALID_ELEMENT,
        };
        VcError::new(code, e.to_string())
    }
}

/// `{"videocall":"event","result":<result>}`.
pub fn result(result: Value) -> Value {
    json!({"videocall": "event", "result": result})
}

/// A username argument, checked only when Janus checks it.
pub type Username = Result<String, VcError>;

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `list`: every registered username.
    List,
    /// `register {username}`.
    Register(Username),
    /// `call {username}` with a JSEP offer.
    Call(Username),
    /// `accept` with a JSEP answer.
    Accept,
    /// `set {audio, video, bitrate, ...}`, optionally with JSEP (renegotiation).
    Set(SetRequest),
    /// `hangup {reason?}`.
    Hangup {
        /// Text the peer gets; a non-string is ignored (Janus compat).
        reason: Option<String>,
    },
}

impl Request {
    /// Parses a body (`request` is matched case-insensitively, as Janus does).
    pub fn parse(body: &Map<String, Value>) -> Result<Request, VcError> {
        let name = body.req_str("request")?;
        let username = || body.req_str("username").map(str::to_owned).map_err(VcError::from);
        Ok(match name.to_ascii_lowercase().as_str() {
            "list" => Request::List,
            "register" => Request::Register(username()),
            "call" => Request::Call(username()),
            "accept" => Request::Accept,
            "set" => Request::Set(SetRequest::parse(body)?),
            "hangup" => Request::Hangup { reason: body.get("reason").and_then(Value::as_str).map(str::to_owned) },
            _ => return Err(VcError::new(INVALID_REQUEST, format!("Unknown request ({name})"))),
        })
    }
}

/// The settings of a `set` request; every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetRequest {
    /// Relay this user's audio to the peer.
    pub audio: Option<bool>,
    /// Relay this user's video to the peer.
    pub video: Option<bool>,
    /// REMB cap for what this user sends, in bps (0 = no cap).
    pub bitrate: Option<u64>,
    /// Start/stop recording this user.
    pub record: Option<bool>,
    /// Recording base path.
    pub filename: Option<String>,
    /// ICE restart hint (the JSEP carries the restart itself).
    pub restart: Option<bool>,
    /// Simulcast substream to receive (0-2).
    pub substream: Option<u64>,
    /// Simulcast temporal layer to receive (0-2).
    pub temporal: Option<u64>,
    /// Simulcast fallback in µs.
    pub fallback: Option<u64>,
}

impl SetRequest {
    /// Parses the `set` fields with Janus's wording.
    pub fn parse(body: &Map<String, Value>) -> Result<SetRequest, VcError> {
        let req = SetRequest {
            audio: body.opt_bool("audio")?,
            video: body.opt_bool("video")?,
            bitrate: body.opt_u64("bitrate")?,
            record: body.opt_bool("record")?,
            filename: body.opt_str("filename")?.map(str::to_owned),
            restart: body.opt_bool("restart")?,
            substream: layer(body, "substream")?,
            temporal: layer(body, "temporal")?,
            fallback: match body.get("fallback") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    VcError::new(INVALID_ELEMENT, "Invalid value (fallback should be a positive integer)")
                })?),
            },
        };
        Ok(req)
    }
}

/// A simulcast layer index: an integer 0, 1 or 2.
fn layer(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, VcError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n @ 0..=2) => Ok(Some(n)),
            _ => Err(VcError::new(INVALID_ELEMENT, format!("Invalid value ({name} should be 0, 1 or 2)"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn requests_parse_case_insensitively() {
        assert_eq!(Request::parse(&obj(json!({"request": "LIST"}))), Ok(Request::List));
        assert_eq!(
            Request::parse(&obj(json!({"request": "register", "username": "alice"}))),
            Ok(Request::Register(Ok("alice".into())))
        );
        assert_eq!(Request::parse(&obj(json!({"request": "accept", "x": 1}))), Ok(Request::Accept));
        assert_eq!(
            Request::parse(&obj(json!({"request": "hangup", "reason": 5}))),
            Ok(Request::Hangup { reason: None })
        );
        assert_eq!(
            Request::parse(&obj(json!({"request": "hangup", "reason": "bye"}))),
            Ok(Request::Hangup { reason: Some("bye".into()) })
        );
    }

    #[test]
    fn request_errors_use_janus_wording() {
        let e = Request::parse(&obj(json!({}))).unwrap_err();
        assert_eq!(e, VcError::new(MISSING_ELEMENT, "Missing mandatory element (request)"));
        let e = Request::parse(&obj(json!({"request": 1}))).unwrap_err();
        assert_eq!(e, VcError::new(INVALID_ELEMENT, "Invalid element type (request should be a string)"));
        let e = Request::parse(&obj(json!({"request": "dance"}))).unwrap_err();
        assert_eq!(e, VcError::new(INVALID_REQUEST, "Unknown request (dance)"));
        // The username is checked later, in Janus's order.
        let r = Request::parse(&obj(json!({"request": "call", "username": 7}))).unwrap();
        assert_eq!(
            r,
            Request::Call(Err(VcError::new(INVALID_ELEMENT, "Invalid element type (username should be a string)")))
        );
        let r = Request::parse(&obj(json!({"request": "register"}))).unwrap();
        assert_eq!(r, Request::Register(Err(VcError::new(MISSING_ELEMENT, "Missing mandatory element (username)"))));
    }

    #[test]
    fn set_fields() {
        let s = SetRequest::parse(&obj(json!({"audio": false, "bitrate": 128000, "substream": 2}))).unwrap();
        assert_eq!((s.audio, s.video, s.bitrate, s.substream), (Some(false), None, Some(128000), Some(2)));
        let e = SetRequest::parse(&obj(json!({"bitrate": -1}))).unwrap_err();
        assert_eq!(e, VcError::new(INVALID_ELEMENT, "Invalid element type (bitrate should be a positive integer)"));
        let e = SetRequest::parse(&obj(json!({"substream": 3}))).unwrap_err();
        assert_eq!(e, VcError::new(INVALID_ELEMENT, "Invalid value (substream should be 0, 1 or 2)"));
        let e = SetRequest::parse(&obj(json!({"temporal": "1"}))).unwrap_err();
        assert_eq!(e.error, "Invalid value (temporal should be 0, 1 or 2)");
        let e = SetRequest::parse(&obj(json!({"fallback": -5}))).unwrap_err();
        assert_eq!(e.error, "Invalid value (fallback should be a positive integer)");
        let e = SetRequest::parse(&obj(json!({"video": "no"}))).unwrap_err();
        assert_eq!(e.error, "Invalid element type (video should be a boolean)");
    }
}
