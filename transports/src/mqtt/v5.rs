//! MQTT 5 for the driver (see the module docs of [`super`]): like 3.1.1, plus response topics,
//! correlation data and user properties on replies.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Transport;
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

/// MQTT 5.
pub(super) struct V5;

impl Protocol for V5 {
    type Client = AsyncClient;
    type EventLoop = EventLoop;
    type Publish = Publish;

    fn connect(s: &MqttSettings, broker: &BrokerUrl, tls: Option<Arc<ClientConfig>>) -> (AsyncClient, EventLoop) {
        let mut opts = MqttOptions::new(s.client_id.clone(), broker.host.clone(), broker.port);
        opts.set_keep_alive(Duration::from_secs(s.keep_alive_interval.max(5)))
            .set_clean_start(s.cleansession)
            .set_outgoing_inflight_upper_limit(s.max_inflight.max(1))
            .set_receive_maximum(Some(s.max_inflight.max(1)))
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
            opts.set_last_will(LastWill::new(
                &status.topic,
                msg.as_bytes().to_vec(),
                qos(status.qos),
                status.retain,
                None,
            ));
        }
        // Replies are small writes answering a request: with Nagle on (rumqttc's default) each
        // one waited for the broker's delayed ACK, about 40 ms on Linux (found by
        // `portunus-bench api --transport mqtt`).
        let mut net = opts.network_options();
        net.set_tcp_nodelay(true);
        opts.set_network_options(net);
        AsyncClient::new(opts, s.max_buffered.max(1))
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
        String::from_utf8_lossy(&p.topic)
    }

    fn payload(p: &Publish) -> &[u8] {
        &p.payload
    }

    fn meta(p: &Publish, s: &MqttSettings) -> Meta {
        let Some(props) = &p.properties else { return Meta::default() };
        let proxied = &s.proxy_transaction_user_properties;
        Meta {
            response_topic: props.response_topic.clone().filter(|t| !t.is_empty()),
            correlation: props.correlation_data.clone(),
            user_properties: props.user_properties.iter().filter(|(k, _)| proxied.contains(k)).cloned().collect(),
        }
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

    async fn publish(
        c: &AsyncClient,
        s: &MqttSettings,
        topic: &str,
        q: u8,
        payload: Vec<u8>,
        meta: Option<Meta>,
    ) -> bool {
        let sent = match meta {
            // A reply: to the requester's response topic if it gave one.
            Some(meta) => {
                let topic = meta.response_topic.unwrap_or_else(|| topic.to_owned());
                let mut user_properties = meta.user_properties;
                user_properties.extend(s.add_transaction_user_properties.iter().cloned());
                let props = PublishProperties {
                    correlation_data: meta.correlation,
                    user_properties,
                    content_type: Some("application/json".into()),
                    ..PublishProperties::default()
                };
                c.publish_with_properties(topic, qos(q), false, payload, props).await
            }
            None => c.publish(topic, qos(q), false, payload).await,
        };
        sent.is_ok()
    }
}
