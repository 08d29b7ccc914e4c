//! `QueueSink`: a push connection's outgoing side as the core sees it, a bounded queue drained
//! by the connection's writer. Events that find the queue full are dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};

use portunus_actors::api::SessionId;
use portunus_actors::transport::{Delivery, EventSink, SessionOver};
use tokio::sync::mpsc;

/// The sink of one WebSocket or Unix-socket peer.
pub(crate) struct QueueSink {
    tx: mpsc::Sender<String>,
    dropped: AtomicU64,
}

impl QueueSink {
    /// A sink feeding `tx`.
    pub(crate) fn new(tx: mpsc::Sender<String>) -> Self {
        QueueSink { tx, dropped: AtomicU64::new(0) }
    }
}

impl EventSink for QueueSink {
    fn deliver(&self, json: String) -> Delivery {
        match self.tx.try_send(json) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Delivery::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Closed,
        }
    }

    fn session_over(&self, session: SessionId, why: SessionOver) {
        tracing::debug!(session_id = session.0, ?why, "session left this connection");
    }
}
