//! `[rabbitmq]` and `[rabbitmq.admin]`: the keys of Janus's `janus.transport.rabbitmq.jcfg`
//! (`general` at the top, `admin` as a subtable), plus Portunus's reconnect and queue limits.

use serde::{Deserialize, Serialize};

/// `[rabbitmq]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct RabbitSettings {
    /// Serve the Janus API over RabbitMQ.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub enabled: bool,
    /// Tell event handlers about transport events.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub events: bool,
    /// Outgoing JSON layout: `indented`, `plain` or `compact`.
    pub json: String,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Login.
    pub username: String,
    /// Password.
    pub password: String,
    /// Virtual host.
    pub vhost: String,
    /// Exchange for outgoing messages (the default exchange when unset).
    pub janus_exchange: Option<String>,
    /// `fanout` (default), `direct`, `topic` or `headers`.
    pub janus_exchange_type: String,
    /// Incoming queue; with a topic/direct exchange it is bound with `to_janus` as the key.
    pub queue_name: Option<String>,
    /// Incoming queue name when `queue_name` is unset, otherwise the binding key.
    pub to_janus: String,
    /// Routing key of outgoing messages (and the outgoing queue's name).
    pub from_janus: String,
    /// Declare the outgoing queue.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub declare_outgoing_queue: bool,
    /// Queues survive a broker restart.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub queue_durable: bool,
    /// Queues are deleted when Portunus disconnects.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub queue_autodelete: bool,
    /// The incoming queue allows only this connection.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub queue_exclusive: bool,
    /// AMQP heartbeat in seconds (0 = off).
    pub heartbeat: u16,
    /// Connect with TLS (amqps).
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub ssl_enabled: bool,
    /// Verify the broker's certificate (rustls always does; `false` is refused with a warning).
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub ssl_verify_peer: bool,
    /// Verify the broker's host name (rustls always does).
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub ssl_verify_hostname: bool,
    /// CA certificates (PEM) to trust in addition to the system's.
    pub ssl_cacert: Option<String>,
    /// Client certificate (PEM), with `ssl_key`.
    pub ssl_cert: Option<String>,
    /// Client key (PKCS#8 PEM), with `ssl_cert`.
    pub ssl_key: Option<String>,
    /// First reconnect delay in ms; doubles per failed attempt.
    pub reconnect_backoff: u64,
    /// Longest reconnect delay in ms.
    pub reconnect_backoff_max: u64,
    /// Deliveries taken from the broker but not yet handed to a lane.
    pub prefetch: u16,
    /// Request lanes (requests of one session run in order on one lane).
    pub lanes: usize,
    /// Requests queued per lane.
    pub lane_queue: usize,
    /// Messages waiting to be published; events beyond it are dropped and counted.
    pub outgoing_queue: usize,
    /// `[rabbitmq.admin]`
    pub admin: RabbitAdminSettings,
}

impl Default for RabbitSettings {
    fn default() -> Self {
        RabbitSettings {
            enabled: false,
            events: true,
            json: "compact".into(),
            host: "localhost".into(),
            port: 5672,
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            janus_exchange: None,
            janus_exchange_type: "fanout".into(),
            queue_name: None,
            to_janus: "to-janus".into(),
            from_janus: "from-janus".into(),
            declare_outgoing_queue: true,
            queue_durable: false,
            queue_autodelete: false,
            queue_exclusive: false,
            heartbeat: 60,
            ssl_enabled: false,
            ssl_verify_peer: true,
            ssl_verify_hostname: true,
            ssl_cacert: None,
            ssl_cert: None,
            ssl_key: None,
            reconnect_backoff: 250,
            reconnect_backoff_max: 10_000,
            prefetch: 256,
            lanes: 8,
            lane_queue: 64,
            outgoing_queue: 4096,
            admin: RabbitAdminSettings::default(),
        }
    }
}

/// `[rabbitmq.admin]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct RabbitAdminSettings {
    /// Serve the Admin API over RabbitMQ too.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub admin_enabled: bool,
    /// Incoming admin queue (bound with `to_janus_admin` on topic/direct exchanges).
    pub queue_name_admin: Option<String>,
    /// Incoming admin queue name when `queue_name_admin` is unset, otherwise the binding key.
    pub to_janus_admin: String,
    /// Routing key (and queue name) of outgoing admin messages.
    pub from_janus_admin: String,
    /// Declare the outgoing admin queue.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub declare_outgoing_queue_admin: bool,
    /// Admin queues survive a broker restart.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub queue_durable_admin: bool,
    /// Admin queues are deleted when Portunus disconnects.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub queue_autodelete_admin: bool,
    /// The incoming admin queue allows only this connection.
    #[serde(deserialize_with = "crate::brokers::flag")]
    pub queue_exclusive_admin: bool,
}

impl Default for RabbitAdminSettings {
    fn default() -> Self {
        RabbitAdminSettings {
            admin_enabled: false,
            queue_name_admin: None,
            to_janus_admin: "to-janus-admin".into(),
            from_janus_admin: "from-janus-admin".into(),
            declare_outgoing_queue_admin: true,
            queue_durable_admin: false,
            queue_autodelete_admin: false,
            queue_exclusive_admin: false,
        }
    }
}

/// The queues of one API.
#[derive(Clone, Debug)]
pub(crate) struct QueueSet {
    pub queue_name: Option<String>,
    pub to_janus: String,
    pub from_janus: String,
    pub declare_outgoing: bool,
    pub durable: bool,
    pub autodelete: bool,
    pub exclusive: bool,
}

impl QueueSet {
    /// The incoming queue consumed.
    pub fn incoming(&self) -> &str {
        self.queue_name.as_deref().unwrap_or(&self.to_janus)
    }
}

impl RabbitSettings {
    pub(crate) fn janus_queues(&self) -> QueueSet {
        QueueSet {
            queue_name: self.queue_name.clone(),
            to_janus: self.to_janus.clone(),
            from_janus: self.from_janus.clone(),
            declare_outgoing: self.declare_outgoing_queue,
            durable: self.queue_durable,
            autodelete: self.queue_autodelete,
            exclusive: self.queue_exclusive,
        }
    }

    pub(crate) fn admin_queues(&self) -> Option<QueueSet> {
        let a = &self.admin;
        a.admin_enabled.then(|| QueueSet {
            queue_name: a.queue_name_admin.clone(),
            to_janus: a.to_janus_admin.clone(),
            from_janus: a.from_janus_admin.clone(),
            declare_outgoing: a.declare_outgoing_queue_admin,
            durable: a.queue_durable_admin,
            autodelete: a.queue_autodelete_admin,
            exclusive: a.queue_exclusive_admin,
        })
    }
}
