//! Incoming Janus API requests: the envelope, parsed in the reference's validation order
//! (section 1.2), and the typed per-request payloads parsed at dispatch time.

use serde_json::{Map, Value};

use super::error::{ApiError, ErrorCode};
use super::ids::{HandleId, SessionId, Transaction};
use super::jsep::Jsep;
use super::validate::Fields;

/// Ids a transport supplies from outside the JSON (HTTP paths).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathIds {
    /// Session from the path.
    pub session: Option<SessionId>,
    /// Handle from the path.
    pub handle: Option<HandleId>,
}

/// Where a request's error reply can point when the envelope itself failed.
#[derive(Clone, Debug, Default)]
pub struct ErrorContext {
    /// The session, if it could be read.
    pub session: Option<SessionId>,
    /// The transaction, if it could be read.
    pub transaction: Option<Transaction>,
}

/// A parsed request envelope: what every request carries, before dispatch.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The request name, lowercased (Janus compares case-insensitively).
    pub name: String,
    /// The request name as sent, for error reasons (Janus quotes it verbatim).
    pub raw_name: String,
    /// The transaction.
    pub transaction: Transaction,
    /// Target session (absent or 0 means none).
    pub session: Option<SessionId>,
    /// Target handle (absent or 0 means none).
    pub handle: Option<HandleId>,
    /// `apisecret` if given as a string.
    pub apisecret: Option<String>,
    /// `token` if given as a string.
    pub token: Option<String>,
    /// `admin_secret` if given as a string.
    pub admin_secret: Option<String>,
    /// The whole object, for the request-specific fields.
    pub body: Map<String, Value>,
}

/// A failed envelope parse: the error and what is known for the reply.
#[derive(Clone, Debug)]
pub struct EnvelopeError {
    /// The error to send.
    pub error: ApiError,
    /// What the reply may carry.
    pub context: ErrorContext,
}

impl Envelope {
    /// Parses raw bytes (steps 1 and 2 of the validation order).
    pub fn parse(payload: &[u8], path: PathIds) -> Result<Envelope, EnvelopeError> {
        let value: Value = serde_json::from_slice(payload).map_err(|e| EnvelopeError {
            error: ApiError::new(ErrorCode::InvalidJson, format!("JSON error: on line {}: {}", e.line(), e)),
            context: ErrorContext::default(),
        })?;
        Envelope::from_value(value, path)
    }

    /// Parses an already decoded JSON value.
    pub fn from_value(value: Value, path: PathIds) -> Result<Envelope, EnvelopeError> {
        let Value::Object(body) = value else {
            return Err(EnvelopeError {
                error: ApiError::new(ErrorCode::InvalidJsonObject, "JSON error: not an object"),
                context: ErrorContext::default(),
            });
        };
        let mut context = ErrorContext::default();
        let fail = |error: ApiError, context: &ErrorContext| EnvelopeError { error, context: context.clone() };

        // Janus compat (14.7): non-integer ids count as absent.
        let body_session = id_field(&body, "session_id");
        let body_handle = id_field(&body, "handle_id");
        context.session = path.session.or(body_session.map(SessionId));

        let transaction = match body.req_str("transaction") {
            Ok(t) => Transaction::new(t),
            Err(e) => return Err(fail(e.into(), &context)),
        };
        context.transaction = Some(transaction.clone());
        let raw_name = match body.req_str("janus") {
            Ok(n) => n.to_owned(),
            Err(e) => return Err(fail(e.into(), &context)),
        };
        let name = raw_name.to_ascii_lowercase();
        if let Err(e) = body.opt_u64("id") {
            return Err(fail(e.into(), &context));
        }

        let mut session = body_session.map(SessionId);
        if let Some(p) = path.session {
            if session.is_some_and(|s| s != p) {
                return Err(fail(
                    ApiError::new(ErrorCode::InvalidRequestPath, "Conflicting session ID (payload and path)"),
                    &ErrorContext::default(),
                ));
            }
            session = Some(p);
        }
        let mut handle = body_handle.map(HandleId);
        if let Some(p) = path.handle {
            if handle.is_some_and(|h| h != p) {
                return Err(fail(
                    ApiError::new(ErrorCode::InvalidRequestPath, "Conflicting handle ID (payload and path)"),
                    &ErrorContext::default(),
                ));
            }
            handle = Some(p);
        }
        let string = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Envelope {
            name,
            raw_name,
            transaction,
            session: session.filter(|s| s.0 != 0),
            handle: handle.filter(|h| h.0 != 0),
            apisecret: string("apisecret"),
            token: string("token"),
            admin_secret: string("admin_secret"),
            body,
        })
    }
}

/// Reads an id field; anything but a non-negative integer counts as absent.
fn id_field(body: &Map<String, Value>, name: &str) -> Option<u64> {
    body.get(name).and_then(Value::as_u64)
}

/// `attach` payload.
#[derive(Clone, Debug)]
pub struct AttachRequest {
    /// Plugin package.
    pub plugin: String,
    /// Client-side correlation string.
    pub opaque_id: Option<String>,
}

impl AttachRequest {
    /// Parses the request-specific fields.
    pub fn parse(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let plugin = body.req_str("plugin")?.to_owned();
        let opaque_id = body.opt_str("opaque_id")?.map(str::to_owned);
        body.opt_u64("loop_index")?;
        Ok(AttachRequest { plugin, opaque_id })
    }
}

/// `message` payload.
#[derive(Clone, Debug)]
pub struct MessageRequest {
    /// The plugin request.
    pub body: Map<String, Value>,
    /// Optional session description.
    pub jsep: Option<Jsep>,
}

impl MessageRequest {
    /// Parses the request-specific fields, taking them out of the envelope body.
    pub fn parse(body: &mut Map<String, Value>) -> Result<Self, ApiError> {
        let plugin_body = match body.remove("body") {
            None | Some(Value::Null) => return Err(ApiError::missing("body")),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(ApiError::invalid_type("body", "an object")),
        };
        let jsep = match body.get("jsep") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Jsep::parse(v)?),
        };
        Ok(MessageRequest { body: plugin_body, jsep })
    }
}

/// One ICE candidate from a client.
#[derive(Clone, Debug, PartialEq)]
pub enum TrickleCandidate {
    /// A candidate line for a media section.
    Candidate {
        /// The `candidate:` line.
        candidate: String,
        /// `sdpMid`.
        sdp_mid: Option<String>,
        /// `sdpMLineIndex`.
        sdp_mline_index: Option<u16>,
    },
    /// End of candidates.
    Completed,
}

impl TrickleCandidate {
    /// Parses one candidate object with the trickle wording of reference 1.4.
    pub fn parse(value: &Value) -> Result<Self, ApiError> {
        let obj = match value {
            Value::Null => return Ok(TrickleCandidate::Completed),
            Value::Object(o) => o,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidElementType,
                    "Trickle error: invalid element type (candidate should be an object)",
                ))
            }
        };
        if obj.contains_key("completed") {
            return Ok(TrickleCandidate::Completed);
        }
        let mid = match obj.get("sdpMid") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidElementType,
                    "Trickle error: invalid element type (sdpMid should be a string)",
                ))
            }
        };
        let index = match obj.get("sdpMLineIndex") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|i| u16::try_from(i).ok()) {
                Some(i) => Some(i),
                None => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidElementType,
                        "Trickle error: invalid element type (sdpMLineIndex should be a positive integer)",
                    ))
                }
            },
        };
        if mid.is_none() && index.is_none() {
            return Err(ApiError::new(
                ErrorCode::MissingMandatoryElement,
                "Trickle error: missing mandatory element (sdpMid or sdpMLineIndex)",
            ));
        }
        let candidate = match obj.get("candidate") {
            None | Some(Value::Null) => {
                return Err(ApiError::new(
                    ErrorCode::MissingMandatoryElement,
                    "Trickle error: missing mandatory element (candidate)",
                ))
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidElementType,
                    "Trickle error: invalid element type (candidate should be a string)",
                ))
            }
        };
        Ok(TrickleCandidate::Candidate { candidate, sdp_mid: mid, sdp_mline_index: index })
    }
}

/// `trickle` payload: one candidate or a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct TrickleRequest {
    /// The candidates, in order.
    pub candidates: Vec<TrickleCandidate>,
}

impl TrickleRequest {
    /// Parses the request-specific fields. Janus compat (1.4): bad entries inside `candidates`
    /// are skipped, only a bad single `candidate` is an error.
    pub fn parse(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let single = body.get("candidate");
        let many = body.get("candidates");
        match (single, many) {
            (Some(_), Some(_)) => {
                Err(ApiError::new(ErrorCode::InvalidJson, "Can't have both candidate and candidates"))
            }
            (None, None) => Err(ApiError::missing("candidate|candidates")),
            (Some(c), None) => Ok(TrickleRequest { candidates: vec![TrickleCandidate::parse(c)?] }),
            (None, Some(Value::Array(list))) => {
                Ok(TrickleRequest { candidates: list.iter().filter_map(|c| TrickleCandidate::parse(c).ok()).collect() })
            }
            (None, Some(_)) => Err(ApiError::invalid_type("candidates", "an array")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn env(v: Value) -> Result<Envelope, EnvelopeError> {
        Envelope::parse(v.to_string().as_bytes(), PathIds::default())
    }

    #[test]
    fn validation_order() {
        let e = env(json!({"janus": "create"})).unwrap_err();
        assert_eq!(e.error.reason, "Missing mandatory element (transaction)");
        assert!(e.context.transaction.is_none());
        let e = env(json!({"transaction": "t"})).unwrap_err();
        assert_eq!(e.error.reason, "Missing mandatory element (janus)");
        let e = env(json!({"transaction": 5, "janus": "x"})).unwrap_err();
        assert_eq!(e.error.reason, "Invalid element type (transaction should be a string)");
        let e = Envelope::parse(b"[1,2]", PathIds::default()).unwrap_err();
        assert_eq!((e.error.code(), e.error.reason.as_str()), (455, "JSON error: not an object"));
        let e = Envelope::parse(b"{bad", PathIds::default()).unwrap_err();
        assert_eq!(e.error.code(), 454);
        let e = env(json!({"janus": "create", "transaction": "t", "id": -3})).unwrap_err();
        assert_eq!(e.error.reason, "Invalid element type (id should be a positive integer)");
    }

    #[test]
    fn ids_and_case() {
        let e = env(json!({"janus": "KeepAlive", "transaction": "t", "session_id": "12"})).unwrap();
        assert_eq!(e.name, "keepalive");
        assert_eq!(e.session, None);
        let path = PathIds { session: Some(SessionId(5)), handle: Some(HandleId(7)) };
        let e = Envelope::parse(br#"{"janus":"x","transaction":"t","handle_id":1}"#, path).unwrap_err();
        assert_eq!(e.error.reason, "Conflicting handle ID (payload and path)");
    }

    #[test]
    fn trickle_forms() {
        let b = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let t = TrickleRequest::parse(&b(json!({"candidate": {"completed": true}}))).unwrap();
        assert_eq!(t.candidates, vec![TrickleCandidate::Completed]);
        let e = TrickleRequest::parse(&b(json!({"candidate": {}, "candidates": []}))).unwrap_err();
        assert_eq!((e.code(), e.reason.as_str()), (454, "Can't have both candidate and candidates"));
        let e = TrickleRequest::parse(&b(json!({}))).unwrap_err();
        assert_eq!(e.reason, "Missing mandatory element (candidate|candidates)");
        let e = TrickleRequest::parse(&b(json!({"candidate": {"candidate": "c"}}))).unwrap_err();
        assert_eq!(e.reason, "Trickle error: missing mandatory element (sdpMid or sdpMLineIndex)");
        let t = TrickleRequest::parse(&b(json!({"candidates": [{"sdpMid": "0", "candidate": "a"}, 5]}))).unwrap();
        assert_eq!(t.candidates.len(), 1);
    }
}
