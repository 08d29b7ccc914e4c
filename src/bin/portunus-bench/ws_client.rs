//! The Janus API over its WebSocket transport (`janus-protocol`
//! subprotocol). One socket carries any number of sessions: a writer task
//! serialises outgoing frames, a reader task routes every incoming message
//! to the request waiting for its `transaction`, so many requests can be in
//! flight on one socket, as with janus.js.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::janus::{parse_messages, BenchError, Result, Routed, RoutedTransport, Target};

/// How long `close` waits for the server to acknowledge the close frame
/// before dropping the socket anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

pub struct WsJanus {
    out: mpsc::UnboundedSender<Message>,
    routed: Routed,
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

        let routed = Routed::new(target);
        let reader = {
            let router = routed.router.clone();
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
                router.close_all();
            })
        };

        Ok(WsJanus { out, routed, reader, writer })
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

impl RoutedTransport for WsJanus {
    fn routed(&self) -> &Routed {
        &self.routed
    }

    async fn send(&self, _txn: &str, text: String) -> Result<()> {
        self.out.send(Message::text(text)).map_err(|_| BenchError::Closed)
    }
}

impl Drop for WsJanus {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}
