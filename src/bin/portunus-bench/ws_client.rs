//! The Janus API over its WebSocket transport (`janus-protocol`
//! subprotocol). One socket carries any number of sessions: a writer task
//! serialises outgoing frames, a reader task routes every incoming message
//! to the request waiting for its `transaction`, so many requests can be in
//! flight on one socket, as with janus.js.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::janus::{next_transaction, parse_messages, request, BenchError, Result, Router, Target, Want};

/// How long `close` waits for the server to acknowledge the close frame
/// before dropping the socket anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

pub struct WsJanus {
    out: mpsc::UnboundedSender<Message>,
    router: Arc<Router>,
    /// Set by the reader when the socket ends, so new requests fail fast
    /// instead of waiting for their timeout.
    closed: Arc<AtomicBool>,
    apisecret: Option<String>,
    timeout: Duration,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl WsJanus {
    pub async fn connect(target: &Target) -> Result<WsJanus> {
        let mut req = target.url.as_str().into_client_request().map_err(|e| BenchError::Connect(e.to_string()))?;
        // Janus refuses WebSocket clients that do not ask for its protocol.
        req.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("janus-protocol"));
        let connecting = tokio_tungstenite::connect_async_with_config(req, None, true);
        let (stream, _response) = tokio::time::timeout(target.timeout, connecting)
            .await
            .map_err(|_| BenchError::Timeout)?
            .map_err(|e| BenchError::Connect(e.to_string()))?;
        let (mut sink, mut source) = stream.split();

        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });

        let router = Arc::new(Router::default());
        let closed = Arc::new(AtomicBool::new(false));
        let reader = {
            let router = Arc::clone(&router);
            let closed = Arc::clone(&closed);
            tokio::spawn(async move {
                while let Some(item) = source.next().await {
                    let payload = match item {
                        Ok(Message::Text(text)) => text.as_bytes().to_vec(),
                        Ok(Message::Binary(bytes)) => bytes.to_vec(),
                        Ok(Message::Close(_)) | Err(_) => break,
                        // Pings are answered by tungstenite itself.
                        Ok(_) => continue,
                    };
                    // A malformed frame is the server's problem; the
                    // request it belonged to will time out and be counted.
                    if let Ok(messages) = parse_messages(&payload) {
                        for msg in messages {
                            router.route(msg);
                        }
                    }
                }
                // Order matters: flag first, then fail the waiters, so a
                // request registering concurrently sees one or the other.
                closed.store(true, Ordering::SeqCst);
                router.close_all();
            })
        };

        Ok(WsJanus {
            out,
            router,
            closed,
            apisecret: target.apisecret.clone(),
            timeout: target.timeout,
            reader,
            writer,
        })
    }

    /// Sends one request (ids go in the body on this transport) and waits
    /// for the reply `want` asks for, skipping acks where appropriate.
    pub async fn call(
        &self,
        session: Option<u64>,
        handle: Option<u64>,
        verb: &str,
        extra: Option<Value>,
        want: Want,
    ) -> Result<Value> {
        let deadline = Instant::now() + self.timeout;
        let txn = next_transaction();
        let mut body = request(verb, &txn, self.apisecret.as_deref());
        if let Some(s) = session {
            body.insert("session_id".into(), Value::from(s));
        }
        if let Some(h) = handle {
            body.insert("handle_id".into(), Value::from(h));
        }
        if let Some(Value::Object(fields)) = extra {
            body.extend(fields);
        }
        let text = serde_json::to_string(&Value::Object(body)).map_err(|e| BenchError::Protocol(e.to_string()))?;

        let mut waiter = self.router.register(&txn);
        if self.closed.load(Ordering::SeqCst) {
            return Err(BenchError::Closed);
        }
        self.out.send(Message::text(text)).map_err(|_| BenchError::Closed)?;
        waiter.wait(want, deadline).await
    }

    /// Sends a close frame and waits briefly for the server's side of the
    /// closing handshake, so the server frees the socket promptly.
    pub async fn close(mut self) {
        let _ = self.out.send(Message::Close(None));
        // Dropping our sender lets the writer finish and close the sink.
        let (dead, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.out, dead));
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut self.reader).await;
    }
}

impl Drop for WsJanus {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}
