//! One connection attempt of the RabbitMQ transport: connect, declare, then consume and publish
//! until the connection fails. The outgoing queue is borrowed for the attempt and handed back in
//! [`AttemptEnd`], together with the messages not known to be written, so nothing queued is lost.
//!
//! lapin runs the socket on its own thread; every await on a lapin future is a wake-up of our
//! runtime from that thread. So only deliveries are awaited: publishes and acks are started and
//! left to complete (see [`super::publish`]).

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::sync::mpsc;

use super::publish::{ack_up_to, InFlight, Route};
use super::settings::{QueueSet, RabbitSettings};
use super::Meta;
use crate::http::Api;
use crate::lanes::{JsonStyle, Lanes, Reply};
use crate::metrics::LinkState;

pub(super) struct Attempt {
    pub settings: Arc<RabbitSettings>,
    pub lanes: Arc<Lanes<Meta>>,
    pub link: Arc<LinkState>,
    pub rx: mpsc::Receiver<Reply<Meta>>,
    /// Messages to publish before any new one (left unwritten by the previous attempt).
    pub pending: VecDeque<Reply<Meta>>,
}

pub(super) struct AttemptEnd {
    pub rx: mpsc::Receiver<Reply<Meta>>,
    pub pending: VecDeque<Reply<Meta>>,
    pub was_connected: bool,
    pub error: String,
}

impl Attempt {
    pub async fn run(mut self) -> AttemptEnd {
        let mut was_connected = false;
        let error = match self.serve(&mut was_connected).await {
            Ok(()) => "outgoing queue closed".to_owned(),
            Err(e) => e,
        };
        self.link.set_connected(false);
        AttemptEnd { rx: self.rx, pending: self.pending, was_connected, error }
    }

    async fn serve(&mut self, was_connected: &mut bool) -> Result<(), String> {
        let s = self.settings.clone();
        let conn = connect(&s).await.map_err(|e| format!("connect: {e}"))?;
        let mut events = conn.events_listener();
        let consume_ch = conn.create_channel().await.map_err(|e| format!("channel: {e}"))?;
        let publish_ch = conn.create_channel().await.map_err(|e| format!("channel: {e}"))?;
        consume_ch
            .basic_qos(s.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(|e| format!("basic.qos: {e}"))?;

        let exchange = s.janus_exchange.clone().filter(|e| !e.is_empty()).unwrap_or_default();
        if !exchange.is_empty() {
            consume_ch
                .exchange_declare(
                    exchange.clone().into(),
                    exchange_kind(&s.janus_exchange_type),
                    ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("exchange.declare {exchange}: {e}"))?;
        }
        let janus_queues = s.janus_queues();
        let janus = declare(&consume_ch, &janus_queues, &exchange, &s.janus_exchange_type).await?;
        let janus_route =
            Route { exchange: exchange.clone().into(), routing_key: janus_queues.from_janus.clone().into() };
        let mut consumers = vec![(Api::Janus, janus)];
        let mut admin_route = None;
        if let Some(admin_queues) = s.admin_queues() {
            let admin = declare(&consume_ch, &admin_queues, &exchange, &s.janus_exchange_type).await?;
            consumers.push((Api::Admin, admin));
            admin_route =
                Some(Route { exchange: exchange.clone().into(), routing_key: admin_queues.from_janus.clone().into() });
        }

        self.link.set_connected(true);
        *was_connected = true;
        tracing::info!(queue = janus_queues.incoming(), "RabbitMQ link up");

        let style = JsonStyle::parse(&s.json);
        let lanes = self.lanes.clone();
        let ack_batch = usize::from(s.prefetch.max(2) / 2);
        let incoming = async move {
            let mut deliveries = futures_util::stream::select_all(
                consumers.into_iter().map(|(api, c)| c.map(move |d| (api, d)).boxed()),
            );
            // Requests are acknowledged in batches, not one by one: each ack wakes lapin's I/O
            // thread. Acking the latest delivery acknowledges everything before it (`multiple`:
            // delivery tags count per channel, which both consumers share), once `ack_batch` are
            // pending (below the prefetch, so the broker never stalls) or the queue has been
            // quiet for ACK_IDLE. Janus consumes without acks at all.
            let mut unacked: Option<(u64, usize)> = None;
            let ack_ch = consume_ch.clone();
            loop {
                let next = match unacked {
                    None => deliveries.next().await,
                    Some(_) => match tokio::time::timeout(ACK_IDLE, deliveries.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            ack_all(&ack_ch, &mut unacked)?;
                            continue;
                        }
                    },
                };
                let Some((api, delivery)) = next else { break };
                let delivery = delivery.map_err(|e| format!("consumer: {e}"))?;
                let correlation = delivery.properties.correlation_id().clone();
                if !lanes.submit(api, &delivery.data, correlation).await {
                    return Err("request lanes closed".to_owned());
                }
                let pending = unacked.as_ref().map_or(0, |(_, n)| *n) + 1;
                unacked = Some((delivery.delivery_tag, pending));
                if pending >= ack_batch {
                    ack_all(&ack_ch, &mut unacked)?;
                }
            }
            Err::<(), String>("consumer cancelled".to_owned())
        };
        // A message leaves `pending` only when its publish is started, and `in_flight` only once
        // lapin has written it: if the link breaks (or this future is cancelled), everything not
        // written is published again after reconnecting.
        let mut in_flight = InFlight::new(publish_ch, style);
        let started = &mut in_flight;
        let rx = &mut self.rx;
        let pending = &mut self.pending;
        let outgoing = async move {
            loop {
                started.settle().map_err(|e| format!("basic.publish: {e}"))?;
                if started.is_full() {
                    started.oldest_written().await.map_err(|e| format!("basic.publish: {e}"))?;
                    continue;
                }
                let msg = match pending.pop_front() {
                    Some(m) => m,
                    None => match rx.try_recv() {
                        Ok(m) => m,
                        Err(_) => {
                            // Idle until a message comes; then let the tasks already woken
                            // (other lanes) queue theirs first, so that lapin's thread is woken
                            // for a burst of publishes rather than for each one.
                            let Some(m) = rx.recv().await else { return Ok(()) };
                            pending.push_back(m);
                            tokio::task::yield_now().await;
                            continue;
                        }
                    },
                };
                let route = match (msg.api, &admin_route) {
                    (Api::Admin, Some(r)) => r,
                    _ => &janus_route,
                };
                started.start(route, msg).map_err(|e| format!("basic.publish: {e}"))?;
            }
        };
        let watch = async move {
            while let Some(ev) = events.next().await {
                if let lapin::Event::Error(e) = ev {
                    return Err::<(), String>(format!("connection: {e}"));
                }
            }
            Err("connection closed".to_owned())
        };
        let result = tokio::select! {
            r = incoming => r,
            r = outgoing => r,
            r = watch => r,
        };
        // Best effort: the broker may already be gone.
        let _ = conn.close(200, "Bye".into()).await;
        // The connection is closed, so lapin has written or rejected every publish in flight.
        let mut unwritten: VecDeque<_> = in_flight.into_unwritten().collect();
        unwritten.append(&mut self.pending);
        self.pending = unwritten;
        result
    }
}

/// How long the consumer may be quiet before pending deliveries are acknowledged.
const ACK_IDLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Acknowledges every delivery up to the latest pending one.
fn ack_all(ch: &Channel, unacked: &mut Option<(u64, usize)>) -> Result<(), String> {
    if let Some((tag, _)) = unacked.take() {
        ack_up_to(ch, tag).map_err(|e| format!("basic.ack: {e}"))?;
    }
    Ok(())
}

/// Declares one API's queues (reference 1.9) and starts consuming the incoming one.
async fn declare(ch: &Channel, q: &QueueSet, exchange: &str, exchange_type: &str) -> Result<Consumer, String> {
    let incoming = q.incoming().to_owned();
    let options = QueueDeclareOptions {
        durable: q.durable,
        exclusive: q.exclusive,
        auto_delete: q.autodelete,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(incoming.clone().into(), options, FieldTable::default())
        .await
        .map_err(|e| format!("queue.declare {incoming}: {e}"))?;
    let keyed = matches!(exchange_type.to_ascii_lowercase().as_str(), "topic" | "direct");
    if q.queue_name.is_some() && !exchange.is_empty() && keyed {
        ch.queue_bind(
            incoming.clone().into(),
            exchange.into(),
            q.to_janus.clone().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("queue.bind {incoming}: {e}"))?;
    }
    if q.declare_outgoing {
        // The outgoing queue is for the application to consume: never exclusive to Portunus.
        let out_options = QueueDeclareOptions { exclusive: false, ..options };
        ch.queue_declare(q.from_janus.clone().into(), out_options, FieldTable::default())
            .await
            .map_err(|e| format!("queue.declare {}: {e}", q.from_janus))?;
    }
    ch.basic_consume(
        incoming.clone().into(),
        format!("portunus-{incoming}").into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| format!("basic.consume {incoming}: {e}"))
}

fn exchange_kind(kind: &str) -> ExchangeKind {
    match kind.to_ascii_lowercase().as_str() {
        "direct" => ExchangeKind::Direct,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        "fanout" | "" => ExchangeKind::Fanout,
        other => ExchangeKind::Custom(other.to_owned()),
    }
}

async fn connect(s: &RabbitSettings) -> lapin::Result<Connection> {
    let uri = AMQPUri {
        scheme: if s.ssl_enabled { AMQPScheme::AMQPS } else { AMQPScheme::AMQP },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo { username: s.username.clone(), password: s.password.clone() },
            host: s.host.clone(),
            port: s.port,
        },
        vhost: s.vhost.clone(),
        query: AMQPQueryString { heartbeat: Some(s.heartbeat), ..AMQPQueryString::default() },
    };
    let props = ConnectionProperties::default().with_connection_name("portunus".into());
    if !s.ssl_enabled {
        return Connection::connect_uri(uri, props).await;
    }
    if !s.ssl_verify_peer || !s.ssl_verify_hostname {
        tracing::warn!("ssl_verify_peer/ssl_verify_hostname = false is not supported: the broker is always verified");
    }
    let read = |path: &Option<String>| path.as_ref().and_then(|p| std::fs::read(p).ok());
    let tls = OwnedTLSConfig {
        cert_chain: read(&s.ssl_cacert).and_then(|b| String::from_utf8(b).ok()),
        identity: match (read(&s.ssl_cert), read(&s.ssl_key)) {
            (Some(pem), Some(key)) => Some(OwnedIdentity::PKCS8 { pem, key }),
            _ => None,
        },
    };
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connect_uri_with_config(uri, props, tls, runtime).await
}
