//! The MQTT 5 driver (see the module docs of [`super`]): like the 3.1.1 one, plus response
//! topics, correlation data and user properties on replies.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Transport;
use tokio::sync::mpsc;

use super::{qos_level, topic_matches, Driver, Meta};
use crate::http::Api;
use crate::lanes::{backoff_ms, JsonStyle, Reply};

fn qos(q: u8) -> QoS {
    match qos_level(q) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Runs until the outgoing queue closes or the configuration is unusable; returns the queue.
pub(super) async fn run(d: Driver) -> (mpsc::Receiver<Reply<Meta>>, String) {
    let Driver { settings: s, lanes, link, mut rx } = d;
    let broker = match s.broker() {
        Ok(b) => b,
        Err(e) => return (rx, e),
    };
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
    if broker.tls {
        match crate::tls::client_config(
            s.cacertfile.as_deref(),
            s.certfile.as_deref(),
            s.keyfile.as_deref(),
            s.verify_peer,
        ) {
            Ok(cfg) => {
                opts.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(cfg)));
            }
            Err(e) => return (rx, e),
        }
    }
    let status = &s.status;
    if let (true, Some(msg)) = (status.enabled, &status.disconnect_message) {
        opts.set_last_will(LastWill::new(&status.topic, msg.as_bytes().to_vec(), qos(status.qos), status.retain, None));
    }
    // Replies are small writes answering a request: with Nagle on (rumqttc's default) each one
    // waited for the broker's delayed ACK, about 40 ms on Linux (found by `portunus-bench api
    // --transport mqtt`).
    let mut net = opts.network_options();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    let (client, mut eventloop) = AsyncClient::new(opts, s.max_buffered.max(1));
    let admin_topic = s.admin.admin_enabled.then(|| s.admin.subscribe_topic.clone());
    let style = JsonStyle::parse(&s.json);

    // Incoming publishes wait here for the lanes; the broker's in-flight window bounds them, and
    // anything beyond (QoS 0 floods) is dropped and counted.
    let (in_tx, mut in_rx) = mpsc::channel::<(Api, Publish)>(usize::from(s.max_inflight.max(1)) * 4 + 64);
    let proxied = s.proxy_transaction_user_properties.clone();
    let submitter = {
        let client = client.clone();
        async move {
            while let Some((api, publish)) = in_rx.recv().await {
                let meta = request_meta(&publish, &proxied);
                if !lanes.submit(api, &publish.payload, meta).await {
                    break;
                }
                let _ = client.ack(&publish).await;
            }
            "request lanes closed".to_owned()
        }
    };
    let publisher = {
        let client = client.clone();
        let s = s.clone();
        async move {
            while let Some(msg) = rx.recv().await {
                let (topic, q) = match msg.api {
                    Api::Admin => (&s.admin.publish_topic, s.admin.publish_qos),
                    Api::Janus => (&s.publish_topic, s.publish_qos),
                };
                let payload = style.apply(msg.json).into_bytes();
                let sent = match msg.meta {
                    // A reply: to the requester's response topic if it gave one.
                    Some(meta) => {
                        let topic = meta.response_topic.unwrap_or_else(|| topic.clone());
                        let mut user_properties = meta.user_properties;
                        user_properties.extend(s.add_transaction_user_properties.iter().cloned());
                        let props = PublishProperties {
                            correlation_data: meta.correlation,
                            user_properties,
                            content_type: Some("application/json".into()),
                            ..PublishProperties::default()
                        };
                        client.publish_with_properties(topic, qos(q), false, payload, props).await
                    }
                    None => client.publish(topic.clone(), qos(q), false, payload).await,
                };
                if sent.is_err() {
                    break;
                }
            }
            (rx, "outgoing queue closed".to_owned())
        }
    };
    let poller = {
        let client = client.clone();
        let s = s.clone();
        async move {
            let mut failures = 0u32;
            let mut unacked_subscriptions = 0usize;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        failures = 0;
                        // Up once every subscription is acknowledged (requests published before
                        // that would be lost).
                        unacked_subscriptions = 1 + usize::from(admin_topic.is_some());
                        // try_*: the request channel is drained by this very loop, never wait on it.
                        let _ = client.try_subscribe(s.subscribe_topic.clone(), qos(s.subscribe_qos));
                        if let Some(admin) = &admin_topic {
                            let _ = client.try_subscribe(admin.clone(), qos(s.admin.subscribe_qos));
                        }
                        if let (true, Some(msg)) = (s.status.enabled, &s.status.connect_message) {
                            let st = &s.status;
                            let _ =
                                client.try_publish(st.topic.clone(), qos(st.qos), st.retain, msg.clone().into_bytes());
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        unacked_subscriptions = unacked_subscriptions.saturating_sub(1);
                        if unacked_subscriptions == 0 && !link.connected() {
                            link.set_connected(true);
                            tracing::info!(topic = %s.subscribe_topic, "MQTT link up");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic);
                        let api = match &admin_topic {
                            Some(admin) if topic_matches(admin, &topic) => Api::Admin,
                            _ => Api::Janus,
                        };
                        if let Err(mpsc::error::TrySendError::Full((_, p))) = in_tx.try_send((api, p)) {
                            link.add_dropped(1);
                            tracing::warn!(topic = %String::from_utf8_lossy(&p.topic), "MQTT request dropped: lanes full");
                            let _ = client.try_ack(&p);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        link.set_connected(false);
                        failures = failures.saturating_add(1);
                        let delay = backoff_ms(failures, s.reconnect_backoff, s.reconnect_backoff_max);
                        tracing::warn!(error = %e, retry_ms = delay, "MQTT link down");
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                }
            }
        }
    };
    tokio::select! {
        (rx, why) = publisher => (rx, why),
        why = submitter => {
            // The queue was moved into the publisher, which has not ended: build a fresh one so the
            // actor can restart (nothing can be queued for this dead link anyway).
            let (_tx, rx) = mpsc::channel(1);
            (rx, why)
        }
        () = poller => unreachable_end(),
    }
}

/// The poller loops forever; this keeps the `select!` arms' types aligned.
fn unreachable_end() -> (mpsc::Receiver<Reply<Meta>>, String) {
    let (_tx, rx) = mpsc::channel(1);
    (rx, "MQTT event loop ended".to_owned())
}

/// The reply routing an MQTT 5 request asks for.
fn request_meta(publish: &Publish, proxied: &[String]) -> Meta {
    let Some(props) = &publish.properties else { return Meta::default() };
    Meta {
        response_topic: props.response_topic.clone().filter(|t| !t.is_empty()),
        correlation: props.correlation_data.clone(),
        user_properties: props.user_properties.iter().filter(|(k, _)| proxied.contains(k)).cloned().collect(),
    }
}
