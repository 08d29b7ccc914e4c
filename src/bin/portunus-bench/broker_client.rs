//! The Janus API over a message broker, as an application back end uses
//! it: RabbitMQ (requests published to the `to-janus` queue with an AMQP
//! `correlation_id`, replies and events consumed from `from-janus`) or
//! MQTT 3.1.1 (requests published on the `to-janus` topic, replies and
//! events received on `from-janus`).
//!
//! Unlike HTTP and WebSocket, a broker transport has one outgoing queue or
//! topic for every client of the server: RabbitMQ would hand each message
//! to only one of several consumers of `from-janus`, and MQTT would copy
//! every message to every subscriber. So all clients of one bench run share
//! one [`BrokerLink`] (one broker connection, one consumer or
//! subscription), whose reader routes each message to the request waiting
//! for it: by the reply's `correlation_id` when RabbitMQ carries one (the
//! RPC pattern), otherwise by the JSON `transaction` (events, MQTT).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{oneshot, OnceCell};
use tokio::task::JoinHandle;

use crate::janus::{parse_messages, BenchError, Result, Routed, RoutedTransport, Router, Target, Transport};

/// Requests the MQTT client may buffer before `publish` waits.
const MQTT_REQUEST_CAPACITY: usize = 1024;
/// Unacknowledged QoS 1 publishes in flight towards the broker.
const MQTT_INFLIGHT: u16 = 256;
/// Largest MQTT packet accepted (Janus replies are small; a bigger limit
/// than rumqttc's default only avoids surprises with verbose JSON).
const MQTT_MAX_PACKET: usize = 1 << 20;

/// Broker options of a [`Target`]: the queue or topic names, and the link
/// all clients of the run share (connected by the first client).
#[derive(Clone)]
pub struct BrokerTarget {
    /// Queue (RabbitMQ) or topic (MQTT) the server consumes requests from.
    pub to_janus: String,
    /// Queue or topic the server publishes replies and events to.
    pub from_janus: String,
    /// MQTT QoS of requests and of the reply subscription.
    pub mqtt_qos: u8,
    link: Arc<OnceCell<Arc<BrokerLink>>>,
}

impl BrokerTarget {
    pub fn new(to_janus: String, from_janus: String, mqtt_qos: u8) -> BrokerTarget {
        BrokerTarget { to_janus, from_janus, mqtt_qos, link: Arc::default() }
    }

    /// The shared link, connecting it on first use (a failed attempt is
    /// retried by the next caller).
    pub async fn link(&self, target: &Target) -> Result<Arc<BrokerLink>> {
        let link =
            self.link.get_or_try_init(|| async { BrokerLink::connect(target, self).await.map(Arc::new) }).await?;
        Ok(Arc::clone(link))
    }
}

impl fmt::Debug for BrokerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerTarget")
            .field("to_janus", &self.to_janus)
            .field("from_janus", &self.from_janus)
            .field("mqtt_qos", &self.mqtt_qos)
            .finish_non_exhaustive()
    }
}

/// How requests leave the bench.
enum Out {
    Rabbit { ch: Channel, queue: String },
    Mqtt { client: AsyncClient, topic: String, qos: QoS },
}

/// One broker connection shared by every client of a run.
pub struct BrokerLink {
    out: Out,
    routed: Routed,
    reader: JoinHandle<()>,
    /// Kept so the AMQP connection lives as long as the link.
    _amqp: Option<Connection>,
}

impl BrokerLink {
    async fn connect(target: &Target, b: &BrokerTarget) -> Result<BrokerLink> {
        let connecting = async {
            match target.transport {
                Transport::Rabbitmq => BrokerLink::connect_rabbitmq(target, b).await,
                Transport::Mqtt => BrokerLink::connect_mqtt(target, b).await,
                other => Err(BenchError::Connect(format!("{} is not a broker transport", other.name()))),
            }
        };
        tokio::time::timeout(target.timeout, connecting).await.map_err(|_| BenchError::Timeout)?
    }

    async fn connect_rabbitmq(target: &Target, b: &BrokerTarget) -> Result<BrokerLink> {
        let connect_err = |what: &str, e: lapin::Error| BenchError::Connect(format!("{what}: {e}"));
        let conn = Connection::connect(
            &target.url,
            ConnectionProperties::default().with_connection_name("portunus-bench".into()),
        )
        .await
        .map_err(|e| connect_err("AMQP connect", e))?;
        let ch = conn.create_channel().await.map_err(|e| connect_err("channel", e))?;
        // The server declares both queues; consuming one that does not
        // exist fails here with NOT_FOUND, which says "start the server".
        let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let mut consumer = ch
            .basic_consume(b.from_janus.as_str().into(), "portunus-bench".into(), no_ack, FieldTable::default())
            .await
            .map_err(|e| connect_err(&format!("consume {}", b.from_janus), e))?;
        let routed = Routed::new(target);
        let reader = {
            let router = routed.router.clone();
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    let correlation = delivery.properties.correlation_id().as_ref().map(|c| c.to_string());
                    deliver(&router, &delivery.data, correlation.as_deref());
                }
                router.close_all();
            })
        };
        Ok(BrokerLink { out: Out::Rabbit { ch, queue: b.to_janus.clone() }, routed, reader, _amqp: Some(conn) })
    }

    async fn connect_mqtt(target: &Target, b: &BrokerTarget) -> Result<BrokerLink> {
        let (host, port) = mqtt_host_port(&target.url)?;
        let mut opts = MqttOptions::new(format!("portunus-bench-{}", std::process::id()), host, port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_inflight(MQTT_INFLIGHT)
            .set_request_channel_capacity(MQTT_REQUEST_CAPACITY)
            .set_max_packet_size(MQTT_MAX_PACKET, MQTT_MAX_PACKET);
        let (client, mut eventloop) = AsyncClient::new(opts, MQTT_REQUEST_CAPACITY);
        // Requests are small and wait for their replies: with Nagle, one
        // waits for the broker's delayed ACK (about 40 ms on Linux).
        let mut net = eventloop.network_options();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        let qos = mqtt_qos(b.mqtt_qos);
        client
            .subscribe(b.from_janus.clone(), qos)
            .await
            .map_err(|e| BenchError::Connect(format!("subscribe {}: {e}", b.from_janus)))?;
        let routed = Routed::new(target);
        let (subscribed_tx, subscribed) = oneshot::channel::<std::result::Result<(), String>>();
        let reader = {
            let router = routed.router.clone();
            tokio::spawn(async move {
                let mut subscribed_tx = Some(subscribed_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = subscribed_tx.take() {
                                let _ = tx.send(Ok(()));
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => deliver(&router, &p.payload, None),
                        Ok(_) => {}
                        // No reconnect: a bench whose broker went away
                        // should count errors, not hide the outage.
                        Err(e) => {
                            if let Some(tx) = subscribed_tx.take() {
                                let _ = tx.send(Err(e.to_string()));
                            }
                            break;
                        }
                    }
                }
                router.close_all();
            })
        };
        // Requests published before the subscription is active would have
        // their replies dropped by the broker.
        match subscribed.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(BenchError::Connect(format!("MQTT: {e}"))),
            Err(_) => return Err(BenchError::Connect("MQTT event loop ended".into())),
        }
        Ok(BrokerLink { out: Out::Mqtt { client, topic: b.to_janus.clone(), qos }, routed, reader, _amqp: None })
    }
}

impl RoutedTransport for BrokerLink {
    fn routed(&self) -> &Routed {
        &self.routed
    }

    async fn send(&self, txn: &str, text: String) -> Result<()> {
        match &self.out {
            Out::Rabbit { ch, queue } => {
                // The transaction doubles as the correlation id: unique
                // per request, and the reply carries it back.
                let props = BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_correlation_id(txn.into());
                ch.basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    text.as_bytes(),
                    props,
                )
                .await
                .map(drop)
                .map_err(|e| BenchError::Io(e.to_string()))
            }
            Out::Mqtt { client, topic, qos } => {
                client.publish(topic.clone(), *qos, false, text).await.map_err(|e| BenchError::Io(e.to_string()))
            }
        }
    }
}

impl Drop for BrokerLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Hands every message of one broker payload to its waiter. A reply with
/// a correlation id goes to the request of that id even if its
/// `transaction` were mangled; everything else goes by `transaction`.
/// Messages nobody waits for (other runs' leftovers, `detached`, timeouts)
/// and malformed payloads are dropped: the request they belonged to, if
/// any, times out and is counted.
fn deliver(router: &Router, payload: &[u8], correlation: Option<&str>) {
    let Ok(messages) = parse_messages(payload) else { return };
    for msg in messages {
        match correlation {
            Some(id) => {
                router.route_to(id, msg);
            }
            None => {
                router.route(msg);
            }
        }
    }
}

fn mqtt_qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// `tcp://host:port`, `mqtt://host:port` or a bare `host:port` (1883 when
/// the port is missing). TLS brokers are out of scope for a loopback bench.
fn mqtt_host_port(url: &str) -> Result<(String, u16)> {
    let rest = match url.split_once("://") {
        Some(("tcp" | "mqtt", rest)) => rest,
        Some((scheme, _)) => return Err(BenchError::Connect(format!("unsupported MQTT URL scheme {scheme:?}"))),
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| BenchError::Connect(format!("bad port in {url:?}")))?),
        None => (rest, 1883),
    };
    if host.is_empty() {
        return Err(BenchError::Connect(format!("no host in {url:?}")));
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::time::Instant;

    use super::*;
    use crate::janus::Want;

    #[test]
    fn parses_mqtt_urls() {
        assert_eq!(mqtt_host_port("tcp://127.0.0.1:1883").unwrap(), ("127.0.0.1".into(), 1883));
        assert_eq!(mqtt_host_port("mqtt://localhost/").unwrap(), ("localhost".into(), 1883));
        assert_eq!(mqtt_host_port("[::1]:1999").unwrap(), ("::1".into(), 1999));
        assert!(mqtt_host_port("ssl://x:1").is_err());
        assert!(mqtt_host_port("tcp://x:port").is_err());
        assert!(mqtt_host_port("tcp://:1883").is_err());
    }

    #[tokio::test]
    async fn deliver_routes_by_correlation_then_transaction_and_survives_garbage() {
        let router = Arc::new(Router::default());
        let mut by_corr = router.register("c1");
        let mut by_txn = router.register("t2");
        deliver(&router, b"\xff not json", None);
        deliver(&router, b"[1, 2]", Some("c1"));
        deliver(&router, br#"{"janus":"success","transaction":"other"}"#, Some("c1"));
        deliver(&router, br#"{"janus":"event","transaction":"t2","plugindata":{"data":{}}}"#, None);
        let deadline = Instant::now() + Duration::from_secs(1);
        assert_eq!(by_corr.wait(Want::Success, deadline).await.unwrap()["transaction"], json!("other"));
        assert_eq!(by_txn.wait(Want::PluginAnswer, deadline).await.unwrap()["janus"], json!("event"));
    }
}
