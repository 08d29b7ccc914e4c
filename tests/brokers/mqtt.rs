//! The Janus API and the Admin API over MQTT 3.1.1 and MQTT 5, against a real mosquitto: the full
//! create/attach/message/detach/destroy flow, MQTT 5 response topics with correlation data, and
//! a broker restart in the middle of a session.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::harness::{exclusive, request, unique, Brokers, Server};

pub static MOSQUITTO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Topics {
    to: String,
    from: String,
    admin_to: String,
    admin_from: String,
    replies: String,
}

impl Topics {
    fn new() -> Topics {
        let to = unique("to-janus");
        Topics {
            replies: format!("{to}/replies"),
            to,
            from: unique("from-janus"),
            admin_to: unique("to-janus-admin"),
            admin_from: unique("from-janus-admin"),
        }
    }

    fn config(&self, port: u16, version: &str) -> String {
        format!(
            r#"
[mqtt]
enabled = true
url = "tcp://127.0.0.1:{port}"
mqtt_version = "{version}"
client_id = "{}"
subscribe_topic = "{}"
publish_topic = "{}"
keep_alive_interval = 5
reconnect_backoff = 100
reconnect_backoff_max = 1000
add_transaction_user_properties = [["server", "portunus"]]
proxy_transaction_user_properties = ["tenant"]

[mqtt.admin]
admin_enabled = true
subscribe_topic = "{}"
publish_topic = "{}"
"#,
            unique("portunus"),
            self.to,
            self.from,
            self.admin_to,
            self.admin_from
        )
    }
}

/// One message Portunus published.
#[derive(Debug)]
struct Received {
    topic: String,
    body: Value,
    correlation: Option<Bytes>,
    user_properties: Vec<(String, String)>,
}

/// An application back end on MQTT 5 (it can talk to a 3.1.1 server too: topics are topics).
struct Backend {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Received>,
    topics_to: (String, String),
    replies: String,
    backlog: VecDeque<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    async fn connect(port: u16, t: &Topics) -> Backend {
        let mut opts = MqttOptions::new(unique("backend"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (up_tx, mut up_rx) = mpsc::unbounded_channel();
        let subscriber = client.clone();
        let topics = [t.from.clone(), t.admin_from.clone(), t.replies.clone()];
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for topic in &topics {
                            let _ = subscriber.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = up_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let props = p.properties.unwrap_or_default();
                        let _ = tx.send(Received {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            body: serde_json::from_slice(&p.payload).unwrap_or(Value::Null),
                            correlation: props.correlation_data,
                            user_properties: props.user_properties,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        // Wait for the three subscriptions.
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_secs(10), up_rx.recv()).await.expect("subscribed in time");
        }
        Backend {
            client,
            rx,
            topics_to: (t.to.clone(), t.admin_to.clone()),
            replies: t.replies.clone(),
            backlog: VecDeque::new(),
            task,
        }
    }

    async fn next(&mut self, within: Duration) -> Received {
        tokio::time::timeout(within, self.rx.recv()).await.expect("a message from Portunus in time").expect("open")
    }

    /// Sends a request (with a response topic and correlation data when `v5`) and waits for the
    /// reply with its transaction.
    async fn call(&mut self, admin: bool, body: Value, v5: bool) -> Received {
        let topic = if admin { &self.topics_to.1 } else { &self.topics_to.0 };
        let payload = body.to_string().into_bytes();
        if v5 {
            let props = PublishProperties {
                response_topic: Some(self.replies.clone()),
                correlation_data: Some(Bytes::from(body["transaction"].as_str().unwrap_or("").to_owned())),
                user_properties: vec![("tenant".into(), "acme".into()), ("ignored".into(), "x".into())],
                ..PublishProperties::default()
            };
            self.client.publish_with_properties(topic.clone(), QoS::AtLeastOnce, false, payload, props).await
        } else {
            self.client.publish(topic.clone(), QoS::AtLeastOnce, false, payload).await
        }
        .expect("publish");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = self
                .backlog
                .iter()
                .position(|m| m.body["transaction"] == body["transaction"] && m.body["janus"] != "event")
            {
                return self.backlog.remove(i).expect("present");
            }
            let msg = self.next(deadline.saturating_duration_since(Instant::now())).await;
            self.backlog.push_back(msg);
        }
    }

    /// The next message on `topic` that `pick` accepts.
    async fn wait_for(&mut self, pick: impl Fn(&Received) -> bool) -> Received {
        if let Some(i) = self.backlog.iter().position(&pick) {
            return self.backlog.remove(i).expect("present");
        }
        loop {
            let msg = self.next(Duration::from_secs(10)).await;
            if pick(&msg) {
                return msg;
            }
            self.backlog.push_back(msg);
        }
    }
}

async fn flow(version: &str) {
    let Some(brokers) = Brokers::from_env() else { return };
    let _lock = exclusive(&MOSQUITTO).await;
    let t = Topics::new();
    let v5 = version == "5";
    let server = Server::spawn(&t.config(brokers.mqtt_port, version));
    server.wait_ready(Duration::from_secs(20)).await;
    let mut b = Backend::connect(brokers.mqtt_port, &t).await;
    // MQTT 5 replies go to the requester's response topic.
    let reply_topic = if v5 { t.replies.clone() } else { t.from.clone() };

    let info = b.call(false, request("info", json!({})), v5).await;
    assert_eq!(info.body["janus"], "server_info");
    assert!(info.body["transports"].as_object().expect("transports").contains_key("janus.transport.mqtt"));
    assert_eq!(info.topic, reply_topic);

    let create = request("create", json!({}));
    let created = b.call(false, create.clone(), v5).await;
    assert_eq!(created.body["janus"], "success");
    if v5 {
        assert_eq!(created.correlation.as_deref(), Some(create["transaction"].as_str().unwrap_or("").as_bytes()));
        assert!(created.user_properties.contains(&("tenant".into(), "acme".into())), "{:?}", created.user_properties);
        assert!(created.user_properties.contains(&("server".into(), "portunus".into())));
        assert!(!created.user_properties.iter().any(|(k, _)| k == "ignored"));
    }
    let session = created.body["data"]["id"].as_u64().expect("session id");
    let attached =
        b.call(false, request("attach", json!({"session_id": session, "plugin": "janus.plugin.echotest"})), v5).await;
    let handle = attached.body["data"]["id"].as_u64().expect("handle id");

    let listed = b.call(true, request("list_sessions", json!({})), v5).await;
    assert!(listed.body["sessions"].as_array().expect("sessions").contains(&json!(session)));
    if !v5 {
        assert_eq!(listed.topic, t.admin_from);
    }

    // Admin `query_transport` reaches this transport; as Janus's, it answers `configure` only.
    let query = |req: Value| request("query_transport", json!({"transport": "janus.transport.mqtt", "request": req}));
    let configured = b.call(true, query(json!({"request": "configure", "events": false})), v5).await;
    assert_eq!(configured.body["response"], json!({"result": 200}), "{:?}", configured.body);
    let counted = b.call(true, query(json!({"request": "connections"})), v5).await;
    assert_eq!(counted.body["response"], json!({"error_code": 411, "error": "Unknown request 'connections'"}));

    let msg = request("message", json!({"session_id": session, "handle_id": handle, "body": {"audio": false}}));
    let ack = b.call(false, msg.clone(), v5).await;
    assert_eq!(ack.body["janus"], "ack");
    // The plugin event is a notification on the publish topic, without correlation data.
    let from = t.from.clone();
    let event = b.wait_for(|m| m.body["janus"] == "event" && m.topic == from).await;
    assert_eq!(event.body["transaction"], msg["transaction"]);
    assert!(event.correlation.is_none());

    let detached = b.call(false, request("detach", json!({"session_id": session, "handle_id": handle})), v5).await;
    assert_eq!(detached.body["janus"], "success");
    let destroyed = b.call(false, request("destroy", json!({"session_id": session})), v5).await;
    assert_eq!(destroyed.body["janus"], "success");
}

#[tokio::test]
async fn mqtt311_full_flow() {
    flow("3.1.1").await;
}

#[tokio::test]
async fn mqtt5_full_flow_with_response_topic_and_correlation_data() {
    flow("5").await;
}

#[tokio::test]
async fn mqtt_reconnects_after_broker_restart() {
    const MQTT: &str = "janus.transport.mqtt";
    let Some(brokers) = Brokers::from_env() else { return };
    let _lock = exclusive(&MOSQUITTO).await;
    let t = Topics::new();
    // Transport events go to a webhook: the link `connected`, and `reconnecting` once lost.
    let (url, mut hook) = crate::evh::receiver(false).await;
    let evh =
        crate::evh::config(&url, "grouping = false").replace(r#"events = "external""#, r#"events = "transports""#);
    let server = Server::spawn(&format!("{}{evh}", t.config(brokers.mqtt_port, "3.1.1")));
    server.wait_ready(Duration::from_secs(20)).await;
    let event = crate::evh::next_transport_event(&mut hook, MQTT).await;
    assert_eq!(event["event"]["data"], json!({"event": "connected"}), "{event}");
    let mut b = Backend::connect(brokers.mqtt_port, &t).await;
    let created = b.call(false, request("create", json!({})), false).await;
    let session = created.body["data"]["id"].as_u64().expect("session id");
    drop(b);

    brokers.ctl("restart-mosquitto");
    let link = "portunus_broker_connections_total{link=\"janus.transport.mqtt\"}";
    server.wait_metric(link, Duration::from_secs(30), |v| v >= 2.0).await;
    server.wait_ready(Duration::from_secs(30)).await;
    let event = crate::evh::next_transport_event(&mut hook, MQTT).await;
    assert_eq!(event["event"]["data"], json!({"event": "reconnecting"}), "{event}");
    let event = crate::evh::next_transport_event(&mut hook, MQTT).await;
    assert_eq!(event["event"]["data"], json!({"event": "connected"}), "{event}");

    let mut b = Backend::connect(brokers.mqtt_port, &t).await;
    let alive = b.call(false, request("keepalive", json!({"session_id": session})), false).await;
    assert_eq!(alive.body["janus"], "ack", "{:?}", alive.body);
    let destroyed = b.call(false, request("destroy", json!({"session_id": session})), false).await;
    assert_eq!(destroyed.body["janus"], "success");
}
