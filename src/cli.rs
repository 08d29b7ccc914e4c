//! Command-line interface: Janus's flag names for the common settings, plus Portunus's own.

use clap::{Parser, Subcommand};
use config::Value;

/// A WebRTC server that speaks the Janus API.
#[derive(Debug, Parser)]
#[command(name = "portunus", version, about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(short = 'c', long = "config", env = "PORTUNUS_CONFIG")]
    pub config: Option<String>,
    /// Janus configuration folder (janus.jcfg, janus.transport.*.jcfg, janus.plugin.*.jcfg).
    #[arg(short = 'F', long = "configs-folder", env = "PORTUNUS_CONFIGS_FOLDER")]
    pub configs_folder: Option<String>,
    /// Log level 0 (none) to 7 (everything); 4 = info.
    #[arg(short = 'd', long = "debug-level")]
    pub debug_level: Option<u8>,
    /// Also log to this file.
    #[arg(short = 'L', long = "log-file")]
    pub log_file: Option<String>,
    /// API secret clients must send as `apisecret`.
    #[arg(short = 'a', long = "apisecret")]
    pub apisecret: Option<String>,
    /// Enable token authentication.
    #[arg(short = 'A', long = "token-auth")]
    pub token_auth: bool,
    /// Secret for HMAC-signed tokens (with --token-auth).
    #[arg(long = "token-auth-secret")]
    pub token_auth_secret: Option<String>,
    /// Admin API secret.
    #[arg(long = "admin-secret")]
    pub admin_secret: Option<String>,
    /// Session timeout in seconds (0 = never).
    #[arg(short = 's', long = "session-timeout")]
    pub session_timeout: Option<u64>,
    /// UDP port range for media, "min-max".
    #[arg(short = 'r', long = "rtp-port-range")]
    pub rtp_port_range: Option<String>,
    /// Public IP (1:1 NAT mapping) to advertise in candidates.
    #[arg(short = 'e', long = "public-ip")]
    pub public_ip: Option<String>,
    /// Interfaces or IP prefixes to use for ICE (comma list).
    #[arg(short = 'X', long = "ice-enforce-list")]
    pub ice_enforce_list: Option<String>,
    /// Janus API HTTP port (0 = any free port).
    #[arg(long = "http-port")]
    pub http_port: Option<u16>,
    /// Janus API WebSocket port (0 = any free port).
    #[arg(long = "ws-port")]
    pub ws_port: Option<u16>,
    /// Admin API HTTP port (0 = any free port).
    #[arg(long = "admin-http-port")]
    pub admin_http_port: Option<u16>,
    /// Admin API WebSocket port (0 = any free port).
    #[arg(long = "admin-ws-port")]
    pub admin_ws_port: Option<u16>,
    /// Port of the static web server for the demo pages (0 = any free port).
    #[arg(long = "web-port")]
    pub web_port: Option<u16>,
    /// Serve this folder of your own pages instead of the demos.
    #[arg(long = "web-root")]
    pub web_root: Option<String>,
    /// Do not serve any web pages.
    #[arg(long = "no-web")]
    pub no_web: bool,
    /// A subcommand instead of running the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert a Janus configuration folder to Portunus TOML on stdout.
    Jcfg2toml {
        /// The folder holding janus.jcfg and friends.
        dir: String,
    },
}

impl Cli {
    /// Flags that were given, as configuration keys (the last layer).
    pub fn overrides(&self) -> Vec<(&'static str, Value)> {
        let mut o: Vec<(&'static str, Value)> = Vec::new();
        let mut put = |k: &'static str, v: Option<Value>| {
            if let Some(v) = v {
                o.push((k, v));
            }
        };
        put("general.debug_level", self.debug_level.map(|v| Value::from(v as i64)));
        put("general.log_to_file", self.log_file.clone().map(Value::from));
        put("general.api_secret", self.apisecret.clone().map(Value::from));
        put("general.token_auth", self.token_auth.then(|| Value::from(true)));
        put("general.token_auth_secret", self.token_auth_secret.clone().map(Value::from));
        put("general.admin_secret", self.admin_secret.clone().map(Value::from));
        put("general.session_timeout", self.session_timeout.map(|v| Value::from(v as i64)));
        put("media.rtp_port_range", self.rtp_port_range.clone().map(Value::from));
        put("nat.nat_1_1_mapping", self.public_ip.clone().map(Value::from));
        put("nat.ice_enforce_list", self.ice_enforce_list.clone().map(Value::from));
        put("http.port", self.http_port.map(|v| Value::from(v as i64)));
        put("websockets.ws_port", self.ws_port.map(|v| Value::from(v as i64)));
        put("http.admin.admin_port", self.admin_http_port.map(|v| Value::from(v as i64)));
        put("websockets.admin.admin_ws_port", self.admin_ws_port.map(|v| Value::from(v as i64)));
        put("web.port", self.web_port.map(|v| Value::from(v as i64)));
        put("web.root", self.web_root.clone().map(Value::from));
        put("web.web", self.no_web.then(|| Value::from(false)));
        o
    }
}
