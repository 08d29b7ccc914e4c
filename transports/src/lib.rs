//! Portunus transports: the Janus API and the Admin API over HTTP, WebSocket, RabbitMQ, MQTT and
//! Unix sockets; the event handlers; and the metrics/health endpoints of the admin HTTP port.
//!
//! A transport sees only the transport API of `portunus_actors` (the `Core` handle, `Origin`,
//! `EventSink`); it never imports a plugin.

pub mod brokers;
pub mod control;
pub mod evh;
pub mod http;
pub mod lanes;
pub mod metrics;
pub mod mqtt;
pub mod rabbitmq;
pub mod settings;
mod sink;
pub mod tls;
pub mod unix;
pub mod web;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer};
use portunus_actors::gateway::TransportDescriptor;
use portunus_actors::Core;

pub use brokers::{start_brokers, BrokerSettings, Brokers};
pub use settings::{HttpSettings, WebSettings, WsSettings};

/// Descriptors of the transports the settings enable.
pub fn descriptors(http: &HttpSettings, ws: &WsSettings) -> Vec<TransportDescriptor> {
    let mut d = Vec::new();
    if http.http || http.admin.admin_http {
        d.push(http::DESCRIPTOR);
    }
    if ws.ws || ws.admin.admin_ws {
        d.push(websocket::DESCRIPTOR);
    }
    d
}

/// One listening server.
pub struct Listener {
    /// What it serves (`http`, `admin_http`, `ws`, `admin_ws`).
    pub name: &'static str,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its server future (must be polled/spawned).
    pub server: Server,
}

impl Listener {
    /// A handle to stop it.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }
}

/// Binds every enabled listener. Must run inside the actix system. With `obs`, the admin HTTP
/// server also serves `/metrics`, `/healthz` and `/readyz`.
pub fn bind_all(
    core: &Core,
    http: &HttpSettings,
    ws: &WsSettings,
    connection_queue: usize,
    obs: Option<std::sync::Arc<metrics::Observability>>,
) -> std::io::Result<Vec<Listener>> {
    let workers = match http.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let mut out = Vec::new();
    let http_control = (http.http || http.admin.admin_http).then(|| {
        control::Control::register(core, http::PACKAGE, http.events, |r| {
            let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
            r.insert(
                "connections".into(),
                serde_json::json!({"http": count(&http::CONNECTIONS), "admin_http": count(&http::ADMIN_CONNECTIONS)}),
            );
            r.insert("messages".into(), count(&http::IN_FLIGHT).into());
        })
    });
    let ws_control = (ws.ws || ws.admin.admin_ws).then(|| {
        control::Control::register(core, websocket::PACKAGE, ws.events, |r| {
            r.insert("connections".into(), websocket::CONNECTIONS.load(Ordering::Relaxed).into());
        })
    });
    if let (true, Some(control)) = (http.http, &http_control) {
        let st = http::HttpState::new(core.clone(), http::Api::Janus, http.clone(), control.clone());
        out.push(bind("http", &http.ip, http.port, workers, Some(&http::CONNECTIONS), move || {
            App::new().configure(http::configure(st.clone()))
        })?);
    }
    if let (true, Some(control)) = (http.admin.admin_http, &http_control) {
        let st = http::HttpState::new(core.clone(), http::Api::Admin, http.clone(), control.clone());
        // Counted apart: `/metrics` reports the Janus API port only (scrapes arrive here).
        let count = Some(&http::ADMIN_CONNECTIONS);
        out.push(bind("admin_http", &http.admin.admin_ip, http.admin.admin_port, 1, count, move || {
            let app = App::new();
            let app = match &obs {
                Some(obs) => app.configure(metrics::configure(obs.clone())),
                None => app,
            };
            app.configure(http::configure(st.clone()))
        })?);
    }
    if let (true, Some(control)) = (ws.ws, &ws_control) {
        let st = websocket::WsState::new(core.clone(), http::Api::Janus, ws.clone(), connection_queue, control.clone());
        out.push(bind("ws", &ws.ws_ip, ws.ws_port, workers, None, move || {
            App::new().configure(websocket::configure(st.clone()))
        })?);
    }
    if let (true, Some(control)) = (ws.admin.admin_ws, &ws_control) {
        let st = websocket::WsState::new(core.clone(), http::Api::Admin, ws.clone(), connection_queue, control.clone());
        out.push(bind("admin_ws", &ws.admin.admin_ws_ip, ws.admin.admin_ws_port, 1, None, move || {
            App::new().configure(websocket::configure(st.clone()))
        })?);
    }
    Ok(out)
}

/// Binds the static web server, if enabled. It is a convenience for demos: a port that is taken
/// is logged and skipped, the server runs without it.
pub fn bind_web(web: &WebSettings) -> Option<Listener> {
    if !web.web {
        return None;
    }
    if !std::path::Path::new(&web.root).is_dir() {
        tracing::warn!(root = %web.root, "web: folder not found; static pages not served");
        return None;
    }
    let settings = web.clone();
    match bind("web", &web.ip, web.port, 1, None, move || App::new().configure(web::configure(settings.clone()))) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(port = web.port, error = %e, "web: could not listen; static pages not served");
            None
        }
    }
}

/// Binds one server. With `count`, its open TCP connections are counted there (for `/metrics`).
fn bind<F, I>(
    name: &'static str,
    ip: &str,
    port: u16,
    workers: usize,
    count: Option<&'static AtomicU64>,
    factory: F,
) -> std::io::Result<Listener>
where
    F: Fn() -> App<I> + Send + Clone + 'static,
    I: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let server = HttpServer::new(factory)
        // Janus API traffic is small request/response messages: without TCP_NODELAY a reply
        // followed by an event waits for the client's delayed ACK (~40 ms).
        .on_connect(move |conn, ext| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
            // The connection's extensions live exactly as long as the connection.
            if let Some(count) = count {
                ext.insert(GaugeGuard::new(count));
            }
        })
        .workers(workers)
        .shutdown_timeout(2)
        .disable_signals()
        .bind((ip, port))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{name}: cannot listen on {ip}:{port}: {e}")))?;
    let addr =
        server.addrs().first().copied().ok_or_else(|| std::io::Error::other(format!("{name}: no address bound")))?;
    Ok(Listener { name, addr, server: server.run() })
}

/// One open connection (or request being served) in a gauge: counted while it lives.
pub(crate) struct GaugeGuard(&'static AtomicU64);

impl GaugeGuard {
    pub(crate) fn new(count: &'static AtomicU64) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(count)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
