//! `PluginCtx`: everything a plugin may ask of the core for one handle (Janus's callbacks:
//! `push_event`, `close_pc`, `end_session`, `notify_event`, token checks).

use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;

use crate::api::{HandleId, Jsep, SessionId, Transaction};
use crate::auth::unix_now;
use crate::events::EventType;
use crate::handle::{FromPlugin, Handle};
use crate::media::MediaPort;
use crate::state::ServerState;

/// Why a call back into the core failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The handle is gone.
    #[error("handle is gone")]
    HandleGone,
    /// The handle's mailbox is full; the event was dropped.
    #[error("handle mailbox full")]
    Full,
}

/// The core, as seen by one plugin session. Cheap to clone; safe to use from any thread.
#[derive(Clone)]
pub struct PluginCtx {
    session: SessionId,
    handle: HandleId,
    opaque_id: Option<Arc<str>>,
    addr: Addr<Handle>,
    port: MediaPort,
    state: Arc<ServerState>,
}

impl PluginCtx {
    pub(crate) fn new(
        session: SessionId,
        handle: HandleId,
        opaque_id: Option<Arc<str>>,
        addr: Addr<Handle>,
        port: MediaPort,
        state: Arc<ServerState>,
    ) -> Self {
        PluginCtx { session, handle, opaque_id, addr, port, state }
    }

    /// This handle's media: install a sink for incoming RTP, get writers, request keyframes,
    /// cap the bitrate, send data-channel messages.
    pub fn media(&self) -> &MediaPort {
        &self.port
    }

    /// The handle this context belongs to.
    pub fn handle_id(&self) -> HandleId {
        self.handle
    }

    /// The session of the handle.
    pub fn session_id(&self) -> SessionId {
        self.session
    }

    /// The `opaque_id` given at attach.
    pub fn opaque_id(&self) -> Option<&str> {
        self.opaque_id.as_deref()
    }

    /// Sends a plugin event to the client (`push_event`). Pass the request's transaction when
    /// answering one, `None` for spontaneous notifications.
    pub fn push_event(
        &self,
        transaction: Option<Transaction>,
        data: Value,
        jsep: Option<Jsep>,
    ) -> Result<(), PushError> {
        self.send(FromPlugin::Event { transaction, data, jsep: jsep.map(Box::new) })
    }

    /// Sends a plugin event carrying the answer the core builds, as `spec` says, to the offer the
    /// client sent on this handle (`push_event` with an answer).
    pub fn push_answer(
        &self,
        transaction: Option<Transaction>,
        data: Value,
        spec: crate::media::AnswerSpec,
    ) -> Result<(), PushError> {
        self.send(FromPlugin::Answer { transaction, data, spec })
    }

    /// Sends a plugin event carrying an offer the core builds from `spec` (the plugin side of a
    /// plugin-initiated negotiation: VideoRoom subscribers, Streaming, TextRoom).
    pub fn push_offer(
        &self,
        transaction: Option<Transaction>,
        data: Value,
        spec: crate::media::OfferSpec,
    ) -> Result<(), PushError> {
        self.send(FromPlugin::Offer { transaction, data, spec })
    }

    /// Closes the PeerConnection (`close_pc`): the client gets `hangup` with reason "Close PC".
    pub fn close_pc(&self) -> Result<(), PushError> {
        self.send(FromPlugin::ClosePc)
    }

    /// Ends the handle (`end_session`): the client gets `detached`.
    pub fn end_session(&self) -> Result<(), PushError> {
        self.send(FromPlugin::EndSession)
    }

    /// Whether event handlers are on (`events_is_enabled`).
    pub fn events_enabled(&self) -> bool {
        self.state.events.enabled()
    }

    /// Sends a plugin event to the event handlers (`notify_event`).
    pub fn notify_event(&self, plugin: &'static str, data: Value) {
        self.state.events.publish(
            EventType::Plugin,
            None,
            Some(self.session),
            Some(self.handle),
            self.opaque_id.clone(),
            serde_json::json!({ "plugin": plugin, "data": data }),
        );
    }

    /// Whether signed tokens are in use (`auth_is_signed`).
    pub fn auth_is_signed(&self) -> bool {
        self.state.signed_tokens.is_some()
    }

    /// Whether `token` is a valid signed token for `realm` (`auth_is_signature_valid`).
    pub fn auth_is_signature_valid(&self, token: &str, realm: &str) -> bool {
        self.state.signed_tokens.as_ref().is_some_and(|s| s.is_valid(token, realm, unix_now()))
    }

    /// Whether a valid signed token for `realm` lists `descriptor` (`auth_signature_contains`).
    pub fn auth_signature_contains(&self, token: &str, realm: &str, descriptor: &str) -> bool {
        self.state.signed_tokens.as_ref().is_some_and(|s| s.contains(token, realm, descriptor, unix_now()))
    }

    fn send(&self, msg: FromPlugin) -> Result<(), PushError> {
        self.addr.try_send(msg).map_err(|e| match e {
            SendError::Full(_) => PushError::Full,
            SendError::Closed(_) => PushError::HandleGone,
        })
    }
}
