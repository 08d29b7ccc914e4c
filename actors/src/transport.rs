//! The transport API: what a transport tells the core about a request's origin, and how the core
//! delivers a session's asynchronous events back (the mirror of Janus's `transport.h`).
//!
//! A transport submits requests through [`crate::gateway::Core`] and gets the direct reply back as
//! the future's output. Events of a session go to its owner: a push connection (WebSocket, broker
//! channel, socket peer) through its [`EventSink`], or the session's own bounded queue for long-poll
//! transports (HTTP).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::api::{ConnectionId, SessionId};

/// Why a session left a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionOver {
    /// Destroyed by request or by the Admin API.
    Destroyed,
    /// Timed out.
    TimedOut,
    /// Claimed by another connection.
    Claimed,
}

/// Outcome of handing an event to a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for sending.
    Queued,
    /// The connection's queue is full: the event was dropped (and counted by the sink).
    Dropped,
    /// The connection is gone.
    Closed,
}

/// A push connection's outgoing side. Implementations are cheap, non-blocking and bounded.
pub trait EventSink: Send + Sync + 'static {
    /// Queues one serialized message.
    fn deliver(&self, json: String) -> Delivery;

    /// A session was created on (or claimed by) this connection.
    fn session_created(&self, _session: SessionId) {}

    /// A session left this connection.
    fn session_over(&self, _session: SessionId, _why: SessionOver) {}
}

/// How a session's events reach its owner.
#[derive(Clone)]
pub enum OwnerKind {
    /// The session keeps a bounded queue drained by long polls.
    LongPoll,
    /// Events are pushed to the connection.
    Push(Arc<dyn EventSink>),
}

impl fmt::Debug for OwnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerKind::LongPoll => f.write_str("LongPoll"),
            OwnerKind::Push(_) => f.write_str("Push"),
        }
    }
}

/// Where a request came from.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The transport package (`janus.transport.http`, `janus.transport.websockets`, ...).
    pub transport: &'static str,
    /// The connection (for HTTP: the transport as a whole).
    pub connection: ConnectionId,
    /// How events reach this origin if it owns a session.
    pub owner: OwnerKind,
}

impl Origin {
    /// An origin for a long-poll transport.
    pub fn long_poll(transport: &'static str, connection: ConnectionId) -> Self {
        Origin { transport, connection, owner: OwnerKind::LongPoll }
    }

    /// An origin for a push connection.
    pub fn push(transport: &'static str, connection: ConnectionId, sink: Arc<dyn EventSink>) -> Self {
        Origin { transport, connection, owner: OwnerKind::Push(sink) }
    }
}

/// A transport's side of Admin `query_transport` (Janus's `query_transport` callback).
pub trait TransportControl: Send + Sync + 'static {
    /// Answers one request object; the value becomes the reply's `response`: `result: 200` and
    /// the data, or `error_code`/`error` for a request it cannot serve.
    fn query(&self, request: &Map<String, Value>) -> Value;
}
