//! Session and handle lifecycle (reference 1.2, 1.5, 1.6, 14.1, 14.2, 14.11): the exact shapes
//! of `create`, `attach`, `keepalive`, `claim`, `hangup`, `detach` and `destroy` replies, the
//! `detached` notification, and what `destroy` leaves behind.

use std::time::Duration;

use serde_json::json;

use crate::common::json::ID;
use crate::common::{assert_error, mask_ids, TestServer, ECHOTEST};

#[tokio::test]
async fn create_success_has_no_session_id() {
    let server = TestServer::start();
    let reply = server.http().post("/janus", json!({"janus": "create", "transaction": "c1"})).await;
    assert_eq!(mask_ids(&reply), json!({"janus": "success", "transaction": "c1", "data": {"id": ID}}));
    let id = reply["data"]["id"].as_u64().expect("numeric id");
    assert!(id > 0 && id < (1u64 << 53), "session id {id} is a positive 53-bit integer");
}

#[tokio::test]
async fn attach_success_carries_session_and_handle() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let reply =
        http.post(&format!("/janus/{s}"), json!({"janus": "attach", "transaction": "a1", "plugin": ECHOTEST})).await;
    assert_eq!(
        mask_ids(&reply),
        json!({"janus": "success", "session_id": ID, "transaction": "a1", "data": {"id": ID}})
    );
    assert_eq!(reply["session_id"], s);
    let h = reply["data"]["id"].as_u64().expect("numeric id");
    assert!(h > 0 && h < (1u64 << 53), "handle id {h} is a positive 53-bit integer");
}

#[tokio::test]
async fn keepalive_is_acked() {
    let server = TestServer::start();
    let http = server.http();
    let s = http.create().await;
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "keepalive", "transaction": "t24"})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "t24"}));
}

#[tokio::test]
async fn claim_on_the_same_transport_is_success() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "claim", "transaction": "t25"})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "t25"}));
    // claim works at any level.
    let reply = http.post(&format!("/janus/{s}/{h}"), json!({"janus": "claim", "transaction": "t26"})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "t26"}));
    let mut ws = server.ws().await;
    let s2 = ws.create().await;
    let reply = ws.request(json!({"janus": "claim", "transaction": "t27", "session_id": s2})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s2, "transaction": "t27"}));
}

#[tokio::test]
async fn keepalive_at_handle_level_is_acked() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = http.post(&format!("/janus/{s}/{h}"), json!({"janus": "keepalive", "transaction": "k"})).await;
    assert_eq!(reply, json!({"janus": "ack", "session_id": s, "transaction": "k"}));
}

#[tokio::test]
async fn hangup_is_success() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = http.post(&format!("/janus/{s}/{h}"), json!({"janus": "hangup", "transaction": "t20"})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "t20"}));
    // The handle survives a hangup.
    let ack = http.handle_request(s, h, "message", json!({"body": {"audio": true}})).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
}

#[tokio::test]
async fn detach_is_success_then_detached_event() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = http.post(&format!("/janus/{s}/{h}"), json!({"janus": "detach", "transaction": "d1"})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "d1"}));
    let event = http.poll_until(s, Duration::from_secs(10), |e| e["janus"] == "detached").await;
    assert_eq!(event, json!({"janus": "detached", "session_id": s, "sender": h}));
    let reply = http.post(&format!("/janus/{s}/{h}"), json!({"janus": "detach", "transaction": "d2"})).await;
    assert_error(&reply, 459, &format!("No such handle {h} in session {s}"));
    // The session itself is still alive.
    assert_eq!(http.keepalive(s).await["janus"], "ack");
}

#[tokio::test]
async fn detach_over_websocket_sends_detached() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let (s, h) = ws.session_with_echotest().await;
    let reply = ws.request(json!({"janus": "detach", "transaction": "d1", "session_id": s, "handle_id": h})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "d1"}));
    let event = ws.recv_until(|v| v["janus"] == "detached").await;
    assert_eq!(event, json!({"janus": "detached", "session_id": s, "sender": h}));
}

#[tokio::test]
async fn destroy_is_success_and_the_session_is_gone() {
    let server = TestServer::start();
    let http = server.http();
    let (s, h) = http.session_with_echotest().await;
    let reply = http.post(&format!("/janus/{s}"), json!({"janus": "destroy", "transaction": "x1"})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "x1"}));
    assert_error(&http.keepalive(s).await, 458, &format!("No such session {s}"));
    let reply = http.handle_request(s, h, "message", json!({"body": {}})).await;
    assert_error(&reply, 458, &format!("No such session {s}"));
    let (status, body) = http.get(&format!("/janus/{s}")).await;
    assert_eq!((status.as_u16(), body.as_str()), (404, ""));
}

#[tokio::test]
async fn destroy_sends_no_detached_for_remaining_handles() {
    let server = TestServer::start();
    let mut ws = server.ws().await;
    let (s, _h1) = ws.session_with_echotest().await;
    let _h2 = ws.attach(s, ECHOTEST).await;
    let reply = ws.request(json!({"janus": "destroy", "transaction": "x", "session_id": s})).await;
    assert_eq!(reply, json!({"janus": "success", "session_id": s, "transaction": "x"}));
    // Anything the destroy caused would be queued before the reply to a later request.
    let pong = ws.request(json!({"janus": "ping", "transaction": "p"})).await;
    assert_eq!(pong["janus"], "pong");
    let late = ws.recv_timeout(Duration::from_millis(500)).await;
    assert!(late.is_none(), "unexpected message after destroy: {late:?}");
    assert!(
        ws.backlog().iter().all(|v| v["janus"] != "detached" && v["janus"] != "hangup"),
        "destroy must not notify handles: {:?}",
        ws.backlog()
    );
}

#[tokio::test]
async fn handle_ids_are_scoped_to_their_session() {
    let server = TestServer::start();
    let http = server.http();
    let (s1, h1) = http.session_with_echotest().await;
    let s2 = http.create().await;
    let reply = http.post(&format!("/janus/{s2}/{h1}"), json!({"janus": "hangup", "transaction": "t"})).await;
    assert_error(&reply, 459, &format!("No such handle {h1} in session {s2}"));
    assert_eq!(http.handle_request(s1, h1, "hangup", json!({})).await["janus"], "success");
}

#[tokio::test]
async fn requests_on_another_connection_reach_a_websocket_session() {
    let server = TestServer::start();
    let mut owner = server.ws().await;
    let (s, h) = owner.session_with_echotest().await;
    let mut other = server.ws().await;
    let req =
        json!({"janus": "message", "transaction": "m1", "session_id": s, "handle_id": h, "body": {"audio": true}});
    let ack = other.request(req).await;
    assert_eq!(ack["janus"], "ack", "{ack}");
    // Notifications go to the connection that created the session (reference section 0).
    let event = owner.recv_until(|v| v["janus"] == "event").await;
    assert_eq!(event["transaction"], "m1");
    assert_eq!(event["sender"], h);
}
