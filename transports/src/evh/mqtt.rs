//! `janus.eventhandler.mqttevh`: events published to MQTT 3.1.1 on `topic`, or with `addevent`
//! on `topic/<type>` one event per message. The client reconnects by itself (exponential
//! backoff between attempts); what is published while the broker is away waits in the bounded
//! client queue and then in the handler's queue (or is dropped and counted).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, Transport};
use serde::{Deserialize, Serialize};

use super::{type_name, HandlerSettings, SenderParts};
use crate::brokers::flag;
use crate::lanes::{backoff_ms, JsonStyle};
use crate::metrics::LinkState;

/// Package name.
pub const PACKAGE: &str = "janus.eventhandler.mqttevh";

/// `[mqttevh]` (janus.eventhandler.mqttevh.jcfg), plus Portunus's queue and reconnect settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct MqttEvhSettings {
    /// Run this handler.
    #[serde(deserialize_with = "flag")]
    pub enabled: bool,
    /// Event mask.
    pub events: String,
    /// Publish arrays of up to 100 events per message (without `addevent`).
    #[serde(deserialize_with = "flag")]
    pub grouping: bool,
    /// JSON layout.
    pub json: String,
    /// Broker URL: `tcp://host:port` or `ssl://host:port`.
    pub url: String,
    /// Accepted for compatibility; events are published with MQTT 3.1.1.
    pub mqtt_version: String,
    /// Client identifier.
    pub client_id: String,
    /// Keep-alive in seconds.
    pub keep_alive_interval: u64,
    /// Clean session.
    #[serde(deserialize_with = "flag")]
    pub cleansession: bool,
    /// Retain published events.
    #[serde(deserialize_with = "flag")]
    pub retain: bool,
    /// QoS of published events.
    pub qos: u8,
    /// Most unacknowledged QoS>0 messages.
    pub max_inflight: u16,
    /// Messages buffered towards the client.
    pub max_buffered: usize,
    /// Login.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Base topic.
    pub topic: String,
    /// Publish each event on `topic/<type>`.
    #[serde(deserialize_with = "flag")]
    pub addevent: bool,
    /// Published on `topic/status` at every connect.
    pub connect_status: Option<String>,
    /// Last will on `topic/status` (with `will_enabled`).
    pub disconnect_status: Option<String>,
    /// Register `disconnect_status` as last will.
    #[serde(deserialize_with = "flag")]
    pub will_enabled: bool,
    /// Retain the last will.
    #[serde(deserialize_with = "flag")]
    pub will_retain: bool,
    /// QoS of the last will.
    pub will_qos: u8,
    /// CA certificates (PEM) for `ssl://`.
    pub tls_cacert: Option<String>,
    /// Client certificate (PEM).
    pub tls_client_cert: Option<String>,
    /// Client key (PEM).
    pub tls_client_key: Option<String>,
    /// Events queued before new ones are dropped.
    pub queue_size: usize,
    /// First reconnect delay in ms; doubles per failed attempt.
    pub reconnect_backoff: u64,
    /// Longest reconnect delay in ms.
    pub reconnect_backoff_max: u64,
}

impl Default for MqttEvhSettings {
    fn default() -> Self {
        MqttEvhSettings {
            enabled: false,
            events: "all".into(),
            grouping: false,
            json: "compact".into(),
            url: "tcp://localhost:1883".into(),
            mqtt_version: "3.1.1".into(),
            client_id: "guest".into(),
            keep_alive_interval: 30,
            cleansession: false,
            retain: false,
            qos: 1,
            max_inflight: 10,
            max_buffered: 100,
            username: None,
            password: None,
            topic: "/janus/events".into(),
            addevent: true,
            connect_status: None,
            disconnect_status: None,
            will_enabled: false,
            will_retain: true,
            will_qos: 0,
            tls_cacert: None,
            tls_client_cert: None,
            tls_client_key: None,
            queue_size: 10_000,
            reconnect_backoff: 250,
            reconnect_backoff_max: 10_000,
        }
    }
}

impl HandlerSettings for MqttEvhSettings {
    fn events(&self) -> &str {
        &self.events
    }
    fn grouping(&self) -> bool {
        self.grouping && !self.addevent
    }
    fn json(&self) -> &str {
        &self.json
    }
    fn queue_size(&self) -> usize {
        self.queue_size
    }
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The sender task.
pub async fn run(mut parts: SenderParts<MqttEvhSettings>, link: Arc<LinkState>) {
    let s = parts.settings.borrow().clone();
    let broker = match crate::mqtt::parse_url(&s.url, false) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "mqttevh: not started");
            return;
        }
    };
    let mut opts = MqttOptions::new(s.client_id.clone(), broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(s.keep_alive_interval.max(5)))
        .set_clean_session(s.cleansession)
        .set_inflight(s.max_inflight.max(1));
    if let Some(user) = &s.username {
        opts.set_credentials(user.clone(), s.password.clone().unwrap_or_default());
    }
    if broker.tls {
        match crate::tls::client_config(
            s.tls_cacert.as_deref(),
            s.tls_client_cert.as_deref(),
            s.tls_client_key.as_deref(),
            true,
        ) {
            Ok(cfg) => {
                opts.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(cfg)));
            }
            Err(e) => {
                tracing::error!(error = %e, "mqttevh: not started");
                return;
            }
        }
    }
    let status_topic = format!("{}/status", s.topic.trim_end_matches('/'));
    if let (true, Some(msg)) = (s.will_enabled, &s.disconnect_status) {
        opts.set_last_will(LastWill::new(&status_topic, msg.as_bytes().to_vec(), qos(s.will_qos), s.will_retain));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, s.max_buffered.max(1));
    let poll_client = client.clone();
    let connect_status = s.connect_status.clone();
    let (reconnect_min, reconnect_max) = (s.reconnect_backoff, s.reconnect_backoff_max);
    actix_rt::spawn(async move {
        let mut failures = 0u32;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    failures = 0;
                    link.set_connected(true);
                    if let Some(msg) = &connect_status {
                        let _ = poll_client.try_publish(status_topic.clone(), QoS::AtLeastOnce, false, msg.clone());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    link.set_connected(false);
                    failures = failures.saturating_add(1);
                    tracing::debug!(error = %e, "mqttevh: broker unreachable");
                    tokio::time::sleep(Duration::from_millis(backoff_ms(failures, reconnect_min, reconnect_max))).await;
                }
            }
        }
    });
    let mut batch = Vec::new();
    while parts.next_batch(&mut batch).await.is_some() {
        let s = parts.settings.borrow().clone();
        let base = s.topic.trim_end_matches('/').to_owned();
        let sent = if s.addevent {
            let style = JsonStyle::parse(&s.json);
            let mut ok = true;
            for e in &batch {
                let body = style.apply(serde_json::to_string(&**e).unwrap_or_default());
                let topic = format!("{base}/{}", type_name(e.kind));
                ok &= client.publish(topic, qos(s.qos), s.retain, body).await.is_ok();
            }
            ok
        } else {
            client.publish(base, qos(s.qos), s.retain, parts.render(&batch)).await.is_ok()
        };
        if sent {
            parts.stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
        } else {
            parts.stats.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }
}
