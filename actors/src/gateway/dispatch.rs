//! The Janus API request pipeline: validation order of reference 1.2, then dispatch to the
//! session directory, the session and its handles.

use std::sync::atomic::Ordering;

use serde_json::Value;
use tokio::sync::oneshot;

use super::Core;
use crate::api::message::IdData;
use crate::api::request::{AttachRequest, MessageRequest, TrickleRequest};
use crate::api::{
    ApiError, ConnectionId, Envelope, ErrorCode, HandleId, Outgoing, PathIds, PluginData, SessionId, Transaction,
};
use crate::auth::{CheckApiAccess, CheckPluginAccess};
use crate::handle::{HandleOutcome, HandleRequest};
use crate::session::{Attach, Poll, PollOutcome, ToHandle};
use crate::transport::Origin;

/// Result of a long poll.
#[derive(Debug)]
pub enum PollResult {
    /// Bad credentials (HTTP answers 403 with an empty body).
    Unauthorized,
    /// No queue for this session on a polling transport (HTTP answers 404).
    NotFound,
    /// Events right away.
    Ready(Vec<String>),
    /// Wait for events (the transport applies its keepalive timeout).
    Wait(oneshot::Receiver<Vec<String>>),
}

/// A failed request: the error plus what the reply can carry.
struct Failure {
    session: Option<SessionId>,
    error: ApiError,
}

impl Failure {
    fn at(session: Option<SessionId>) -> impl FnOnce(ApiError) -> Failure {
        move |error| Failure { session, error }
    }
}

impl Core {
    /// Handles one Janus API request from raw bytes; returns the direct reply.
    pub async fn handle(&self, origin: &Origin, payload: &[u8], path: PathIds) -> Outgoing {
        match Envelope::parse(payload, path) {
            Ok(env) => self.handle_envelope(origin, env).await,
            Err(e) => Outgoing::error(e.context.session, e.context.transaction.as_ref(), &e.error),
        }
    }

    /// Handles one already-decoded request (WebSocket frames holding several objects).
    pub async fn handle_value(&self, origin: &Origin, value: Value) -> Outgoing {
        match Envelope::from_value(value, PathIds::default()) {
            Ok(env) => self.handle_envelope(origin, env).await,
            Err(e) => Outgoing::error(e.context.session, e.context.transaction.as_ref(), &e.error),
        }
    }

    async fn handle_envelope(&self, origin: &Origin, env: Envelope) -> Outgoing {
        self.inner.state.counters.requests.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let transaction = env.transaction.clone();
        let name = env.name.clone();
        let reply = match self.dispatch(origin, env).await {
            Ok(reply) => reply,
            Err(f) => Outgoing::error(f.session, Some(&transaction), &f.error),
        };
        let code = reply.error.as_ref().map(|e| e.code);
        crate::metrics::record(crate::metrics::ApiKind::Janus, &name, code, started.elapsed());
        reply
    }

    /// A `server_info` reply.
    pub fn info_reply(&self, transaction: &Transaction) -> Outgoing {
        Outgoing::reply("server_info", None, transaction).with_all(self.server_info_fields())
    }

    /// A transport connection closed: its sessions are destroyed (or orphaned for reclaim).
    pub fn transport_gone(&self, connection: ConnectionId) {
        self.inner.directory.transport_gone(connection);
    }

    /// Whether Janus API requests need credentials.
    pub fn api_auth_needed(&self) -> bool {
        self.inner.auth_config.api_auth_needed()
    }

    async fn authorized(&self, apisecret: Option<String>, token: Option<String>) -> bool {
        if !self.inner.auth_config.api_auth_needed() {
            return true;
        }
        if self.inner.auth_config.api_secret_ok(apisecret.as_deref()) {
            return true;
        }
        self.inner.auth.send(CheckApiAccess { apisecret: None, token }).await.unwrap_or(false)
    }

    /// HTTP long poll: credentials, then the session's queue.
    pub async fn poll(
        &self,
        session: SessionId,
        maxev: usize,
        apisecret: Option<String>,
        token: Option<String>,
    ) -> PollResult {
        if !self.authorized(apisecret, token).await {
            return PollResult::Unauthorized;
        }
        // The lookup refreshes activity: a poll is an internal keepalive (Janus compat 1.7).
        let Some(addr) = self.inner.directory.lookup(session) else { return PollResult::NotFound };
        match addr.send(Poll { maxev }).await {
            Ok(Some(PollOutcome::Ready(events))) => PollResult::Ready(events),
            Ok(Some(PollOutcome::Wait(rx))) => PollResult::Wait(rx),
            Ok(None) | Err(_) => PollResult::NotFound,
        }
    }

    /// HTTP `GET /janus/S/H`: an internal keepalive.
    pub async fn touch(&self, session: SessionId) -> bool {
        self.inner.directory.lookup(session).is_some()
    }

    async fn dispatch(&self, origin: &Origin, mut env: Envelope) -> Result<Outgoing, Failure> {
        let t = env.transaction.clone();
        let (session, handle) = match (env.session, env.handle) {
            (None, None) => return self.root(origin, env).await,
            (None, Some(_)) => {
                return Err(Failure { session: None, error: ApiError::plain(ErrorCode::SessionNotFound) })
            }
            (Some(s), h) => (s, h),
        };
        let fail = |e| Failure { session: Some(session), error: e };
        if !self.authorized(env.apisecret.take(), env.token.clone()).await {
            return Err(fail(ApiError::unauthorized()));
        }
        // The directory resolves the session (and refreshes its activity) on this thread; the
        // request then goes to the session, usually on this very thread too.
        let directory = &self.inner.directory;
        let to_handle = |handle: HandleId, request: HandleRequest| async move {
            let addr = directory.lookup(session).ok_or_else(|| ApiError::no_session(session))?;
            match addr.send(ToHandle { handle, request }).await {
                Ok(r) => r,
                // The session ended between lookup and delivery.
                Err(_) => Err(ApiError::no_session(session)),
            }
        };
        let lookup = || async { directory.lookup(session).ok_or_else(|| fail(ApiError::no_session(session))) };
        let name = env.name.as_str();
        // Reasons quote the name as sent (Janus compat: it prints the request string verbatim).
        let raw = env.raw_name.clone();
        match (name, handle) {
            ("keepalive", None) => {
                lookup().await?;
                Ok(Outgoing::ack(Some(session), &t))
            }
            ("claim", None) => {
                directory.claim(session, origin).map_err(fail)?;
                Ok(Outgoing::success(Some(session), &t))
            }
            ("attach", None) => {
                let addr = lookup().await?;
                let req = AttachRequest::parse(&env.body).map_err(fail)?;
                let plugin = self.inner.plugin_map.get(req.plugin.as_str()).cloned().ok_or_else(|| {
                    fail(ApiError::new(ErrorCode::PluginNotFound, format!("No such plugin '{}'", req.plugin)))
                })?;
                if let (false, Some(token)) =
                    (matches!(self.inner.auth_config.tokens, crate::auth::TokenMode::Off), &env.token)
                {
                    let ok = self
                        .inner
                        .auth
                        .send(CheckPluginAccess { token: token.clone(), plugin: req.plugin.clone() })
                        .await
                        .unwrap_or(false);
                    if !ok {
                        return Err(fail(ApiError::new(
                            ErrorCode::UnauthorizedPlugin,
                            format!("Provided token can't access plugin '{}'", req.plugin),
                        )));
                    }
                }
                let id = addr
                    .send(Attach { plugin, opaque_id: req.opaque_id, token: env.token.clone() })
                    .await
                    .map_err(|_| fail(ApiError::no_session(session)))?
                    .map_err(fail)?;
                let mut reply = Outgoing::success(Some(session), &t);
                reply.data = Some(IdData { id: id.0 });
                Ok(reply)
            }
            ("destroy", None) => {
                directory.destroy(session).map_err(fail)?;
                Ok(Outgoing::success(Some(session), &t))
            }
            // Janus resolves the session (and the handle) before looking at the name.
            ("attach" | "destroy", Some(h)) => {
                to_handle(h, HandleRequest::Exists).await.map_err(fail)?;
                Err(fail(ApiError::unhandled_at_path(&raw)))
            }
            ("detach" | "hangup" | "message" | "trickle", None) => {
                lookup().await?;
                Err(fail(ApiError::unhandled_at_path(&raw)))
            }
            (_, Some(h)) => {
                let request = match name {
                    "detach" => HandleRequest::Detach,
                    "hangup" => HandleRequest::Hangup(crate::media::HangupReason::JanusApi),
                    "message" => HandleRequest::Message(t.clone(), MessageRequest::parse(&mut env.body)),
                    "trickle" => HandleRequest::Trickle(TrickleRequest::parse(&env.body)),
                    // keepalive/claim at handle level and unknown names: the handle must exist first.
                    _ => HandleRequest::Exists,
                };
                let outcome = to_handle(h, request).await.map_err(fail)?;
                match (name, outcome) {
                    ("keepalive", _) => Ok(Outgoing::ack(Some(session), &t)),
                    ("claim", _) => {
                        directory.claim(session, origin).map_err(fail)?;
                        Ok(Outgoing::success(Some(session), &t))
                    }
                    ("detach" | "hangup", _) => Ok(Outgoing::success(Some(session), &t)),
                    ("trickle", _) => Ok(Outgoing::ack(Some(session), &t)),
                    ("message", HandleOutcome::Sync(plugin, data)) => {
                        let mut reply = Outgoing::success(Some(session), &t);
                        reply.sender = Some(h);
                        reply.plugindata = Some(PluginData { plugin, data });
                        Ok(reply)
                    }
                    ("message", HandleOutcome::Async(hint)) => {
                        let mut reply = Outgoing::ack(Some(session), &t);
                        reply.hint = hint;
                        Ok(reply)
                    }
                    ("message", HandleOutcome::Done) => Ok(Outgoing::ack(Some(session), &t)),
                    (_, _) => Err(fail(ApiError::unknown_request(&raw))),
                }
            }
            (_, None) => {
                lookup().await?;
                Err(fail(ApiError::unknown_request(&raw)))
            }
        }
    }

    async fn root(&self, origin: &Origin, env: Envelope) -> Result<Outgoing, Failure> {
        let t = &env.transaction;
        match env.name.as_str() {
            "info" => Ok(self.info_reply(t)),
            "ping" => Ok(Outgoing::reply("pong", None, t)),
            "create" => {
                if !self.inner.state.accepting() {
                    return Err(Failure { session: None, error: ApiError::plain(ErrorCode::NotAcceptingSessions) });
                }
                if !self.authorized(env.apisecret.clone(), env.token.clone()).await {
                    return Err(Failure { session: None, error: ApiError::unauthorized() });
                }
                // Validated as a non-negative integer by the envelope parser.
                let requested = env.body.get("id").and_then(Value::as_u64).filter(|id| *id > 0).map(SessionId);
                let id = self.inner.directory.create(requested, origin).map_err(Failure::at(requested))?;
                let mut reply = Outgoing::success(None, t);
                reply.data = Some(IdData { id: id.0 });
                Ok(reply)
            }
            _ => Err(Failure { session: None, error: ApiError::unhandled_at_path(&env.raw_name) }),
        }
    }
}
