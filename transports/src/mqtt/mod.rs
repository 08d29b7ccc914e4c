//! `janus.transport.mqtt`: the Janus API (and optionally the Admin API) over MQTT 3.1.1 or 5
//! (reference 1.9), with `rumqttc`.
//!
//! Portunus subscribes to `subscribe_topic` (and the admin one) and publishes replies and
//! notifications on `publish_topic`. With MQTT 5, a request's response topic and correlation
//! data are honoured: the reply goes to the response topic and carries the correlation data
//! (and the configured user properties). Janus compat (1.9): ids travel in the JSON body and
//! every session created over MQTT belongs to the one broker link.
//!
//! The link is a supervised actor ([`MqttTransport`]) running one driver: the MQTT event loop
//! (which reconnects by itself; the driver waits an exponential backoff between attempts and
//! re-subscribes on every CONNACK), a submitter that hands requests to the lanes and acknowledges
//! them only then (manual acks: the broker's in-flight window is the incoming bound), and a
//! publisher draining the outgoing queue.
//!
//! Admin `query_transport` answers `configure` (Janus's MQTT transport has no `connections`);
//! transport events report the link `connected` and `reconnecting` after it was lost.

mod driver;
mod settings;
mod v3;
mod v5;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use portunus_actors::api::ConnectionId;
use portunus_actors::gateway::TransportDescriptor;
use portunus_actors::transport::Origin;
use portunus_actors::Core;
use tokio::sync::mpsc;

pub(crate) use settings::parse_url;
pub use settings::{MqttAdminSettings, MqttSettings, MqttStatusSettings};

use crate::control::Control;
use crate::lanes::{Lanes, Outbox, Reply};
use crate::metrics::LinkState;

/// Package name of this transport.
pub const PACKAGE: &str = "janus.transport.mqtt";

/// `server_info` entry.
pub const DESCRIPTOR: TransportDescriptor = TransportDescriptor {
    package: PACKAGE,
    name: "JANUS MQTT transport plugin",
    author: "Andrei Nesterov <ae.nesterov@gmail.com>",
    description: "This transport plugin adds MQTT support to the Janus API via rumqttc.",
    version_string: "0.0.1",
    version: 1,
};

/// What a reply needs from its request (MQTT 5 only; empty with 3.1.1).
#[derive(Clone, Debug, Default)]
pub(crate) struct Meta {
    /// Where the requester wants the reply.
    pub response_topic: Option<String>,
    /// Copied to the reply.
    pub correlation: Option<Bytes>,
    /// User properties copied to the reply (`proxy_transaction_user_properties`).
    pub user_properties: Vec<(String, String)>,
}

/// A running MQTT transport.
pub struct MqttHandle {
    /// The supervised link actor.
    pub addr: Addr<MqttTransport>,
    /// Connection state, for `/metrics` and `/readyz`.
    pub link: Arc<LinkState>,
}

/// Starts the transport (inside the actix system); it connects in the background.
pub fn start(core: &Core, settings: MqttSettings) -> MqttHandle {
    let link = LinkState::new(PACKAGE);
    let (outbox, rx) = Outbox::<Meta>::new(settings.outgoing_queue, link.clone());
    let id = ConnectionId::next();
    let origin = Origin::push(PACKAGE, id, outbox.clone());
    let control = Control::register_configure_only(core, PACKAGE, settings.events);
    let lanes = Arc::new(Lanes::start(core.clone(), origin, outbox, settings.lanes, settings.lane_queue));
    let settings = Arc::new(settings);
    let state = link.clone();
    let events = LinkEvents { control, id };
    let addr = actix::Supervisor::start(move |_| MqttTransport {
        settings,
        lanes,
        rx: Some(rx),
        link: state,
        events,
        restarts: 0,
    });
    MqttHandle { addr, link }
}

/// The supervised broker link.
pub struct MqttTransport {
    settings: Arc<MqttSettings>,
    lanes: Arc<Lanes<Meta>>,
    /// The outgoing queue; lent to the running driver and handed back when it ends.
    rx: Option<mpsc::Receiver<Reply<Meta>>>,
    link: Arc<LinkState>,
    events: LinkEvents,
    restarts: u32,
}

/// Transport events about the broker link (one instance: the link).
#[derive(Clone)]
pub(crate) struct LinkEvents {
    control: Arc<Control>,
    id: ConnectionId,
}

impl LinkEvents {
    pub(crate) fn notify(&self, event: &str) {
        self.control.notify(self.id, || serde_json::json!({"event": event}));
    }
}

/// What a driver needs.
pub(crate) struct Driver {
    pub settings: Arc<MqttSettings>,
    pub lanes: Arc<Lanes<Meta>>,
    pub link: Arc<LinkState>,
    pub events: LinkEvents,
    pub rx: mpsc::Receiver<Reply<Meta>>,
}

impl Actor for MqttTransport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(rx) = self.rx.take() else { return };
        let delay = crate::lanes::backoff_ms(
            self.restarts,
            self.settings.reconnect_backoff,
            self.settings.reconnect_backoff_max,
        );
        let driver = Driver {
            settings: self.settings.clone(),
            lanes: self.lanes.clone(),
            link: self.link.clone(),
            events: self.events.clone(),
            rx,
        };
        let v5 = self.settings.mqtt_version.trim() == "5";
        if !v5 && self.settings.mqtt_version.trim() == "3.1" {
            tracing::warn!("MQTT 3.1 is served as 3.1.1");
        }
        let run = async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if v5 {
                driver::run::<v5::V5>(driver).await
            } else {
                driver::run::<v3::V3>(driver).await
            }
        };
        ctx.spawn(run.into_actor(self).map(|(rx, error), this, ctx| {
            this.rx = Some(rx);
            this.restarts = this.restarts.saturating_add(1);
            tracing::warn!(%error, "MQTT driver ended; restarting");
            ctx.stop();
        }));
    }
}

impl Supervised for MqttTransport {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.link.set_connected(false);
    }
}

/// Whether `topic` matches the subscription `filter` (`+` one level, `#` the rest).
pub(crate) fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match (f, t.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(level)) if f == level => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

pub(crate) fn qos_level(q: u8) -> u8 {
    q.min(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters() {
        assert!(topic_matches("to-janus", "to-janus"));
        assert!(!topic_matches("to-janus", "to-janus-admin"));
        assert!(topic_matches("janus/+/in", "janus/a/in"));
        assert!(!topic_matches("janus/+/in", "janus/a/b/in"));
        assert!(topic_matches("janus/#", "janus/a/b"));
        assert!(!topic_matches("janus/a", "janus"));
    }
}
