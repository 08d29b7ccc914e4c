//! The `Session` actor: one per Janus session. It owns the session's handles and its event
//! delivery (a push connection or a bounded long-poll queue). The registry owns the session's
//! id, activity and timeout bookkeeping; the session owns what happens inside.

pub mod directory;
mod poll;
pub mod registry;
pub mod table;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;
use tracing::Span;

pub use directory::SessionDirectory;
pub use poll::{PollOutcome, PollQueue};
pub use registry::SessionRegistry;

use crate::api::{ApiError, ErrorCode, HandleId, Outgoing, SessionId};
use crate::events::EventType;
use crate::handle::{DestroyHandle, ForHandle, Handle, HandleOutcome, HandleParts, HandleRequest, QueryHandle};
use crate::plugin::boundary::guard;
use crate::plugin::{PluginCtx, SharedPlugin};
use crate::state::ServerState;
use crate::transport::{Delivery, OwnerKind, SessionOver};

/// `attach`: returns the new handle id.
#[derive(Message)]
#[rtype(result = "Result<HandleId, ApiError>")]
pub struct Attach {
    /// The plugin.
    pub plugin: SharedPlugin,
    /// `opaque_id`.
    pub opaque_id: Option<String>,
    /// The token the request carried.
    pub token: Option<String>,
}

/// A request for one of this session's handles.
#[derive(Message)]
#[rtype(result = "Result<HandleOutcome, ApiError>")]
pub struct ToHandle {
    /// Which handle.
    pub handle: HandleId,
    /// What to do.
    pub request: HandleRequest,
}

/// A long poll for up to `maxev` events.
#[derive(Message)]
#[rtype(result = "Option<PollOutcome>")]
pub struct Poll {
    /// Max events returned.
    pub maxev: usize,
}

/// Deliver a message to the session's owner.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Notify(pub Outgoing);

/// A handle ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleEnded {
    /// Which.
    pub id: HandleId,
    /// Send `detached`.
    pub detached: bool,
    /// `opaque_id` to copy into `detached` (when `opaqueid_in_api`).
    pub opaque_id: Option<Arc<str>>,
}

/// The session has a new owner.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Claimed {
    /// How to reach it.
    pub owner: OwnerKind,
}

/// The session ends (destroy, timeout, transport gone, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndSession {
    /// Why.
    pub why: SessionOver,
    /// Whether the owner can still be told (false when its transport is gone).
    pub notify_owner: bool,
}

/// Admin `list_handles`.
#[derive(Message)]
#[rtype(result = "Vec<HandleId>")]
pub struct ListHandles;

/// Admin `handle_info`: the handle's part of the answer.
#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, ApiError>")]
pub struct HandleInfo {
    /// Which handle.
    pub handle: HandleId,
    /// Only the plugin part.
    pub plugin_only: bool,
}

struct HandleEntry {
    addr: Addr<Handle>,
}

/// The session actor.
pub struct Session {
    id: SessionId,
    owner: OwnerKind,
    handles: HashMap<HandleId, HandleEntry>,
    poll: PollQueue,
    state: Arc<ServerState>,
    span: Span,
}

impl Session {
    /// A session owned by `owner`.
    pub fn new(id: SessionId, owner: OwnerKind, state: Arc<ServerState>) -> Self {
        let limits = &state.settings.limits;
        let poll = PollQueue::new(limits.session_event_queue, limits.max_pending_polls);
        state.counters.sessions.fetch_add(1, Ordering::Relaxed);
        Session {
            id,
            owner,
            handles: HashMap::new(),
            poll,
            span: tracing::info_span!("session", session_id = id.0),
            state,
        }
    }

    fn deliver(&mut self, msg: Outgoing) {
        let json = msg.to_json();
        let dropped = match &self.owner {
            OwnerKind::LongPoll => self.poll.push(json),
            OwnerKind::Push(sink) => sink.deliver(json) != Delivery::Queued,
        };
        if dropped {
            self.state.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(parent: &self.span, "event dropped: the session's owner is not keeping up");
        }
    }

    fn attach(&mut self, msg: Attach, ctx: &mut Context<Self>) -> Result<HandleId, ApiError> {
        let limit = self.state.settings.limits.max_handles_per_session;
        if self.handles.len() >= limit {
            return Err(ApiError::new(
                ErrorCode::PluginAttach,
                format!("Couldn't attach to plugin: too many handles in this session (limit {limit})"),
            ));
        }
        let id = loop {
            let id = HandleId::random();
            if !self.handles.contains_key(&id) {
                break id;
            }
        };
        let opaque_id: Option<Arc<str>> = msg.opaque_id.as_deref().map(Arc::from);
        let handle_ctx = Context::<Handle>::new();
        let addr = handle_ctx.address();
        let port = crate::media::MediaPort::default();
        let plugin_ctx = PluginCtx::new(self.id, id, opaque_id.clone(), addr.clone(), port.clone(), self.state.clone());
        let plugin = msg.plugin.clone();
        let plugin_session = match guard(|| plugin.create_session(plugin_ctx)) {
            Ok(Ok(ps)) => ps,
            Ok(Err(e)) => {
                return Err(ApiError::new(
                    ErrorCode::PluginAttach,
                    format!("Couldn't attach to plugin: error '{}'", e.code),
                ))
            }
            Err(p) => {
                self.state.counters.plugin_panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(parent: &self.span, panic = %p.0, "plugin panicked in create_session");
                return Err(ApiError::new(ErrorCode::PluginAttach, "Couldn't attach to plugin: the plugin crashed"));
            }
        };
        let package = msg.plugin.descriptor().package;
        let handle = Handle::new(HandleParts {
            id,
            session_id: self.id,
            session: ctx.address().downgrade(),
            plugin: msg.plugin,
            plugin_session,
            opaque_id: opaque_id.clone(),
            token: msg.token.clone(),
            port,
            state: self.state.clone(),
        });
        handle_ctx.run(handle);
        self.handles.insert(id, HandleEntry { addr });
        self.state.events.publish(
            EventType::Handle,
            None,
            Some(self.id),
            Some(id),
            opaque_id.clone(),
            json!({"name": "attached", "plugin": package, "opaque_id": opaque_id.as_deref(), "token": msg.token}),
        );
        Ok(id)
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.state.counters.sessions.fetch_sub(1, Ordering::Relaxed);
        self.state.requests.forget(self.id);
    }
}

impl Handler<Attach> for Session {
    type Result = Result<HandleId, ApiError>;
    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) -> Self::Result {
        self.attach(msg, ctx)
    }
}

impl Handler<ToHandle> for Session {
    type Result = ResponseFuture<Result<HandleOutcome, ApiError>>;
    fn handle(&mut self, msg: ToHandle, _: &mut Context<Self>) -> Self::Result {
        let session = self.id;
        let Some(entry) = self.handles.get(&msg.handle) else {
            return Box::pin(async move { Err(ApiError::no_handle(session, msg.handle)) });
        };
        let send = entry.addr.send(ForHandle(msg.request));
        let handle = msg.handle;
        Box::pin(async move {
            match send.await {
                Ok(r) => r,
                // The handle stopped between lookup and delivery.
                Err(_) => Err(ApiError::no_handle(session, handle)),
            }
        })
    }
}

impl Handler<Poll> for Session {
    type Result = Option<PollOutcome>;
    fn handle(&mut self, msg: Poll, _: &mut Context<Self>) -> Self::Result {
        match self.owner {
            OwnerKind::LongPoll => Some(self.poll.poll(msg.maxev)),
            // Janus compat (1.7): a session owned by another transport has no queue here (404).
            OwnerKind::Push(_) => None,
        }
    }
}

impl Handler<Notify> for Session {
    type Result = ();
    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) {
        self.deliver(msg.0);
    }
}

impl Handler<HandleEnded> for Session {
    type Result = ();
    fn handle(&mut self, msg: HandleEnded, _: &mut Context<Self>) {
        if self.handles.remove(&msg.id).is_some() && msg.detached {
            let mut detached = Outgoing::notification("detached", self.id, msg.id);
            detached.opaque_id = msg.opaque_id;
            self.deliver(detached);
        }
    }
}

impl Handler<Claimed> for Session {
    type Result = ();
    fn handle(&mut self, msg: Claimed, _: &mut Context<Self>) {
        if let OwnerKind::Push(old) = &self.owner {
            old.session_over(self.id, SessionOver::Claimed);
        }
        if let OwnerKind::Push(new) = &msg.owner {
            new.session_created(self.id);
        }
        self.owner = msg.owner;
    }
}

impl Handler<EndSession> for Session {
    type Result = ();
    fn handle(&mut self, msg: EndSession, ctx: &mut Context<Self>) {
        for (_, h) in self.handles.drain() {
            h.addr.do_send(DestroyHandle);
        }
        if msg.notify_owner {
            if msg.why == SessionOver::TimedOut {
                self.deliver(Outgoing { janus: "timeout", session_id: Some(self.id), ..Default::default() });
            }
            if let OwnerKind::Push(sink) = &self.owner {
                sink.session_over(self.id, msg.why);
            }
        }
        let name = if msg.why == SessionOver::TimedOut { "timeout" } else { "destroyed" };
        self.state.events.publish(EventType::Session, None, Some(self.id), None, None, json!({ "name": name }));
        ctx.stop();
    }
}

impl Handler<ListHandles> for Session {
    type Result = Vec<HandleId>;
    fn handle(&mut self, _: ListHandles, _: &mut Context<Self>) -> Self::Result {
        self.handles.keys().copied().collect()
    }
}

impl Handler<HandleInfo> for Session {
    type Result = ResponseFuture<Result<serde_json::Value, ApiError>>;
    fn handle(&mut self, msg: HandleInfo, _: &mut Context<Self>) -> Self::Result {
        let session = self.id;
        let Some(entry) = self.handles.get(&msg.handle) else {
            return Box::pin(async move { Err(ApiError::no_handle(session, msg.handle)) });
        };
        let send = entry.addr.send(QueryHandle { plugin_only: msg.plugin_only });
        Box::pin(async move { send.await.map_err(|_| ApiError::no_handle(session, msg.handle)) })
    }
}
