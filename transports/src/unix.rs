//! `janus.transport.pfunix`: the Janus API and the Admin API over Unix sockets (reference 1.9),
//! `SOCK_SEQPACKET` (default) or `SOCK_DGRAM`, on the paths of `[pfunix]` / `[pfunix.admin]`.
//!
//! One JSON message per packet, ids in the body. With `SOCK_SEQPACKET` every accepted peer is a
//! connection like a WebSocket: its requests run in order, replies and its sessions' events go
//! back on it, and its sessions are destroyed when it closes (Janus compat 1.6). With
//! `SOCK_DGRAM` a peer is known by the path it sends from (an unbound sender cannot be answered);
//! nothing tells when it goes away, so its sessions live until destroyed or timed out.
//!
//! Every queue is bounded: a connection's outgoing queue drops (and counts) events beyond its
//! capacity; reading pauses while its requests pile up; at most [`MAX_DGRAM_PEERS`] datagram
//! peers are tracked.
//!
//! Admin `query_transport` answers `configure` and `connections` (peers of both kinds), and
//! transport events report `connected` peers and closed connections, as Janus's transport does.

use std::collections::HashMap;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use portunus_actors::api::{ApiError, ConnectionId, ErrorCode, Outgoing};
use portunus_actors::gateway::TransportDescriptor;
use portunus_actors::transport::Origin;
use portunus_actors::Core;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::{UnixDatagram, UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::control::Control;
use crate::http::Api;
use crate::lanes::JsonStyle;
use crate::sink::QueueSink;

/// Package name of this transport.
pub const PACKAGE: &str = "janus.transport.pfunix";

/// `server_info` entry.
pub const DESCRIPTOR: TransportDescriptor = TransportDescriptor {
    package: PACKAGE,
    name: "JANUS Unix Sockets transport plugin",
    author: "Meetecho s.r.l.",
    description: "This transport plugin adds Unix Sockets support to the Janus API.",
    version_string: "0.0.1",
    version: 1,
};

/// Most datagram peers tracked at once; beyond it the request task of an older one is dropped.
pub const MAX_DGRAM_PEERS: usize = 1024;
/// Open `SOCK_SEQPACKET` connections and tracked `SOCK_DGRAM` peers, for `/metrics`.
pub static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Largest packet read.
const MAX_PACKET: usize = 256 * 1024;
/// Requests queued per peer before reading pauses.
const REQUEST_QUEUE: usize = 64;

/// `[pfunix]` (janus.transport.pfunix.jcfg `general`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct UnixSettings {
    /// Serve the Janus API on a Unix socket.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub enabled: bool,
    /// Tell event handlers about transport events.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub events: bool,
    /// Outgoing JSON layout: `indented`, `plain` or `compact`.
    pub json: String,
    /// Socket path of the Janus API.
    pub path: Option<String>,
    /// `SOCK_SEQPACKET` (default) or `SOCK_DGRAM`.
    #[serde(rename = "type")]
    pub kind: String,
    /// File mode of the socket, octal (Portunus; e.g. "0660"). Unset: the umask decides.
    pub permissions: Option<String>,
    /// Messages waiting to be sent per connection; events beyond it are dropped and counted.
    pub outgoing_queue: usize,
    /// `[pfunix.admin]`
    pub admin: UnixAdminSettings,
}

impl Default for UnixSettings {
    fn default() -> Self {
        UnixSettings {
            enabled: false,
            events: true,
            json: "compact".into(),
            path: None,
            kind: "SOCK_SEQPACKET".into(),
            permissions: None,
            outgoing_queue: 1024,
            admin: UnixAdminSettings::default(),
        }
    }
}

/// `[pfunix.admin]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct UnixAdminSettings {
    /// Serve the Admin API on a Unix socket.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub admin_enabled: bool,
    /// Socket path of the Admin API.
    pub admin_path: Option<String>,
    /// `SOCK_SEQPACKET` (default) or `SOCK_DGRAM`.
    pub admin_type: String,
    /// File mode of the admin socket, octal (Portunus). Unset: the umask decides.
    pub admin_permissions: Option<String>,
}

impl Default for UnixAdminSettings {
    fn default() -> Self {
        UnixAdminSettings {
            admin_enabled: false,
            admin_path: None,
            admin_type: "SOCK_SEQPACKET".into(),
            admin_permissions: None,
        }
    }
}

/// Binds the enabled sockets and serves them in the background (inside the actix system).
/// Returns ready-line entries (`pfunix`, `pfunix_admin`) with their paths.
pub fn start(core: &Core, s: &UnixSettings) -> std::io::Result<Vec<(&'static str, String)>> {
    let mut ready = Vec::new();
    let style = JsonStyle::parse(&s.json);
    // Reachable through `query_transport` when it serves anything, as Janus's loaded transport.
    let serves = (s.enabled && s.path.is_some()) || (s.admin.admin_enabled && s.admin.admin_path.is_some());
    let control = serves.then(|| {
        Control::register(core, PACKAGE, s.events, |r| {
            r.insert("connections".into(), CONNECTIONS.load(Ordering::Relaxed).into());
        })
    });
    let serve_api = |api, path: &str, kind: &str, mode: Option<&str>| {
        let control = control.clone().expect("registered when an API is served");
        let shared = Shared { core: core.clone(), api, style, queue: s.outgoing_queue.max(16), control };
        serve(shared, path, kind, mode)
    };
    // Janus compat: an enabled API without a path is skipped with a warning.
    match (s.enabled, s.path.as_deref()) {
        (true, Some(path)) => {
            serve_api(Api::Janus, path, &s.kind, s.permissions.as_deref())?;
            ready.push(("pfunix", path.to_owned()));
        }
        (true, None) => tracing::warn!("pfunix: enabled but no `path`: Janus API socket not started"),
        _ => {}
    }
    let a = &s.admin;
    match (a.admin_enabled, a.admin_path.as_deref()) {
        (true, Some(path)) => {
            serve_api(Api::Admin, path, &a.admin_type, a.admin_permissions.as_deref())?;
            ready.push(("pfunix_admin", path.to_owned()));
        }
        (true, None) => tracing::warn!("pfunix: admin_enabled but no `admin_path`: Admin API socket not started"),
        _ => {}
    }
    Ok(ready)
}

#[derive(Clone)]
struct Shared {
    core: Core,
    api: Api,
    style: JsonStyle,
    queue: usize,
    control: Arc<Control>,
}

fn serve(shared: Shared, path: &str, kind: &str, mode: Option<&str>) -> std::io::Result<()> {
    let seqpacket = match kind.to_ascii_uppercase().as_str() {
        "SOCK_SEQPACKET" | "" => true,
        "SOCK_DGRAM" => false,
        other => return Err(std::io::Error::other(format!("pfunix: unknown socket type {other}"))),
    };
    // A stale socket file from an earlier run would make bind fail.
    if Path::new(path).exists() {
        std::fs::remove_file(path)?;
    }
    let api = shared.api;
    let bound = |e: std::io::Error| std::io::Error::new(e.kind(), format!("pfunix: cannot bind {path}: {e}"));
    if seqpacket {
        let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
        socket.bind(&SockAddr::unix(path)?).map_err(bound)?;
        socket.listen(128)?;
        socket.set_nonblocking(true)?;
        set_mode(path, mode)?;
        // A listening SOCK_SEQPACKET socket accepts like a stream one; the accepted sockets keep
        // packet boundaries for every read and write, which is all the stream types do here.
        let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(OwnedFd::from(socket)))?;
        actix_rt::spawn(accept_loop(listener, shared));
    } else {
        let socket = UnixDatagram::bind(path).map_err(bound)?;
        set_mode(path, mode)?;
        actix_rt::spawn(datagram_loop(Arc::new(socket), shared));
    }
    tracing::info!(path, seqpacket, api = ?api, "Unix socket listening");
    Ok(())
}

fn set_mode(path: &str, mode: Option<&str>) -> std::io::Result<()> {
    let Some(mode) = mode else { return Ok(()) };
    let bits = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
        .map_err(|_| std::io::Error::other(format!("pfunix: permissions '{mode}' is not octal")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits))
}

/// Runs one request and returns the reply (454 for a packet that is not JSON).
async fn run_request(shared: &Shared, origin: &Origin, packet: &[u8]) -> String {
    let reply = match serde_json::from_slice::<Value>(packet) {
        Ok(value) => match shared.api {
            Api::Janus => shared.core.handle_value(origin, value).await,
            Api::Admin => shared.core.admin_value(value).await,
        },
        Err(e) => {
            let err = ApiError::new(ErrorCode::InvalidJson, format!("JSON error: on line {}: {}", e.line(), e));
            Outgoing::error(None, None, &err)
        }
    };
    reply.to_json()
}

async fn accept_loop(listener: UnixListener, shared: Shared) {
    loop {
        match listener.accept().await {
            Ok((peer, _)) => {
                actix_rt::spawn(connection(Arc::new(peer), shared.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "pfunix: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One `SOCK_SEQPACKET` peer: a reader (this task), a request task and a writer.
async fn connection(fd: Arc<UnixStream>, shared: Shared) {
    let id = ConnectionId::next();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(shared.queue);
    let (req_tx, mut req_rx) = mpsc::channel::<Vec<u8>>(REQUEST_QUEUE);
    let writer_fd = fd.clone();
    let style = shared.style;
    actix_rt::spawn(async move {
        while let Some(json) = out_rx.recv().await {
            let bytes = style.apply(json).into_bytes();
            if send_packet(&writer_fd, &bytes).await.is_err() {
                break;
            }
        }
    });
    let sink = Arc::new(QueueSink::new(out_tx.clone()));
    let origin = Origin::push(PACKAGE, id, sink);
    let req_shared = shared.clone();
    actix_rt::spawn(async move {
        while let Some(packet) = req_rx.recv().await {
            let reply = run_request(&req_shared, &origin, &packet).await;
            if out_tx.send(reply).await.is_err() {
                return;
            }
        }
    });
    tracing::debug!(connection = id.0, "pfunix peer connected");
    let admin_api = shared.api == Api::Admin;
    shared.control.notify(id, || json!({"event": "connected", "admin_api": admin_api, "fd": fd.as_raw_fd()}));
    CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let n = match recv_packet(&fd, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Backpressure: reading pauses while the request queue is full.
        if req_tx.send(buf[..n].to_vec()).await.is_err() {
            break;
        }
    }
    tracing::debug!(connection = id.0, "pfunix peer gone");
    shared.control.notify(id, || json!({"event": "disconnected"}));
    CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    if shared.api == Api::Janus {
        shared.core.transport_gone(id);
    }
}

/// One packet (0 = the peer closed).
async fn recv_packet(sock: &UnixStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        sock.readable().await?;
        match sock.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

async fn send_packet(sock: &UnixStream, bytes: &[u8]) -> std::io::Result<()> {
    loop {
        sock.writable().await?;
        match sock.try_write(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// One `SOCK_DGRAM` peer, known by its path.
struct DgramPeer {
    requests: mpsc::Sender<Vec<u8>>,
}

async fn datagram_loop(socket: Arc<UnixDatagram>, shared: Shared) {
    let mut peers: HashMap<PathBuf, DgramPeer> = HashMap::new();
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "pfunix: datagram receive failed");
                continue;
            }
        };
        let Some(path) = from.as_pathname().map(Path::to_path_buf) else {
            tracing::warn!("pfunix: datagram from an unbound socket cannot be answered; ignored");
            continue;
        };
        let before = peers.len();
        peers.retain(|_, p| !p.requests.is_closed());
        CONNECTIONS.fetch_sub((before - peers.len()) as u64, Ordering::Relaxed);
        if !peers.contains_key(&path) {
            if peers.len() >= MAX_DGRAM_PEERS {
                // Forget one peer's request task; its sessions keep delivering to its path.
                if let Some(old) = peers.keys().next().cloned() {
                    tracing::warn!(peer = %old.display(), "pfunix: too many datagram peers; forgetting one");
                    peers.remove(&old);
                    CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
                }
            }
            peers.insert(path.clone(), datagram_peer(socket.clone(), path.clone(), shared.clone()));
            CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(peer) = peers.get(&path) {
            let _ = peer.requests.send(buf[..n].to_vec()).await;
        }
    }
}

fn datagram_peer(socket: Arc<UnixDatagram>, path: PathBuf, shared: Shared) -> DgramPeer {
    let (out_tx, mut out_rx) = mpsc::channel::<String>(shared.queue);
    let (req_tx, mut req_rx) = mpsc::channel::<Vec<u8>>(REQUEST_QUEUE);
    let style = shared.style;
    let to = path.clone();
    actix_rt::spawn(async move {
        while let Some(json) = out_rx.recv().await {
            if let Err(e) = socket.send_to(style.apply(json).as_bytes(), &to).await {
                tracing::debug!(peer = %to.display(), error = %e, "pfunix: datagram peer unreachable");
            }
        }
    });
    let sink = Arc::new(QueueSink::new(out_tx.clone()));
    let id = ConnectionId::next();
    let admin_api = shared.api == Api::Admin;
    // Janus compat: a datagram peer has no descriptor of its own (-1); nothing reports it gone.
    shared.control.notify(id, || json!({"event": "connected", "admin_api": admin_api, "fd": -1, "type": "SOCK_DGRAM"}));
    let origin = Origin::push(PACKAGE, id, sink);
    actix_rt::spawn(async move {
        while let Some(packet) = req_rx.recv().await {
            let reply = run_request(&shared, &origin, &packet).await;
            if out_tx.send(reply).await.is_err() {
                return;
            }
        }
    });
    DgramPeer { requests: req_tx }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn janus_keys() {
        let s: UnixSettings = serde_json::from_value(serde_json::json!({
            "enabled": true, "path": "/tmp/x", "type": "SOCK_DGRAM",
            "admin": {"admin_enabled": "yes", "admin_path": "/tmp/y"}
        }))
        .unwrap();
        assert_eq!(s.kind, "SOCK_DGRAM");
        assert!(s.admin.admin_enabled);
        assert_eq!(s.admin.admin_type, "SOCK_SEQPACKET");
    }
}
