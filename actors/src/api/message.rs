//! Messages the server sends: replies, events and notifications, in one serializable envelope.
//!
//! Field order follows what Janus emits (`janus`, `session_id`, `transaction`, `sender`, ...);
//! absent fields are omitted, never sent as null.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::ids::{HandleId, SessionId, Transaction};
use super::jsep::Jsep;

/// `{"id": N}` in `create` and `attach` successes.
#[derive(Clone, Debug, Serialize)]
pub struct IdData {
    /// The new session or handle id.
    pub id: u64,
}

/// `{"code": N, "reason": "..."}`.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorBody {
    /// The numeric code.
    pub code: u16,
    /// The reason text.
    pub reason: String,
}

/// `{"plugin": "<package>", "data": {...}}`.
#[derive(Clone, Debug, Serialize)]
pub struct PluginData {
    /// The plugin package name.
    pub plugin: &'static str,
    /// The plugin's own JSON.
    pub data: Value,
}

/// One server-to-client message.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outgoing {
    /// The message kind (`success`, `ack`, `event`, ...).
    pub janus: &'static str,
    /// The session, when known and non-zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// The transaction of the request being answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<Transaction>,
    /// The handle that originated an event or sync plugin reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<HandleId>,
    /// Copied from `attach` when `opaqueid_in_api` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque_id: Option<Arc<str>>,
    /// New id in `create`/`attach` successes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<IdData>,
    /// Plugin hint in `ack`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Plugin payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugindata: Option<PluginData>,
    /// Session description sent with a plugin event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsep: Option<Jsep>,
    /// Error details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// `hangup` reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Any further fields (`media`/`slowlink`/`trickle` notifications, `server_info`, Admin API replies).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

impl Outgoing {
    /// A bare message of the given kind.
    pub fn kind(janus: &'static str) -> Self {
        Outgoing { janus, ..Default::default() }
    }

    /// A reply to a request.
    pub fn reply(janus: &'static str, session: Option<SessionId>, transaction: &Transaction) -> Self {
        Outgoing { janus, session_id: session, transaction: Some(transaction.clone()), ..Default::default() }
    }

    /// `success` with the session and transaction.
    pub fn success(session: Option<SessionId>, transaction: &Transaction) -> Self {
        Outgoing::reply("success", session, transaction)
    }

    /// `ack` with the session and transaction.
    pub fn ack(session: Option<SessionId>, transaction: &Transaction) -> Self {
        Outgoing::reply("ack", session, transaction)
    }

    /// `error`; the transaction is omitted when the request had none.
    pub fn error(session: Option<SessionId>, transaction: Option<&Transaction>, err: &ApiError) -> Self {
        Outgoing {
            janus: "error",
            session_id: session,
            transaction: transaction.cloned(),
            error: Some(ErrorBody { code: err.code(), reason: err.reason.clone() }),
            ..Default::default()
        }
    }

    /// A notification about a handle (`webrtcup`, `hangup`, `detached`, `media`, ...).
    pub fn notification(janus: &'static str, session: SessionId, sender: HandleId) -> Self {
        Outgoing { janus, session_id: Some(session), sender: Some(sender), ..Default::default() }
    }

    /// Adds one extra field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.get_or_insert_with(Map::new).insert(key.to_owned(), value.into());
        self
    }

    /// Adds every field of `fields`.
    pub fn with_all(mut self, fields: Map<String, Value>) -> Self {
        let extra = self.extra.get_or_insert_with(Map::new);
        for (k, v) in fields {
            extra.insert(k, v);
        }
        self
    }

    /// Serializes to compact JSON text.
    pub fn to_json(&self) -> String {
        // unwrap-free: every field is a plain serializable value; a failure here would be our bug,
        // so fall back to a generic error rather than panicking.
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"janus":"error","error":{"code":490,"reason":"Unknown error"}}"#.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_reference() {
        let t = Transaction::new("t5");
        let e = ApiError::new(super::super::ErrorCode::SessionConflict, "Session ID already in use");
        assert_eq!(
            Outgoing::error(Some(SessionId(12345)), Some(&t), &e).to_json(),
            r#"{"janus":"error","session_id":12345,"transaction":"t5","error":{"code":468,"reason":"Session ID already in use"}}"#
        );
        let mut ok = Outgoing::success(None, &Transaction::new("t4"));
        ok.data = Some(IdData { id: 12345 });
        assert_eq!(ok.to_json(), r#"{"janus":"success","transaction":"t4","data":{"id":12345}}"#);
        let m = Outgoing::notification("media", SessionId(1), HandleId(2))
            .with("mid", "0")
            .with("type", "audio")
            .with("receiving", true);
        assert_eq!(
            m.to_json(),
            r#"{"janus":"media","session_id":1,"sender":2,"mid":"0","type":"audio","receiving":true}"#
        );
    }
}
