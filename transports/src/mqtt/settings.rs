//! `[mqtt]`, `[mqtt.admin]` and `[mqtt.status]`: the keys of Janus's
//! `janus.transport.mqtt.jcfg`, plus Portunus's reconnect and queue limits.

use serde::{Deserialize, Serialize};

use crate::brokers::flag;

/// `[mqtt]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct MqttSettings {
    /// Serve the Janus API over MQTT.
    #[serde(deserialize_with = "flag")]
    pub enabled: bool,
    /// Tell event handlers about transport events.
    #[serde(deserialize_with = "flag")]
    pub events: bool,
    /// Outgoing JSON layout: `indented`, `plain` or `compact`.
    pub json: String,
    /// Broker URL: `tcp://host:port` (or `mqtt://`), `ssl://host:port` (or `mqtts://`) for TLS.
    pub url: String,
    /// `3.1.1` (default; `3.1` is served as 3.1.1) or `5`.
    pub mqtt_version: String,
    /// Client identifier.
    pub client_id: String,
    /// Login, if the broker needs one.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Keep-alive in seconds.
    pub keep_alive_interval: u64,
    /// Clean session (`clean start` in MQTT 5).
    #[serde(deserialize_with = "flag")]
    pub cleansession: bool,
    /// Most unacknowledged outgoing QoS>0 messages.
    pub max_inflight: u16,
    /// Requests buffered towards the client before publishing waits.
    pub max_buffered: usize,
    /// Accepted for compatibility (ms to wait on disconnect).
    pub disconnect_timeout: u64,
    /// Topic of incoming Janus API requests.
    pub subscribe_topic: String,
    /// QoS of that subscription.
    pub subscribe_qos: u8,
    /// Topic of replies and notifications.
    pub publish_topic: String,
    /// QoS of what Portunus publishes.
    pub publish_qos: u8,
    /// Use TLS (also implied by an `ssl://` URL).
    #[serde(deserialize_with = "flag")]
    pub ssl_enabled: bool,
    /// Verify the broker (rustls always does; `false` is refused with a warning).
    #[serde(deserialize_with = "flag")]
    pub verify_peer: bool,
    /// CA certificates (PEM).
    pub cacertfile: Option<String>,
    /// Client certificate (PEM).
    pub certfile: Option<String>,
    /// Client key (PEM).
    pub keyfile: Option<String>,
    /// MQTT 5: accepted for compatibility (transaction states are not kept by Portunus).
    pub vacuum_interval: u64,
    /// MQTT 5: user property names copied from a request to its reply.
    pub proxy_transaction_user_properties: Vec<String>,
    /// MQTT 5: `["key", "value"]` user properties added to every reply.
    pub add_transaction_user_properties: Vec<(String, String)>,
    /// First reconnect delay in ms; doubles per failed attempt.
    pub reconnect_backoff: u64,
    /// Longest reconnect delay in ms.
    pub reconnect_backoff_max: u64,
    /// Request lanes (requests of one session run in order on one lane).
    pub lanes: usize,
    /// Requests queued per lane.
    pub lane_queue: usize,
    /// Messages waiting to be published; events beyond it are dropped and counted.
    pub outgoing_queue: usize,
    /// `[mqtt.admin]`
    pub admin: MqttAdminSettings,
    /// `[mqtt.status]`
    pub status: MqttStatusSettings,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            enabled: false,
            events: true,
            json: "compact".into(),
            url: "tcp://localhost:1883".into(),
            mqtt_version: "3.1.1".into(),
            client_id: "guest".into(),
            username: None,
            password: None,
            keep_alive_interval: 20,
            cleansession: false,
            max_inflight: 10,
            max_buffered: 100,
            disconnect_timeout: 100,
            subscribe_topic: "to-janus".into(),
            subscribe_qos: 1,
            publish_topic: "from-janus".into(),
            publish_qos: 1,
            ssl_enabled: false,
            verify_peer: true,
            cacertfile: None,
            certfile: None,
            keyfile: None,
            vacuum_interval: 60,
            proxy_transaction_user_properties: Vec::new(),
            add_transaction_user_properties: Vec::new(),
            reconnect_backoff: 250,
            reconnect_backoff_max: 10_000,
            lanes: 8,
            lane_queue: 64,
            outgoing_queue: 4096,
            admin: MqttAdminSettings::default(),
            status: MqttStatusSettings::default(),
        }
    }
}

/// `[mqtt.admin]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct MqttAdminSettings {
    /// Serve the Admin API over MQTT too.
    #[serde(deserialize_with = "flag")]
    pub admin_enabled: bool,
    /// Topic of incoming Admin API requests.
    pub subscribe_topic: String,
    /// QoS of that subscription.
    pub subscribe_qos: u8,
    /// Topic of Admin API replies.
    pub publish_topic: String,
    /// QoS of Admin API replies.
    pub publish_qos: u8,
}

impl Default for MqttAdminSettings {
    fn default() -> Self {
        MqttAdminSettings {
            admin_enabled: false,
            subscribe_topic: "to-janus-admin".into(),
            subscribe_qos: 1,
            publish_topic: "from-janus-admin".into(),
            publish_qos: 1,
        }
    }
}

/// `[mqtt.status]`: a status topic with a message on connect and a last will.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct MqttStatusSettings {
    /// Publish status messages.
    #[serde(deserialize_with = "flag")]
    pub enabled: bool,
    /// Published on every connect.
    pub connect_message: Option<String>,
    /// Last will (sent by the broker when Portunus disappears).
    pub disconnect_message: Option<String>,
    /// Status topic.
    pub topic: String,
    /// QoS of status messages.
    pub qos: u8,
    /// Retain status messages.
    #[serde(deserialize_with = "flag")]
    pub retain: bool,
}

impl Default for MqttStatusSettings {
    fn default() -> Self {
        MqttStatusSettings {
            enabled: false,
            connect_message: None,
            disconnect_message: None,
            topic: "status".into(),
            qos: 1,
            retain: false,
        }
    }
}

/// Where the broker is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttSettings {
    /// Parses `url`.
    pub(crate) fn broker(&self) -> Result<BrokerUrl, String> {
        parse_url(&self.url, self.ssl_enabled)
    }
}

/// `tcp://host:port`, `mqtt://`, `ssl://`, `mqtts://`, or a bare `host:port`.
pub(crate) fn parse_url(url: &str, ssl: bool) -> Result<BrokerUrl, String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("tcp", url));
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => ssl,
        "ssl" | "tls" | "mqtts" => true,
        other => return Err(format!("unsupported MQTT URL scheme '{other}'")),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port in MQTT URL '{url}'"))?),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err(format!("no host in MQTT URL '{url}'"));
    }
    Ok(BrokerUrl { host: host.trim_matches(['[', ']']).to_owned(), port, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("tcp://localhost:1883", false).unwrap(),
            BrokerUrl { host: "localhost".into(), port: 1883, tls: false }
        );
        assert_eq!(
            parse_url("ssl://b.example:8884", false).unwrap(),
            BrokerUrl { host: "b.example".into(), port: 8884, tls: true }
        );
        assert_eq!(parse_url("127.0.0.1", true).unwrap().port, 8883);
        assert!(parse_url("ws://x:1", false).is_err());
        assert!(parse_url("tcp://x:notaport", false).is_err());
    }

    #[test]
    fn janus_flags() {
        let s: MqttSettings = serde_json::from_value(serde_json::json!({"cleansession": 0, "enabled": "yes"})).unwrap();
        assert!(!s.cleansession);
        assert!(s.enabled);
    }
}
