//! Janus API errors: the `apierror.h` code table and the templated reasons.
//!
//! One macro table gives every code its number, symbol and default reason, exactly as the reference
//! (section 2.1) lists them. [`ApiError`] pairs a code with the reason actually sent, built by the
//! constructors below so that the wording is identical wherever an error is raised.

use std::fmt;

use super::ids::{HandleId, SessionId};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $num:literal, $symbol:literal, $reason:literal;)*) => {
        /// A core Janus API error code (`src/apierror.h`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The numeric code sent on the wire.
            pub fn code(self) -> u16 {
                match self { $(ErrorCode::$name => $num,)* }
            }

            /// The C symbol in `apierror.h`.
            pub fn symbol(self) -> &'static str {
                match self { $(ErrorCode::$name => $symbol,)* }
            }

            /// The default reason string of `janus_get_api_error`.
            pub fn default_reason(self) -> &'static str {
                match self { $(ErrorCode::$name => $reason,)* }
            }
        }
    };
}

error_codes! {
    /// 403: bad or missing apisecret, token or admin_secret.
    Unauthorized = 403, "JANUS_ERROR_UNAUTHORIZED", "Unauthorized request (wrong or missing secret/token)";
    /// 405: token not allowed to access the plugin.
    UnauthorizedPlugin = 405, "JANUS_ERROR_UNAUTHORIZED_PLUGIN", "Unauthorized access to plugin (token is not allowed to)";
    /// 450: transport specific failure (e.g. unsupported HTTP method).
    TransportSpecific = 450, "JANUS_ERROR_TRANSPORT_SPECIFIC", "Transport specific error";
    /// 452: legacy.
    MissingRequest = 452, "JANUS_ERROR_MISSING_REQUEST", "Missing request";
    /// 453: unknown request name.
    UnknownRequest = 453, "JANUS_ERROR_UNKNOWN_REQUEST", "Unknown request";
    /// 454: payload is not JSON.
    InvalidJson = 454, "JANUS_ERROR_INVALID_JSON", "Invalid JSON";
    /// 455: payload is not a JSON object.
    InvalidJsonObject = 455, "JANUS_ERROR_INVALID_JSON_OBJECT", "Invalid JSON Object";
    /// 456: a mandatory field is missing.
    MissingMandatoryElement = 456, "JANUS_ERROR_MISSING_MANDATORY_ELEMENT", "Missing mandatory element";
    /// 457: request not allowed at this path.
    InvalidRequestPath = 457, "JANUS_ERROR_INVALID_REQUEST_PATH", "Invalid path for this request";
    /// 458: no such session.
    SessionNotFound = 458, "JANUS_ERROR_SESSION_NOT_FOUND", "Session not found";
    /// 459: no such handle.
    HandleNotFound = 459, "JANUS_ERROR_HANDLE_NOT_FOUND", "Handle not found";
    /// 460: no such plugin (or transport, event handler, logger in the Admin API).
    PluginNotFound = 460, "JANUS_ERROR_PLUGIN_NOT_FOUND", "Plugin not found";
    /// 461: the plugin refused the attach.
    PluginAttach = 461, "JANUS_ERROR_PLUGIN_ATTACH", "Error attaching plugin";
    /// 462: the plugin failed to handle a message.
    PluginMessage = 462, "JANUS_ERROR_PLUGIN_MESSAGE", "Error sending message to plugin";
    /// 463: detach or hangup without a plugin.
    PluginDetach = 463, "JANUS_ERROR_PLUGIN_DETACH", "Error detaching from plugin";
    /// 464: JSEP type is neither offer nor answer.
    JsepUnknownType = 464, "JANUS_ERROR_JSEP_UNKNOWN_TYPE", "Unsupported JSEP type";
    /// 465: the SDP could not be parsed or processed.
    JsepInvalidSdp = 465, "JANUS_ERROR_JSEP_INVALID_SDP", "Invalid SDP";
    /// 466: trickle without a PeerConnection (sic "TRICKE" in Janus).
    TrickleInvalidStream = 466, "JANUS_ERROR_TRICKE_INVALID_STREAM", "Invalid stream";
    /// 467: a field has the wrong JSON type.
    InvalidElementType = 467, "JANUS_ERROR_INVALID_ELEMENT_TYPE", "Invalid element type";
    /// 468: `create` with an id already in use.
    SessionConflict = 468, "JANUS_ERROR_SESSION_CONFLICT", "Session ID already in use";
    /// 469: answer without an offer, or renegotiation failure.
    UnexpectedAnswer = 469, "JANUS_ERROR_UNEXPECTED_ANSWER", "Unexpected ANSWER (no OFFER)";
    /// 470: unknown stored token.
    TokenNotFound = 470, "JANUS_ERROR_TOKEN_NOT_FOUND", "Token not found";
    /// 471: wrong WebRTC state.
    WebrtcState = 471, "JANUS_ERROR_WEBRTC_STATE", "Wrong WebRTC state";
    /// 472: the server is draining.
    NotAcceptingSessions = 472, "JANUS_ERROR_NOT_ACCEPTING_SESSIONS", "Currently not accepting new sessions";
    /// 490: anything else.
    Unknown = 490, "JANUS_ERROR_UNKNOWN", "Unknown error";
}

/// A Janus API error: a code and the reason sent with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} {reason}", code.code())]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// The reason text sent to the client.
    pub reason: String,
}

impl ApiError {
    /// An error with an explicit reason.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        ApiError { code, reason: reason.into() }
    }

    /// An error with the code's default reason.
    pub fn plain(code: ErrorCode) -> Self {
        ApiError::new(code, code.default_reason())
    }

    /// 456 `Missing mandatory element (<field>)`.
    pub fn missing(field: &str) -> Self {
        ApiError::new(ErrorCode::MissingMandatoryElement, format!("Missing mandatory element ({field})"))
    }

    /// 467 `Invalid element type (<field> should be <kind>)`.
    pub fn invalid_type(field: &str, kind: impl fmt::Display) -> Self {
        ApiError::new(ErrorCode::InvalidElementType, format!("Invalid element type ({field} should be {kind})"))
    }

    /// 457 `Unhandled request '<x>' at this path`.
    pub fn unhandled_at_path(request: &str) -> Self {
        ApiError::new(ErrorCode::InvalidRequestPath, format!("Unhandled request '{request}' at this path"))
    }

    /// 453 `Unknown request '<x>'`.
    pub fn unknown_request(request: &str) -> Self {
        ApiError::new(ErrorCode::UnknownRequest, format!("Unknown request '{request}'"))
    }

    /// 458 `No such session <S>`.
    pub fn no_session(session: SessionId) -> Self {
        ApiError::new(ErrorCode::SessionNotFound, format!("No such session {session}"))
    }

    /// 459 `No such handle <H> in session <S>`.
    pub fn no_handle(session: SessionId, handle: HandleId) -> Self {
        ApiError::new(ErrorCode::HandleNotFound, format!("No such handle {handle} in session {session}"))
    }

    /// 403 with the default reason.
    pub fn unauthorized() -> Self {
        ApiError::plain(ErrorCode::Unauthorized)
    }

    /// 490 with a reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Unknown, reason)
    }

    /// The numeric code.
    pub fn code(&self) -> u16 {
        self.code.code()
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::plain(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_reference() {
        let expect: &[(u16, &str, &str)] = &[
            (403, "JANUS_ERROR_UNAUTHORIZED", "Unauthorized request (wrong or missing secret/token)"),
            (405, "JANUS_ERROR_UNAUTHORIZED_PLUGIN", "Unauthorized access to plugin (token is not allowed to)"),
            (450, "JANUS_ERROR_TRANSPORT_SPECIFIC", "Transport specific error"),
            (452, "JANUS_ERROR_MISSING_REQUEST", "Missing request"),
            (453, "JANUS_ERROR_UNKNOWN_REQUEST", "Unknown request"),
            (454, "JANUS_ERROR_INVALID_JSON", "Invalid JSON"),
            (455, "JANUS_ERROR_INVALID_JSON_OBJECT", "Invalid JSON Object"),
            (456, "JANUS_ERROR_MISSING_MANDATORY_ELEMENT", "Missing mandatory element"),
            (457, "JANUS_ERROR_INVALID_REQUEST_PATH", "Invalid path for this request"),
            (458, "JANUS_ERROR_SESSION_NOT_FOUND", "Session not found"),
            (459, "JANUS_ERROR_HANDLE_NOT_FOUND", "Handle not found"),
            (460, "JANUS_ERROR_PLUGIN_NOT_FOUND", "Plugin not found"),
            (461, "JANUS_ERROR_PLUGIN_ATTACH", "Error attaching plugin"),
            (462, "JANUS_ERROR_PLUGIN_MESSAGE", "Error sending message to plugin"),
            (463, "JANUS_ERROR_PLUGIN_DETACH", "Error detaching from plugin"),
            (464, "JANUS_ERROR_JSEP_UNKNOWN_TYPE", "Unsupported JSEP type"),
            (465, "JANUS_ERROR_JSEP_INVALID_SDP", "Invalid SDP"),
            (466, "JANUS_ERROR_TRICKE_INVALID_STREAM", "Invalid stream"),
            (467, "JANUS_ERROR_INVALID_ELEMENT_TYPE", "Invalid element type"),
            (468, "JANUS_ERROR_SESSION_CONFLICT", "Session ID already in use"),
            (469, "JANUS_ERROR_UNEXPECTED_ANSWER", "Unexpected ANSWER (no OFFER)"),
            (470, "JANUS_ERROR_TOKEN_NOT_FOUND", "Token not found"),
            (471, "JANUS_ERROR_WEBRTC_STATE", "Wrong WebRTC state"),
            (472, "JANUS_ERROR_NOT_ACCEPTING_SESSIONS", "Currently not accepting new sessions"),
            (490, "JANUS_ERROR_UNKNOWN", "Unknown error"),
        ];
        assert_eq!(ErrorCode::ALL.len(), expect.len());
        for (code, (num, sym, reason)) in ErrorCode::ALL.iter().zip(expect) {
            assert_eq!((code.code(), code.symbol(), code.default_reason()), (*num, *sym, *reason));
        }
    }

    #[test]
    fn templated_reasons() {
        assert_eq!(ApiError::no_session(SessionId(999)).reason, "No such session 999");
        assert_eq!(ApiError::no_handle(SessionId(1), HandleId(2)).reason, "No such handle 2 in session 1");
        assert_eq!(ApiError::missing("body").reason, "Missing mandatory element (body)");
        assert_eq!(
            ApiError::invalid_type("plugin", "a string").reason,
            "Invalid element type (plugin should be a string)"
        );
        assert_eq!(ApiError::unhandled_at_path("attach").reason, "Unhandled request 'attach' at this path");
    }
}
