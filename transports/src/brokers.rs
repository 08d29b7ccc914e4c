//! Starting the transports that are not listening web servers (RabbitMQ, MQTT, Unix sockets) and
//! the event handlers, from their configuration sections, and registering their live state with
//! [`Observability`].

use std::sync::Arc;

use portunus_actors::gateway::TransportDescriptor;
use portunus_actors::Core;
use serde::{Deserialize, Deserializer};

use crate::metrics::Observability;
use crate::mqtt::{self, MqttSettings};
use crate::rabbitmq::{self, RabbitSettings};
use crate::unix::{self, UnixSettings};

/// The sections these transports and handlers read (`[rabbitmq]`, ...).
#[derive(Clone, Debug, Default)]
pub struct BrokerSettings {
    /// `[rabbitmq]`
    pub rabbitmq: RabbitSettings,
    /// `[mqtt]`
    pub mqtt: MqttSettings,
    /// `[pfunix]`
    pub pfunix: UnixSettings,
    /// Event handlers: `[sampleevh]`, `[wsevh]`, `[rabbitmqevh]`, `[mqttevh]`.
    pub evh: crate::evh::EvhSettings,
}

/// What [`start_brokers`] started; keep it alive as long as the server runs.
#[derive(Default)]
pub struct Brokers {
    /// RabbitMQ transport.
    pub rabbitmq: Option<rabbitmq::RabbitHandle>,
    /// MQTT transport.
    pub mqtt: Option<mqtt::MqttHandle>,
    /// Extra entries for the ready line (e.g. Unix socket paths), name to address.
    pub ready: Vec<(&'static str, String)>,
}

/// `server_info` entries of the enabled transports.
pub fn descriptors(b: &BrokerSettings) -> Vec<TransportDescriptor> {
    let mut d = Vec::new();
    if b.rabbitmq.enabled {
        d.push(rabbitmq::DESCRIPTOR);
    }
    if b.mqtt.enabled {
        d.push(mqtt::DESCRIPTOR);
    }
    if b.pfunix.enabled || b.pfunix.admin.admin_enabled {
        d.push(unix::DESCRIPTOR);
    }
    d
}

/// Starts every enabled broker transport and event handler. Must run inside the actix system.
/// Broker links connect in the background (`/readyz` tells when they are up).
pub fn start_brokers(core: &Core, b: &BrokerSettings, obs: &Arc<Observability>) -> std::io::Result<Brokers> {
    let mut out = Brokers::default();
    if b.rabbitmq.enabled {
        let h = rabbitmq::start(core, b.rabbitmq.clone());
        obs.add_link(h.link.clone());
        out.rabbitmq = Some(h);
    }
    if b.mqtt.enabled {
        let h = mqtt::start(core, b.mqtt.clone());
        obs.add_link(h.link.clone());
        out.mqtt = Some(h);
    }
    out.ready.extend(unix::start(core, &b.pfunix)?);
    crate::evh::start_all(core, obs, &b.evh);
    Ok(out)
}

/// Janus flags come as booleans, 0/1 or strings ("yes", "true").
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
        Str(String),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(i) => i != 0,
        Flag::Str(s) => matches!(s.to_ascii_lowercase().as_str(), "yes" | "true" | "1" | "on"),
    })
}
