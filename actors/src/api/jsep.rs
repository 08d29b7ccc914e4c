//! JSEP objects as the core accepts them from clients (reference 1.3) and sends them back.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorCode};

/// Offer or answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
}

/// A session description plus the optional flags janus.js may add.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Jsep {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: SdpType,
    /// The SDP text.
    pub sdp: String,
    /// `false` when the SDP already carries every candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trickle: Option<bool>,
    /// Insertable-streams end-to-end encryption marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2ee: Option<bool>,
    /// Simulcast rid order (`hml` or `lmh`); consumed by the core.
    #[serde(skip)]
    pub rid_order: Option<String>,
    /// Relay-only ICE, honoured only with `allow_force_relay`.
    #[serde(skip)]
    pub force_relay: Option<bool>,
    /// Scalability-mode hints; passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svc: Option<Value>,
    /// Set by the core on renegotiations before the plugin sees the JSEP.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub update: bool,
}

impl Jsep {
    /// A plain offer or answer.
    pub fn new(kind: SdpType, sdp: impl Into<String>) -> Self {
        Jsep {
            kind,
            sdp: sdp.into(),
            trickle: None,
            e2ee: None,
            rid_order: None,
            force_relay: None,
            svc: None,
            update: false,
        }
    }

    /// Parses a client's `jsep` value with the core's error codes and wording.
    pub fn parse(value: &Value) -> Result<Jsep, ApiError> {
        let obj: &Map<String, Value> = match value {
            Value::Object(o) => o,
            _ => return Err(ApiError::new(ErrorCode::InvalidJsonObject, "Invalid jsep object")),
        };
        let kind = match obj.get("type") {
            None | Some(Value::Null) => {
                return Err(ApiError::new(
                    ErrorCode::MissingMandatoryElement,
                    "JSEP error: missing mandatory element (type)",
                ))
            }
            Some(Value::String(t)) => match t.to_ascii_lowercase().as_str() {
                "offer" => SdpType::Offer,
                "answer" => SdpType::Answer,
                _ => {
                    return Err(ApiError::new(
                        ErrorCode::JsepUnknownType,
                        format!("JSEP error: unknown message type '{t}'"),
                    ))
                }
            },
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidElementType,
                    "JSEP error: invalid element type (type should be a string)",
                ))
            }
        };
        let sdp = match obj.get("sdp") {
            None | Some(Value::Null) => {
                return Err(ApiError::new(
                    ErrorCode::MissingMandatoryElement,
                    "JSEP error: missing mandatory element (sdp)",
                ))
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidElementType,
                    "JSEP error: invalid element type (sdp should be a string)",
                ))
            }
        };
        let flag = |name: &str| -> Result<Option<bool>, ApiError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(ApiError::new(
                    ErrorCode::InvalidElementType,
                    format!("JSEP error: invalid element type ({name} should be a boolean)"),
                )),
            }
        };
        let rid_order = match obj.get("rid_order") {
            Some(Value::String(s)) if s == "hml" || s == "lmh" => Some(s.clone()),
            None | Some(Value::Null) => None,
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidElementType,
                    "JSEP error: invalid element type (rid_order should be 'hml' or 'lmh')",
                ))
            }
        };
        Ok(Jsep {
            kind,
            sdp,
            trickle: flag("trickle")?,
            e2ee: flag("e2ee")?,
            rid_order,
            force_relay: flag("force_relay")?,
            // Janus compat (1.3): invalid svc hints are ignored, not refused.
            svc: obj.get("svc").filter(|v| v.is_array()).cloned(),
            update: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_match_reference() {
        let e = Jsep::parse(&json!({"type": "pranswer", "sdp": "v=0"})).unwrap_err();
        assert_eq!((e.code(), e.reason.as_str()), (464, "JSEP error: unknown message type 'pranswer'"));
        let e = Jsep::parse(&json!({"type": "offer"})).unwrap_err();
        assert_eq!((e.code(), e.reason.as_str()), (456, "JSEP error: missing mandatory element (sdp)"));
        let e = Jsep::parse(&json!({"type": "offer", "sdp": 1})).unwrap_err();
        assert_eq!((e.code(), e.reason.as_str()), (467, "JSEP error: invalid element type (sdp should be a string)"));
        let e = Jsep::parse(&json!("x")).unwrap_err();
        assert_eq!((e.code(), e.reason.as_str()), (455, "Invalid jsep object"));
        let j = Jsep::parse(&json!({"type": "offer", "sdp": "v=0", "trickle": false})).unwrap();
        assert_eq!(j.trickle, Some(false));
    }
}
