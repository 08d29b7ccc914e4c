//! MQTT 3.1.1 for the driver (see the module docs of [`super`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, Publish, QoS, Transport};
use tokio_rustls::rustls::ClientConfig;

use super::driver::{Incoming, Protocol};
use super::settings::BrokerUrl;
use super::{qos_level, Meta, MqttSettings};

fn qos(q: u8) -> QoS {
    match qos_level(q) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// MQTT 3.1.1 (also what 3.1 is served as).
pub(super) struct V3;

impl Protocol for V3 {
    type Client = AsyncClient;
    type EventLoop = EventLoop;
    type Publish = Publish;

    fn connect(s: &MqttSettings, broker: &BrokerUrl, tls: Option<Arc<ClientConfig>>) -> (AsyncClient, EventLoop) {
        let mut opts = MqttOptions::new(s.client_id.clone(), broker.host.clone(), broker.port);
        opts.set_keep_alive(Duration::from_secs(s.keep_alive_interval.max(5)))
            .set_clean_session(s.cleansession)
            .set_inflight(s.max_inflight.max(1))
            .set_request_channel_capacity(s.max_buffered.max(1))
            .set_manual_acks(true);
        if let Some(user) = &s.username {
            opts.set_credentials(user.clone(), s.password.clone().unwrap_or_default());
        }
        if let Some(cfg) = tls {
            opts.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(cfg)));
        }
        let status = &s.status;
        if let (true, Some(msg)) = (status.enabled, &status.disconnect_message) {
            opts.set_last_will(LastWill::new(&status.topic, msg.as_bytes().to_vec(), qos(status.qos), status.retain));
        }
        let (client, mut events) = AsyncClient::new(opts, s.max_buffered.max(1));
        // Replies are small writes answering a request: with Nagle on (rumqttc's default) each
        // one waited for the broker's delayed ACK, about 40 ms on Linux (found by
        // `portunus-bench api --transport mqtt`).
        let mut net = events.network_options();
        net.set_tcp_nodelay(true);
        events.set_network_options(net);
        (client, events)
    }

    async fn poll(events: &mut EventLoop) -> Result<Incoming<Publish>, String> {
        Ok(match events.poll().await.map_err(|e| e.to_string())? {
            Event::Incoming(Packet::ConnAck(_)) => Incoming::ConnAck,
            Event::Incoming(Packet::SubAck(_)) => Incoming::SubAck,
            Event::Incoming(Packet::Publish(p)) => Incoming::Publish(p),
            _ => Incoming::Other,
        })
    }

    fn topic(p: &Publish) -> Cow<'_, str> {
        Cow::Borrowed(&p.topic)
    }

    fn payload(p: &Publish) -> &[u8] {
        &p.payload
    }

    fn meta(_: &Publish, _: &MqttSettings) -> Meta {
        Meta::default()
    }

    async fn ack(c: &AsyncClient, p: &Publish) {
        let _ = c.ack(p).await;
    }

    fn try_ack(c: &AsyncClient, p: &Publish) {
        let _ = c.try_ack(p);
    }

    fn try_subscribe(c: &AsyncClient, topic: &str, q: u8) {
        let _ = c.try_subscribe(topic, qos(q));
    }

    fn try_publish(c: &AsyncClient, topic: &str, q: u8, retain: bool, payload: Vec<u8>) {
        let _ = c.try_publish(topic, qos(q), retain, payload);
    }

    async fn publish(c: &AsyncClient, _: &MqttSettings, topic: &str, q: u8, payload: Vec<u8>, _: Option<Meta>) -> bool {
        c.publish(topic, qos(q), false, payload).await.is_ok()
    }
}
