//! VideoRoom error codes (reference 2.2) and the error event they travel in.

use portunus_actors::api::validate::FieldError;
use serde_json::{json, Value};

pub const INVALID_REQUEST: u16 = 423;
pub const JOIN_FIRST: u16 = 424;
pub const ALREADY_JOINED: u16 = 425;
pub const NO_SUCH_ROOM: u16 = 426;
pub const ROOM_EXISTS: u16 = 427;
pub const NO_SUCH_FEED: u16 = 428;
pub const MISSING_ELEMENT: u16 = 429;
pub const INVALID_ELEMENT: u16 = 430;
pub const INVALID_SDP_TYPE: u16 = 431;
pub const PUBLISHERS_FULL: u16 = 432;
pub const UNAUTHORIZED: u16 = 433;
pub const ALREADY_PUBLISHED: u16 = 434;
pub const NOT_PUBLISHED: u16 = 435;
pub const ID_EXISTS: u16 = 436;
pub const INVALID_SDP: u16 = 437;
pub const UNKNOWN_ERROR: u16 = 499;

/// A VideoRoom error: `{"videoroom":"event","error_code":N,"error":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrError {
    pub code: u16,
    pub error: String,
}

impl VrError {
    pub fn new(code: u16, error: impl Into<String>) -> Self {
        VrError { code, error: error.into() }
    }

    pub fn no_such_room(room: u64) -> Self {
        VrError::new(NO_SUCH_ROOM, format!("No such room ({room})"))
    }

    pub fn to_json(&self) -> Value {
        json!({"videoroom": "event", "error_code": self.code, "error": self.error})
    }
}

impl From<FieldError> for VrError {
    fn from(e: FieldError) -> Self {
        let code = match e {
            FieldError::Missing(_) => MISSING_ELEMENT,
            FieldError::Type(..) => INVALID_ELEMENT,
        };
        VrError::new(code, e.to_string())
    }
}
