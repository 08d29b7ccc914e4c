//! TextRoom requests (reference 8.5): the data-channel protocol and the synchronous subset of the
//! Janus API, parsed in Janus's validation order and with its wording, plus the error codes.
//!
//! Parsing only checks types and presence. Checks Janus makes after looking the room up (secret,
//! pin, `to` together with `tos`, non-string tokens) are left to the room core, so that errors
//! come in the same order as in Janus: the parsed request keeps what it needs to report them.

use std::fmt;

use portunus_actors::api::validate::{FieldError, Fields};
use serde_json::{json, Map, Value};

/// `411 NO_MESSAGE`.
pub const NO_MESSAGE: u16 = 411;
/// `412 INVALID_JSON`.
pub const INVALID_JSON: u16 = 412;
/// `413 MISSING_ELEMENT`.
pub const MISSING_ELEMENT: u16 = 413;
/// `414 INVALID_ELEMENT`.
pub const INVALID_ELEMENT: u16 = 414;
/// `415 INVALID_REQUEST`.
pub const INVALID_REQUEST: u16 = 415;
/// `416 ALREADY_SETUP`.
pub const ALREADY_SETUP: u16 = 416;
/// `417 NO_SUCH_ROOM`.
pub const NO_SUCH_ROOM: u16 = 417;
/// `418 ROOM_EXISTS`.
pub const ROOM_EXISTS: u16 = 418;
/// `419 UNAUTHORIZED`.
pub const UNAUTHORIZED: u16 = 419;
/// `420 USERNAME_EXISTS`.
pub const USERNAME_EXISTS: u16 = 420;
/// `421 ALREADY_IN_ROOM`.
pub const ALREADY_IN_ROOM: u16 = 421;
/// `422 NOT_IN_ROOM`.
pub const NOT_IN_ROOM: u16 = 422;
/// `423 NO_SUCH_USER`.
pub const NO_SUCH_USER: u16 = 423;
/// `499 UNKNOWN_ERROR`.
pub const UNKNOWN_ERROR: u16 = 499;

/// The requests the Janus API and the Admin API also accept (synchronously).
pub const SYNC_REQUESTS: [&str; 9] =
    ["list", "listparticipants", "exists", "create", "edit", "announcement", "allowed", "kick", "destroy"];

/// A TextRoom error: code and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrError {
    /// One of the codes above.
    pub code: u16,
    /// Janus's text.
    pub reason: String,
}

impl TrError {
    /// An error.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        TrError { code, reason: reason.into() }
    }

    /// `{"textroom":kind,"error_code":N,"error":"..."}`: `kind` is "error" for everything the
    /// request processor answers, "event" for Janus API messages it never saw (reference 8).
    pub fn to_json(&self, kind: &str) -> Value {
        json!({"textroom": kind, "error_code": self.code, "error": self.reason})
    }

    pub(crate) fn no_such_room(room: &RoomId) -> Self {
        TrError::new(NO_SUCH_ROOM, format!("No such room ({room})"))
    }
}

impl From<FieldError> for TrError {
    fn from(e: FieldError) -> Self {
        let code = match e {
            FieldError::Missing(_) => MISSING_ELEMENT,
            FieldError::Type(..) => INVALID_ELEMENT,
        };
        TrError::new(code, e.to_string())
    }
}

/// A room id: a number, or a string with `string_ids`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoomId {
    /// Numeric id.
    Num(u64),
    /// String id (`string_ids = true`).
    Str(String),
}

impl RoomId {
    /// As it appears in JSON.
    pub fn to_json(&self) -> Value {
        match self {
            RoomId::Num(n) => Value::from(*n),
            RoomId::Str(s) => Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomId::Num(n) => write!(f, "{n}"),
            RoomId::Str(s) => f.write_str(s),
        }
    }
}

/// A string field Janus validates late (only when it matters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Late {
    /// Absent or null.
    Absent,
    /// A string.
    Str(String),
    /// Present but not a string.
    WrongType,
}

impl From<Option<String>> for Late {
    fn from(v: Option<String>) -> Self {
        v.map_or(Late::Absent, Late::Str)
    }
}

/// An array of strings Janus validates late (after the room and secret checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strings {
    /// Every element is a string.
    Valid(Vec<String>),
    /// Some element is not.
    Invalid,
}

/// Who a `message` is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipients {
    /// Everyone in the room (public message).
    Room,
    /// `to`: one user.
    One(String),
    /// `tos`: some users.
    Some(Vec<String>),
    /// Both `to` and `tos` (an error, reported after the room checks).
    Both,
    /// `tos` with a non-string element (likewise).
    BadTos,
}

/// `allowed` actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowedAction {
    /// Start checking tokens on join.
    Enable,
    /// Stop checking tokens.
    Disable,
    /// Add tokens.
    Add,
    /// Remove tokens.
    Remove,
}

/// `create`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    /// Wanted id (`None` or 0: random).
    pub room: Option<RoomId>,
    /// `admin_key`, checked when the plugin has one.
    pub admin_key: Late,
    /// Description.
    pub description: Option<String>,
    /// Management secret.
    pub secret: Option<String>,
    /// Join pin.
    pub pin: Option<String>,
    /// HTTP backend (accepted, not used).
    pub post: Option<String>,
    /// Hidden from `list`.
    pub is_private: bool,
    /// Messages kept for new joiners.
    pub history: u16,
    /// Token ACL (enables token checks).
    pub allowed: Option<Strings>,
    /// `permanent`: kept in the rooms file (answered `false` when there is none).
    pub permanent: bool,
}

/// `edit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// Room.
    pub room: RoomId,
    /// Room secret.
    pub secret: Option<String>,
    /// New description (ignored when empty).
    pub description: Option<String>,
    /// New secret (ignored when empty).
    pub new_secret: Option<String>,
    /// New pin (ignored when empty).
    pub pin: Option<String>,
    /// New HTTP backend (ignored when empty).
    pub post: Option<String>,
    /// New privacy.
    pub is_private: Option<bool>,
    /// `permanent`.
    pub permanent: bool,
}

/// `join`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    /// Room.
    pub room: RoomId,
    /// Unique name in the room.
    pub username: String,
    /// Display name.
    pub display: Option<String>,
    /// Room pin.
    pub pin: Option<String>,
    /// ACL token.
    pub token: Option<String>,
    /// Replay the history.
    pub history: bool,
}

/// `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Room.
    pub room: RoomId,
    /// Text.
    pub text: String,
    /// Recipients.
    pub to: Recipients,
    /// Answer with `success`.
    pub ack: bool,
}

/// A parsed TextRoom request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `list`.
    List {
        /// `admin_key`, to include private rooms.
        admin_key: Late,
    },
    /// `listparticipants`.
    ListParticipants {
        /// Room.
        room: RoomId,
    },
    /// `exists`.
    Exists {
        /// Room.
        room: RoomId,
    },
    /// `create`.
    Create(Create),
    /// `edit`.
    Edit(Edit),
    /// `destroy`.
    Destroy {
        /// Room.
        room: RoomId,
        /// Room secret (not in Janus's parameter table: its type is checked only if needed).
        secret: Late,
        /// `permanent`.
        permanent: bool,
    },
    /// `allowed`.
    Allowed {
        /// Room.
        room: RoomId,
        /// Room secret.
        secret: Option<String>,
        /// What to do.
        action: AllowedAction,
        /// Tokens for add/remove.
        allowed: Option<Strings>,
    },
    /// `kick`.
    Kick {
        /// Room.
        room: RoomId,
        /// Room secret.
        secret: Option<String>,
        /// Who.
        username: String,
    },
    /// `join`.
    Join(Join),
    /// `leave`.
    Leave {
        /// Room.
        room: RoomId,
    },
    /// `message`.
    Message(Message),
    /// `announcement`.
    Announcement {
        /// Room.
        room: RoomId,
        /// Room secret.
        secret: Option<String>,
        /// Text.
        text: String,
    },
}

impl Request {
    /// Parses request `name` (case-insensitive, as Janus's `strcasecmp`) from `body`.
    pub fn parse(name: &str, body: &Map<String, Value>, string_ids: bool) -> Result<Request, TrError> {
        let b = body;
        let s = |k: &str| b.opt_str(k).map(|v| v.map(str::to_owned));
        let room = || required_room(b, string_ids);
        Ok(match name.to_ascii_lowercase().as_str() {
            "message" => {
                let text = b.req_str("text")?.to_owned();
                let to = s("to")?;
                let tos = b.opt_array("tos")?;
                let ack = b.opt_bool("ack")?.unwrap_or(true);
                let to = match (to, tos) {
                    (Some(_), Some(_)) => Recipients::Both,
                    (Some(u), None) => Recipients::One(u),
                    (None, Some(list)) => match strings(list) {
                        Strings::Valid(v) => Recipients::Some(v),
                        Strings::Invalid => Recipients::BadTos,
                    },
                    (None, None) => Recipients::Room,
                };
                Request::Message(Message { room: room()?, text, to, ack })
            }
            "join" => {
                let username = b.req_str("username")?.to_owned();
                let pin = s("pin")?;
                let token = s("token")?;
                let display = s("display")?;
                let history = b.opt_bool("history")?.unwrap_or(true);
                Request::Join(Join { room: room()?, username, display, pin, token, history })
            }
            "leave" => Request::Leave { room: room()? },
            "list" => Request::List { admin_key: late_str(b, "admin_key") },
            "listparticipants" => Request::ListParticipants { room: room()? },
            "exists" => Request::Exists { room: room()? },
            "allowed" => {
                let secret = s("secret")?;
                let action = b.req_str("action")?.to_owned();
                let allowed = b.opt_array("allowed")?.map(|a| strings(a));
                let room = room()?;
                let action = match action.to_ascii_lowercase().as_str() {
                    "enable" => AllowedAction::Enable,
                    "disable" => AllowedAction::Disable,
                    "add" => AllowedAction::Add,
                    "remove" => AllowedAction::Remove,
                    _ => return Err(TrError::new(INVALID_ELEMENT, format!("Unsupported action '{action}' (allowed)"))),
                };
                Request::Allowed { room, secret, action, allowed }
            }
            "kick" => {
                let secret = s("secret")?;
                let username = b.req_str("username")?.to_owned();
                Request::Kick { room: room()?, secret, username }
            }
            "announcement" => {
                let secret = s("secret")?;
                let text = b.req_str("text")?.to_owned();
                Request::Announcement { room: room()?, secret, text }
            }
            "create" => {
                let description = s("description")?;
                let secret = s("secret")?;
                let pin = s("pin")?;
                let post = s("post")?;
                let is_private = b.opt_bool("is_private")?.unwrap_or(false);
                let history = b.opt_u64("history")?.unwrap_or(0);
                let allowed = b.opt_array("allowed")?.map(|a| strings(a));
                let permanent = b.opt_bool("permanent")?.unwrap_or(false);
                let room = if string_ids { s("room")?.map(RoomId::Str) } else { b.opt_u64("room")?.map(RoomId::Num) };
                Request::Create(Create {
                    room,
                    admin_key: late_str(b, "admin_key"),
                    description,
                    secret,
                    pin,
                    post,
                    is_private,
                    history: u16::try_from(history).unwrap_or(u16::MAX),
                    allowed,
                    permanent,
                })
            }
            "edit" => {
                let secret = s("secret")?;
                let description = s("new_description")?;
                let new_secret = s("new_secret")?;
                let pin = s("new_pin")?;
                let post = s("new_post")?;
                let is_private = b.opt_bool("new_is_private")?;
                let permanent = b.opt_bool("permanent")?.unwrap_or(false);
                Request::Edit(Edit { room: room()?, secret, description, new_secret, pin, post, is_private, permanent })
            }
            "destroy" => {
                let permanent = b.opt_bool("permanent")?.unwrap_or(false);
                Request::Destroy { room: room()?, secret: late_str(b, "secret"), permanent }
            }
            _ => return Err(TrError::new(INVALID_REQUEST, format!("Unsupported request {name}"))),
        })
    }
}

/// The mandatory `room`: "a positive integer", or "a string" with `string_ids`.
fn required_room(body: &Map<String, Value>, string_ids: bool) -> Result<RoomId, TrError> {
    Ok(if string_ids { RoomId::Str(body.req_str("room")?.to_owned()) } else { RoomId::Num(body.req_u64("room")?) })
}

fn late_str(body: &Map<String, Value>, name: &str) -> Late {
    match body.get(name) {
        None | Some(Value::Null) => Late::Absent,
        Some(Value::String(s)) => Late::Str(s.clone()),
        Some(_) => Late::WrongType,
    }
}

fn strings(list: &[Value]) -> Strings {
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        match v {
            Value::String(s) => out.push(s.clone()),
            _ => return Strings::Invalid,
        }
    }
    Strings::Valid(out)
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

    fn parse(v: Value) -> Result<Request, TrError> {
        let m = obj(v);
        let name = m.get("textroom").and_then(Value::as_str).unwrap_or_default().to_owned();
        Request::parse(&name, &m, false)
    }

    fn err(v: Value) -> (u16, String) {
        let e = parse(v).unwrap_err();
        (e.code, e.reason)
    }

    #[test]
    fn join_and_message() {
        let r = parse(json!({"textroom": "JOIN", "room": 1234, "username": "alice", "display": "Alice"})).unwrap();
        assert_eq!(
            r,
            Request::Join(Join {
                room: RoomId::Num(1234),
                username: "alice".into(),
                display: Some("Alice".into()),
                pin: None,
                token: None,
                history: true,
            })
        );
        let r = parse(json!({"textroom": "message", "room": 1, "text": "hi", "tos": ["a", "b"], "ack": false}));
        assert_eq!(
            r.unwrap(),
            Request::Message(Message {
                room: RoomId::Num(1),
                text: "hi".into(),
                to: Recipients::Some(vec!["a".into(), "b".into()]),
                ack: false,
            })
        );
        let r = parse(json!({"textroom": "message", "room": 1, "text": "x", "to": "a", "tos": []})).unwrap();
        assert!(matches!(r, Request::Message(Message { to: Recipients::Both, .. })));
        let r = parse(json!({"textroom": "message", "room": 1, "text": "x", "tos": ["a", 3]})).unwrap();
        assert!(matches!(r, Request::Message(Message { to: Recipients::BadTos, .. })));
    }

    #[test]
    fn janus_wording_and_order() {
        // The parameter table is checked before the room.
        assert_eq!(err(json!({"textroom": "message"})), (413, "Missing mandatory element (text)".into()));
        assert_eq!(err(json!({"textroom": "message", "text": "x"})), (413, "Missing mandatory element (room)".into()));
        assert_eq!(
            err(json!({"textroom": "join", "room": "1234", "username": "a"})),
            (414, "Invalid element type (room should be a positive integer)".into())
        );
        assert_eq!(
            err(json!({"textroom": "join", "room": -1, "username": "a"})),
            (414, "Invalid element type (room should be a positive integer)".into())
        );
        assert_eq!(
            err(json!({"textroom": "join", "room": 1, "username": 5})),
            (414, "Invalid element type (username should be a string)".into())
        );
        assert_eq!(
            err(json!({"textroom": "create", "history": "3"})),
            (414, "Invalid element type (history should be a positive integer)".into())
        );
        assert_eq!(
            err(json!({"textroom": "allowed", "room": 1, "action": "ban"})),
            (414, "Unsupported action 'ban' (allowed)".into())
        );
        assert_eq!(err(json!({"textroom": "bogus"})), (415, "Unsupported request bogus".into()));
        assert_eq!(
            err(json!({"textroom": "message", "room": 1, "text": "x", "ack": "no"})),
            (414, "Invalid element type (ack should be a boolean)".into())
        );
    }

    #[test]
    fn string_ids() {
        let m = obj(json!({"room": "lobby"}));
        assert_eq!(Request::parse("exists", &m, true).unwrap(), Request::Exists { room: RoomId::Str("lobby".into()) });
        let m = obj(json!({"room": 5}));
        assert_eq!(
            Request::parse("exists", &m, true).unwrap_err().reason,
            "Invalid element type (room should be a string)"
        );
        let m = obj(json!({}));
        let Request::Create(c) = Request::parse("create", &m, true).unwrap() else { panic!("not a create") };
        assert_eq!(c.room, None);
    }

    #[test]
    fn create_fields() {
        let m = obj(json!({"room": 9, "history": 100000, "allowed": ["t", 1], "admin_key": 3}));
        let Request::Create(c) = Request::parse("create", &m, false).unwrap() else { panic!("not a create") };
        assert_eq!(c.room, Some(RoomId::Num(9)));
        assert_eq!(c.history, u16::MAX);
        assert_eq!(c.allowed, Some(Strings::Invalid));
        assert_eq!(c.admin_key, Late::WrongType);
        assert!(!c.is_private && !c.permanent);
    }
}
