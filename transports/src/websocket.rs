//! `janus.transport.websockets`: the Janus API (subprotocol `janus-protocol`) and the Admin API
//! (`janus-admin-protocol`) over WebSocket (reference 1.8), one actor per connection.
//!
//! Each connection has three parts: the actor (lifecycle, reading, WebSocket ping/pong, telling the
//! core when the socket closes), a request task (runs the connection's requests one at a time, in
//! order, so a `trickle` never overtakes the `message` before it) and a writer task (the only
//! writer of the socket). Both queues are bounded: reading pauses when requests pile up, and
//! events beyond the outgoing queue are dropped and counted rather than buffered without limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, ProtocolError};
use bytes::Bytes;
use portunus_actors::api::{ApiError, ConnectionId, ErrorCode, Outgoing};
use portunus_actors::gateway::TransportDescriptor;
use portunus_actors::transport::Origin;
use portunus_actors::Core;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::control::Control;
use crate::http::Api;
use crate::settings::WsSettings;
use crate::sink::QueueSink;

/// Package name of this transport.
pub const PACKAGE: &str = "janus.transport.websockets";

/// Open WebSocket connections, Janus API and Admin API together (for `/metrics`).
pub static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `server_info` entry.
pub const DESCRIPTOR: TransportDescriptor = TransportDescriptor {
    package: PACKAGE,
    name: "JANUS WebSockets transport plugin",
    author: "Meetecho s.r.l.",
    description: "This transport plugin adds WebSockets support to the Janus API via libwebsockets.",
    version_string: "0.0.1",
    version: 1,
};

/// Subprotocol of the Janus API.
pub const JANUS_PROTOCOL: &str = "janus-protocol";
/// Subprotocol of the Admin API.
pub const ADMIN_PROTOCOL: &str = "janus-admin-protocol";

/// Per-server state shared by its workers.
pub struct WsState {
    core: Core,
    api: Api,
    settings: WsSettings,
    queue: usize,
    control: Arc<Control>,
}

impl WsState {
    /// State for one server.
    pub fn new(
        core: Core,
        api: Api,
        settings: WsSettings,
        connection_queue: usize,
        control: Arc<Control>,
    ) -> Arc<Self> {
        Arc::new(WsState { core, api, settings, queue: connection_queue.max(16), control })
    }

    fn protocol(&self) -> &'static str {
        match self.api {
            Api::Janus => JANUS_PROTOCOL,
            Api::Admin => ADMIN_PROTOCOL,
        }
    }
}

/// Registers the upgrade handler on every path (Janus WebSockets have no paths).
pub fn configure(state: Arc<WsState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(state)).default_service(web::to(upgrade));
    }
}

async fn upgrade(req: HttpRequest, body: web::Payload, state: web::Data<WsState>) -> HttpResponse {
    let protocol = state.protocol();
    let offered = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == protocol);
    if !offered {
        return HttpResponse::BadRequest().body(format!("WebSocket subprotocol '{protocol}' required"));
    }
    match actix_ws::handle_with_protocols(&req, body, &[protocol]) {
        Ok((response, session, stream)) => {
            let max = state.settings.max_message_size;
            let stream = stream.max_frame_size(max).aggregate_continuations().max_continuation_size(max);
            WsConnection::start_with(state.into_inner(), session, stream, req.peer_addr());
            response
        }
        Err(e) => HttpResponse::from_error(e),
    }
}

/// The connection actor.
struct WsConnection {
    id: ConnectionId,
    state: Arc<WsState>,
    session: actix_ws::Session,
    requests: Option<mpsc::Sender<Bytes>>,
    last_heard: Instant,
}

impl WsConnection {
    fn start_with(
        state: Arc<WsState>,
        session: actix_ws::Session,
        stream: AggregatedMessageStream,
        peer: Option<std::net::SocketAddr>,
    ) {
        let id = ConnectionId::next();
        state.control.notify(id, || {
            let mut data = serde_json::json!({"event": "connected", "admin_api": state.api == Api::Admin});
            if let Some(peer) = peer {
                data["ip"] = peer.ip().to_string().into();
                data["port"] = peer.port().into();
            }
            data
        });
        let (out_tx, mut out_rx) = mpsc::channel::<String>(state.queue);
        let (req_tx, mut req_rx) = mpsc::channel::<Bytes>(state.settings.request_queue.max(1));

        // Writer: the only task writing to the socket.
        let mut writer = session.clone();
        actix_rt::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if writer.text(text).await.is_err() {
                    break;
                }
            }
        });

        // Requests: one at a time, in arrival order.
        let sink = Arc::new(QueueSink::new(out_tx.clone()));
        let origin = Origin::push(PACKAGE, id, sink);
        let core = state.core.clone();
        let api = state.api;
        actix_rt::spawn(async move {
            while let Some(frame) = req_rx.recv().await {
                for reply in run_frame(&core, api, &origin, &frame).await {
                    if out_tx.send(reply).await.is_err() {
                        return;
                    }
                }
            }
        });

        let span = tracing::debug_span!("conn", transport = "websockets", id = id.0);
        let _e = span.enter();
        WsConnection::create(move |ctx| {
            ctx.add_stream(stream);
            WsConnection { id, state, session, requests: Some(req_tx), last_heard: Instant::now() }
        });
    }
}

/// Runs every JSON object of one frame (Janus compat 1.8: a frame may hold several) and returns
/// the replies in order. A parse error answers 454 and stops at that point.
async fn run_frame(core: &Core, api: Api, origin: &Origin, frame: &[u8]) -> Vec<String> {
    let mut replies = Vec::new();
    for item in serde_json::Deserializer::from_slice(frame).into_iter::<Value>() {
        let reply = match item {
            Ok(value) => match api {
                Api::Janus => core.handle_value(origin, value).await,
                Api::Admin => core.admin_value(value).await,
            },
            Err(e) => {
                let err = ApiError::new(ErrorCode::InvalidJson, format!("JSON error: on line {}: {}", e.line(), e));
                replies.push(Outgoing::error(None, None, &err).to_json());
                break;
            }
        };
        replies.push(reply.to_json());
    }
    replies
}

impl Actor for WsConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let trigger = self.state.settings.pingpong_trigger;
        let timeout = self.state.settings.pingpong_timeout;
        if trigger > 0 && timeout > 0 {
            ctx.run_interval(Duration::from_secs(trigger), move |this, ctx| {
                let silent = this.last_heard.elapsed();
                if silent >= Duration::from_secs(trigger + timeout) {
                    tracing::info!(connection = this.id.0, "no PONG: closing WebSocket");
                    ctx.stop();
                } else if silent >= Duration::from_secs(trigger) {
                    let mut s = this.session.clone();
                    actix_rt::spawn(async move {
                        let _ = s.ping(b"").await;
                    });
                }
            });
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        CONNECTIONS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.state.control.notify(self.id, || serde_json::json!({"event": "disconnected"}));
        // Closing the request queue ends the request task; the writer ends with it.
        self.requests = None;
        if self.state.api == Api::Janus {
            self.state.core.transport_gone(self.id);
        }
        let s = self.session.clone();
        actix_rt::spawn(async move {
            let _ = s.close(None).await;
        });
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for WsConnection {
    fn handle(&mut self, msg: Result<AggregatedMessage, ProtocolError>, ctx: &mut Context<Self>) {
        self.last_heard = Instant::now();
        let frame = match msg {
            Ok(AggregatedMessage::Text(text)) => text.into_bytes(),
            Ok(AggregatedMessage::Binary(bytes)) => bytes,
            Ok(AggregatedMessage::Ping(p)) => {
                let mut s = self.session.clone();
                actix_rt::spawn(async move {
                    let _ = s.pong(&p).await;
                });
                return;
            }
            Ok(AggregatedMessage::Pong(_)) => return,
            Ok(AggregatedMessage::Close(_)) | Err(_) => {
                ctx.stop();
                return;
            }
        };
        let Some(tx) = self.requests.clone() else { return };
        // Backpressure: the actor stops reading the socket until the request queue has room.
        ctx.wait(
            async move {
                let _ = tx.send(frame).await;
            }
            .into_actor(self),
        );
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
