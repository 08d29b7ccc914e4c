//! Transport settings, named as in Janus's `janus.transport.http.jcfg` and
//! `janus.transport.websockets.jcfg` (their `general` keys at the top, `admin` and `cors` groups
//! as subtables), plus Portunus's own limits.

use serde::{Deserialize, Serialize};

/// `[http]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Serve the Janus API over HTTP.
    pub http: bool,
    /// Port (0 = any free port).
    pub port: u16,
    /// Bind address.
    pub ip: String,
    /// Base path of the Janus API.
    pub base_path: String,
    /// Largest request body in bytes.
    pub max_body_size: usize,
    /// Seconds an idle long poll is held before answering `keepalive`.
    pub longpoll_keepalive: u64,
    /// Seconds before a POST whose reply never comes is closed without a body.
    pub request_timeout: u64,
    /// Worker threads (0 = one per CPU).
    pub workers: usize,
    /// Report transport events (one per request) to event handlers.
    pub events: bool,
    /// `[http.admin]`
    pub admin: HttpAdminSettings,
    /// `[http.cors]`
    pub cors: CorsSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            http: true,
            port: 8088,
            ip: "0.0.0.0".into(),
            base_path: "/janus".into(),
            max_body_size: 1 << 20,
            longpoll_keepalive: 30,
            request_timeout: 10,
            workers: 0,
            events: true,
            admin: HttpAdminSettings::default(),
            cors: CorsSettings::default(),
        }
    }
}

/// `[http.admin]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpAdminSettings {
    /// Serve the Admin API over HTTP.
    pub admin_http: bool,
    /// Port.
    pub admin_port: u16,
    /// Bind address (loopback by default: the Admin API controls the whole server).
    pub admin_ip: String,
    /// Base path.
    pub admin_base_path: String,
}

impl Default for HttpAdminSettings {
    fn default() -> Self {
        HttpAdminSettings {
            admin_http: true,
            admin_port: 7088,
            admin_ip: "127.0.0.1".into(),
            admin_base_path: "/admin".into(),
        }
    }
}

/// `[http.cors]` / `[websockets.cors]`
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CorsSettings {
    /// Allowed origin (default `*`).
    pub allow_origin: Option<String>,
    /// Refuse requests from other origins with 403.
    pub enforce_cors: bool,
}

/// `[websockets]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct WsSettings {
    /// Serve the Janus API over WebSocket.
    pub ws: bool,
    /// Port (0 = any free port).
    pub ws_port: u16,
    /// Bind address.
    pub ws_ip: String,
    /// Seconds of silence before a WebSocket PING (0 = off).
    pub pingpong_trigger: u64,
    /// Seconds to wait for the PONG before closing.
    pub pingpong_timeout: u64,
    /// Largest frame in bytes.
    pub max_message_size: usize,
    /// Requests queued per connection before reading pauses.
    pub request_queue: usize,
    /// Report transport events (connected, disconnected) to event handlers.
    pub events: bool,
    /// `[websockets.admin]`
    pub admin: WsAdminSettings,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            ws: true,
            ws_port: 8188,
            ws_ip: "0.0.0.0".into(),
            pingpong_trigger: 0,
            pingpong_timeout: 0,
            max_message_size: 1 << 20,
            request_queue: 64,
            events: true,
            admin: WsAdminSettings::default(),
        }
    }
}

/// `[websockets.admin]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct WsAdminSettings {
    /// Serve the Admin API over WebSocket.
    pub admin_ws: bool,
    /// Port.
    pub admin_ws_port: u16,
    /// Bind address.
    pub admin_ws_ip: String,
}

impl Default for WsAdminSettings {
    fn default() -> Self {
        WsAdminSettings { admin_ws: true, admin_ws_port: 7188, admin_ws_ip: "127.0.0.1".into() }
    }
}

/// `[web]`: the demo pages (`static/`) or a folder of the user's own pages, on their own port.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct WebSettings {
    /// Serve the folder.
    pub web: bool,
    /// Port (0 = any free port).
    pub port: u16,
    /// Bind address.
    pub ip: String,
    /// The folder to serve.
    pub root: String,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings { web: true, port: 8000, ip: "0.0.0.0".into(), root: "static".into() }
    }
}
