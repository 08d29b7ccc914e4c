//! WebSocket transport rules (reference 1.8, 13): the subprotocol, several JSON objects in one
//! frame answered in order, a parse error answered with 454 while the socket keeps working.

use serde_json::json;

use crate::common::{TestServer, WsClient, ECHOTEST};

#[tokio::test]
async fn two_objects_in_one_frame_are_answered_in_order() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let s = ws.create().await;
    let frame = format!(
        "{}{}",
        json!({"janus": "keepalive", "transaction": "k1", "session_id": s}),
        json!({"janus": "keepalive", "transaction": "k2", "session_id": s})
    );
    ws.send_text(&frame).await;
    assert_eq!(ws.recv().await, json!({"janus": "ack", "session_id": s, "transaction": "k1"}));
    assert_eq!(ws.recv().await, json!({"janus": "ack", "session_id": s, "transaction": "k2"}));
}

#[tokio::test]
async fn batches_tolerate_whitespace_and_mix_requests() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let frame = format!(
        "{}\n  {} \r\n{}\n",
        json!({"janus": "ping", "transaction": "b1"}),
        json!({"janus": "create", "transaction": "b2"}),
        json!({"janus": "foo", "transaction": "b3"})
    );
    ws.send_text(&frame).await;
    assert_eq!(ws.recv().await, json!({"janus": "pong", "transaction": "b1"}));
    let created = ws.recv().await;
    assert_eq!(
        (created["janus"].as_str(), created["transaction"].as_str()),
        (Some("success"), Some("b2")),
        "{created}"
    );
    let err = ws.recv().await;
    assert_eq!(
        err,
        json!({"janus": "error", "transaction": "b3", "error": {"code": 457, "reason": "Unhandled request 'foo' at this path"}})
    );
}

#[tokio::test]
async fn garbage_frame_is_454_and_the_socket_keeps_working() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let s = ws.create().await;
    for garbage in ["{bad", "not json at all", "}{", "{\"janus\":\"ping\",\"transaction\":"] {
        ws.send_text(garbage).await;
        let err = ws.recv().await;
        assert_eq!(err["janus"], "error", "{garbage}: {err}");
        assert_eq!(err["error"]["code"], 454, "{garbage}: {err}");
        assert!(err["error"]["reason"].as_str().is_some_and(|r| r.starts_with("JSON error")), "{err}");
        assert!(err.get("transaction").is_none(), "{err}");
    }
    let ack = ws.request(json!({"janus": "keepalive", "transaction": "k", "session_id": s})).await;
    assert_eq!(ack, json!({"janus": "ack", "session_id": s, "transaction": "k"}));
}

#[tokio::test]
async fn garbage_after_a_good_object_answers_both() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    ws.send_text(&format!("{} garbage", json!({"janus": "ping", "transaction": "g1"}))).await;
    assert_eq!(ws.recv().await, json!({"janus": "pong", "transaction": "g1"}));
    let err = ws.recv().await;
    assert_eq!(err["error"]["code"], 454, "{err}");
    assert_eq!(ws.request(json!({"janus": "ping", "transaction": "g2"})).await["janus"], "pong");
}

#[tokio::test]
async fn non_object_frames_are_455() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    for frame in ["[1,2]", "42", "\"ping\"", "null"] {
        ws.send_text(frame).await;
        assert_eq!(
            ws.recv().await,
            json!({"janus": "error", "error": {"code": 455, "reason": "JSON error: not an object"}}),
            "{frame}"
        );
    }
}

#[tokio::test]
async fn subprotocol_is_required() {
    let server = TestServer::start();
    assert!(WsClient::try_connect(server.ws, None).await.is_err(), "connected without a subprotocol");
    assert!(WsClient::try_connect(server.ws, Some("chat")).await.is_err(), "connected with a foreign subprotocol");
    let mut ok = server.ws().await;
    assert_eq!(ok.request(json!({"janus": "ping", "transaction": "p"})).await["janus"], "pong");
}

#[tokio::test]
async fn events_arrive_on_the_socket_even_before_the_ack_is_read() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let (s, h) = ws.session_with_echotest().await;
    // Three messages without waiting: every ack and every event comes back, matched by transaction.
    for t in ["m1", "m2", "m3"] {
        ws.send(
            &json!({"janus": "message", "transaction": t, "session_id": s, "handle_id": h, "body": {"video": true}}),
        )
        .await;
    }
    for t in ["m1", "m2", "m3"] {
        let ack = ws.recv_until(|v| v["janus"] == "ack" && v["transaction"] == t).await;
        assert_eq!(ack["session_id"], s);
        let event = ws.recv_until(|v| v["janus"] == "event" && v["transaction"] == t).await;
        assert_eq!(event["plugindata"]["plugin"], ECHOTEST);
        assert_eq!(event["sender"], h);
    }
}

#[tokio::test]
async fn sessions_of_other_sockets_are_unaffected_by_a_close() {
    let server = TestServer::start();
    let mut a = server.ws().await;
    let mut b = server.ws().await;
    let sa = a.create().await;
    let sb = b.create().await;
    a.close().await;
    let ack = b.request(json!({"janus": "keepalive", "transaction": "k", "session_id": sb})).await;
    assert_eq!(ack["janus"], "ack");
    // sa is (or soon will be) gone; sb is not.
    crate::common::eventually(std::time::Duration::from_secs(10), "the closed socket's session to go", || {
        let http = server.http();
        async move { (http.keepalive(sa).await["janus"] == "error").then_some(()) }
    })
    .await;
    let ack = b.request(json!({"janus": "keepalive", "transaction": "k2", "session_id": sb})).await;
    assert_eq!(ack["janus"], "ack");
}

/// `portunus_transport_connections{transport="janus.transport.websockets"}` in `/metrics`.
async fn open_websockets(server: &TestServer) -> u64 {
    let (_, text) = server.admin().get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("portunus_transport_connections{transport=\"janus.transport.websockets\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the WebSocket connection gauge")
}

#[tokio::test]
async fn open_connections_are_counted_in_metrics() {
    let server = TestServer::start();
    let before = open_websockets(&server).await;
    let a = server.ws().await;
    let mut b = server.ws().await;
    b.create().await;
    assert_eq!(open_websockets(&server).await, before + 2);
    a.close().await;
    b.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while open_websockets(&server).await != before {
        assert!(std::time::Instant::now() < deadline, "closed WebSockets still counted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
