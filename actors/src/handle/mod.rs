//! The `Handle` actor: one per attached plugin handle. It owns the plugin's per-handle session
//! (and, with media, its PeerConnection) and is the only caller of that plugin session, so plugin
//! calls for one handle are serialized without locks. Every plugin call is inside the panic
//! boundary; after a panic the plugin session is never called again and the handle ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix::WeakAddr;
use serde_json::{json, Value};
use tracing::Span;

use crate::api::request::{MessageRequest, TrickleCandidate, TrickleRequest};
use crate::api::{ApiError, ErrorCode, HandleId, Jsep, Outgoing, PluginData, SessionId, Transaction};
use crate::events::EventType;
use crate::plugin::boundary::guard;
use crate::plugin::{PluginMessage, PluginReply, PluginSession, SharedPlugin};
use crate::session::{HandleEnded, Notify, Session};
use crate::state::ServerState;

/// A request for a handle, forwarded by its session.
#[derive(Debug)]
pub enum HandleRequest {
    /// `message` (parse errors are reported only once the handle is known to exist, as Janus
    /// resolves the handle before validating the request).
    Message(Transaction, Result<MessageRequest, ApiError>),
    /// `trickle`.
    Trickle(Result<TrickleRequest, ApiError>),
    /// Only check that the handle exists (handle-level keepalive, claim, unknown requests).
    Exists,
    /// `hangup`.
    Hangup,
    /// `detach` (Janus API or Admin `detach_handle`).
    Detach,
}

/// How a handle answered.
#[derive(Debug, PartialEq)]
pub enum HandleOutcome {
    /// Sync plugin reply (a JSON object) from the plugin with this package.
    Sync(&'static str, Value),
    /// Async: `ack` with an optional hint.
    Async(Option<String>),
    /// Done (trickle, hangup, detach).
    Done,
}

/// Session -> handle request.
#[derive(Message)]
#[rtype(result = "Result<HandleOutcome, ApiError>")]
pub struct ForHandle(pub HandleRequest);

/// Session -> handle: the session is going away; release everything, send nothing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DestroyHandle;

/// Admin `handle_info` for this handle.
#[derive(Message)]
#[rtype(result = "Value")]
pub struct QueryHandle {
    /// Stop after `plugin_specific`.
    pub plugin_only: bool,
}

/// Plugin -> handle callbacks (from [`crate::plugin::PluginCtx`]).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum FromPlugin {
    /// `push_event`.
    Event {
        /// Transaction being answered, if any.
        transaction: Option<Transaction>,
        /// Plugin data.
        data: Value,
        /// Session description (boxed: SDPs are large and rare next to plain events).
        jsep: Option<Box<Jsep>>,
    },
    /// `close_pc`.
    ClosePc,
    /// `end_session`.
    EndSession,
}

/// The handle actor.
pub struct Handle {
    id: HandleId,
    session_id: SessionId,
    /// `None` once the session is going away (then nothing is reported up).
    session: Option<WeakAddr<Session>>,
    plugin: SharedPlugin,
    plugin_session: Option<Box<dyn PluginSession>>,
    opaque_id: Option<Arc<str>>,
    token: Option<String>,
    created: Instant,
    /// Candidates received before any PeerConnection exists (bounded).
    queued_candidates: Vec<TrickleCandidate>,
    state: Arc<ServerState>,
    span: Span,
}

/// What a new handle needs.
pub struct HandleParts {
    /// Its id.
    pub id: HandleId,
    /// Its session id.
    pub session_id: SessionId,
    /// Its session.
    pub session: WeakAddr<Session>,
    /// Its plugin.
    pub plugin: SharedPlugin,
    /// The plugin's state for it.
    pub plugin_session: Box<dyn PluginSession>,
    /// `opaque_id`.
    pub opaque_id: Option<Arc<str>>,
    /// The token used at attach.
    pub token: Option<String>,
    /// Shared state.
    pub state: Arc<ServerState>,
}

impl Handle {
    /// A handle from its parts.
    pub fn new(p: HandleParts) -> Self {
        let span = tracing::info_span!("handle", handle_id = p.id.0, plugin = p.plugin.descriptor().package);
        p.state.counters.handles.fetch_add(1, Ordering::Relaxed);
        Handle {
            id: p.id,
            session_id: p.session_id,
            session: Some(p.session),
            plugin: p.plugin,
            plugin_session: Some(p.plugin_session),
            opaque_id: p.opaque_id,
            token: p.token,
            created: Instant::now(),
            queued_candidates: Vec::new(),
            state: p.state,
            span,
        }
    }

    fn package(&self) -> &'static str {
        self.plugin.descriptor().package
    }

    fn opaque_for_api(&self) -> Option<Arc<str>> {
        if self.state.settings.general.opaqueid_in_api {
            self.opaque_id.clone()
        } else {
            None
        }
    }

    fn notify(&self, msg: Outgoing) {
        if let Some(session) = self.session.as_ref().and_then(WeakAddr::upgrade) {
            if session.try_send(Notify(msg)).is_err() {
                self.state.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Ends this handle: the plugin session is destroyed (unless it panicked), the session is told
    /// (and sends `detached` when `detached` is set), the actor stops.
    fn end(&mut self, ctx: &mut Context<Self>, detached: bool) {
        if let Some(mut ps) = self.plugin_session.take() {
            if let Err(p) = guard(move || ps.destroy()) {
                self.state.counters.plugin_panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(parent: &self.span, panic = %p.0, "plugin panicked in destroy_session");
            }
        }
        if let Some(session) = self.session.as_ref().and_then(WeakAddr::upgrade) {
            session.do_send(HandleEnded { id: self.id, detached, opaque_id: self.opaque_for_api() });
        }
        self.state.events.publish(
            EventType::Handle,
            None,
            Some(self.session_id),
            Some(self.id),
            self.opaque_id.clone(),
            json!({"name": "detached", "plugin": self.package(), "opaque_id": self.opaque_id.as_deref()}),
        );
        ctx.stop();
    }

    /// A plugin call panicked: count, log, drop the plugin state without calling it again, end.
    fn crashed(&mut self, ctx: &mut Context<Self>, what: &str, panic: String) -> ApiError {
        self.state.counters.plugin_panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!(parent: &self.span, call = what, panic = %panic, "plugin panicked; ending the handle");
        if let Some(ps) = self.plugin_session.take() {
            // Dropping may run plugin code too.
            let _ = guard(move || drop(ps));
        }
        self.end(ctx, true);
        ApiError::unknown(format!("Plugin error: the plugin crashed handling '{what}' ({panic})"))
    }

    fn message(
        &mut self,
        ctx: &mut Context<Self>,
        transaction: Transaction,
        req: MessageRequest,
    ) -> Result<HandleOutcome, ApiError> {
        let Some(ps) = self.plugin_session.as_mut() else {
            return Err(ApiError::new(ErrorCode::PluginMessage, "No plugin to handle this message"));
        };
        let msg = PluginMessage { transaction, body: req.body, jsep: req.jsep };
        match guard(|| ps.handle_message(msg)) {
            Ok(PluginReply::Sync(v)) if v.is_object() => Ok(HandleOutcome::Sync(self.package(), v)),
            Ok(PluginReply::Sync(Value::Null)) => Err(ApiError::new(
                ErrorCode::PluginMessage,
                "Plugin didn't provide any content for this synchronous response",
            )),
            Ok(PluginReply::Sync(_)) => {
                Err(ApiError::new(ErrorCode::PluginMessage, "Plugin returned an invalid JSON response"))
            }
            Ok(PluginReply::Async { hint }) => Ok(HandleOutcome::Async(hint)),
            Ok(PluginReply::Error(text)) => Err(ApiError::new(ErrorCode::PluginMessage, text)),
            Err(p) => Err(self.crashed(ctx, "message", p.0)),
        }
    }

    fn trickle(&mut self, req: TrickleRequest) -> Result<HandleOutcome, ApiError> {
        // Without a PeerConnection the candidates wait (Janus compat 1.4), bounded.
        let room = self.state.settings.limits.max_queued_candidates.saturating_sub(self.queued_candidates.len());
        if req.candidates.len() > room {
            tracing::warn!(parent: &self.span, "too many queued trickle candidates; dropping the excess");
        }
        self.queued_candidates.extend(req.candidates.into_iter().take(room));
        Ok(HandleOutcome::Done)
    }
}

impl Actor for Handle {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.state.counters.handles.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Handler<ForHandle> for Handle {
    type Result = Result<HandleOutcome, ApiError>;
    fn handle(&mut self, msg: ForHandle, ctx: &mut Context<Self>) -> Self::Result {
        let _enter = self.span.clone().entered();
        match msg.0 {
            HandleRequest::Message(t, req) => self.message(ctx, t, req?),
            HandleRequest::Trickle(req) => self.trickle(req?),
            HandleRequest::Exists => Ok(HandleOutcome::Done),
            HandleRequest::Hangup => {
                // No PeerConnection yet: nothing to tear down (Janus still answers success).
                self.queued_candidates.clear();
                Ok(HandleOutcome::Done)
            }
            HandleRequest::Detach => {
                if self.plugin_session.is_none() {
                    return Err(ApiError::new(ErrorCode::PluginDetach, "No plugin to detach from"));
                }
                self.end(ctx, true);
                Ok(HandleOutcome::Done)
            }
        }
    }
}

impl Handler<DestroyHandle> for Handle {
    type Result = ();
    fn handle(&mut self, _: DestroyHandle, ctx: &mut Context<Self>) {
        // The session is going away: no `detached` (Janus compat 1.6).
        self.session = None;
        self.end(ctx, false);
    }
}

impl Handler<FromPlugin> for Handle {
    type Result = ();
    fn handle(&mut self, msg: FromPlugin, ctx: &mut Context<Self>) {
        match msg {
            FromPlugin::Event { transaction, data, jsep } => {
                let event = Outgoing {
                    janus: "event",
                    session_id: Some(self.session_id),
                    transaction,
                    sender: Some(self.id),
                    opaque_id: self.opaque_for_api(),
                    plugindata: Some(PluginData { plugin: self.package(), data }),
                    jsep: jsep.map(|j| *j),
                    ..Default::default()
                };
                self.notify(event);
            }
            FromPlugin::ClosePc => {
                // No PeerConnection in the control plane alone; nothing to close.
            }
            FromPlugin::EndSession => {
                if self.plugin_session.is_some() {
                    self.end(ctx, true);
                }
            }
        }
    }
}

impl Handler<QueryHandle> for Handle {
    type Result = MessageResult<QueryHandle>;
    fn handle(&mut self, msg: QueryHandle, ctx: &mut Context<Self>) -> Self::Result {
        let plugin_specific = match self.plugin_session.as_ref().map(|ps| guard(|| ps.query())) {
            Some(Ok(v)) => v,
            Some(Err(p)) => {
                let _ = self.crashed(ctx, "query_session", p.0);
                Value::Null
            }
            None => Value::Null,
        };
        let mut info = json!({
            "handle_id": self.id.0,
            "opaque_id": self.opaque_id.as_deref(),
            "token": self.token.as_deref(),
            "loop-running": true,
            "created": self.state.monotonic_us(self.created),
            "current_time": self.state.monotonic_us(Instant::now()),
            "plugin": self.package(),
            "plugin_specific": plugin_specific,
        });
        if let Some(obj) = info.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
            if !msg.plugin_only {
                obj.insert(
                    "flags".into(),
                    json!({
                        "got-offer": false, "got-answer": false, "negotiated": false,
                        "processing-offer": false, "starting": false, "ice-restart": false,
                        "ready": false, "stopped": false, "alert": false,
                        "trickle": !self.queued_candidates.is_empty(), "all-trickles": false,
                        "resend-trickles": false, "trickle-synced": false, "data-channels": false,
                        "has-audio": false, "has-video": false, "new-datachan-sdp": false,
                        "rfc4588-rtx": false, "cleaning": false, "e2ee": false
                    }),
                );
                obj.insert("sdps".into(), json!({}));
                obj.insert("pending-trickles".into(), json!(self.queued_candidates.len()));
                obj.insert("queued-packets".into(), json!(0));
            }
        }
        MessageResult(info)
    }
}
