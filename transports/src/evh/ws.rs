//! `janus.eventhandler.wsevh`: events as WebSocket text messages to a server (`backend`), one
//! message per batch. The connection is re-established with exponential backoff; the batch being
//! sent when it broke is sent again after the reconnect, and events arriving meanwhile wait in the
//! bounded queue (or are dropped and counted).

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::{HandlerSettings, SenderParts};
use crate::brokers::flag;
use crate::lanes::backoff_ms;

/// Package name.
pub const PACKAGE: &str = "janus.eventhandler.wsevh";

/// `[wsevh]` (janus.eventhandler.wsevh.jcfg), plus Portunus's queue and reconnect settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct WsEvhSettings {
    /// Run this handler.
    #[serde(deserialize_with = "flag")]
    pub enabled: bool,
    /// Event mask.
    pub events: String,
    /// Send arrays of up to 100 events per message.
    #[serde(deserialize_with = "flag")]
    pub grouping: bool,
    /// JSON layout.
    pub json: String,
    /// Server URL (`ws://`; `wss://` is not supported in this build).
    pub backend: String,
    /// WebSocket subprotocol to ask for.
    pub subprotocol: Option<String>,
    /// Accepted for compatibility (libwebsockets logging).
    pub ws_logging: Option<String>,
    /// Events queued before new ones are dropped.
    pub queue_size: usize,
    /// First reconnect delay in ms; doubles per failed attempt.
    pub reconnect_backoff: u64,
    /// Longest reconnect delay in ms.
    pub reconnect_backoff_max: u64,
}

impl Default for WsEvhSettings {
    fn default() -> Self {
        WsEvhSettings {
            enabled: false,
            events: "all".into(),
            grouping: true,
            json: "compact".into(),
            backend: String::new(),
            subprotocol: None,
            ws_logging: None,
            queue_size: 10_000,
            reconnect_backoff: 250,
            reconnect_backoff_max: 10_000,
        }
    }
}

impl HandlerSettings for WsEvhSettings {
    fn events(&self) -> &str {
        &self.events
    }
    fn grouping(&self) -> bool {
        self.grouping
    }
    fn json(&self) -> &str {
        &self.json
    }
    fn queue_size(&self) -> usize {
        self.queue_size
    }
}

/// The sender task.
pub async fn run(mut parts: SenderParts<WsEvhSettings>) {
    let mut batch = Vec::new();
    let mut pending: Option<(String, u64)> = None;
    let mut failures = 0u32;
    loop {
        let s = parts.settings.borrow().clone();
        if failures > 0 {
            let delay = backoff_ms(failures, s.reconnect_backoff, s.reconnect_backoff_max);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let mut request = match s.backend.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, backend = %s.backend, "wsevh: bad backend URL");
                failures = failures.saturating_add(1);
                continue;
            }
        };
        if let Some(p) = s.subprotocol.as_deref().and_then(|p| HeaderValue::from_str(p).ok()) {
            request.headers_mut().insert("Sec-WebSocket-Protocol", p);
        }
        let ws = match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::debug!(error = %e, "wsevh: cannot connect");
                continue;
            }
        };
        tracing::info!(backend = %s.backend, "wsevh: connected");
        let (mut sink, mut stream) = ws.split();
        loop {
            if let Some((text, n)) = pending.take() {
                if sink.send(Message::text(text.clone())).await.is_err() {
                    pending = Some((text, n));
                    break;
                }
                parts.stats.sent.fetch_add(n, Ordering::Relaxed);
            }
            tokio::select! {
                got = parts.next_batch(&mut batch) => {
                    if got.is_none() {
                        return;
                    }
                    pending = Some((parts.render(&batch), batch.len() as u64));
                }
                frame = stream.next() => match frame {
                    // Pings are answered by the library while reading; other frames are ignored.
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        failures = 1;
        tracing::warn!(backend = %s.backend, "wsevh: disconnected; reconnecting");
    }
}
