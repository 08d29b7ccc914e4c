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
use crate::api::{ApiError, ErrorCode, HandleId, Jsep, Outgoing, PluginData, SdpType, SessionId, Transaction};
use crate::events::EventType;
use crate::media::sdp::anonymize;
use crate::media::{CaptureError, CaptureFormat, CaptureSpec, HangupReason, MediaPort, PeerEvent};
use crate::peer::{
    AddCandidates, ApplyRemote, ClosePeer, CreateAnswer, CreateOffer, DescribePeer, PeerConnection, PeerNotice,
};
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
    /// `hangup` (Janus API) or Admin `hangup_webrtc`.
    Hangup(HangupReason),
    /// `detach` (Janus API or Admin `detach_handle`).
    Detach,
    /// Admin `start_pcap` / `start_text2pcap` (the format is known even when parsing failed:
    /// Janus reports a bad field only once the handle is known to exist).
    StartCapture(CaptureFormat, Result<CaptureSpec, ApiError>),
    /// Admin `stop_pcap` / `stop_text2pcap`: stops whichever dump runs.
    StopCapture,
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
    /// `push_event` with the answer to the client's offer.
    Answer {
        /// Transaction being answered, if any.
        transaction: Option<Transaction>,
        /// Plugin data.
        data: Value,
        /// How to answer.
        spec: crate::media::AnswerSpec,
    },
    /// `close_pc`.
    ClosePc,
    /// `end_session`.
    EndSession,
    /// `push_event` with a plugin-initiated offer.
    Offer {
        /// Transaction being answered, if any.
        transaction: Option<Transaction>,
        /// Plugin data.
        data: Value,
        /// What to offer.
        spec: crate::media::OfferSpec,
    },
}

/// A `message` answered now or once the plugin's future resolves.
enum MessageReply {
    Now(Result<HandleOutcome, ApiError>),
    Later(futures_util::future::BoxFuture<'static, Value>),
}

/// A synchronous plugin answer as the client gets it (Janus's checks on the JSON).
fn sync_outcome(package: &'static str, v: Value) -> Result<HandleOutcome, ApiError> {
    match v {
        Value::Object(_) => Ok(HandleOutcome::Sync(package, v)),
        Value::Null => Err(ApiError::new(
            ErrorCode::PluginMessage,
            "Plugin didn't provide any content for this synchronous response",
        )),
        _ => Err(ApiError::new(ErrorCode::PluginMessage, "Plugin returned an invalid JSON response")),
    }
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
    /// The plugin's view of this handle's media.
    port: MediaPort,
    /// The PeerConnection actor, while one exists.
    pc: Option<Addr<PeerConnection>>,
    /// Set once `webrtcup` was sent for the current PeerConnection.
    webrtc_up: bool,
    /// The client said its media is end-to-end encrypted (JSEP `e2ee`, Insertable Streams): our
    /// JSEPs to it say so too, until the PeerConnection is gone (Janus's `e2ee` handle flag).
    e2ee: bool,
    state: Arc<ServerState>,
    span: Span,
}

/// Handle -> itself: stop, once the reply being built has been sent.
#[derive(Message)]
#[rtype(result = "()")]
struct StopHandle;

impl Handler<StopHandle> for Handle {
    type Result = ();
    fn handle(&mut self, _: StopHandle, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Handle -> itself: send `hangup` after the plugin's own hangup events (mailbox order).
#[derive(Message)]
#[rtype(result = "()")]
struct SendHangup(HangupReason);

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
    /// The media port shared with the plugin session.
    pub port: MediaPort,
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
            port: p.port,
            pc: None,
            webrtc_up: false,
            e2ee: false,
            state: p.state,
            span,
        }
    }

    /// A plugin `event` for the client; an answered transaction leaves the router's table.
    fn plugin_event(&self, transaction: Option<Transaction>, data: Value) -> Outgoing {
        if let Some(t) = &transaction {
            self.state.requests.end(self.session_id, t);
        }
        Outgoing {
            janus: "event",
            session_id: Some(self.session_id),
            transaction,
            sender: Some(self.id),
            opaque_id: self.opaque_for_api(),
            plugindata: Some(PluginData { plugin: self.package(), data }),
            ..Default::default()
        }
    }

    fn notification(&self, janus: &'static str) -> Outgoing {
        let mut n = Outgoing::notification(janus, self.session_id, self.id);
        n.opaque_id = self.opaque_for_api();
        n
    }

    /// Calls the plugin session, ending the handle if it panics.
    fn call_plugin(&mut self, ctx: &mut Context<Self>, what: &str, f: impl FnOnce(&mut dyn PluginSession)) {
        let Some(ps) = self.plugin_session.as_mut() else { return };
        if let Err(p) = guard(|| f(ps.as_mut())) {
            let _ = self.crashed(ctx, what, p.0);
        }
    }

    /// The PeerConnection actor, started on first use.
    fn peer(&mut self, ctx: &mut Context<Self>) -> Result<Addr<PeerConnection>, ApiError> {
        if let Some(pc) = &self.pc {
            if pc.connected() {
                return Ok(pc.clone());
            }
        }
        let engine =
            self.state.media.clone().ok_or_else(|| {
                ApiError::new(ErrorCode::Unknown, "Error setting ICE locally (media engine unavailable)")
            })?;
        let pc = PeerConnection::new(engine, self.port.clone(), ctx.address().downgrade(), self.state.clone()).start();
        if !self.queued_candidates.is_empty() {
            let _ = pc.try_send(AddCandidates(std::mem::take(&mut self.queued_candidates)));
        }
        self.pc = Some(pc.clone());
        self.webrtc_up = false;
        Ok(pc)
    }

    /// Tears the PeerConnection down. With a reason the plugin is told and the client gets
    /// `hangup`; without one (detach, session end) nothing is sent (Janus compat 1.5).
    fn hangup(&mut self, ctx: &mut Context<Self>, reason: Option<HangupReason>) {
        let Some(pc) = self.pc.take() else { return };
        pc.do_send(ClosePeer);
        self.webrtc_up = false;
        self.e2ee = false;
        if let Some(reason) = reason {
            self.call_plugin(ctx, "hangup_media", |ps| ps.hangup_media());
            ctx.address().do_send(SendHangup(reason));
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
        self.hangup(ctx, None);
        self.port.abort_capture();
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
        // Stop after the current reply is out: replies are futures run after this handler, and a
        // stopped actor would drop them.
        ctx.notify(StopHandle);
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

    /// The reply to a `message`, once the plugin's answer is there.
    fn reply(&mut self, r: MessageReply) -> ResponseActFuture<Self, Result<HandleOutcome, ApiError>> {
        match r {
            MessageReply::Now(r) => Box::pin(async move { r }.into_actor(self)),
            MessageReply::Later(fut) => {
                let package = self.package();
                Box::pin(fut.into_actor(self).map(move |v, _, _| sync_outcome(package, v)))
            }
        }
    }

    fn message(&mut self, ctx: &mut Context<Self>, transaction: Transaction, req: MessageRequest) -> MessageReply {
        MessageReply::Now(match self.message_now(ctx, transaction, req) {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(later)) => return MessageReply::Later(later),
            Err(e) => Err(e),
        })
    }

    /// Calls the plugin: `Ok(Err(future))` when it answers later.
    #[allow(clippy::type_complexity)]
    fn message_now(
        &mut self,
        ctx: &mut Context<Self>,
        transaction: Transaction,
        req: MessageRequest,
    ) -> Result<Result<HandleOutcome, futures_util::future::BoxFuture<'static, Value>>, ApiError> {
        let Some(ps) = self.plugin_session.as_mut() else {
            return Err(ApiError::new(ErrorCode::PluginMessage, "No plugin to handle this message"));
        };
        let tx_for_router = transaction.clone();
        let msg = PluginMessage { transaction, body: req.body, jsep: req.jsep };
        match guard(|| ps.handle_message(msg)) {
            Ok(PluginReply::Sync(v)) => sync_outcome(self.package(), v).map(Ok),
            Ok(PluginReply::Later(fut)) => Ok(Err(fut)),
            Ok(PluginReply::Async { hint }) => {
                self.state.requests.begin(self.session_id, tx_for_router);
                Ok(Ok(HandleOutcome::Async(hint)))
            }
            Ok(PluginReply::Error(text)) => Err(ApiError::new(ErrorCode::PluginMessage, text)),
            Err(p) => Err(self.crashed(ctx, "message", p.0)),
        }
    }

    fn trickle(&mut self, req: TrickleRequest) -> Result<HandleOutcome, ApiError> {
        if let Some(pc) = &self.pc {
            if pc.try_send(AddCandidates(req.candidates)).is_err() {
                tracing::warn!(parent: &self.span, "PeerConnection busy: trickle candidates dropped");
            }
            return Ok(HandleOutcome::Done);
        }
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
        // A plugin's sink usually holds the plugin's context, which holds this port: left in
        // place, that cycle would keep both (and the handle's mailbox) alive for good. Every way
        // a handle ends (`end`, a crash, its session going) stops the actor, so this covers all.
        self.port.clear_sink();
        self.state.counters.handles.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Handler<ForHandle> for Handle {
    // Atomic: a request carrying JSEP waits for the PeerConnection to apply it before the next
    // request of this handle (e.g. a trickle) is looked at.
    type Result = AtomicResponse<Self, Result<HandleOutcome, ApiError>>;

    fn handle(&mut self, msg: ForHandle, ctx: &mut Context<Self>) -> Self::Result {
        let _enter = self.span.clone().entered();
        let done = |this: &mut Self, r: Result<HandleOutcome, ApiError>| {
            AtomicResponse::new(Box::pin(async move { r }.into_actor(this)))
        };
        match msg.0 {
            HandleRequest::Message(t, Ok(mut req)) => {
                let Some(jsep) = req.jsep.take() else {
                    let r = self.message(ctx, t, req);
                    return AtomicResponse::new(self.reply(r));
                };
                if jsep.kind == SdpType::Answer && self.pc.is_none() {
                    return done(
                        self,
                        Err(ApiError::new(ErrorCode::UnexpectedAnswer, "Unexpected ANSWER (did we offer?)")),
                    );
                }
                let info = match crate::peer::validate_remote(&jsep) {
                    Ok(i) => i,
                    Err(e) => return done(self, Err(e)),
                };
                let pc = match self.peer(ctx) {
                    Ok(pc) => pc,
                    Err(e) => return done(self, Err(e)),
                };
                let update = self.webrtc_up;
                self.e2ee |= jsep.e2ee == Some(true);
                let apply = pc.send(ApplyRemote { jsep: jsep.clone(), info });
                AtomicResponse::new(Box::pin(apply.into_actor(self).then(move |res, act, ctx| {
                    let failed = match res {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e),
                        Err(_) => Some(ApiError::new(ErrorCode::WebrtcState, "Invalid PeerConnection")),
                    };
                    if let Some(e) = failed {
                        return act.reply(MessageReply::Now(Err(e)));
                    }
                    let mut plugin_jsep = jsep;
                    plugin_jsep.sdp = anonymize(&plugin_jsep.sdp);
                    plugin_jsep.update = update;
                    req.jsep = Some(plugin_jsep);
                    let r = act.message(ctx, t, req);
                    act.reply(r)
                })))
            }
            HandleRequest::Message(_, Err(e)) => done(self, Err(e)),
            HandleRequest::Trickle(req) => {
                let r = req.and_then(|req| self.trickle(req));
                done(self, r)
            }
            HandleRequest::Exists => done(self, Ok(HandleOutcome::Done)),
            HandleRequest::Hangup(reason) => {
                self.queued_candidates.clear();
                self.hangup(ctx, Some(reason));
                done(self, Ok(HandleOutcome::Done))
            }
            HandleRequest::Detach => {
                if self.plugin_session.is_none() {
                    return done(self, Err(ApiError::new(ErrorCode::PluginDetach, "No plugin to detach from")));
                }
                self.end(ctx, true);
                done(self, Ok(HandleOutcome::Done))
            }
            HandleRequest::StartCapture(_, Err(e)) => done(self, Err(e)),
            HandleRequest::StartCapture(format, Ok(spec)) => {
                // Awaited inside the atomic response: a second start waits for this one's file.
                let port = self.port.clone();
                let start = async move { port.start_capture(spec).await };
                AtomicResponse::new(Box::pin(
                    start
                        .into_actor(self)
                        .map(move |r, _, _| r.map(|_| HandleOutcome::Done).map_err(|e| capture_error(format, e))),
                ))
            }
            HandleRequest::StopCapture => {
                let port = self.port.clone();
                let stop = async move { port.stop_capture().await };
                AtomicResponse::new(Box::pin(
                    stop.into_actor(self).map(|r, _, _| {
                        r.map(|_| HandleOutcome::Done).map_err(|e| capture_error(CaptureFormat::Pcap, e))
                    }),
                ))
            }
        }
    }
}

/// A dump failure as Janus words it (all 490; the file's own error goes to the log only).
fn capture_error(format: CaptureFormat, e: CaptureError) -> ApiError {
    let reason = match &e {
        CaptureError::AlreadyRunning => format!("{} already started", format.as_str()),
        CaptureError::NotRunning => "Capture not started".to_owned(),
        CaptureError::Protected(_) | CaptureError::Io { .. } => {
            tracing::warn!(error = %e, "cannot start the packet dump");
            format!("Error starting {} dump", format.as_str())
        }
    };
    ApiError::unknown(reason)
}

impl Handler<SendHangup> for Handle {
    type Result = ();
    fn handle(&mut self, msg: SendHangup, _: &mut Context<Self>) {
        let mut n = self.notification("hangup");
        n.reason = Some(msg.0.as_str().to_owned());
        self.notify(n);
    }
}

impl Handler<PeerNotice> for Handle {
    type Result = ();
    fn handle(&mut self, msg: PeerNotice, ctx: &mut Context<Self>) {
        let _enter = self.span.clone().entered();
        match msg.0 {
            PeerEvent::Connected => {
                if !self.webrtc_up {
                    self.webrtc_up = true;
                    let up = self.notification("webrtcup");
                    self.notify(up);
                    self.call_plugin(ctx, "setup_media", |ps| ps.setup_media());
                }
            }
            PeerEvent::Failed(reason) => {
                tracing::info!(reason = reason.as_str(), "PeerConnection failed");
                self.hangup(ctx, Some(reason));
            }
            PeerEvent::Media { mid, kind, receiving } => {
                let timer = self.state.runtime.no_media_timer.load(Ordering::Relaxed);
                let mut n = self
                    .notification("media")
                    .with("mid", mid)
                    .with("type", kind.as_str())
                    .with("receiving", receiving);
                if !receiving && timer > 1 {
                    n = n.with("seconds", timer);
                }
                self.notify(n);
            }
            PeerEvent::SlowLink { mid, kind, uplink, lost } => {
                let n = self
                    .notification("slowlink")
                    .with("mid", mid.clone())
                    .with("media", kind.as_str())
                    .with("uplink", uplink)
                    .with("lost", lost);
                self.notify(n);
                let video = kind == crate::media::MediaKind::Video;
                self.call_plugin(ctx, "slow_link", move |ps| ps.slow_link(&mid, video, uplink));
            }
            PeerEvent::DataOpen { .. } => self.call_plugin(ctx, "data_ready", |ps| ps.data_ready()),
            PeerEvent::Data(m) => self.call_plugin(ctx, "incoming_data", move |ps| ps.incoming_data(m)),
            PeerEvent::LocalCandidate(c) => {
                let mut cand = serde_json::Map::new();
                cand.insert("sdpMid".into(), json!(c.sdp_mid));
                cand.insert("sdpMLineIndex".into(), json!(c.sdp_mline_index));
                cand.insert("candidate".into(), json!(c.candidate));
                let n = self.notification("trickle").with("candidate", Value::Object(cand));
                self.notify(n);
            }
            PeerEvent::GatheringDone => {
                if self.state.settings.nat.full_trickle {
                    let n = self.notification("trickle").with("candidate", json!({"completed": true}));
                    self.notify(n);
                }
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
                let event = self.plugin_event(transaction, data);
                match jsep.map(|j| j.kind) {
                    None => self.notify(event),
                    Some(SdpType::Answer) => self.answer(ctx, event, crate::media::AnswerSpec::default()),
                    Some(SdpType::Offer) => {
                        tracing::warn!(parent: &self.span, "plugin-initiated offers are not supported yet; event sent without jsep");
                        self.notify(event);
                    }
                }
            }
            FromPlugin::Answer { transaction, data, spec } => {
                let event = self.plugin_event(transaction, data);
                self.answer(ctx, event, spec);
            }
            FromPlugin::ClosePc => self.hangup(ctx, Some(HangupReason::ClosePc)),
            FromPlugin::Offer { transaction, data, spec } => {
                let event = self.plugin_event(transaction, data);
                // Janus compat: a plugin's JSEP marked e2ee marks the handle too.
                self.e2ee |= spec.e2ee;
                let pc = match self.peer(ctx) {
                    Ok(pc) => pc,
                    Err(e) => {
                        tracing::warn!(parent: &self.span, error = %e, "cannot offer: no media engine");
                        return;
                    }
                };
                ctx.wait(async move { pc.send(CreateOffer(spec)).await }.into_actor(self).map(move |res, act, _| {
                    match res {
                        Ok(Ok(offer)) => {
                            let mut event = event;
                            event.jsep = Some(act.marked(offer));
                            act.notify(event);
                        }
                        Ok(Err(e)) => tracing::warn!(parent: &act.span, error = %e, "offer failed; event dropped"),
                        Err(_) => tracing::warn!(parent: &act.span, "PeerConnection gone before offering"),
                    }
                }));
            }
            FromPlugin::EndSession => {
                if self.plugin_session.is_some() {
                    self.end(ctx, true);
                }
            }
        }
    }
}

impl Handle {
    /// Our JSEP as the client gets it: marked `e2ee` when its media is end-to-end encrypted.
    fn marked(&self, mut jsep: Jsep) -> Jsep {
        if self.e2ee {
            jsep.e2ee = Some(true);
        }
        jsep
    }

    /// Sends `event` with our answer to the client's offer attached.
    fn answer(&mut self, ctx: &mut Context<Self>, event: Outgoing, spec: crate::media::AnswerSpec) {
        let Some(pc) = self.pc.clone() else {
            tracing::warn!(parent: &self.span, "plugin answered but there is no PeerConnection");
            self.notify(event);
            return;
        };
        // Wait: events after this one must not overtake the answer.
        ctx.wait(async move { pc.send(CreateAnswer(spec)).await }.into_actor(self).map(move |res, act, _| match res {
            Ok(Ok(answer)) => {
                let mut event = event;
                event.jsep = Some(act.marked(answer));
                act.notify(event);
            }
            Ok(Err(e)) => {
                // Janus compat (1.3): an event whose SDP can't be built is not delivered.
                tracing::warn!(parent: &act.span, error = %e, "could not build the answer; event dropped");
            }
            Err(_) => tracing::warn!(parent: &act.span, "PeerConnection gone before answering"),
        }));
    }
}

impl Handler<QueryHandle> for Handle {
    type Result = ResponseFuture<Value>;
    fn handle(&mut self, msg: QueryHandle, ctx: &mut Context<Self>) -> Self::Result {
        let info = self.base_info(&msg, ctx);
        let pc = self.pc.clone().filter(|_| !msg.plugin_only);
        Box::pin(async move {
            let mut info = info;
            if let (Some(pc), Some(obj)) = (pc, info.as_object_mut()) {
                if let Ok(Value::Object(webrtc)) = pc.send(DescribePeer).await {
                    for (k, v) in webrtc {
                        match (obj.get_mut(&k), v) {
                            (Some(Value::Object(dst)), Value::Object(src)) => dst.extend(src),
                            (_, v) => {
                                obj.insert(k, v);
                            }
                        }
                    }
                }
            }
            info
        })
    }
}

impl Handle {
    fn base_info(&mut self, msg: &QueryHandle, ctx: &mut Context<Self>) -> Value {
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
                        "got-offer": self.pc.is_some(), "got-answer": self.webrtc_up, "negotiated": false,
                        "processing-offer": false, "starting": false, "ice-restart": false,
                        "ready": self.webrtc_up, "stopped": false, "alert": false,
                        "trickle": !self.queued_candidates.is_empty(), "all-trickles": false,
                        "resend-trickles": false, "trickle-synced": false, "data-channels": false,
                        "has-audio": false, "has-video": false, "new-datachan-sdp": false,
                        "rfc4588-rtx": false, "cleaning": false, "e2ee": self.e2ee
                    }),
                );
                obj.insert("sdps".into(), json!({}));
                obj.insert("pending-trickles".into(), json!(self.queued_candidates.len()));
                obj.insert("queued-packets".into(), json!(0));
                if let Some(dump) = self.port.capture() {
                    let kind = dump.format.as_str();
                    obj.insert(format!("dump-to-{kind}"), json!(true));
                    obj.insert(format!("{kind}-file"), json!(dump.path));
                    // Portunus addition: packets the dump's writer could not keep up with.
                    obj.insert("dump-dropped".into(), json!(dump.dropped));
                }
            }
        }
        info
    }
}
