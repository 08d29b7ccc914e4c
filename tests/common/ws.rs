//! A typed WebSocket client for the Janus API (`janus-protocol`) and the Admin API
//! (`janus-admin-protocol`). Messages that a test skipped while waiting for another one are kept
//! in a backlog, so that `recv_until` never loses an event that arrived before its `ack`
//! (reference section 0: clients match by transaction, not by order).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::http::merge;
use super::{tx, ECHOTEST};

/// How long `recv` waits by default.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// One WebSocket connection.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    backlog: VecDeque<Value>,
}

impl WsClient {
    /// Connects to `addr` offering `protocol`; panics if the handshake fails.
    pub async fn connect(addr: SocketAddr, protocol: &str) -> WsClient {
        match WsClient::try_connect(addr, Some(protocol)).await {
            Ok(c) => c,
            Err(e) => panic!("WebSocket connect to {addr} with {protocol} failed: {e}"),
        }
    }

    /// Connects offering `protocol` (or none); returns the handshake error as text.
    pub async fn try_connect(addr: SocketAddr, protocol: Option<&str>) -> Result<WsClient, String> {
        let mut req = format!("ws://{addr}/").into_client_request().map_err(|e| e.to_string())?;
        if let Some(p) = protocol {
            req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).map_err(|e| e.to_string())?);
        }
        let (stream, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| e.to_string())?;
        Ok(WsClient { stream, backlog: VecDeque::new() })
    }

    /// Sends one JSON value as a text frame.
    pub async fn send(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a text frame as is.
    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.unwrap_or_else(|e| panic!("WebSocket send failed: {e}"));
    }

    /// The next message (backlog first); panics after [`RECV_TIMEOUT`].
    pub async fn recv(&mut self) -> Value {
        match self.recv_timeout(RECV_TIMEOUT).await {
            Some(v) => v,
            None => panic!("no WebSocket message within {RECV_TIMEOUT:?}"),
        }
    }

    /// The next message, or `None` if nothing arrives within `wait`.
    pub async fn recv_timeout(&mut self, wait: Duration) -> Option<Value> {
        if let Some(v) = self.backlog.pop_front() {
            return Some(v);
        }
        self.read(wait).await
    }

    /// The first message matching `pred` (looking at the backlog first); others are kept for
    /// later. Panics after `deadline`.
    pub async fn recv_until_within(&mut self, deadline: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i).expect("index from position");
        }
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let Some(v) = self.read(left).await else {
                panic!("no matching WebSocket message within {deadline:?}; skipped: {:?}", self.backlog);
            };
            if pred(&v) {
                return v;
            }
            self.backlog.push_back(v);
        }
    }

    /// [`recv_until_within`](Self::recv_until_within) with [`RECV_TIMEOUT`].
    pub async fn recv_until(&mut self, pred: impl FnMut(&Value) -> bool) -> Value {
        self.recv_until_within(RECV_TIMEOUT, pred).await
    }

    /// Sends `request` and returns its direct reply: the first message with the same
    /// transaction that is not a plugin `event` (events may precede the ack).
    pub async fn request(&mut self, request: Value) -> Value {
        let t = request["transaction"].clone();
        self.send(&request).await;
        self.recv_until(|v| v["transaction"] == t && v["janus"] != "event").await
    }

    /// Messages already received but not yet consumed.
    pub fn backlog(&self) -> &VecDeque<Value> {
        &self.backlog
    }

    /// `create`; returns the session id.
    pub async fn create(&mut self) -> u64 {
        let reply = self.request(json!({"janus": "create", "transaction": tx()})).await;
        assert_eq!(reply["janus"], "success", "create over WebSocket: {reply}");
        reply["data"]["id"].as_u64().unwrap_or_else(|| panic!("create reply without data.id: {reply}"))
    }

    /// `attach` to `plugin`; returns the handle id.
    pub async fn attach(&mut self, session: u64, plugin: &str) -> u64 {
        let reply = self
            .request(json!({"janus": "attach", "transaction": tx(), "session_id": session, "plugin": plugin}))
            .await;
        assert_eq!(reply["janus"], "success", "attach over WebSocket: {reply}");
        reply["data"]["id"].as_u64().unwrap_or_else(|| panic!("attach reply without data.id: {reply}"))
    }

    /// A session with one EchoTest handle.
    pub async fn session_with_echotest(&mut self) -> (u64, u64) {
        let s = self.create().await;
        let h = self.attach(s, ECHOTEST).await;
        (s, h)
    }

    /// A request on S with a fresh transaction; returns the direct reply.
    pub async fn session_request(&mut self, session: u64, name: &str, extra: Value) -> Value {
        let mut req = json!({"janus": name, "transaction": tx(), "session_id": session});
        merge(&mut req, extra);
        self.request(req).await
    }

    /// A request on S/H with a fresh transaction; returns the direct reply.
    pub async fn handle_request(&mut self, session: u64, handle: u64, name: &str, extra: Value) -> Value {
        let mut req = json!({"janus": name, "transaction": tx(), "session_id": session, "handle_id": handle});
        merge(&mut req, extra);
        self.request(req).await
    }

    /// Closes the connection politely and waits for the server's close.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let _ =
            tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = self.stream.next().await {} })
                .await;
    }

    /// Whether the server closed the connection (waits up to `wait` for the close).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let end = tokio::time::Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(Message::Text(t)))) => {
                    if let Ok(v) = serde_json::from_str(t.as_str()) {
                        self.backlog.push_back(v);
                    }
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Reads one text message from the socket, parsed; `None` on timeout. Panics if the socket
    /// closes or a message is not JSON.
    async fn read(&mut self, wait: Duration) -> Option<Value> {
        let end = tokio::time::Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let msg = match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("WebSocket closed by the server"),
                Ok(Some(Err(e))) => panic!("WebSocket error: {e}"),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    return Some(
                        serde_json::from_str(t.as_str())
                            .unwrap_or_else(|e| panic!("WebSocket text is not JSON ({e}): {:?}", t.as_str())),
                    )
                }
                Message::Binary(b) => {
                    return Some(serde_json::from_slice(&b).unwrap_or_else(|e| panic!("binary frame is not JSON: {e}")))
                }
                Message::Close(_) => panic!("WebSocket closed by the server"),
                // Ping/pong are answered by tungstenite itself.
                _ => continue,
            }
        }
    }
}
