//! The Janus API and the Admin API over RabbitMQ, against a real rabbitmq-server: the full
//! create/attach/message/detach/destroy flow with correlation ids, notifications without them,
//! and a broker restart in the middle of a session.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde_json::{json, Value};

use crate::harness::{exclusive, request, unique, Brokers, Server};

pub static RABBIT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Queues {
    to: String,
    from: String,
    admin_to: String,
    admin_from: String,
}

impl Queues {
    fn new() -> Queues {
        Queues {
            to: unique("to-janus"),
            from: unique("from-janus"),
            admin_to: unique("to-janus-admin"),
            admin_from: unique("from-janus-admin"),
        }
    }

    fn config(&self, port: u16) -> String {
        format!(
            r#"
[rabbitmq]
enabled = true
host = "127.0.0.1"
port = {port}
to_janus = "{}"
from_janus = "{}"
reconnect_backoff = 100
reconnect_backoff_max = 1000

[rabbitmq.admin]
admin_enabled = true
to_janus_admin = "{}"
from_janus_admin = "{}"
"#,
            self.to, self.from, self.admin_to, self.admin_from
        )
    }
}

/// One message received on an outgoing queue.
#[derive(Debug)]
struct Received {
    body: Value,
    correlation: Option<String>,
    reply_to: Option<String>,
}

/// An application back end talking to Portunus over RabbitMQ.
struct Backend {
    _conn: Connection,
    ch: Channel,
    replies: Consumer,
    admin_replies: Consumer,
    queues_to: (String, String),
    /// Messages seen while waiting for something else.
    backlog: VecDeque<Received>,
}

impl Backend {
    async fn connect(port: u16, q: &Queues) -> lapin::Result<Backend> {
        let conn =
            Connection::connect(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f"), ConnectionProperties::default())
                .await?;
        let ch = conn.create_channel().await?;
        for name in [&q.to, &q.from, &q.admin_to, &q.admin_from] {
            ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await?;
        }
        let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let replies = ch.basic_consume(q.from.as_str().into(), "test".into(), no_ack, FieldTable::default()).await?;
        let admin_replies =
            ch.basic_consume(q.admin_from.as_str().into(), "test-admin".into(), no_ack, FieldTable::default()).await?;
        Ok(Backend {
            _conn: conn,
            ch,
            replies,
            admin_replies,
            queues_to: (q.to.clone(), q.admin_to.clone()),
            backlog: VecDeque::new(),
        })
    }

    /// Connects, retrying while the broker comes back.
    async fn connect_retrying(port: u16, q: &Queues, within: Duration) -> Backend {
        let deadline = Instant::now() + within;
        loop {
            match Backend::connect(port, q).await {
                Ok(b) => return b,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot reach rabbitmq: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn publish(&self, admin: bool, body: &Value, correlation: &str) {
        let queue = if admin { &self.queues_to.1 } else { &self.queues_to.0 };
        let props = BasicProperties::default().with_correlation_id(correlation.into());
        self.ch
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                props,
            )
            .await
            .expect("publish");
    }

    async fn next(&mut self, admin: bool, within: Duration) -> Received {
        let consumer = if admin { &mut self.admin_replies } else { &mut self.replies };
        let delivery = tokio::time::timeout(within, consumer.next())
            .await
            .expect("a message from Portunus in time")
            .expect("consumer open")
            .expect("delivery");
        Received {
            body: serde_json::from_slice(&delivery.data).expect("JSON from Portunus"),
            correlation: delivery.properties.correlation_id().as_ref().map(|c| c.to_string()),
            reply_to: delivery.properties.reply_to().as_ref().map(|c| c.to_string()),
        }
    }

    /// Sends a request and waits for the reply with its correlation id; anything else received
    /// meanwhile goes to the backlog.
    async fn call(&mut self, admin: bool, body: Value) -> Value {
        let correlation = unique("corr");
        self.publish(admin, &body, &correlation).await;
        loop {
            let msg = self.next(admin, Duration::from_secs(10)).await;
            if msg.correlation.as_deref() == Some(correlation.as_str()) {
                assert_eq!(msg.reply_to.as_deref(), Some("Janus"), "replies say who sent them");
                assert_eq!(msg.body["transaction"], body["transaction"], "reply to the right request");
                return msg.body;
            }
            self.backlog.push_back(msg);
        }
    }

    /// The next notification (a message without correlation id) of the Janus API.
    async fn notification(&mut self) -> Value {
        if let Some(i) = self.backlog.iter().position(|m| m.correlation.is_none()) {
            return self.backlog.remove(i).map(|m| m.body).unwrap_or_default();
        }
        loop {
            let msg = self.next(false, Duration::from_secs(10)).await;
            if msg.correlation.is_none() {
                return msg.body;
            }
            self.backlog.push_back(msg);
        }
    }
}

async fn start(brokers: &Brokers) -> (Server, Queues, Backend) {
    let q = Queues::new();
    let server = Server::spawn(&q.config(brokers.amqp_port));
    server.wait_ready(Duration::from_secs(20)).await;
    let backend = Backend::connect_retrying(brokers.amqp_port, &q, Duration::from_secs(10)).await;
    (server, q, backend)
}

#[tokio::test]
async fn rabbitmq_full_flow_with_correlation_ids() {
    let Some(brokers) = Brokers::from_env() else { return };
    let _lock = exclusive(&RABBIT).await;
    let (server, _q, mut b) = start(&brokers).await;

    let info = b.call(false, request("info", json!({}))).await;
    assert_eq!(info["janus"], "server_info");
    let transports = info["transports"].as_object().expect("transports in server_info");
    assert!(transports.contains_key("janus.transport.rabbitmq"));

    let created = b.call(false, request("create", json!({}))).await;
    assert_eq!(created["janus"], "success", "{created}");
    let session = created["data"]["id"].as_u64().expect("session id");

    let attached =
        b.call(false, request("attach", json!({"session_id": session, "plugin": "janus.plugin.echotest"}))).await;
    assert_eq!(attached["janus"], "success", "{attached}");
    let handle = attached["data"]["id"].as_u64().expect("handle id");

    // Admin API on its own queues.
    let listed = b.call(true, request("list_sessions", json!({}))).await;
    assert_eq!(listed["janus"], "success", "{listed}");
    assert!(listed["sessions"].as_array().expect("sessions").contains(&json!(session)));
    let handles = b.call(true, request("list_handles", json!({"session_id": session}))).await;
    assert_eq!(handles["handles"], json!([handle]));

    // An asynchronous plugin request: an ack with the correlation id, then the plugin's event as
    // a notification on from_janus (no correlation id), carrying the transaction.
    let msg = request("message", json!({"session_id": session, "handle_id": handle, "body": {"audio": false}}));
    let ack = b.call(false, msg.clone()).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
    let event = b.notification().await;
    assert_eq!(event["janus"], "event", "{event}");
    assert_eq!(event["sender"], handle);
    assert_eq!(event["transaction"], msg["transaction"]);
    assert_eq!(event["plugindata"]["plugin"], "janus.plugin.echotest");

    let detached = b.call(false, request("detach", json!({"session_id": session, "handle_id": handle}))).await;
    assert_eq!(detached["janus"], "success", "{detached}");
    let destroyed = b.call(false, request("destroy", json!({"session_id": session}))).await;
    assert_eq!(destroyed["janus"], "success", "{destroyed}");
    let gone = b.call(false, request("keepalive", json!({"session_id": session}))).await;
    assert_eq!(gone["error"]["code"], 458, "{gone}");

    // Garbage is answered with 454 (with the correlation id), and the link keeps working.
    let correlation = unique("bad");
    b.ch.basic_publish(
        "".into(),
        b.queues_to.0.as_str().into(),
        BasicPublishOptions::default(),
        b"{not json",
        BasicProperties::default().with_correlation_id(correlation.as_str().into()),
    )
    .await
    .expect("publish");
    let bad = b.next(false, Duration::from_secs(10)).await;
    assert_eq!(bad.correlation.as_deref(), Some(correlation.as_str()));
    assert_eq!(bad.body["error"]["code"], 454);
    let pong = b.call(false, request("ping", json!({}))).await;
    assert_eq!(pong["janus"], "pong");

    let connected = server.metric("portunus_broker_connected{link=\"janus.transport.rabbitmq\"}").await;
    assert_eq!(connected, Some(1.0));

    // Requests are acknowledged in batches; once the link has been quiet none is left
    // unacknowledged: stopping Portunus returns nothing to its queues (the broker would requeue
    // an unacknowledged delivery, and a restarted server would run it twice).
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for queue in [&b.queues_to.0, &b.queues_to.1] {
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let q = b.ch.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await.expect("queue exists");
        assert_eq!(q.message_count(), 0, "requests left unacknowledged in {queue}");
    }
}

#[tokio::test]
async fn rabbitmq_reconnects_after_broker_restart() {
    let Some(brokers) = Brokers::from_env() else { return };
    let _lock = exclusive(&RABBIT).await;
    let (server, q, mut b) = start(&brokers).await;

    let created = b.call(false, request("create", json!({}))).await;
    let session = created["data"]["id"].as_u64().expect("session id");
    let link = "portunus_broker_connections_total{link=\"janus.transport.rabbitmq\"}";
    assert_eq!(server.metric(link).await, Some(1.0));

    brokers.ctl("restart-rabbitmq");

    // The server notices, reconnects with backoff and re-declares its (non-durable) queues.
    server.wait_metric(link, Duration::from_secs(30), |v| v >= 2.0).await;
    server.wait_ready(Duration::from_secs(30)).await;
    let mut b = Backend::connect_retrying(brokers.amqp_port, &q, Duration::from_secs(30)).await;

    // The session created before the restart is still owned by the link and served.
    let alive = b.call(false, request("keepalive", json!({"session_id": session}))).await;
    assert_eq!(alive["janus"], "ack", "{alive}");
    let attached =
        b.call(false, request("attach", json!({"session_id": session, "plugin": "janus.plugin.echotest"}))).await;
    assert_eq!(attached["janus"], "success", "{attached}");
    let listed = b.call(true, request("list_sessions", json!({}))).await;
    assert!(listed["sessions"].as_array().expect("sessions").contains(&json!(session)));
    let destroyed = b.call(false, request("destroy", json!({"session_id": session}))).await;
    assert_eq!(destroyed["janus"], "success");
}
