//! The broker link's driver, the same for MQTT 3.1.1 and 5 (see the module docs of [`super`]):
//! rumqttc has a separate client for each version, so what differs sits behind [`Protocol`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_rustls::rustls::ClientConfig;

use super::settings::BrokerUrl;
use super::{topic_matches, Driver, Meta, MqttSettings};
use crate::http::Api;
use crate::lanes::{backoff_ms, JsonStyle, Reply};

/// What the event loop reports, as far as the driver cares.
pub(super) enum Incoming<P> {
    /// Connected (again): subscribe.
    ConnAck,
    /// A subscription was acknowledged.
    SubAck,
    /// A request.
    Publish(P),
    /// Anything else.
    Other,
}

/// One MQTT version's client.
pub(super) trait Protocol {
    type Client: Clone + 'static;
    type EventLoop: 'static;
    type Publish: 'static;

    /// The client and its event loop: options, credentials, TLS and the last will.
    fn connect(s: &MqttSettings, broker: &BrokerUrl, tls: Option<Arc<ClientConfig>>)
        -> (Self::Client, Self::EventLoop);
    /// The next event; an error means the connection is down (the loop reconnects when polled).
    async fn poll(events: &mut Self::EventLoop) -> Result<Incoming<Self::Publish>, String>;
    /// A request's topic.
    fn topic(p: &Self::Publish) -> Cow<'_, str>;
    /// A request's body.
    fn payload(p: &Self::Publish) -> &[u8];
    /// How the reply to a request is routed (MQTT 5 response topic and correlation data).
    fn meta(p: &Self::Publish, s: &MqttSettings) -> Meta;
    /// Acknowledges a request once it is handed over.
    async fn ack(c: &Self::Client, p: &Self::Publish);
    /// Acknowledges without waiting (from inside the event loop, which drains the client).
    fn try_ack(c: &Self::Client, p: &Self::Publish);
    /// Subscribes without waiting.
    fn try_subscribe(c: &Self::Client, topic: &str, qos: u8);
    /// Publishes without waiting.
    fn try_publish(c: &Self::Client, topic: &str, qos: u8, retain: bool, payload: Vec<u8>);
    /// Publishes a reply (`meta` of its request) or a notification; false when the client is gone.
    async fn publish(
        c: &Self::Client,
        s: &MqttSettings,
        topic: &str,
        qos: u8,
        payload: Vec<u8>,
        meta: Option<Meta>,
    ) -> bool;
}

/// Runs until the outgoing queue closes or the configuration is unusable; returns the queue.
pub(super) async fn run<P: Protocol>(d: Driver) -> (mpsc::Receiver<Reply<Meta>>, String) {
    let Driver { settings: s, lanes, link, events: link_events, mut rx } = d;
    let broker = match s.broker() {
        Ok(b) => b,
        Err(e) => return (rx, e),
    };
    let tls = if broker.tls {
        match crate::tls::client_config(
            s.cacertfile.as_deref(),
            s.certfile.as_deref(),
            s.keyfile.as_deref(),
            s.verify_peer,
        ) {
            Ok(cfg) => Some(cfg),
            Err(e) => return (rx, e),
        }
    } else {
        None
    };
    let (client, mut events) = P::connect(&s, &broker, tls);
    let admin_topic = s.admin.admin_enabled.then(|| s.admin.subscribe_topic.clone());
    let style = JsonStyle::parse(&s.json);

    // Incoming publishes wait here for the lanes; the broker's in-flight window bounds them, and
    // anything beyond (QoS 0 floods) is dropped and counted.
    let (in_tx, mut in_rx) = mpsc::channel::<(Api, P::Publish)>(usize::from(s.max_inflight.max(1)) * 4 + 64);
    let submitter = {
        let client = client.clone();
        let s = s.clone();
        async move {
            while let Some((api, publish)) = in_rx.recv().await {
                if !lanes.submit(api, P::payload(&publish), P::meta(&publish, &s)).await {
                    break;
                }
                P::ack(&client, &publish).await;
            }
            "request lanes closed".to_owned()
        }
    };
    let publisher = {
        let client = client.clone();
        let s = s.clone();
        async move {
            while let Some(msg) = rx.recv().await {
                let (topic, qos) = match msg.api {
                    Api::Admin => (&s.admin.publish_topic, s.admin.publish_qos),
                    Api::Janus => (&s.publish_topic, s.publish_qos),
                };
                let payload = style.apply(msg.json).into_bytes();
                if !P::publish(&client, &s, topic, qos, payload, msg.meta).await {
                    break;
                }
            }
            (rx, "outgoing queue closed".to_owned())
        }
    };
    let poller = async move {
        let mut failures = 0u32;
        let mut unacked_subscriptions = 0usize;
        loop {
            match P::poll(&mut events).await {
                Ok(Incoming::ConnAck) => {
                    failures = 0;
                    // Up once every subscription is acknowledged (requests published before
                    // that would be lost).
                    unacked_subscriptions = 1 + usize::from(admin_topic.is_some());
                    P::try_subscribe(&client, &s.subscribe_topic, s.subscribe_qos);
                    if let Some(admin) = &admin_topic {
                        P::try_subscribe(&client, admin, s.admin.subscribe_qos);
                    }
                    if let (true, Some(msg)) = (s.status.enabled, &s.status.connect_message) {
                        let st = &s.status;
                        P::try_publish(&client, &st.topic, st.qos, st.retain, msg.clone().into_bytes());
                    }
                }
                Ok(Incoming::SubAck) => {
                    unacked_subscriptions = unacked_subscriptions.saturating_sub(1);
                    if unacked_subscriptions == 0 && !link.connected() {
                        link.set_connected(true);
                        link_events.notify("connected");
                        tracing::info!(topic = %s.subscribe_topic, "MQTT link up");
                    }
                }
                Ok(Incoming::Publish(p)) => {
                    let api = match &admin_topic {
                        Some(admin) if topic_matches(admin, &P::topic(&p)) => Api::Admin,
                        _ => Api::Janus,
                    };
                    if let Err(mpsc::error::TrySendError::Full((_, p))) = in_tx.try_send((api, p)) {
                        link.add_dropped(1);
                        tracing::warn!(topic = %P::topic(&p), "MQTT request dropped: lanes full");
                        P::try_ack(&client, &p);
                    }
                }
                Ok(Incoming::Other) => {}
                Err(e) => {
                    if link.connected() {
                        link_events.notify("reconnecting");
                    }
                    link.set_connected(false);
                    failures = failures.saturating_add(1);
                    let delay = backoff_ms(failures, s.reconnect_backoff, s.reconnect_backoff_max);
                    tracing::warn!(error = %e, retry_ms = delay, "MQTT link down");
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
        }
    };
    // When the publisher has not ended, the queue is still inside it: the actor restarts with a
    // fresh one (nothing can be queued for this dead link anyway).
    let fresh = |why: String| (mpsc::channel(1).1, why);
    tokio::select! {
        (rx, why) = publisher => (rx, why),
        why = submitter => fresh(why),
        () = poller => fresh("MQTT event loop ended".to_owned()),
    }
}
