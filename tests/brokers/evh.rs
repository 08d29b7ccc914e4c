//! Event handlers against local receivers: the webhook (`sampleevh`) batches, authenticates and
//! signs; a stalled receiver costs counted drops with a bounded queue; `query_eventhandler`
//! tweaks settings and reports status. Also the RabbitMQ and MQTT handlers against the real
//! brokers.

use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::harness::{request, unique, Brokers, Server};

const SAMPLEEVH: &str = "janus.eventhandler.sampleevh";

/// One POST the receiver got.
pub(crate) struct Post {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Post {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 receiver: answers every POST with 200, or never answers when `stall`.
pub(crate) async fn receiver(stall: bool) -> (String, mpsc::UnboundedReceiver<Post>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request: headers, then Content-Length bytes.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
                        .collect();
                    let len = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[head_end..head_end + len].to_vec();
                    buf.drain(..head_end + len);
                    let _ = tx.send(Post { headers, body });
                    if stall {
                        // Keep the connection open and never answer.
                        std::future::pending::<()>().await;
                    }
                    if sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

pub(crate) fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
[events]
broadcast = true

[sampleevh]
enabled = true
events = "external"
backend = "{url}"
{extra}
"#
    )
}

async fn custom_event(server: &Server, n: u64) {
    let reply = server.admin_api(request("custom_event", json!({"schema": "test.portunus", "data": {"n": n}}))).await;
    assert_eq!(reply["janus"], "success", "{reply}");
}

async fn query(server: &Server, req: Value) -> Value {
    let reply = server.admin_api(request("query_eventhandler", json!({"handler": SAMPLEEVH, "request": req}))).await;
    assert_eq!(reply["janus"], "success", "{reply}");
    reply["response"].clone()
}

/// Collects events from POSTs until `n` arrived.
async fn collect(rx: &mut mpsc::UnboundedReceiver<Post>, n: usize) -> Vec<(Post, Value)> {
    let mut out = Vec::new();
    let mut events = 0;
    while events < n {
        let post = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a POST in time")
            .expect("receiver running");
        let body: Value = serde_json::from_slice(&post.body).expect("JSON body");
        events += body.as_array().map_or(1, Vec::len);
        out.push((post, body));
    }
    out
}

#[tokio::test]
async fn webhook_groups_authenticates_signs_and_tweaks() {
    let (url, mut rx) = receiver(false).await;
    let server = Server::spawn(&config(
        &url,
        r#"grouping = true
backend_user = "evh"
backend_pwd = "s3cret"
hmac_secret = "shared-key""#,
    ));
    for n in 0..5 {
        custom_event(&server, n).await;
    }
    let posts = collect(&mut rx, 5).await;
    let mut seqs = Vec::new();
    for (post, body) in &posts {
        let events = body.as_array().expect("grouping sends arrays");
        assert!(!events.is_empty() && events.len() <= 100);
        for e in events {
            assert_eq!(e["type"], 4);
            assert_eq!(e["event"]["schema"], "test.portunus");
            assert_eq!(e["emitter"], "MyJanusInstance");
            seqs.push(e["seq"].as_u64().expect("seq"));
        }
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("evh:s3cret"));
        assert_eq!(post.header("authorization"), Some(expected.as_str()));
        assert_eq!(post.header("content-type"), Some("application/json"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"shared-key").expect("key");
        mac.update(&post.body);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(post.header("x-portunus-signature"), Some(format!("sha256={hex}").as_str()));
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence numbers increase: {seqs:?}");

    // tweak: one event per POST from now on.
    let tweaked = query(&server, json!({"request": "tweak", "grouping": false})).await;
    assert_eq!(tweaked["result"], 200, "{tweaked}");
    let bad = query(&server, json!({"request": "tweak", "no_such_setting": 1})).await;
    assert!(bad["error_code"].as_u64().is_some(), "{bad}");
    custom_event(&server, 99).await;
    let posts = collect(&mut rx, 1).await;
    assert!(posts[0].1.is_object(), "ungrouped events are objects: {}", posts[0].1);
    assert_eq!(posts[0].1["event"]["data"]["n"], 99);

    let status = query(&server, json!({"request": "status"})).await;
    assert_eq!(status["dropped"], 0);
    assert_eq!(status["settings"]["backend_pwd"], "********");
    assert!(status["sent"].as_u64().unwrap_or(0) >= 6, "{status}");
}

#[tokio::test]
async fn webhook_stalled_receiver_costs_counted_drops_not_memory() {
    let (url, mut rx) = receiver(true).await;
    let server = Server::spawn(&config(
        &url,
        r#"grouping = false
queue_size = 20
timeout = 30
max_retransmissions = 0"#,
    ));
    let total = 300;
    for n in 0..total {
        custom_event(&server, n).await;
    }
    // The first POST reached the receiver, which never answers.
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("first POST").expect("open");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = query(&server, json!({"request": "status"})).await;
        if status["queued"].as_u64().unwrap_or(0) + status["dropped"].as_u64().unwrap_or(0) >= total {
            break status;
        }
        assert!(Instant::now() < deadline, "not every event was accounted for: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status["queue_depth"].as_u64().expect("depth") <= 20, "{status}");
    assert!(status["dropped"].as_u64().expect("dropped") >= total - 21 - 1, "{status}");
    let dropped = server.metric(&format!("portunus_eventhandler_dropped_total{{handler=\"{SAMPLEEVH}\"}}")).await;
    assert!(dropped.unwrap_or(0.0) >= (total - 22) as f64, "{dropped:?}");
}

#[tokio::test]
async fn rabbitmq_and_mqtt_event_handlers_publish() {
    use futures_util::StreamExt;
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

    let Some(brokers) = Brokers::from_env() else { return };
    let _r = crate::harness::exclusive(&crate::rabbitmq::RABBIT).await;
    let _m = crate::harness::exclusive(&crate::mqtt::MOSQUITTO).await;
    let route = unique("janus-events");
    let topic = format!("/{}", unique("janus/events"));

    // MQTT subscriber first, so nothing is missed.
    let mut opts = MqttOptions::new(unique("evh-sub"), "127.0.0.1", brokers.mqtt_port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    client.subscribe(format!("{topic}/#"), QoS::AtLeastOnce).await.expect("subscribe");
    let (mtx, mut mrx) = mpsc::unbounded_channel();
    let mqtt_task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = mtx.send(None);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = mtx.send(Some((p.topic, p.payload)));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    assert!(tokio::time::timeout(Duration::from_secs(10), mrx.recv()).await.expect("suback").expect("open").is_none());

    let server = Server::spawn(&format!(
        r#"
[events]
broadcast = true

[rabbitmqevh]
enabled = true
events = "external"
host = "127.0.0.1"
port = {}
route_key = "{route}"

[mqttevh]
enabled = true
events = "external"
url = "tcp://127.0.0.1:{}"
client_id = "{}"
topic = "{topic}"
addevent = true
"#,
        brokers.amqp_port,
        brokers.mqtt_port,
        unique("evh")
    ));
    server.wait_ready(Duration::from_secs(20)).await;

    let conn = lapin::Connection::connect(
        &format!("amqp://guest:guest@127.0.0.1:{}/%2f", brokers.amqp_port),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("amqp");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(route.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue");
    let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let mut consumer = ch
        .basic_consume(route.as_str().into(), "evh-test".into(), no_ack, FieldTable::default())
        .await
        .expect("consume");

    custom_event(&server, 7).await;

    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("an event on RabbitMQ")
        .expect("open")
        .expect("delivery");
    let body: Value = serde_json::from_slice(&delivery.data).expect("JSON");
    let first = body.as_array().and_then(|a| a.first()).cloned().unwrap_or(body);
    assert_eq!(first["event"]["data"]["n"], 7);

    let (got_topic, payload) = tokio::time::timeout(Duration::from_secs(10), mrx.recv())
        .await
        .expect("an event on MQTT")
        .expect("open")
        .expect("a publish");
    assert_eq!(got_topic, format!("{topic}/external"));
    let event: Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(event["event"]["data"]["n"], 7);
    mqtt_task.abort();
}

#[tokio::test]
async fn websocket_event_handler_sends_and_reconnects() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        // Serve one connection at a time; the first is closed after its first message.
        let mut first = true;
        while let Ok((sock, _)) = listener.accept().await {
            let Ok(mut ws) = tokio_tungstenite::accept_async(sock).await else { continue };
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(text) = msg {
                    let _ = tx.send(serde_json::from_str(text.as_str()).unwrap_or(Value::Null));
                    if first {
                        first = false;
                        break;
                    }
                }
            }
        }
    });
    let server = Server::spawn(&format!(
        r#"
[events]
broadcast = true

[wsevh]
enabled = true
events = "external"
backend = "ws://{addr}"
reconnect_backoff = 50
"#
    ));
    custom_event(&server, 1).await;
    let got = next_ws(&mut rx).await;
    assert_eq!(got[0]["event"]["data"]["n"], 1, "{got}");
    // The receiver dropped that connection; the handler reconnects and keeps delivering.
    custom_event(&server, 2).await;
    let got = next_ws(&mut rx).await;
    assert_eq!(got[0]["event"]["data"]["n"], 2, "{got}");
}

async fn next_ws(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a message in time").expect("open")
}

/// The next event from `transport`, skipping others (the Admin queries of the test are HTTP
/// requests and report events of their own).
pub(crate) async fn next_transport_event(rx: &mut mpsc::UnboundedReceiver<Post>, transport: &str) -> Value {
    loop {
        let event = collect(rx, 1).await.remove(0).1;
        if event["type"] == 128 && event["event"]["transport"] == transport {
            return event;
        }
    }
}

async fn janus_ws(
    server: &Server,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/", server.ready["ws"]).into_client_request().expect("ws request");
    req.headers_mut().insert("Sec-WebSocket-Protocol", "janus-protocol".parse().expect("header"));
    tokio_tungstenite::connect_async(req).await.expect("WebSocket connects").0
}

/// Transport events (type 128) as the webhook receives them, and Admin `query_transport` on the
/// HTTP and WebSocket transports: `connections` counts, `configure` switches the events off.
#[tokio::test]
async fn transport_events_and_query_transport() {
    const WS: &str = "janus.transport.websockets";
    const HTTP: &str = "janus.transport.http";
    let (url, mut rx) = receiver(false).await;
    let toml = config(&url, "grouping = false").replace(r#"events = "external""#, r#"events = "transports,external""#);
    let server = Server::spawn(&toml);
    let query = |transport: &'static str, req: Value| {
        let server = &server;
        async move {
            let reply =
                server.admin_api(request("query_transport", json!({"transport": transport, "request": req}))).await;
            assert_eq!(reply["janus"], "success", "{reply}");
            reply["response"].clone()
        }
    };

    // A WebSocket connects: a "connected" event with its address, counted by `connections`.
    let ws = janus_ws(&server).await;
    let event = next_transport_event(&mut rx, WS).await;
    let data = &event["event"]["data"];
    assert_eq!(
        (&data["event"], &data["admin_api"], &data["ip"]),
        (&json!("connected"), &json!(false), &json!("127.0.0.1"))
    );
    assert!(data["port"].as_u64().is_some_and(|p| p > 0), "{event}");
    let ws_id = event["event"]["id"].clone();
    assert_eq!(query(WS, json!({"request": "connections"})).await, json!({"result": 200, "connections": 1}));

    // That query was an HTTP request to the Admin API: a "request" event.
    let event = next_transport_event(&mut rx, HTTP).await;
    assert_eq!(event["event"]["data"]["event"], "request", "{event}");
    assert_eq!(event["event"]["data"]["admin_api"], true);

    // Closing the WebSocket: "disconnected" for the same instance.
    drop(ws);
    let event = next_transport_event(&mut rx, WS).await;
    assert_eq!(event["event"]["data"], json!({"event": "disconnected"}));
    assert_eq!(event["event"]["id"], ws_id);

    let counts = query(HTTP, json!({"request": "connections"})).await;
    assert_eq!(counts["result"], 200, "{counts}");
    assert!(
        counts["connections"]["http"].is_u64() && counts["connections"]["admin_http"].as_u64() >= Some(1),
        "{counts}"
    );
    assert_eq!(counts["messages"], 1, "the query itself is the one request being served: {counts}");

    // configure: events off; bad requests answer Janus's transport error codes.
    let reply = query(WS, json!({"request": "configure", "events": false, "json": "indented"})).await;
    assert_eq!(reply, json!({"result": 200, "notes": ["Ignored unsupported indentation format"]}));
    assert_eq!(
        query(WS, json!({"request": "nope"})).await,
        json!({"error_code": 411, "error": "Unknown request 'nope'"})
    );
    assert_eq!(query(WS, json!({})).await["error_code"], 412);
    assert_eq!(query(WS, json!({"request": "configure", "events": 1})).await["error_code"], 413);
    assert_eq!(query(HTTP, json!({"request": "configure", "events": false})).await, json!({"result": 200}));
    // The events of the queries made before HTTP's went off.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}

    // With both off, a new WebSocket and its close report nothing: the next event the receiver
    // gets is the custom event sent after them.
    drop(janus_ws(&server).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    custom_event(&server, 7).await;
    let event = collect(&mut rx, 1).await.remove(0).1;
    assert_eq!(event["type"], 4, "no transport event once they are off: {event}");
}

/// Transport events of the Unix sockets transport, as Janus's pfunix reports them: a
/// `SOCK_SEQPACKET` peer's `connected` (with its descriptor) and `disconnected`.
#[tokio::test]
async fn unix_socket_transport_events() {
    const PFUNIX: &str = "janus.transport.pfunix";
    let (url, mut rx) = receiver(false).await;
    let path = std::env::temp_dir().join(format!("{}.sock", unique("evh-pfunix")));
    let extra = format!("grouping = false\n\n[pfunix]\nenabled = true\npath = \"{}\"\n", path.display());
    let toml = config(&url, &extra).replace(r#"events = "external""#, r#"events = "transports""#);
    let server = Server::spawn(&toml);
    assert!(server.ready.contains_key("pfunix"));

    let peer = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).expect("socket");
    peer.connect(&socket2::SockAddr::unix(&path).expect("addr")).expect("connect");
    let event = next_transport_event(&mut rx, PFUNIX).await;
    let data = &event["event"]["data"];
    assert_eq!((&data["event"], &data["admin_api"]), (&json!("connected"), &json!(false)), "{event}");
    assert!(data["fd"].as_i64().is_some_and(|fd| fd > 2), "{event}");
    let id = event["event"]["id"].clone();

    drop(peer);
    let event = next_transport_event(&mut rx, PFUNIX).await;
    assert_eq!(event["event"]["data"], json!({"event": "disconnected"}));
    assert_eq!(event["event"]["id"], id);
    let _ = std::fs::remove_file(&path);
}
