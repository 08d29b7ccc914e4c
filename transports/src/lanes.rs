//! Request lanes and the outgoing queue shared by the message-bus transports (RabbitMQ, MQTT,
//! Unix datagram sockets), where one broker link carries the requests of many sessions.
//!
//! Requests of one session must run in order (a `trickle` must not overtake the `message` before
//! it), but a slow plugin call of one session must not hold up every other session on the link.
//! So requests are spread over a fixed number of lanes by session id; each lane is one task
//! running its requests one at a time. Lanes and the outgoing queue are bounded: when a lane is
//! full, [`Lanes::submit`] waits (the broker link stops taking deliveries), and events that do
//! not fit the outgoing queue are dropped and counted, never buffered without limit.
//!
//! Lanes outlive broker reconnects: replies produced while the link is down wait in the outgoing
//! queue and are published once it is back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use portunus_actors::api::{ApiError, ErrorCode, Outgoing};
use portunus_actors::transport::{Delivery, EventSink, Origin, SessionOver};
use portunus_actors::Core;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::http::Api;
use crate::metrics::LinkState;

/// One message for the broker: a reply (with the request's routing metadata) or a notification.
#[derive(Debug)]
pub struct Reply<M> {
    /// Which API's outgoing queue/topic it goes to.
    pub api: Api,
    /// Serialized JSON (compact).
    pub json: String,
    /// The request's metadata (correlation id, response topic, ...); `None` for notifications.
    pub meta: Option<M>,
}

/// The outgoing queue's sending side, used by the lanes and, as the sessions' [`EventSink`], by
/// the core.
pub struct Outbox<M> {
    tx: mpsc::Sender<Reply<M>>,
    link: Arc<LinkState>,
}

impl<M: Send + 'static> Outbox<M> {
    /// A bounded outgoing queue of `capacity` messages; drops are counted on `link`.
    pub fn new(capacity: usize, link: Arc<LinkState>) -> (Arc<Self>, mpsc::Receiver<Reply<M>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Arc::new(Outbox { tx, link }), rx)
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.link.dropped()
    }

    /// Messages waiting to be published.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues a reply, waiting for room: replies are never dropped.
    pub async fn reply(&self, reply: Reply<M>) -> bool {
        self.tx.send(reply).await.is_ok()
    }
}

impl<M: Send + 'static> EventSink for Outbox<M> {
    fn deliver(&self, json: String) -> Delivery {
        match self.tx.try_send(Reply { api: Api::Janus, json, meta: None }) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.link.add_dropped(1);
                Delivery::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Closed,
        }
    }

    fn session_over(&self, session: portunus_actors::api::SessionId, why: SessionOver) {
        tracing::debug!(session_id = session.0, ?why, "session left the broker link");
    }
}

struct Job<M> {
    api: Api,
    request: Result<Value, ApiError>,
    meta: M,
}

/// A fixed set of request lanes feeding one [`Outbox`].
pub struct Lanes<M> {
    lanes: Vec<mpsc::Sender<Job<M>>>,
    next: AtomicUsize,
}

impl<M: Send + 'static> Lanes<M> {
    /// Starts `count` lane tasks on the current arbiter, each holding up to `depth` requests.
    /// Janus API requests run as `origin`; replies go to `outbox`.
    pub fn start(core: Core, origin: Origin, outbox: Arc<Outbox<M>>, count: usize, depth: usize) -> Self {
        let lanes = (0..count.max(1))
            .map(|_| {
                let (tx, mut rx) = mpsc::channel::<Job<M>>(depth.max(1));
                let core = core.clone();
                let origin = origin.clone();
                let outbox = outbox.clone();
                actix_rt::spawn(async move {
                    while let Some(job) = rx.recv().await {
                        let reply = match (job.request, job.api) {
                            (Ok(value), Api::Janus) => core.handle_value(&origin, value).await,
                            (Ok(value), Api::Admin) => core.admin_value(value).await,
                            (Err(e), _) => Outgoing::error(None, None, &e),
                        };
                        let reply = Reply { api: job.api, json: reply.to_json(), meta: Some(job.meta) };
                        if !outbox.reply(reply).await {
                            return;
                        }
                    }
                });
                tx
            })
            .collect();
        Lanes { lanes, next: AtomicUsize::new(0) }
    }

    /// Parses one request and queues it on its session's lane, waiting while that lane is full.
    /// A payload that is not JSON is answered with 454, like Janus.
    pub async fn submit(&self, api: Api, payload: &[u8], meta: M) -> bool {
        let request = parse(payload);
        let lane = match request.as_ref().ok().and_then(|v| v.get("session_id")).and_then(Value::as_u64) {
            Some(session) => (session % self.lanes.len() as u64) as usize,
            None => self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len(),
        };
        self.lanes[lane].send(Job { api, request, meta }).await.is_ok()
    }
}

fn parse(payload: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(payload)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("JSON error: on line {}: {}", e.line(), e)))
}

/// Janus's `json` setting: how outgoing JSON is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonStyle {
    /// Indented (Janus's default).
    Indented,
    /// One line (`plain` and `compact`).
    #[default]
    Compact,
}

impl JsonStyle {
    /// From the `json` setting (`indented`, `plain`, `compact`).
    pub fn parse(s: &str) -> Self {
        if s.eq_ignore_ascii_case("indented") {
            JsonStyle::Indented
        } else {
            JsonStyle::Compact
        }
    }

    /// Lays out compact JSON in this style.
    pub fn apply(self, json: String) -> String {
        match self {
            JsonStyle::Compact => json,
            JsonStyle::Indented => serde_json::from_str::<Value>(&json)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(json),
        }
    }
}

/// Exponential reconnect backoff: `min`, doubling per failed attempt, capped at `max` (ms).
pub fn backoff_ms(attempt: u32, min: u64, max: u64) -> u64 {
    if attempt == 0 {
        return 0;
    }
    min.max(1).saturating_mul(1u64 << (attempt - 1).min(20)).min(max.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_ms(0, 100, 1000), 0);
        assert_eq!(backoff_ms(1, 100, 1000), 100);
        assert_eq!(backoff_ms(2, 100, 1000), 200);
        assert_eq!(backoff_ms(4, 100, 1000), 800);
        assert_eq!(backoff_ms(5, 100, 1000), 1000);
        assert_eq!(backoff_ms(60, 100, 1000), 1000);
    }

    #[test]
    fn json_styles() {
        assert_eq!(JsonStyle::parse("plain"), JsonStyle::Compact);
        assert_eq!(JsonStyle::Indented.apply(r#"{"a":1}"#.into()), "{\n  \"a\": 1\n}");
        assert_eq!(JsonStyle::Compact.apply(r#"{"a":1}"#.into()), r#"{"a":1}"#);
    }

    #[test]
    fn bad_json_is_454() {
        let e = parse(b"{nope").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidJson.code());
    }
}
