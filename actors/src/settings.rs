//! Core settings, named as in Janus's `janus.jcfg` (`general`, `media`, `nat`, ...), plus
//! Portunus's own `limits`. `src/` loads them (defaults, TOML, environment, flags); the core
//! only reads them.

use serde::{Deserialize, Serialize};

/// `[general]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct General {
    /// Shown in `server_info` and as the event `emitter`.
    pub server_name: String,
    /// Seconds of inactivity before a session expires (0 = never).
    pub session_timeout: u64,
    /// Seconds a session outlives its transport, waiting for a `claim` (0 = destroyed at once).
    pub reclaim_session_timeout: u64,
    /// Seconds queued trickle candidates are kept.
    pub candidates_timeout: u64,
    /// Shared API secret (`apisecret` in requests).
    pub api_secret: Option<String>,
    /// Token authentication on/off.
    pub token_auth: bool,
    /// With `token_auth`: HMAC-SHA1 secret for signed tokens (stored tokens are disabled).
    pub token_auth_secret: Option<String>,
    /// Admin API secret.
    pub admin_secret: Option<String>,
    /// Copy `opaque_id` into events.
    pub opaqueid_in_api: bool,
    /// Omit the dependencies object in `server_info`.
    pub hide_dependencies: bool,
    /// Janus log level 0..7 (4 = info).
    pub debug_level: u8,
    /// Timestamps in log lines.
    pub debug_timestamps: bool,
    /// Colours in log lines.
    pub debug_colors: bool,
    /// Log to stdout.
    pub log_to_stdout: bool,
    /// Log file path.
    pub log_to_file: Option<String>,
    /// IP advertised as `local-ip`.
    pub interface: Option<String>,
    /// Folders no recording or packet dump may be written under.
    pub protected_folders: Vec<String>,
}

impl Default for General {
    fn default() -> Self {
        General {
            server_name: "MyJanusInstance".into(),
            session_timeout: 60,
            reclaim_session_timeout: 0,
            candidates_timeout: 45,
            api_secret: None,
            token_auth: false,
            token_auth_secret: None,
            admin_secret: None,
            opaqueid_in_api: false,
            hide_dependencies: false,
            debug_level: 4,
            debug_timestamps: false,
            debug_colors: true,
            log_to_stdout: true,
            log_to_file: None,
            interface: None,
            protected_folders: DEFAULT_PROTECTED_FOLDERS.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

/// Janus's default `protected_folders` (reference 6.1): system folders and a Janus install's own.
const DEFAULT_PROTECTED_FOLDERS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/initrd",
    "/lib",
    "/lib32",
    "/lib64",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
    "/var",
    "/opt/janus/bin",
    "/opt/janus/etc",
    "/opt/janus/include",
    "/opt/janus/lib",
    "/opt/janus/lib32",
    "/opt/janus/lib64",
    "/opt/janus/sbin",
];

/// `[media]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Media {
    /// Enable IPv6 candidates.
    pub ipv6: bool,
    /// Minimum retransmission buffer in ms.
    pub min_nack_queue: u64,
    /// `min-max` UDP ports for ICE.
    pub rtp_port_range: Option<String>,
    /// Starting DTLS MTU.
    pub dtls_mtu: u64,
    /// Seconds without media before `receiving:false` (0 disables).
    pub no_media_timer: u64,
    /// Lost packets per second that trigger `slowlink` (0 disables).
    pub slowlink_threshold: u64,
    /// Transport-wide CC feedback period in ms.
    pub twcc_period: u64,
    /// Flush the NACK buffer on keyframes.
    pub nack_optimizations: bool,
}

impl Default for Media {
    fn default() -> Self {
        Media {
            ipv6: false,
            min_nack_queue: 200,
            rtp_port_range: None,
            dtls_mtu: 1200,
            no_media_timer: 1,
            slowlink_threshold: 0,
            twcc_period: 200,
            nack_optimizations: false,
        }
    }
}

/// `[nat]`
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Nat {
    /// STUN server host.
    pub stun_server: Option<String>,
    /// STUN server port.
    pub stun_port: Option<u16>,
    /// Send candidates as `trickle` events instead of in the SDP.
    pub full_trickle: bool,
    /// ICE-Lite mode.
    pub ice_lite: bool,
    /// ICE over TCP.
    pub ice_tcp: bool,
    /// Public IPs for host candidates (comma list).
    pub nat_1_1_mapping: Option<String>,
    /// Interfaces or IP prefixes to use (takes precedence over the ignore list).
    pub ice_enforce_list: Option<String>,
    /// Interfaces or IP prefixes to skip.
    pub ice_ignore_list: Option<String>,
    /// TURN server host.
    pub turn_server: Option<String>,
    /// TURN server port.
    pub turn_port: Option<u16>,
    /// TURN transport (udp, tcp, tls).
    pub turn_type: Option<String>,
    /// TURN user.
    pub turn_user: Option<String>,
    /// TURN password.
    pub turn_pwd: Option<String>,
}

/// `[limits]`: Portunus's own caps, so that every table and queue is bounded.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Limits {
    /// Most sessions at once; `create` beyond it fails with 490.
    pub max_sessions: usize,
    /// Most handles per session; `attach` beyond it fails with 461.
    pub max_handles_per_session: usize,
    /// Events kept for a long-poll session before the oldest are dropped.
    pub session_event_queue: usize,
    /// Long polls parked per session; a further one answers the oldest with a keepalive.
    pub max_pending_polls: usize,
    /// Messages waiting in a transport connection's outgoing queue before events are dropped.
    pub connection_queue: usize,
    /// Trickle candidates queued per handle before a PeerConnection exists.
    pub max_queued_candidates: usize,
    /// Worker threads for sessions and handles (0 = one per CPU).
    pub session_workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 100_000,
            max_handles_per_session: 1_000,
            session_event_queue: 1_024,
            max_pending_polls: 4,
            connection_queue: 4_096,
            max_queued_candidates: 256,
            session_workers: 0,
        }
    }
}

/// `[events]` (event handlers).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Events {
    /// Master switch for event handlers.
    pub broadcast: bool,
    /// Seconds between media statistics events.
    pub stats_period: Option<u64>,
}

/// `[certificates]` (DTLS).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Certificates {
    /// PEM certificate file; a self-signed P-256 certificate is generated when unset.
    pub cert_pem: Option<String>,
    /// PEM private key file.
    pub cert_key: Option<String>,
    /// Password of an encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY`).
    pub cert_pwd: Option<String>,
}

/// Everything the core reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CoreSettings {
    /// `[general]`
    pub general: General,
    /// `[certificates]`
    pub certificates: Certificates,
    /// `[media]`
    pub media: Media,
    /// `[nat]`
    pub nat: Nat,
    /// `[limits]`
    pub limits: Limits,
    /// `[events]`
    pub events: Events,
}
