//! `server_info` (reference section 3): the same object for `info`, `GET /janus/info`, Admin
//! `info` and the core "started" event.

use std::sync::atomic::Ordering;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::plugin::PluginDescriptor;
use crate::state::ServerState;

/// Janus version we speak (1.1.2 = 1102).
pub const JANUS_VERSION: u32 = 1102;
/// Janus version string.
pub const JANUS_VERSION_STRING: &str = "1.1.2";

/// Identity of a transport (listed in `server_info.transports`).
#[derive(Clone, Debug, Serialize)]
pub struct TransportDescriptor {
    /// Package, e.g. `janus.transport.http`.
    #[serde(skip)]
    pub package: &'static str,
    /// Name.
    pub name: &'static str,
    /// Author.
    pub author: &'static str,
    /// Description.
    pub description: &'static str,
    /// Version string.
    pub version_string: &'static str,
    /// Version.
    pub version: u32,
}

/// Builds the `server_info` fields (everything but `janus` and `transaction`).
pub fn server_info(
    state: &ServerState,
    transports: &[TransportDescriptor],
    plugins: &[PluginDescriptor],
) -> Map<String, Value> {
    let s = &state.settings;
    let g = &s.general;
    let rt = &state.runtime;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("name", json!("Janus WebRTC Server"));
    put("version", json!(JANUS_VERSION));
    put("version_string", json!(JANUS_VERSION_STRING));
    put("author", json!("Meetecho s.r.l."));
    put("commit-hash", json!(concat!("portunus-", env!("CARGO_PKG_VERSION"))));
    put("compile-time", json!("not-recorded"));
    put("log-to-stdout", json!(g.log_to_stdout));
    put("log-to-file", json!(g.log_to_file.is_some()));
    if let Some(path) = &g.log_to_file {
        put("log-path", json!(path));
    }
    put("data_channels", json!(true));
    put("accepting-new-sessions", json!(state.accepting()));
    put("session-timeout", json!(rt.session_timeout.load(Ordering::Relaxed)));
    put("reclaim-session-timeout", json!(g.reclaim_session_timeout));
    put("candidates-timeout", json!(g.candidates_timeout));
    put("server-name", json!(g.server_name));
    put("local-ip", json!(g.interface.clone().unwrap_or_else(|| "127.0.0.1".into())));
    if let Some(map) = &s.nat.nat_1_1_mapping {
        let ips: Vec<&str> = map.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if ips.len() == 1 {
            put("public-ip", json!(ips[0]));
        } else if ips.len() > 1 {
            put("public-ips", json!(ips));
        }
    }
    put("ipv6", json!(s.media.ipv6));
    put("ice-lite", json!(s.nat.ice_lite));
    put("ice-tcp", json!(s.nat.ice_tcp));
    put("full-trickle", json!(s.nat.full_trickle));
    put("mdns-enabled", json!(false));
    put("min-nack-queue", json!(rt.min_nack_queue.load(Ordering::Relaxed)));
    put("nack-optimizations", json!(rt.nack_optimizations.load(Ordering::Relaxed)));
    // The period in effect (0 is the default, others whole NACK beats), as Janus reports its own.
    put("twcc-period", json!(crate::media::twcc_period_ms(s.media.twcc_period)));
    put("dtls-mtu", json!(s.media.dtls_mtu));
    if let Some(stun) = &s.nat.stun_server {
        put("stun-server", json!(format!("{stun}:{}", s.nat.stun_port.unwrap_or(3478))));
    }
    if let Some(turn) = &s.nat.turn_server {
        put("turn-server", json!(format!("{turn}:{}", s.nat.turn_port.unwrap_or(3478))));
    }
    put("static-event-loops", json!(0));
    put("api_secret", json!(g.api_secret.is_some()));
    put("auth_token", json!(g.token_auth));
    put("event_handlers", json!(state.events.enabled()));
    put("opaqueid_in_api", json!(g.opaqueid_in_api));
    if !g.hide_dependencies {
        put(
            "dependencies",
            json!({
                "actix": "0.13",
                "actix-web": "4",
                "serde_json": "1",
                "tokio": "1",
            }),
        );
    }
    let listing = |items: Vec<(&'static str, Value)>| -> Value {
        Value::Object(items.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    };
    put(
        "transports",
        listing(transports.iter().map(|t| (t.package, serde_json::to_value(t).unwrap_or_default())).collect()),
    );
    put("events", json!({}));
    put("loggers", json!({}));
    put("plugins", listing(plugins.iter().map(|p| (p.package, serde_json::to_value(p).unwrap_or_default())).collect()));
    m
}
