//! `janus.eventhandler.rabbitmqevh`: events published to RabbitMQ (`exchange`, `route_key`),
//! one message per batch. Reconnects with exponential backoff; the batch whose publish failed is
//! published again after the reconnect.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};

use super::{HandlerSettings, SenderParts};
use crate::brokers::flag;
use crate::lanes::backoff_ms;
use crate::metrics::LinkState;

/// Package name.
pub const PACKAGE: &str = "janus.eventhandler.rabbitmqevh";

/// `[rabbitmqevh]` (janus.eventhandler.rabbitmqevh.jcfg), plus Portunus's queue and reconnect
/// settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct RabbitEvhSettings {
    /// Run this handler.
    #[serde(deserialize_with = "flag")]
    pub enabled: bool,
    /// Event mask.
    pub events: String,
    /// Publish arrays of up to 100 events per message.
    #[serde(deserialize_with = "flag")]
    pub grouping: bool,
    /// JSON layout.
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
    /// Exchange (the default exchange when unset).
    pub exchange: Option<String>,
    /// `fanout` (default), `direct`, `topic` or `headers`.
    pub exchange_type: String,
    /// Routing key (and queue name when `declare_outgoing_queue`).
    pub route_key: String,
    /// AMQP heartbeat in seconds.
    pub heartbeat: u16,
    /// Declare a queue named `route_key`.
    #[serde(deserialize_with = "flag")]
    pub declare_outgoing_queue: bool,
    /// Connect with TLS (amqps; the broker is always verified).
    #[serde(deserialize_with = "flag")]
    pub ssl_enable: bool,
    /// Events queued before new ones are dropped.
    pub queue_size: usize,
    /// First reconnect delay in ms; doubles per failed attempt.
    pub reconnect_backoff: u64,
    /// Longest reconnect delay in ms.
    pub reconnect_backoff_max: u64,
}

impl Default for RabbitEvhSettings {
    fn default() -> Self {
        RabbitEvhSettings {
            enabled: false,
            events: "all".into(),
            grouping: true,
            json: "compact".into(),
            host: "localhost".into(),
            port: 5672,
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            exchange: None,
            exchange_type: "fanout".into(),
            route_key: "janus-events".into(),
            heartbeat: 60,
            declare_outgoing_queue: true,
            ssl_enable: false,
            queue_size: 10_000,
            reconnect_backoff: 250,
            reconnect_backoff_max: 10_000,
        }
    }
}

impl HandlerSettings for RabbitEvhSettings {
    fn events(&self) -> &str {
        &self.events
    }
    fn grouping(&self) -> bool {
        self.grouping
    }
    fn json(&self) -> &str {
        &self.json
    }
    fn queue_size(&self) -> usize {
        self.queue_size
    }
}

/// The sender task.
pub async fn run(mut parts: SenderParts<RabbitEvhSettings>, link: Arc<LinkState>) {
    let mut batch = Vec::new();
    let mut pending: Option<(String, u64)> = None;
    let mut failures = 0u32;
    loop {
        let s = parts.settings.borrow().clone();
        if failures > 0 {
            tokio::time::sleep(Duration::from_millis(backoff_ms(
                failures,
                s.reconnect_backoff,
                s.reconnect_backoff_max,
            )))
            .await;
        }
        let conn = match connect(&s).await {
            Ok(c) => c,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::debug!(error = %e, "rabbitmqevh: cannot connect");
                continue;
            }
        };
        let exchange = s.exchange.clone().unwrap_or_default();
        let ready = async {
            let ch = conn.create_channel().await?;
            if !exchange.is_empty() {
                let kind = match s.exchange_type.to_ascii_lowercase().as_str() {
                    "direct" => ExchangeKind::Direct,
                    "topic" => ExchangeKind::Topic,
                    "headers" => ExchangeKind::Headers,
                    _ => ExchangeKind::Fanout,
                };
                ch.exchange_declare(
                    exchange.clone().into(),
                    kind,
                    ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            }
            if s.declare_outgoing_queue {
                ch.queue_declare(s.route_key.clone().into(), QueueDeclareOptions::default(), FieldTable::default())
                    .await?;
            }
            Ok::<_, lapin::Error>(ch)
        };
        let ch = match ready.await {
            Ok(ch) => ch,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "rabbitmqevh: cannot set up the channel");
                continue;
            }
        };
        link.set_connected(true);
        loop {
            let (body, n) = match pending.take() {
                Some(p) => p,
                None => {
                    if parts.next_batch(&mut batch).await.is_none() {
                        return;
                    }
                    (parts.render(&batch), batch.len() as u64)
                }
            };
            let props = BasicProperties::default().with_content_type("application/json".into());
            let sent = ch
                .basic_publish(
                    exchange.clone().into(),
                    s.route_key.clone().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "rabbitmqevh: publish failed; reconnecting");
                pending = Some((body, n));
                break;
            }
            parts.stats.sent.fetch_add(n, Ordering::Relaxed);
        }
        link.set_connected(false);
        failures = 1;
    }
}

async fn connect(s: &RabbitEvhSettings) -> lapin::Result<Connection> {
    let uri = AMQPUri {
        scheme: if s.ssl_enable { AMQPScheme::AMQPS } else { AMQPScheme::AMQP },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo { username: s.username.clone(), password: s.password.clone() },
            host: s.host.clone(),
            port: s.port,
        },
        vhost: s.vhost.clone(),
        query: AMQPQueryString { heartbeat: Some(s.heartbeat), ..AMQPQueryString::default() },
    };
    Connection::connect_uri(uri, ConnectionProperties::default().with_connection_name("portunus-evh".into())).await
}
